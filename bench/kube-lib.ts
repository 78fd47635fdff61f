// Shared by bench/kube-rss.ts and bench/kube-writes.ts: a real control plane (the e2e harness:
// etcd + kube-apiserver from scripts/peers.sh), a Node object, and agents started as processes
// with --kube on against it.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startControlPlane } from '../test/e2e/harness/apiserver.js';
import type { ControlPlane } from '../test/e2e/harness/apiserver.js';
import { criClient } from '../test/helpers/cri.js';
import type { CriClient } from '../test/helpers/cri.js';
import { conflist } from '../test/helpers/fs.js';
import { onCleanup, tempDir } from './lib/cleanup.js';
import { CLI, sleep } from './lib/util.js';

export interface KubeBench {
  cp: ControlPlane;
  dir: string;
  confDir: string;
  binDir: string;
}

/** A control plane with `nodes` registered, and a conf dir holding one valid network. */
export async function startKubeBench(nodes: readonly string[]): Promise<KubeBench> {
  const dir = tempDir('cnk-');
  const cp = await startControlPlane(join(dir, 'cp'));
  onCleanup(() => cp.stop());
  for (const name of nodes) {
    await cp.kubectlOk(['create', '-f', '-'], {
      input: JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name } }),
    });
  }
  const confDir = join(dir, 'net.d');
  const binDir = join(dir, 'bin');
  mkdirSync(confDir);
  mkdirSync(binDir);
  writeFileSync(join(binDir, 'bridge'), '#!/bin/sh\n', { mode: 0o755 });
  writeFileSync(join(confDir, '10-bench.conflist'), conflist('bench'));
  return { cp, dir, confDir, binDir };
}

export interface BenchAgent {
  name: string;
  pid: number;
  client: CriClient;
  metricsUrl: string;
  output: () => string;
  stop(): Promise<void>;
}

/** `cri-netstatus serve` as a process; `kubeArgs` e.g. ['--kube', 'on', '--kubeconfig', K, '--node-name', N]. */
export async function startBenchAgent(
  bench: KubeBench,
  name: string,
  kubeArgs: readonly string[],
  nodeOptions = '',
  confDir = bench.confDir,
): Promise<BenchAgent> {
  const socket = join(bench.dir, `${name}.sock`);
  const child: ChildProcess = spawn(
    process.execPath,
    [
      CLI,
      'serve',
      '--cni-conf-dir',
      confDir,
      '--cni-bin-dir',
      bench.binDir,
      '--socket',
      socket,
      '--metrics-address',
      '127.0.0.1:0',
      ...kubeArgs,
    ],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NODE_OPTIONS: nodeOptions, KUBERNETES_SERVICE_HOST: '' },
    },
  );
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const clients: CriClient[] = [];
  const stop = async (): Promise<void> => {
    for (const c of clients) c.close();
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await Promise.race([exited, sleep(10_000).then(() => child.kill('SIGKILL'))]);
    }
  };
  onCleanup(stop);
  const deadline = Date.now() + 20_000;
  let metrics: string | undefined;
  while (metrics === undefined) {
    if (child.exitCode !== null) throw new Error(`agent ${name} exited ${child.exitCode}:\n${output}`);
    if (Date.now() > deadline) throw new Error(`agent ${name} did not start within 20s:\n${output}`);
    const line = output.split('\n').find((l) => l.includes('serving CRI RuntimeService/Status'));
    if (line) metrics = (JSON.parse(line) as { metrics: string }).metrics;
    else await sleep(50);
  }
  const client = criClient(socket);
  clients.push(client);
  const pid = child.pid;
  if (pid === undefined) throw new Error(`agent ${name} has no pid`);
  return { name, pid, client, metricsUrl: `http://${metrics}/metrics`, output: () => output, stop };
}

/** The sum of every sample of a Prometheus exposition whose name and labels match. */
export function sumSamples(exposition: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const line of exposition.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([key, value]) => line.includes(`${key}="${value}"`))) {
      total += Number(line.slice(line.lastIndexOf(' ') + 1)) || 0;
    }
  }
  return total;
}

export async function agentMetrics(agent: BenchAgent): Promise<string> {
  return (await fetch(agent.metricsUrl)).text();
}

/** The API server's own count of requests (apiserver_request_total), as the admin. */
export async function apiserverMetrics(cp: ControlPlane): Promise<string> {
  const { status, body } = await cp.get('/metrics');
  if (status !== 200 || typeof body !== 'string') throw new Error(`GET /metrics: ${status}`);
  return body;
}

/** Writes the API server counted: PATCH nodes/status, and POST/PATCH events. */
export function serverWrites(exposition: string): { condition: number; event: number } {
  const condition = sumSamples(exposition, 'apiserver_request_total', {
    verb: 'PATCH',
    resource: 'nodes',
    subresource: 'status',
  });
  const event =
    sumSamples(exposition, 'apiserver_request_total', { verb: 'POST', resource: 'events' }) +
    sumSamples(exposition, 'apiserver_request_total', { verb: 'PATCH', resource: 'events' });
  return { condition, event };
}
