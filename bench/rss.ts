// Benchmark 4: the agent's RSS over 200,000 Status calls (sampled every 10,000), with and without
// V8 flags passed as NODE_OPTIONS, and what each flag set costs in server CPU per call. Every
// variant runs as its own agent on the same conf dir; the variants take turns, 10,000 calls at a
// time, so they see the same machine conditions.
//
//   node dist/bench/rss.js [--calls 200000] [--step 10000] [--concurrency 16]
import { runScript } from './lib/cleanup.js';
import { CANDIDATE_NODE_OPTIONS, RECOMMENDED_NODE_OPTIONS } from './lib/flags.js';
import { interleave, progress, sample, startFleet } from './lib/fleet.js';
import type { ServerKind } from './lib/fleet.js';
import { machineFacts } from './lib/machine.js';
import { MiB, rssBytes } from './lib/proc.js';
import { commandLine, fmt, intFlag, isMain, median, table } from './lib/util.js';

export const RSS_TARGET_MIB = 80;
const CONSTANT_REFERENCE = 'reference: grpc-js constant Status server, no flags';

interface Track {
  rss: number[]; // MiB after each step; rss[0] after warm-up
  cpu: number[];
}

export async function rssBenchmark(): Promise<string> {
  const total = intFlag('calls', 200_000);
  const step = intFlag('step', 10_000);
  const concurrency = intFlag('concurrency', 16);
  const steps = Math.ceil(total / step);
  const half = Math.ceil(steps / 2);
  const label = (options: string): string => (options ? `\`${options}\`` : '(none)');
  const fleet = await startFleet([
    ...CANDIDATE_NODE_OPTIONS.map((nodeOptions): ServerKind => ({
      kind: 'agent',
      label: label(nodeOptions),
      nodeOptions,
    })),
    { kind: 'constant', label: CONSTANT_REFERENCE },
  ]);
  const tracks = new Map<string, Track>();
  for (const member of fleet.members) {
    await member.client.run(2000, concurrency); // warm-up
    tracks.set(member.label, { rss: [rssBytes(member.server.pid) / MiB], cpu: [] });
  }
  await interleave(fleet.members, steps, async (member, round) => {
    const s = await sample(member, step, concurrency);
    const track = tracks.get(member.label);
    track?.cpu.push(s.cpuUsPerCall);
    track?.rss.push(rssBytes(member.server.pid) / MiB);
    if ((round + 1) % 5 === 0 || round + 1 === steps) {
      progress(`rss ${fmt((round + 1) * step)} calls ${member.label}: ${fmt(track?.rss.at(-1) ?? 0, 1)} MiB`);
    }
  });
  for (const member of fleet.members) await member.server.stop();

  const base = median(tracks.get(label(''))?.cpu ?? []);
  const rows = [...tracks].map(([name, { rss, cpu }]) => {
    const first = rss[half] ?? Number.NaN;
    const second = rss[steps] ?? Number.NaN;
    const firstMax = Math.max(...rss.slice(1, half + 1));
    const secondMax = Math.max(...rss.slice(half + 1));
    const cpuMid = median(cpu);
    return [
      name,
      fmt(rss[0] ?? Number.NaN, 1),
      fmt(first, 1),
      fmt(second, 1),
      `${fmt(firstMax, 1)} / ${fmt(secondMax, 1)}`,
      `${second - first >= 0 ? '+' : ''}${fmt(second - first, 1)}`,
      fmt(cpuMid, 1),
      name === label('') || name === CONSTANT_REFERENCE
        ? '—'
        : `${cpuMid >= base ? '+' : ''}${fmt((100 * (cpuMid - base)) / base, 1)}%`,
      name === CONSTANT_REFERENCE
        ? '—'
        : first <= RSS_TARGET_MIB && secondMax <= firstMax + 2
          ? 'met'
          : 'MISSED',
    ];
  });
  return [
    `### RSS over ${fmt(steps * step)} Status calls (concurrency ${concurrency}; the NODE_OPTIONS variants take turns, ${fmt(step)} calls at a time)`,
    '',
    table(
      [
        'NODE_OPTIONS',
        'RSS after warm-up MiB',
        `after ${fmt(half * step)} MiB`,
        `after ${fmt(steps * step)} MiB`,
        'max 1st / 2nd half MiB',
        '2nd-half change MiB',
        'CPU µs/call',
        'CPU vs none',
        `target (≤ ${RSS_TARGET_MIB} MiB, no upward trend)`,
      ],
      rows,
    ),
    '',
    `- "no upward trend": the second half's maximum is within 2 MiB of the first half's.`,
    `- recommended for the Dockerfile/chart: \`NODE_OPTIONS=${RECOMMENDED_NODE_OPTIONS}\` (see bench/README.md for why)`,
    `- command: \`${commandLine('rss')}\``,
  ].join('\n');
}

if (isMain(import.meta.url)) {
  await runScript(async () => `${machineFacts()}\n\n${await rssBenchmark()}`);
}
