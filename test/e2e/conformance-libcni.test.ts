// Differential test against the real libcni and go-cni: a seeded corpus of conf dirs is loaded by
// test/peers/libcni-loader (built by scripts/peers.sh once per containerd profile, against the
// go-cni and libcni that runtime vendors) and by our refresher with that profile's libcni, and the
// two must agree on every file's accept/reject, every network name and go-cni's verdict; for every
// shared rejection our message must contain libcni's. Prints the agreement table the README cites.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { profileLibcni } from '../../src/cni/profiles.js';
import { Refresher } from '../../src/cni/refresher.js';
import type { NetworkState } from '../../src/cni/types.js';
import { tempDir } from '../helpers/fs.js';
import { MAX_FILE_SIZE, writeCorpus } from './harness/cni-corpus.js';
import { requirePeers } from './harness/peers.js';

const SEED = Number(process.env.CRI_NETSTATUS_CORPUS_SEED ?? 9);
const DIRS = Number(process.env.CRI_NETSTATUS_CORPUS_DIRS ?? 3200);
const PROFILES = ['containerd-1.7', 'containerd-2.0', 'containerd-2.1'] as const;

interface LoaderFile {
  file: string;
  ok: boolean;
  network?: string;
  stage?: string;
  error?: string;
}
interface LoaderDir {
  dir: string;
  files: LoaderFile[];
  verdict: { ready: boolean; file?: string; network?: string; error?: string };
}

/** Runs one loader over every dir (one process, dirs on stdin). */
function runLoader(binary: string, dirs: readonly string[]): Promise<Map<string, LoaderDir>> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, [], { stdio: ['pipe', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`${binary} exited ${code}: ${stderr}`));
      const out = new Map<string, LoaderDir>();
      for (const line of Buffer.concat(chunks).toString('utf8').split('\n')) {
        if (!line) continue;
        const parsed = JSON.parse(line) as LoaderDir;
        out.set(parsed.dir, parsed);
      }
      resolve(out);
    });
    child.stdin.end(`${dirs.join('\n')}\n`);
  });
}

interface Tally {
  files: number;
  sameAcceptReject: number;
  accepted: number;
  sameNetwork: number;
  bothRejected: number;
  messageContained: number;
  dirs: number;
  sameVerdict: number;
  mismatches: string[];
}

function compare(
  profile: (typeof PROFILES)[number],
  ours: NetworkState,
  theirs: LoaderDir,
  tally: Tally,
): void {
  const note = (what: string): void => {
    if (tally.mismatches.length < 15) tally.mismatches.push(`${profile} ${theirs.dir}: ${what}`);
  };
  const byName = new Map(ours.files.map((file) => [file.file, file]));
  const listed = theirs.files.map((f) => f.file).join(',');
  if (listed !== ours.files.map((f) => f.file).join(',')) {
    note(`listing differs: libcni [${listed}], ours [${ours.files.map((f) => f.file).join(',')}]`);
  }
  for (const file of theirs.files) {
    tally.files++;
    const mine = byName.get(file.file);
    if (!mine) continue;
    if (mine.current.ok === file.ok) tally.sameAcceptReject++;
    else
      note(
        `${file.file}: libcni ${file.ok ? 'accepts' : `rejects: ${file.error}`}, ours ${mine.current.ok ? 'accepts' : `rejects: ${mine.current.error.message}`}`,
      );
    if (file.ok && mine.current.ok) {
      tally.accepted++;
      if (mine.current.config.name === file.network) tally.sameNetwork++;
      else
        note(
          `${file.file}: network ${JSON.stringify(file.network)} vs ours ${JSON.stringify(mine.current.config.name)}`,
        );
    }
    if (!file.ok && !mine.current.ok) {
      tally.bothRejected++;
      if (mine.current.error.message.includes(file.error ?? '\u0000')) tally.messageContained++;
      else
        note(
          `${file.file}: libcni says ${JSON.stringify(file.error)}, ours ${JSON.stringify(mine.current.error.message)}`,
        );
    }
  }
  tally.dirs++;
  const verdict = ours.verdicts[profile];
  const inner = (theirs.verdict.error ?? '')
    .replace(/^cni config load failed: /, '')
    .replace(/: failed to load cni config$/, '');
  const same =
    verdict.ready === theirs.verdict.ready &&
    (verdict.ready
      ? verdict.file === theirs.verdict.file && verdict.network?.name === theirs.verdict.network
      : (verdict.reason ?? '').includes(inner));
  if (same) tally.sameVerdict++;
  else
    note(
      `verdict: go-cni ${JSON.stringify(theirs.verdict)}, ours ready=${verdict.ready} file=${verdict.file ?? ''} network=${verdict.network?.name ?? ''} reason=${verdict.reason ?? ''}`,
    );
}

function countBy(items: readonly string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const item of items) counts.set(item, (counts.get(item) ?? 0) + 1);
  return counts;
}

const pct = (n: number, of: number): string => (of === 0 ? 'n/a' : `${((100 * n) / of).toFixed(1)}%`);

test(`each containerd profile agrees with the real go-cni + libcni it reproduces on ${DIRS} generated conf dirs`, async (t) => {
  const { libcniLoaders } = requirePeers('libcniLoaders');
  const root = tempDir(t, 'cri-netstatus-corpus-');
  const corpus = writeCorpus(root, DIRS, SEED);
  // libcni would block on a FIFO forever: those dirs are not given to the loaders.
  const dirs = corpus.filter((c) => !c.allowed.includes('FIFO')).map((c) => c.dir);
  const allowed = corpus.filter((c) => c.allowed.length > 0);
  const skip = new Set(allowed.map((c) => c.dir));
  const classes = new Set(corpus.flatMap((c) => c.classes));
  const rows: string[] = [];
  const failures: string[] = [];
  for (const profile of PROFILES) {
    const theirs = await runLoader(join(libcniLoaders, profile), dirs);
    const tally: Tally = {
      files: 0,
      sameAcceptReject: 0,
      accepted: 0,
      sameNetwork: 0,
      bothRejected: 0,
      messageContained: 0,
      dirs: 0,
      sameVerdict: 0,
      mismatches: [],
    };
    const { libcni, dirPlugins } = profileLibcni(profile);
    for (const dir of dirs) {
      if (skip.has(dir)) continue;
      const refresher = new Refresher({
        confDir: dir,
        binDirs: [],
        semantics: profile,
        maxFileSize: MAX_FILE_SIZE,
        libcni,
        dirPlugins,
      });
      const result = theirs.get(dir);
      assert.ok(result, `the ${profile} loader printed nothing for ${dir}`);
      compare(profile, refresher.refresh(), result, tally);
    }
    rows.push(
      `| ${profile} (libcni ${libcni}) | ${tally.sameAcceptReject}/${tally.files} (${pct(tally.sameAcceptReject, tally.files)}) | ${tally.sameNetwork}/${tally.accepted} | ${tally.messageContained}/${tally.bothRejected} (${pct(tally.messageContained, tally.bothRejected)}) | ${tally.sameVerdict}/${tally.dirs} (${pct(tally.sameVerdict, tally.dirs)}) |`,
    );
    if (tally.mismatches.length > 0) failures.push(...tally.mismatches);
  }
  const table = [
    `differential vs real libcni: ${DIRS} conf dirs, seed ${SEED}, ${classes.size} classes`,
    "| profile | files: same accept/reject | same network | both reject: our message contains libcni's | dirs: same go-cni verdict |",
    '|---|---|---|---|---|',
    ...rows,
    `allowed differences, counted apart (${allowed.length} dirs): ${[...countBy(allowed.flatMap((c) => c.allowed))].map(([why, n]) => `${why}: ${n}`).join(', ')}`,
    ...allowed.slice(0, 5).map((c) => `  e.g. ${c.dir}: ${c.allowed.join(', ')}`),
  ].join('\n');
  t.diagnostic(table);
  process.stdout.write(`${table}\n`);
  assert.deepEqual(failures, [], `disagreements with libcni (first ones):\n${failures.join('\n')}`);
});
