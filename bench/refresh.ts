// Benchmark 3: the cost of one refresh of an unchanged conf dir (what every Status call triggers),
// in process: Refresher.refresh() over 1, 100 and 1,000 unchanged conflists, p50/p99/mean.
// Also checks that no file was read while timing (stat decides; unchanged files are not re-read).
// Then the same through the worker thread `serve` runs it in (WorkerRefresher.fresh(): the scan plus
// the message round trip and the wait for the next turn of the event loop).
//
//   node dist/bench/refresh.js [--files 1,100,1000] [--seconds 10] [--baseline DIR]
//
// --baseline DIR: also time the Refresher built in another checkout (DIR/dist/src/cni/refresher.js,
// e.g. main) over the same dirs, alternating batches of refreshes between the two so both see the
// same machine load; prints both and the ratio ("before/after" in one run).
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';
import { Refresher } from '../src/cni/refresher.js';
import { WorkerRefresher } from '../src/cni/worker-refresher.js';
import { runScript, tempDir } from './lib/cleanup.js';
import { CNI_BIN_DIR, conflist, writeAtomic } from './lib/conf.js';
import { progress } from './lib/fleet.js';
import { machineFacts } from './lib/machine.js';
import { commandLine, fmt, isMain, percentile, sleep, table } from './lib/util.js';

function listFlag(name: string, fallback: number[]): number[] {
  const at = process.argv.indexOf(`--${name}`);
  const raw = at >= 0 ? process.argv[at + 1] : undefined;
  if (raw === undefined) return fallback;
  const values = raw.split(',').map(Number);
  if (values.some((v) => !Number.isInteger(v) || v <= 0))
    throw new Error(`--${name} needs integers, got ${raw}`);
  return values;
}

interface RefreshFigures {
  files: number;
  refreshes: number;
  p50: number;
  p99: number;
  mean: number;
  filesRead: number;
  network: string;
}

interface RefresherLike {
  refresh(): { selection: { ready: boolean; reason?: string; network?: { name: string } } };
  readonly stats: { filesRead: number };
}
type MakeRefresher = (options: {
  confDir: string;
  binDirs: string[];
  semantics: 'isulad';
  maxFileSize: number;
}) => RefresherLike;

const OURS: MakeRefresher = (options) => {
  const refresher = new Refresher(options);
  return { refresh: () => refresher.refresh(), stats: refresher.stats };
};

/** The Refresher of another checkout's build (--baseline). */
async function baselineRefresher(dir: string): Promise<MakeRefresher> {
  const module = (await import(pathToFileURL(resolve(dir, 'dist/src/cni/refresher.js')).href)) as {
    Refresher: new (options: Parameters<MakeRefresher>[0]) => RefresherLike;
  };
  return (options) => new module.Refresher(options);
}

async function writeDir(files: number): Promise<string> {
  const confDir = join(tempDir(), 'net.d');
  mkdirSync(confDir);
  const width = String(files).length + 1;
  for (let i = 0; i < files; i++) {
    const name = `${String(i).padStart(width, '0')}-net`;
    writeAtomic(confDir, `${name}.conflist`, conflist(name, `10.${(i >> 8) & 255}.${i & 255}.0/24`));
  }
  await sleep(100); // past the racy-timestamp window, so the next refresh settles every file
  return confDir;
}

/** Every refresher in this file reads the same way: the default profile, the real plugin dir. */
const refresherOptions = (confDir: string) => ({
  confDir,
  binDirs: [CNI_BIN_DIR],
  semantics: 'isulad' as const,
  maxFileSize: 1 << 20,
});

/** Enough refreshes for a stable p99, fewer for big dirs (about 2 M file reads at most). */
const maxRefreshesFor = (files: number): number =>
  Math.max(1000, Math.min(50_000, Math.round(2_000_000 / files)));

/** The figures of one timed run: `times` in µs, files read and the network in force after it. */
function figures(
  files: number,
  times: readonly number[],
  filesRead: number,
  network: string,
): RefreshFigures {
  const sorted = [...times].sort((a, b) => a - b);
  return {
    files,
    refreshes: times.length,
    p50: percentile(sorted, 0.5),
    p99: percentile(sorted, 0.99),
    mean: times.reduce((a, b) => a + b, 0) / times.length,
    filesRead,
    network,
  };
}

/** Both refreshers over one dir, in alternating batches; figures for each. */
async function measurePair(
  files: number,
  seconds: number,
  makers: readonly MakeRefresher[],
): Promise<RefreshFigures[]> {
  const confDir = await writeDir(files);
  const refreshers = makers.map((make) => make(refresherOptions(confDir)));
  const maxRefreshes = maxRefreshesFor(files);
  for (const refresher of refreshers) {
    refresher.refresh();
    refresher.refresh();
    for (let i = 0; i < Math.min(2000, maxRefreshes >> 2); i++) refresher.refresh();
  }
  const read = refreshers.map((r) => r.stats.filesRead);
  const times: number[][] = refreshers.map(() => []);
  const batch = Math.max(5, Math.round(5000 / files));
  const deadline = performance.now() + seconds * 1000 * refreshers.length;
  while ((times[0]?.length ?? 0) < maxRefreshes && performance.now() < deadline) {
    for (const [index, refresher] of refreshers.entries()) {
      for (let i = 0; i < batch; i++) {
        const started = performance.now();
        refresher.refresh();
        times[index]?.push((performance.now() - started) * 1000);
      }
    }
  }
  return refreshers.map((refresher, index) =>
    figures(
      files,
      times[index] ?? [],
      refresher.stats.filesRead - (read[index] ?? 0),
      refresher.refresh().selection.network?.name ?? '',
    ),
  );
}

async function measure(files: number, seconds: number): Promise<RefreshFigures> {
  const refresher = new Refresher(refresherOptions(await writeDir(files)));
  refresher.refresh();
  refresher.refresh();
  if (!refresher.state.selection.ready)
    throw new Error(`no network in force: ${refresher.state.selection.reason ?? ''}`);
  const maxRefreshes = maxRefreshesFor(files);
  const warmup = Math.min(2000, maxRefreshes >> 2);
  for (let i = 0; i < warmup; i++) refresher.refresh();
  const read = refresher.stats.filesRead;
  const times: number[] = [];
  const deadline = performance.now() + seconds * 1000;
  while (times.length < maxRefreshes && performance.now() < deadline) {
    const started = performance.now();
    refresher.refresh();
    times.push((performance.now() - started) * 1000);
  }
  return figures(
    files,
    times,
    refresher.stats.filesRead - read,
    refresher.state.selection.network?.name ?? '',
  );
}

/** The same unchanged dir through the worker thread, as `serve` refreshes: one fresh() at a time. */
async function measureWorker(files: number, seconds: number): Promise<RefreshFigures> {
  const refresher = new WorkerRefresher(refresherOptions(await writeDir(files)));
  try {
    await refresher.fresh();
    await refresher.fresh();
    const maxRefreshes = maxRefreshesFor(files);
    for (let i = 0; i < Math.min(2000, maxRefreshes >> 2); i++) await refresher.fresh();
    const read = refresher.stats.filesRead;
    const times: number[] = [];
    const deadline = performance.now() + seconds * 1000;
    while (times.length < maxRefreshes && performance.now() < deadline) {
      const started = performance.now();
      await refresher.fresh();
      times.push((performance.now() - started) * 1000);
    }
    return figures(
      files,
      times,
      refresher.stats.filesRead - read,
      refresher.state.selection.network?.name ?? '',
    );
  } finally {
    refresher.stop();
  }
}

/** `--baseline DIR`: this build and DIR's, alternating, and the ratio. */
async function compareBenchmark(dir: string, counts: number[], seconds: number): Promise<string> {
  const baseline = await baselineRefresher(dir);
  const rows: string[][] = [];
  for (const files of counts) {
    const [ours, theirs] = await measurePair(files, seconds, [OURS, baseline]);
    if (!ours || !theirs) throw new Error('measurePair returned no figures');
    progress(`refresh ${files} files: p50 ${fmt(theirs.p50, 1)} → ${fmt(ours.p50, 1)} µs`);
    const ratio = (a: number, b: number) => `${fmt((100 * a) / b, 1)}%`;
    rows.push([
      fmt(files),
      `${fmt(theirs.refreshes)} / ${fmt(ours.refreshes)}`,
      `${fmt(theirs.p50, 1)} / ${fmt(ours.p50, 1)} (${ratio(ours.p50, theirs.p50)})`,
      `${fmt(theirs.p99, 1)} / ${fmt(ours.p99, 1)}`,
      `${fmt(theirs.mean, 1)} / ${fmt(ours.mean, 1)} (${ratio(ours.mean, theirs.mean)})`,
      `${fmt(theirs.filesRead)} / ${fmt(ours.filesRead)}`,
    ]);
  }
  return [
    `### Refresh cost, unchanged conf dir: baseline ${dir} / this build, alternating batches`,
    '',
    table(
      [
        'files',
        'refreshes timed (baseline / this)',
        'p50 µs (baseline / this, this ÷ baseline)',
        'p99 µs (baseline / this)',
        'mean µs (baseline / this, this ÷ baseline)',
        'files read (baseline / this)',
      ],
      rows,
    ),
    '',
    `- command: \`${commandLine('refresh')}\``,
  ].join('\n');
}

export async function refreshBenchmark(): Promise<string> {
  const counts = listFlag('files', [1, 100, 1000]);
  const seconds = Number(listFlag('seconds', [10])[0]);
  const at = process.argv.indexOf('--baseline');
  const baseline = at >= 0 ? process.argv[at + 1] : undefined;
  if (baseline) return compareBenchmark(baseline, counts, seconds);
  const results: RefreshFigures[] = [];
  for (const files of counts) {
    const r = await measure(files, seconds);
    progress(
      `refresh ${files} files: p50 ${fmt(r.p50, 1)} µs, p99 ${fmt(r.p99, 1)} µs over ${fmt(r.refreshes)}`,
    );
    results.push(r);
  }
  const viaWorker: RefreshFigures[] = [];
  for (const files of counts) {
    const r = await measureWorker(files, seconds);
    progress(
      `refresh via worker ${files} files: p50 ${fmt(r.p50, 1)} µs, p99 ${fmt(r.p99, 1)} µs over ${fmt(r.refreshes)}`,
    );
    viaWorker.push(r);
  }
  const rowsOf = (list: RefreshFigures[]) =>
    list.map((r) => [
      fmt(r.files),
      fmt(r.refreshes),
      fmt(r.p50, 1),
      fmt(r.p99, 1),
      fmt(r.mean, 1),
      fmt(r.filesRead),
    ]);
  const at100 = results.find((r) => r.files === 100);
  return [
    '### Refresh cost, unchanged conf dir (in process, `Refresher.refresh()`)',
    '',
    table(
      ['files', 'refreshes timed', 'p50 µs', 'p99 µs', 'mean µs', 'files read while timing'],
      rowsOf(results),
    ),
    '',
    '### The same through the worker thread (`WorkerRefresher.fresh()`, what `serve` runs; wall time per call)',
    '',
    table(
      ['files', 'refreshes timed', 'p50 µs', 'p99 µs', 'mean µs', 'files read while timing'],
      rowsOf(viaWorker),
    ),
    '',
    at100
      ? `- p99 at 100 files: ${fmt(at100.p99 / 1000, 3)} ms (target < 2 ms: ${at100.p99 < 2000 ? 'met' : 'MISSED'})`
      : '- p99 at 100 files: not measured',
    `- command: \`${commandLine('refresh')}\``,
  ].join('\n');
}

if (isMain(import.meta.url)) {
  await runScript(async () => `${machineFacts()}\n\n${await refreshBenchmark()}`);
}
