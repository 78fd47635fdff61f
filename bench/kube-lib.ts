// Shared by bench/kube-rss.ts and bench/kube-writes.ts: a real control plane (the e2e harness:
// etcd + kube-apiserver from scripts/peers.sh), a Node object, and agents started as processes
// with --kube on against it.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startControlPlane } from '../test/e2e/harness/apiserver.js';
import type { ControlPlane } from '../test/e2e/harness/apiserver.js';
import { startServeProcess } from '../test/helpers/agent.js';
import type { ServeProcess } from '../test/helpers/agent.js';
import { cniDirs, conflist } from '../test/helpers/fs.js';
import { onCleanup, tempDir } from './lib/cleanup.js';

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
  const { confDir, binDir } = cniDirs(dir);
  writeFileSync(join(confDir, '10-bench.conflist'), conflist('bench'));
  return { cp, dir, confDir, binDir };
}

export interface BenchAgent extends ServeProcess {
  name: string;
}

/** `cri-netstatus serve` as a process; `kubeArgs` e.g. ['--kube', 'on', '--kubeconfig', K, '--node-name', N]. */
export async function startBenchAgent(
  bench: KubeBench,
  name: string,
  kubeArgs: readonly string[],
  nodeOptions = '',
  confDir = bench.confDir,
): Promise<BenchAgent> {
  const agent = await startServeProcess(
    join(bench.dir, `${name}.sock`),
    ['--cni-conf-dir', confDir, '--cni-bin-dir', bench.binDir, ...kubeArgs],
    { NODE_OPTIONS: nodeOptions },
  );
  onCleanup(() => agent.stop());
  return { ...agent, name };
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
