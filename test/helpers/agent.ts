// Runs the real agent: in-process (startAgent, for fast integration tests) or as a child process
// of bin/cri-netstatus.js (for signals, exit codes and the CLI). Both serve a real unix socket.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseFlags } from '../../src/cli/flags.js';
import { serveFlags, startAgent } from '../../src/cli/serve.js';
import type { Agent, AgentDependencies } from '../../src/cli/serve.js';
import { createLogger } from '../../src/log.js';
import { criClient } from './cri.js';
import type { CriClient } from './cri.js';
import { tempDir } from './fs.js';
import { sleep, until } from './wait.js';

export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const CLI = join(REPO_ROOT, 'bin', 'cri-netstatus.js');

export interface RunningAgent {
  agent: Agent;
  socket: string;
  confDir: string;
  metricsUrl: string;
  client: CriClient;
}

/**
 * Starts the agent in this process on a temp socket and conf dir; stopped when the test ends.
 * `deps.clock` puts it on a test's clock (file events still need real time: see helpers/clock.ts).
 */
export async function startInProcess(
  t: TestContext,
  extraArgs: string[] = [],
  confDir?: string,
  deps: AgentDependencies = {},
): Promise<RunningAgent> {
  const dir = tempDir(t);
  const conf = confDir ?? join(dir, 'net.d');
  const socket = join(dir, 'cri.sock');
  const config = parseFlags(
    'serve',
    serveFlags,
    [
      '--cni-conf-dir',
      conf,
      '--cni-bin-dir',
      join(dir, 'bin'),
      '--socket',
      socket,
      '--metrics-address',
      '127.0.0.1:0',
      '--kube',
      'off',
      ...extraArgs,
    ],
    {},
  );
  const agent = await startAgent(config, createLogger('silent', 'json'), deps);
  const client = criClient(socket);
  t.after(async () => {
    client.close();
    await agent.stop();
  });
  return { agent, socket, confDir: conf, metricsUrl: `http://${agent.metricsAddress}/metrics`, client };
}

export interface AgentProcess {
  child: ChildProcess;
  socket: string;
  output: () => string;
  exited: Promise<number | null>;
}

/** Spawns `cri-netstatus serve` and resolves once its socket exists (or it exits). */
export async function spawnServe(
  t: TestContext,
  args: string[],
  socket: string,
  env: NodeJS.ProcessEnv = {},
): Promise<AgentProcess> {
  const child = spawn(process.execPath, [CLI, 'serve', '--socket', socket, '--kube', 'off', ...args], {
    env: childEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let done = false;
  void exited.then(() => (done = true));
  const deadline = Date.now() + 15_000;
  while (!done && !(existsSync(socket) && output.includes('serving CRI'))) {
    if (Date.now() > deadline) throw new Error(`agent did not start within 15s:\n${output}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return { child, socket, output: () => output, exited };
}

/** `cri-netstatus serve` as a child process with its metrics endpoint, for e2e tests and benchmarks. */
export interface ServeProcess {
  child: ChildProcess;
  pid: number;
  client: CriClient;
  metricsUrl: string;
  output: () => string;
  /** SIGTERM, then SIGKILL after 10 s; closes the client. */
  stop(): Promise<void>;
}

/**
 * Spawns `serve --socket SOCKET --metrics-address 127.0.0.1:0 ARGS` (JSON logs) and resolves once
 * it logs that it serves, reading the metrics address from that line. Throws at once if it exits.
 */
export async function startServeProcess(
  socket: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv = {},
  timeoutMs = 20_000,
): Promise<ServeProcess> {
  const child = spawn(
    process.execPath,
    [CLI, 'serve', '--socket', socket, '--metrics-address', '127.0.0.1:0', ...args],
    { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv(env) },
  );
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const stopChild = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await Promise.race([exited, sleep(10_000).then(() => child.kill('SIGKILL'))]);
  };
  let metrics: string;
  try {
    metrics = await until(
      'the agent to serve',
      () => {
        if (child.exitCode !== null) throw new Error(`the agent exited ${child.exitCode}:\n${output}`);
        const line = output.split('\n').find((l) => l.includes('serving CRI RuntimeService/Status'));
        return line ? (JSON.parse(line) as { metrics: string }).metrics : undefined;
      },
      timeoutMs,
      { describe: () => output },
    );
  } catch (error) {
    await stopChild();
    throw error;
  }
  if (child.pid === undefined) throw new Error('the agent has no pid');
  const client = criClient(socket);
  return {
    child,
    pid: child.pid,
    client,
    metricsUrl: `http://${metrics}/metrics`,
    output: () => output,
    stop: async () => {
      client.close();
      await stopChild();
    },
  };
}

/** Runs the CLI to completion and returns its exit code and output. */
export function runCli(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: childEnv(env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    // 'close', not 'exit': stdout may still hold data when the process has exited.
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/**
 * The test's environment for a child CLI, without CRI_NETSTATUS_* and KUBERNETES_*: those are the
 * agent's own flags (`eval "$(scripts/peers.sh env)"` exports CRI_NETSTATUS_CNI_BIN_DIR), so a
 * developer's shell must not change what a test runs. Tests pass their own in `env`.
 */
export function childEnv(env: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const inherited = Object.entries(process.env).filter(
    ([key]) => !key.startsWith('CRI_NETSTATUS_') && !key.startsWith('KUBERNETES_'),
  );
  return { ...Object.fromEntries(inherited), ...env };
}

/** Scrapes a Prometheus endpoint and returns the value of one sample (undefined when absent). */
export async function scrape(url: string, sample: string): Promise<number | undefined> {
  return sampleValue(await (await fetch(url)).text(), sample);
}

/** The value of one sample (name and labels exactly as exposed) in a Prometheus exposition. */
export function sampleValue(exposition: string, sample: string): number | undefined {
  for (const line of exposition.split('\n')) {
    if (line.startsWith(`${sample} `)) return Number(line.slice(sample.length + 1));
  }
  return undefined;
}
