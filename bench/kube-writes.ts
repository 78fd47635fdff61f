// API writes per node per hour, and the implied write QPS of a 5,000-node fleet, measured against
// a real kube-apiserver (its own apiserver_request_total counts the writes, cross-checked with the
// agent's cri_netstatus_kube_writes_total).
//
//   npm run build && node dist/bench/kube-writes.js [--seconds 120] [--heartbeat-ms 5000] [--nodes 5000]
// (about 9 minutes: the steady window, a minute of flapping bursts, then at least 5 min of flapping)
//
// An hour at the default 10 min heartbeat holds 6 heartbeats; to measure that shape in minutes,
// the heartbeat is compressed (--heartbeat-ms) and the measured writes per heartbeat period are
// scaled to the default period (steady state has no other writes: the bench checks that Status
// calls, resyncs and an unchanged conf dir cause none). The flapping scenario needs no scaling:
// its rate limits are in wall-clock time, so its hourly figure is the measured rate × 3600.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_HEARTBEAT_MS } from '../src/kube/node-reporter.js';
import { conflist } from '../test/helpers/fs.js';
import {
  agentMetrics,
  apiserverMetrics,
  serverWrites,
  startBenchAgent,
  startKubeBench,
  sumSamples,
} from './kube-lib.js';
import type { BenchAgent, KubeBench } from './kube-lib.js';
import { runScript } from './lib/cleanup.js';
import { machineFacts } from './lib/machine.js';
import { commandLine, fmt, intFlag, isMain, sleep, table } from './lib/util.js';

/** The mean of the heartbeat's upward jitter (uniform in [1, 1.1)). */
const JITTER_MEAN = 1.05;

interface Window {
  seconds: number;
  condition: number;
  event: number;
  agentCondition: number;
  agentEvent: number;
}

async function measure(
  bench: KubeBench,
  agent: BenchAgent,
  seconds: number,
  during: (elapsedMs: number) => Promise<void>,
): Promise<Window> {
  const serverBefore = serverWrites(await apiserverMetrics(bench.cp));
  const agentBefore = await agentMetrics(agent);
  const started = Date.now();
  while (Date.now() - started < seconds * 1000) {
    const tick = Date.now();
    await during(tick - started);
    await sleep(Math.max(0, 1000 - (Date.now() - tick)));
  }
  const elapsed = (Date.now() - started) / 1000;
  const serverAfter = serverWrites(await apiserverMetrics(bench.cp));
  const agentAfter = await agentMetrics(agent);
  const agentCount = (text: string, kind: string) =>
    sumSamples(text, 'cri_netstatus_kube_writes_total', { kind });
  return {
    seconds: elapsed,
    condition: serverAfter.condition - serverBefore.condition,
    event: serverAfter.event - serverBefore.event,
    agentCondition: agentCount(agentAfter, 'condition') - agentCount(agentBefore, 'condition'),
    agentEvent: agentCount(agentAfter, 'event') - agentCount(agentBefore, 'event'),
  };
}

export async function kubeWritesBenchmark(): Promise<string> {
  const seconds = intFlag('seconds', 120);
  const heartbeatMs = intFlag('heartbeat-ms', 5000);
  const fleet = intFlag('nodes', 5000);
  const bench = await startKubeBench(['writes-node-1', 'writes-node-2']);
  const kubeArgs = (node: string) => [
    '--kube',
    'on',
    '--kubeconfig',
    bench.cp.adminKubeconfig,
    '--node-name',
    node,
    '--kube-heartbeat',
    `${heartbeatMs}ms`,
    '--resync-interval',
    '1s',
  ];
  const steadyAgent = await startBenchAgent(bench, 'steady', kubeArgs('writes-node-1'));
  await sleep(3000); // the startup write and startup Events are not steady state

  // Steady state: nothing changes; Status calls (20/s) and 1 s resyncs keep refreshing.
  const steady = await measure(bench, steadyAgent, seconds, async () => {
    for (let i = 0; i < 20; i++) await steadyAgent.client.status();
  });
  await steadyAgent.stop();

  // Flapping: the conf dir's only network breaks and recovers every second, all the time.
  const flapDir = join(bench.dir, 'flap.d');
  mkdirSync(flapDir);
  writeFileSync(join(flapDir, '10-bench.conflist'), conflist('bench'));
  const flapAgent = await startBenchAgent(
    bench,
    'flap',
    [...kubeArgs('writes-node-2'), '--semantics', 'containerd'],
    '',
    flapDir,
  );
  await sleep(3000);
  let broken = false;
  const flap = async () => {
    broken = !broken;
    writeFileSync(join(flapDir, '10-bench.conflist'), broken ? '{"broken": ' : conflist('bench'));
    await flapAgent.client.status();
  };
  // The first minute spends the bursts; the measured window after it is what every later hour costs.
  const burst = await measure(bench, flapAgent, 60, flap);
  // At least 5 min, so each reason's one Event per 5 min is inside the window.
  const flapping = await measure(bench, flapAgent, Math.max(seconds, 300), flap);
  await flapAgent.stop();

  const periods = (steady.seconds * 1000) / (heartbeatMs * JITTER_MEAN);
  const perPeriod = (steady.condition + steady.event) / periods;
  const perHourAt = (periodMs: number) => (perPeriod * 3_600_000) / (periodMs * JITTER_MEAN);
  const flapPerHour = ((flapping.condition + flapping.event) / flapping.seconds) * 3600;
  const qps = (perHour: number) => (perHour * fleet) / 3600;
  const row = (label: string, w: Window, perHour: number, how: string) => [
    label,
    `${fmt(w.seconds)} s`,
    `${fmt(w.condition)} (agent: ${fmt(w.agentCondition)})`,
    `${fmt(w.event)} (agent: ${fmt(w.agentEvent)})`,
    fmt(perHour, 1),
    fmt(qps(perHour), 2),
    how,
  ];
  return [
    `### Kubernetes API writes per node (real kube-apiserver; the server's apiserver_request_total, the agent's own count in brackets)`,
    '',
    table(
      [
        'scenario',
        'window',
        'condition PATCHes',
        'Event POST/PATCHes',
        'writes / node / hour',
        `write QPS for ${fmt(fleet)} nodes`,
        'how the hour is derived',
      ],
      [
        row(
          `steady state, heartbeat ${DEFAULT_HEARTBEAT_MS / 60_000} min (default)`,
          steady,
          perHourAt(DEFAULT_HEARTBEAT_MS),
          `${fmt(perPeriod, 2)} writes per heartbeat period measured with a ${heartbeatMs / 1000} s heartbeat, × ${fmt(3_600_000 / (DEFAULT_HEARTBEAT_MS * JITTER_MEAN), 2)} periods/h (${DEFAULT_HEARTBEAT_MS / 60_000} min + mean 5% jitter)`,
        ),
        row(
          "steady state, --kube-heartbeat 5m (node-problem-detector's period)",
          steady,
          perHourAt(5 * 60_000),
          'same measurement, 5 min periods',
        ),
        row(
          'conf dir flapping every second: its first minute (the bursts)',
          burst,
          Number.NaN,
          'not an hourly rate: the one-off bursts',
        ),
        row(
          'conf dir flapping every second, every later hour (worst case per node)',
          flapping,
          flapPerHour,
          'measured rate after the bursts × 3600 (condition: 1 write per 10 s; Events: 1 per 5 min per reason)',
        ),
      ],
    ),
    '',
    `- Steady state writes only heartbeats: Status calls (20/s) and 1 s resyncs during the window caused ${fmt(steady.event)} Event writes and no condition writes beyond the heartbeats.`,
    `- command: \`${commandLine('kube-writes')}\``,
  ].join('\n');
}

if (isMain(import.meta.url)) {
  await runScript(async () => `${machineFacts()}\n\n${await kubeWritesBenchmark()}`);
}
