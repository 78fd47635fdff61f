// Benchmark 1: server CPU time per Status call (utime+stime from /proc/PID/stat) at concurrency 16,
// for the agent (refresh on every Status, one valid conflist), the agent with the recommended V8
// flags, the constant grpc-js server (the ceiling for any grpc-js server), containerd 1.6 and, for
// reference, a constant answer straight from node:http2 (no grpc-js), in interleaved rounds; medians.
//
//   node dist/bench/cpu.js [--rounds 7] [--calls 20000] [--concurrency 16] [--baseline-cli PATH]
//
// --baseline-cli adds another build of the agent (its bin/cri-netstatus.js, e.g. from `git archive`
// of an earlier commit, built) to the same interleaved rounds, for a before/after figure.
import { runScript } from './lib/cleanup.js';
import { RECOMMENDED_NODE_OPTIONS } from './lib/flags.js';
import { interleave, progress, sample, startFleet } from './lib/fleet.js';
import type { Sample, ServerKind } from './lib/fleet.js';
import { machineFacts } from './lib/machine.js';
import { commandLine, fmt, intFlag, isMain, median, table } from './lib/util.js';

export const AGENT = 'cri-netstatus';
export const AGENT_FLAGS = `cri-netstatus, NODE_OPTIONS=${RECOMMENDED_NODE_OPTIONS}`;
export const CONSTANT = 'grpc-js constant Status';
export const CONSTANT_FLAGS = `grpc-js constant Status, NODE_OPTIONS=${RECOMMENDED_NODE_OPTIONS}`;
export const CONTAINERD = 'containerd';
export const BASELINE = 'cri-netstatus baseline (--baseline-cli)';
export const HTTP2 = 'reference: node:http2 constant Status, no grpc-js';

export interface CpuResult {
  markdown: string;
  /** Median CPU µs per call by server label. */
  medians: Map<string, number>;
}

export async function cpuBenchmark(): Promise<CpuResult> {
  const rounds = intFlag('rounds', 7);
  const calls = intFlag('calls', 20_000);
  const concurrency = intFlag('concurrency', 16);
  const kinds: ServerKind[] = [
    { kind: 'agent', label: AGENT },
    { kind: 'agent', label: AGENT_FLAGS, nodeOptions: RECOMMENDED_NODE_OPTIONS },
    { kind: 'constant', label: CONSTANT },
    { kind: 'constant', label: CONSTANT_FLAGS, nodeOptions: RECOMMENDED_NODE_OPTIONS },
    { kind: 'containerd', label: CONTAINERD },
    { kind: 'http2', label: HTTP2 },
  ];
  const baselineAt = process.argv.indexOf('--baseline-cli');
  const baseline = baselineAt >= 0 ? process.argv[baselineAt + 1] : undefined;
  if (baseline) kinds.splice(1, 0, { kind: 'agent', label: BASELINE, cli: baseline });
  const fleet = await startFleet(kinds);
  const samples = new Map<string, Sample[]>(fleet.members.map((m) => [m.label, []]));
  for (const member of fleet.members) await member.client.run(Math.min(calls, 5000), concurrency); // warm-up (JIT, pools)
  await interleave(fleet.members, rounds, async (member, round) => {
    const s = await sample(member, calls, concurrency);
    samples.get(member.label)?.push(s);
    progress(
      `cpu round ${round + 1}/${rounds} ${member.label}: ${fmt(s.cpuUsPerCall, 1)} µs/call, ${fmt(s.throughput)} calls/s`,
    );
  });
  for (const member of fleet.members) await member.server.stop();

  const medians = new Map<string, number>();
  for (const [label, list] of samples) medians.set(label, median(list.map((s) => s.cpuUsPerCall)));
  const constant = medians.get(CONSTANT) ?? Number.NaN;
  const containerd = medians.get(CONTAINERD) ?? Number.NaN;
  const rows = [...samples].map(([label, list]) => {
    const cpu = list.map((s) => s.cpuUsPerCall);
    const mid = medians.get(label) ?? Number.NaN;
    return [
      label,
      fmt(mid, 1),
      `${fmt(Math.min(...cpu), 1)}–${fmt(Math.max(...cpu), 1)}`,
      `${fmt(mid / constant, 2)}×`,
      `${fmt(mid / containerd, 2)}×`,
      fmt(median(list.map((s) => s.throughput))),
    ];
  });
  const ours = medians.get(AGENT) ?? Number.NaN;
  const oursFlags = medians.get(AGENT_FLAGS) ?? Number.NaN;
  const constantFlags = medians.get(CONSTANT_FLAGS) ?? Number.NaN;
  const verdict = (ratio: number, limit: number): string =>
    Number.isFinite(ratio)
      ? `${fmt(ratio, 2)}× (target ≤ ${limit}×: ${ratio <= limit ? 'met' : 'MISSED'})`
      : 'n/a';
  const markdown = [
    `### Server CPU time per Status call (concurrency ${concurrency}, ${fmt(calls)} calls × ${rounds} interleaved rounds, medians)`,
    '',
    table(['server', 'CPU µs/call', 'range', '× constant', '× containerd', 'calls/s'], rows),
    '',
    `- agent / constant grpc-js: ${verdict(ours / constant, 1.15)}`,
    `- agent / containerd: ${verdict(ours / containerd, 1.3)}`,
    `- with NODE_OPTIONS=${RECOMMENDED_NODE_OPTIONS} on both: agent / constant grpc-js ${verdict(oursFlags / constantFlags, 1.15)}`,
    ...(baseline
      ? [
          `- agent / baseline (${baseline}): ${fmt(ours / (medians.get(BASELINE) ?? Number.NaN), 3)}× (the cost of this build's changes per call)`,
        ]
      : []),
    ...(fleet.skipped ? [`- containerd skipped: ${fleet.skipped}`] : []),
    `- command: \`${commandLine('cpu')}\``,
  ].join('\n');
  return { markdown, medians };
}

if (isMain(import.meta.url)) {
  await runScript(async () => `${machineFacts()}\n\n${(await cpuBenchmark()).markdown}`);
}
