// Every benchmark in one run, printed as markdown and written to bench/results.md.
//
//   npm run build && node dist/bench/run.js [--only cpu,latency,refresh,rss,ryw,profile,plugin-status]
// (`npm run bench` runs the same thing). Needs root for containerd (skipped otherwise) and the peers
// of `bash scripts/peers.sh debs`. Takes about 10 minutes on 2 cores.
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { format, resolveConfig } from 'prettier';
import { cpuBenchmark } from './cpu.js';
import { latencyBenchmark } from './latency.js';
import { pluginStatusBenchmark } from './plugin-status.js';
import { runScript } from './lib/cleanup.js';
import { progress } from './lib/fleet.js';
import { machineFacts } from './lib/machine.js';
import { REPO_ROOT, fmt } from './lib/util.js';
import { profileBenchmark } from './profile.js';
import { refreshBenchmark } from './refresh.js';
import { rssBenchmark } from './rss.js';
import { rywBenchmark } from './ryw.js';

const BENCHMARKS: Record<string, () => Promise<string>> = {
  cpu: async () => (await cpuBenchmark()).markdown,
  latency: latencyBenchmark,
  refresh: refreshBenchmark,
  rss: rssBenchmark,
  ryw: rywBenchmark,
  profile: profileBenchmark,
  'plugin-status': pluginStatusBenchmark,
};

const load = (): string =>
  loadavg()
    .map((l) => fmt(l, 2))
    .join(' / ');

async function main(): Promise<string> {
  const at = process.argv.indexOf('--only');
  const only = at >= 0 ? (process.argv[at + 1] ?? '').split(',') : Object.keys(BENCHMARKS);
  const unknown = only.filter((name) => !(name in BENCHMARKS));
  if (unknown.length)
    throw new Error(`unknown benchmark ${unknown.join(', ')}; known: ${Object.keys(BENCHMARKS).join(', ')}`);
  const started = Date.now();
  const loadBefore = load();
  const sections: string[] = [];
  for (const name of only) {
    const bench = BENCHMARKS[name];
    if (!bench) continue;
    progress(`== ${name}`);
    sections.push(await bench());
  }
  const argv = process.argv.slice(2).join(' ');
  const out = [
    '# cri-netstatus benchmark results',
    '',
    `Produced by \`node dist/bench/run.js${argv ? ` ${argv}` : ''}\` in ${fmt((Date.now() - started) / 60_000, 1)} min; load average (1/5/15 min) ${loadBefore} before, ${load()} after. Every figure's own command is under its table.`,
    '',
    machineFacts(),
    '',
    ...sections.flatMap((section) => [section, '']),
  ].join('\n');
  // Formatted the way the repo's `prettier --check .` wants it (aligned tables).
  const file = join(REPO_ROOT, 'bench', 'results.md');
  const formatted = await format(out, { ...(await resolveConfig(file)), filepath: file });
  writeFileSync(file, formatted);
  return formatted;
}

await runScript(main);
