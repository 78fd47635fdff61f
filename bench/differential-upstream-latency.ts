// Status latency of the agent with --runtime-endpoint pointing at a live containerd 1.6 while
// containerd is up, stopped (socket gone) and frozen (SIGSTOP: the socket accepts, nobody answers;
// every poll waits the full 2 s timeout), next to an agent without --runtime-endpoint. The agent's
// Status reads the mirror's cached result, so the four rows should look alike. The agents run as
// child processes (`cri-netstatus serve`); the client is grpc-js in this process, sequential calls
// as kubelet makes them. Needs root and the peers.
//
//   npm run build && node dist/bench/differential-upstream-latency.js [--calls 3000]
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI } from '../test/helpers/agent.js';
import { criClient, quantile, statusLatencies } from '../test/helpers/cri.js';
import type { CriClient } from '../test/helpers/cri.js';
import { conflist } from '../test/helpers/fs.js';
import { startContainerd } from '../test/e2e/harness/containerd.js';
import { until } from '../test/helpers/wait.js';
import { requirePeers } from '../test/e2e/harness/peers.js';
import { harnessCleanup, onCleanup, runScript, tempDir } from './lib/cleanup.js';

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const value = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} wants a positive number`);
  return value;
}

async function spawnAgent(args: string[], socket: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, [CLI, 'serve', '--socket', socket, '--kube', 'off', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  onCleanup(() => {
    child.kill('SIGTERM');
  });
  await until(
    'the agent to serve',
    () => {
      if (child.exitCode !== null) throw new Error(`agent exited ${child.exitCode}:\n${output}`);
      return existsSync(socket) && output.includes('serving CRI');
    },
    15_000,
    { intervalMs: 20, describe: () => output },
  );
  return child;
}

interface Row {
  label: string;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  runtimeReady: string;
}

async function measure(label: string, client: CriClient, calls: number): Promise<Row> {
  for (let i = 0; i < 200; i++) await client.status(); // warm-up
  const times = await statusLatencies(client, calls);
  const at = (q: number): number => quantile(times, q);
  const runtime = (await client.status()).status?.conditions.find((c) => c.type === 'RuntimeReady');
  return {
    label,
    p50: at(0.5),
    p90: at(0.9),
    p99: at(0.99),
    max: times[times.length - 1] ?? NaN,
    runtimeReady: runtime ? `${String(runtime.status)}${runtime.reason ? ` (${runtime.reason})` : ''}` : '?',
  };
}

async function waitRuntimeReady(client: CriClient, want: boolean, reason?: string): Promise<void> {
  await until(
    `RuntimeReady to become ${String(want)} ${reason ?? ''}`,
    async () => {
      const runtime = (await client.status()).status?.conditions.find((c) => c.type === 'RuntimeReady');
      return runtime?.status === want && (reason === undefined || runtime.reason === reason);
    },
    40_000,
    { intervalMs: 100 },
  );
}

async function main(): Promise<string> {
  const calls = flag('calls', 3000);
  const { cniBinDir } = requirePeers('containerd', 'crictl', 'cniBinDir');
  const root = tempDir('cnb-upstream-');
  const confDir = join(root, 'net.d');
  mkdirSync(confDir);
  writeFileSync(join(confDir, '10-net.conflist'), conflist('net', ['bridge', 'portmap']));
  const containerd = await startContainerd(harnessCleanup, { confDir, cniBinDir });
  const common = ['--cni-conf-dir', confDir, '--cni-bin-dir', cniBinDir, '--metrics-address', 'off'];
  const baselineSocket = join(root, 'baseline.sock');
  const mirroredSocket = join(root, 'mirrored.sock');
  await spawnAgent(common, baselineSocket);
  await spawnAgent([...common, '--runtime-endpoint', containerd.endpoint], mirroredSocket);
  const baseline = criClient(baselineSocket, 10_000);
  const mirrored = criClient(mirroredSocket, 10_000);
  onCleanup(() => {
    baseline.close();
    mirrored.close();
  });

  const rows: Row[] = [];
  rows.push(await measure('no --runtime-endpoint', baseline, calls));
  rows.push(await measure('containerd up', mirrored, calls));
  await containerd.stop();
  await waitRuntimeReady(mirrored, false, 'UpstreamRuntimeUnreachable');
  rows.push(await measure('containerd stopped', mirrored, calls));
  await containerd.start();
  await waitRuntimeReady(mirrored, true);
  containerd.freeze();
  await waitRuntimeReady(mirrored, false, 'UpstreamRuntimeTimeout');
  rows.push(await measure('containerd frozen (SIGSTOP)', mirrored, calls));
  containerd.thaw();

  const ms = (n: number): string => n.toFixed(2);
  return [
    `Status latency, ${calls} sequential non-verbose calls per row (ms)`,
    '',
    '| agent | p50 | p90 | p99 | max | RuntimeReady served |',
    '|---|---|---|---|---|---|',
    ...rows.map(
      (r) => `| ${r.label} | ${ms(r.p50)} | ${ms(r.p90)} | ${ms(r.p99)} | ${ms(r.max)} | ${r.runtimeReady} |`,
    ),
  ].join('\n');
}

await runScript(main);
