// Benchmark 2: throughput and p50/p99 latency of Status at concurrency 1, 16 and 64, the agent
// beside containerd 1.6 (and the constant grpc-js server for reference), interleaved rounds, medians.
// Latency is what the Python client sees (client and servers share the machine's cores).
//
//   node dist/bench/latency.js [--rounds 3] [--calls 20000]
import { runScript } from './lib/cleanup.js';
import { interleave, progress, sample, startFleet } from './lib/fleet.js';
import type { Sample } from './lib/fleet.js';
import { machineFacts } from './lib/machine.js';
import { commandLine, fmt, intFlag, isMain, median, table } from './lib/util.js';

const CONCURRENCY = [1, 16, 64] as const;

export async function latencyBenchmark(): Promise<string> {
  const rounds = intFlag('rounds', 3);
  const calls = intFlag('calls', 20_000);
  const callsAt = (c: number): number => (c === 1 ? Math.ceil(calls / 4) : calls);
  const fleet = await startFleet([
    { kind: 'agent', label: 'cri-netstatus' },
    { kind: 'containerd', label: 'containerd' },
    { kind: 'constant', label: 'grpc-js constant Status' },
  ]);
  const samples = new Map<string, Sample[]>();
  for (const member of fleet.members) await member.client.run(5000, 16); // warm-up
  for (let round = 0; round < rounds; round++) {
    for (const concurrency of CONCURRENCY) {
      await interleave(fleet.members, 1, async (member) => {
        const s = await sample(member, callsAt(concurrency), concurrency);
        const key = `${concurrency}\t${member.label}`;
        samples.set(key, [...(samples.get(key) ?? []), s]);
        progress(
          `latency round ${round + 1}/${rounds} c=${concurrency} ${member.label}: ${fmt(s.throughput)} calls/s, p50 ${fmt(s.p50_us)} µs, p99 ${fmt(s.p99_us)} µs`,
        );
      });
    }
  }
  for (const member of fleet.members) await member.server.stop();
  const rows = [...samples].map(([key, list]) => {
    const [concurrency = '', label = ''] = key.split('\t');
    return [
      concurrency,
      label,
      fmt(median(list.map((s) => s.throughput))),
      fmt(median(list.map((s) => s.p50_us))),
      fmt(median(list.map((s) => s.p99_us))),
      fmt(median(list.map((s) => s.cpuUsPerCall)), 1),
    ];
  });
  return [
    `### Throughput and latency (${fmt(calls)} calls per run, ${fmt(callsAt(1))} at concurrency 1; ${rounds} interleaved rounds, medians)`,
    '',
    table(['concurrency', 'server', 'calls/s', 'p50 µs', 'p99 µs', 'server CPU µs/call'], rows),
    '',
    ...(fleet.skipped ? [`- containerd skipped: ${fleet.skipped}`] : []),
    `- command: \`${commandLine('latency')}\``,
  ].join('\n');
}

if (isMain(import.meta.url)) {
  await runScript(async () => `${machineFacts()}\n\n${await latencyBenchmark()}`);
}
