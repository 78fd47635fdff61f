// The servers under test, each started on its own unix socket and stopped at cleanup:
// the agent (bin/cri-netstatus.js serve), the constant grpc-js server, and containerd 1.6.
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { criClient } from '../../test/helpers/cri.js';
import { onCleanup } from './cleanup.js';
import { CNI_BIN_DIR } from './conf.js';
import { CLI, CONSTANT_SERVER, HTTP2_SERVER, REPO_ROOT, sleep } from './util.js';

export const CONTAINERD = process.env.CRI_NETSTATUS_CONTAINERD ?? '/usr/bin/containerd';
export const CONTAINERD_TEMPLATE = join(REPO_ROOT, 'scripts', 'containerd-config.toml.tmpl');

export interface BenchServer {
  name: string;
  pid: number;
  socket: string;
  /** Where its stdout and stderr go. */
  log: string;
  stop(): Promise<void>;
}

/** Whether containerd can be benchmarked here, or why not. */
export function containerdUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'containerd needs root';
  if (!existsSync(CONTAINERD)) return `${CONTAINERD} is missing: run bash scripts/peers.sh debs`;
  if (!existsSync(CONTAINERD_TEMPLATE))
    return `${CONTAINERD_TEMPLATE} is missing: run bash scripts/peers.sh debs`;
  return undefined;
}

export interface AgentOptions {
  /** NODE_OPTIONS for the agent (empty by default, whatever the benchmark itself runs with). */
  nodeOptions?: string;
  /** node flags before the script, for those NODE_OPTIONS refuses (e.g. --cpu-prof). */
  nodeArgs?: readonly string[];
  /** Another build of bin/cri-netstatus.js (A/B runs); default CLI. */
  cli?: string;
  env?: NodeJS.ProcessEnv;
  /** --cni-bin-dir (default CNI_BIN_DIR). */
  binDir?: string;
}

/** `<dir>/<name>.sock`, the name shortened with a hash so the path stays under the 108-byte limit. */
function socketIn(dir: string, name: string): string {
  const short =
    name.length <= 40
      ? name
      : `${name.slice(0, 31)}-${createHash('sha256').update(name).digest('hex').slice(0, 8)}`;
  return join(dir, `${short}.sock`);
}

/** The agent, serving `confDir` on `<dir>/<name>.sock`. */
export function startAgent(
  dir: string,
  confDir: string,
  name = 'agent',
  options: AgentOptions = {},
): Promise<BenchServer> {
  const socket = socketIn(dir, name);
  const args = [
    ...(options.nodeArgs ?? []),
    options.cli ?? CLI,
    'serve',
    '--cni-conf-dir',
    confDir,
    '--cni-bin-dir',
    options.binDir ?? CNI_BIN_DIR,
    '--socket',
    socket,
    '--metrics-address',
    'off',
    '--kube',
    'off',
  ];
  return launch(name, socket, join(dir, `${name}.log`), process.execPath, args, {
    ...options.env,
    NODE_OPTIONS: options.nodeOptions ?? '',
  });
}

/** bench/constant-server.ts on `<dir>/<name>.sock`; `defer` answers from a shared setImmediate like the agent. */
export function startConstant(
  dir: string,
  name = 'constant',
  options: { nodeArgs?: readonly string[]; nodeOptions?: string; defer?: boolean } = {},
): Promise<BenchServer> {
  const socket = socketIn(dir, name);
  const args = [
    ...(options.nodeArgs ?? []),
    CONSTANT_SERVER,
    '--socket',
    socket,
    ...(options.defer ? ['--defer'] : []),
  ];
  return launch(name, socket, join(dir, `${name}.log`), process.execPath, args, {
    NODE_OPTIONS: options.nodeOptions ?? '',
  });
}

/** bench/http2-server.ts (constant Status from node:http2, no grpc-js) on `<dir>/<name>.sock`. */
export function startHttp2(dir: string, name = 'http2'): Promise<BenchServer> {
  const socket = socketIn(dir, name);
  return launch(
    name,
    socket,
    join(dir, `${name}.log`),
    process.execPath,
    [HTTP2_SERVER, '--socket', socket],
    {
      NODE_OPTIONS: '',
    },
  );
}

/**
 * containerd 1.6 as root with a throwaway config (scripts/containerd-config.toml.tmpl: version 2,
 * native snapshotter) whose CRI plugin reads `confDir` and /usr/lib/cni; root, state, opt and
 * sockets all under `stateDir`.
 */
export function startContainerd(stateDir: string, confDir: string): Promise<BenchServer> {
  const unavailable = containerdUnavailable();
  if (unavailable) throw new Error(unavailable);
  const config = readFileSync(CONTAINERD_TEMPLATE, 'utf8')
    .replaceAll('@STATE_DIR@', stateDir)
    .replaceAll('@CONF_DIR@', confDir)
    .replaceAll('@CNI_BIN_DIR@', CNI_BIN_DIR);
  const left = /@[A-Z_]+@/.exec(config);
  if (left)
    throw new Error(`${CONTAINERD_TEMPLATE} has a placeholder the benchmark does not fill: ${left[0]}`);
  const file = join(stateDir, 'config.toml');
  writeFileSync(file, config);
  const socket = join(stateDir, 'containerd.sock');
  return launch('containerd', socket, join(stateDir, 'containerd.log'), CONTAINERD, ['--config', file], {});
}

export function containerdVersion(): string {
  try {
    return execFileSync(CONTAINERD, ['--version'], { encoding: 'utf8' }).trim().split(' ').slice(2).join(' ');
  } catch {
    return 'not installed';
  }
}

async function launch(
  name: string,
  socket: string,
  log: string,
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<BenchServer> {
  const out = openSync(log, 'a');
  let child: ChildProcess;
  try {
    child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', out, out] });
  } finally {
    closeSync(out);
  }
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const status = { exited: false }; // flipped by the exit handler
  void exited.then(() => (status.exited = true));
  const stop = onCleanup(async () => {
    if (status.exited) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`${name}: could not start ${command}`);

  // Ready when a Status call answers (containerd's CRI plugin comes up a moment after its socket).
  const deadline = Date.now() + 30_000;
  let lastError = '';
  for (;;) {
    if (status.exited) throw new Error(`${name} exited during start-up; see ${log}:\n${tail(log)}`);
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`${name} did not answer Status within 30s (${lastError}); see ${log}:\n${tail(log)}`);
    }
    if (existsSync(socket)) {
      const client = criClient(socket, 2000);
      try {
        await client.status();
        break;
      } catch (error) {
        lastError = String(error);
      } finally {
        client.close();
      }
    }
    await sleep(100);
  }
  return { name, pid, socket, log, stop };
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-15).join('\n');
  } catch {
    return '';
  }
}
