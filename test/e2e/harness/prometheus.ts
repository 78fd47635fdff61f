// A real Prometheus (Debian's 2.42, from scripts/peers.sh) as a throwaway e2e peer: loopback only,
// a temp config and temp TSDB, scraping the given targets every second. Queries go through the
// HTTP API on loopback. Also promtool, for `check metrics`, `check rules` and `test rules`.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Cleanup } from './containerd.js';
import { freePort } from './etcd.js';
import { requirePeers, run } from './peers.js';
import type { RunResult } from './peers.js';

export interface PrometheusOptions {
  /** host:port targets of the one scrape job. */
  targets: string[];
  job?: string;
  /** Rule files' contents (YAML), loaded with evaluation every second. */
  rules?: string[];
  /** Scrape over HTTPS with this bearer token file and TLS settings (--metrics-auth kubernetes). */
  https?: { credentialsFile: string; insecureSkipVerify: boolean };
}

export interface Sample {
  metric: Record<string, string>;
  value: number;
}

export interface TargetHealth {
  scrapeUrl: string;
  health: string;
  lastError: string;
  labels: Record<string, string>;
}

export interface Prometheus {
  url: string;
  job: string;
  /** An instant PromQL query; throws on an API error. */
  query(promql: string): Promise<Sample[]>;
  targets(): Promise<TargetHealth[]>;
  /** Polls `query` until `accept` returns true for its result; returns that result. */
  waitFor(
    promql: string,
    accept: (samples: Sample[]) => boolean,
    what: string,
    timeoutMs?: number,
  ): Promise<Sample[]>;
  log(): string;
}

export async function startPrometheus(cleanup: Cleanup, options: PrometheusOptions): Promise<Prometheus> {
  const { prometheus: binary } = requirePeers('prometheus');
  const dir = mkdtempSync(join(tmpdir(), 'prometheus-'));
  const job = options.job ?? 'cri-netstatus';
  const ruleFiles = (options.rules ?? []).map((content, i) => {
    const file = join(dir, `rules-${i}.yml`);
    writeFileSync(file, content);
    return file;
  });
  const config = join(dir, 'prometheus.yml');
  writeFileSync(
    config,
    [
      'global:',
      '  scrape_interval: 1s',
      '  scrape_timeout: 1s',
      '  evaluation_interval: 1s',
      ...(ruleFiles.length ? ['rule_files:', ...ruleFiles.map((file) => `  - ${JSON.stringify(file)}`)] : []),
      'scrape_configs:',
      `  - job_name: ${JSON.stringify(job)}`,
      ...(options.https
        ? [
            '    scheme: https',
            '    authorization:',
            `      credentials_file: ${JSON.stringify(options.https.credentialsFile)}`,
            '    tls_config:',
            `      insecure_skip_verify: ${String(options.https.insecureSkipVerify)}`,
          ]
        : []),
      '    static_configs:',
      `      - targets: [${options.targets.map((target) => JSON.stringify(target)).join(', ')}]`,
      '',
    ].join('\n'),
  );
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  let output = '';
  const child: ChildProcess = spawn(
    binary,
    [
      `--config.file=${config}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--storage.tsdb.retention.time=1h',
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  cleanup.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(killer);
    }
    rmSync(dir, { recursive: true, force: true });
  });

  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`prometheus exited during startup:\n${output.slice(-4000)}`);
    try {
      if ((await fetch(`${url}/-/ready`)).ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline)
      throw new Error(`prometheus at ${url} not ready within 30s:\n${output.slice(-4000)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }

  const api = async <T>(path: string): Promise<T> => {
    const response = await fetch(`${url}${path}`);
    const body = (await response.json()) as { status: string; data: T; error?: string };
    if (body.status !== 'success')
      throw new Error(`prometheus ${path}: ${body.error ?? response.statusText}`);
    return body.data;
  };
  const query = async (promql: string): Promise<Sample[]> => {
    const data = await api<{
      resultType: string;
      result: { metric: Record<string, string>; value: [number, string] }[];
    }>(`/api/v1/query?query=${encodeURIComponent(promql)}`);
    if (data.resultType !== 'vector') throw new Error(`${promql}: expected a vector, got ${data.resultType}`);
    return data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
  };
  return {
    url,
    job,
    query,
    targets: async () => (await api<{ activeTargets: TargetHealth[] }>('/api/v1/targets')).activeTargets,
    waitFor: async (promql, accept, what, timeoutMs = 30_000) => {
      const until = Date.now() + timeoutMs;
      let last: Sample[] = [];
      for (;;) {
        last = await query(promql);
        if (accept(last)) return last;
        if (Date.now() > until) {
          throw new Error(
            `prometheus: ${what} not seen within ${timeoutMs}ms; last ${promql} = ${JSON.stringify(last)}`,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    },
    log: () => output,
  };
}

/** `promtool <args>`, with `input` on stdin. */
export async function promtool(args: readonly string[], input?: string): Promise<RunResult> {
  const { promtool: binary } = requirePeers('promtool');
  return run(binary, args, { timeoutMs: 60_000, ...(input !== undefined ? { input } : {}) });
}
