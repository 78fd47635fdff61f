// Where the real test peers are: asks `bash scripts/peers.sh env` (the script that builds and
// installs them) and checks that each peer a test needs exists. A missing peer is a test failure
// naming the command that provides it, never a silent skip; the one exception is skipWithoutPeers
// (a peer that is slow to build, e.g. containerd 2.x), which still fails under
// CRI_NETSTATUS_REQUIRE_PEERS=1, as .ci/run sets.
import { execFileSync, spawn } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../../helpers/agent.js';

/** The peers `scripts/peers.sh env` knows, by the name tests use. */
export const PEER_VARIABLES = {
  peersDir: 'CRI_NETSTATUS_PEERS_DIR',
  crictl: 'CRI_NETSTATUS_CRICTL',
  critest: 'CRI_NETSTATUS_CRITEST',
  helm: 'CRI_NETSTATUS_HELM',
  etcd: 'CRI_NETSTATUS_ETCD',
  kubeApiserver: 'CRI_NETSTATUS_KUBE_APISERVER',
  kubeControllerManager: 'CRI_NETSTATUS_KUBE_CONTROLLER_MANAGER',
  kubeScheduler: 'CRI_NETSTATUS_KUBE_SCHEDULER',
  kubelet: 'CRI_NETSTATUS_KUBELET',
  kubectl: 'CRI_NETSTATUS_KUBECTL',
  runc: 'CRI_NETSTATUS_RUNC',
  pauseArchive: 'CRI_NETSTATUS_PAUSE_ARCHIVE',
  pauseTag: 'CRI_NETSTATUS_PAUSE_TAG',
  busyboxArchive: 'CRI_NETSTATUS_BUSYBOX_ARCHIVE',
  monitoringCrds: 'CRI_NETSTATUS_MONITORING_CRDS',
  containerd: 'CRI_NETSTATUS_CONTAINERD',
  containerd2: 'CRI_NETSTATUS_CONTAINERD2',
  prometheus: 'CRI_NETSTATUS_PROMETHEUS',
  promtool: 'CRI_NETSTATUS_PROMTOOL',
  prometheusSd: 'CRI_NETSTATUS_PROMETHEUS_SD',
  cniBinDir: 'CRI_NETSTATUS_CNI_BIN_DIR',
  imageNode: 'CRI_NETSTATUS_IMAGE_NODE',
  buildah: 'CRI_NETSTATUS_BUILDAH',
  mmdebstrap: 'CRI_NETSTATUS_MMDEBSTRAP',
  libcniLoaders: 'CRI_NETSTATUS_LIBCNI_LOADERS',
  crio: 'CRI_NETSTATUS_CRIO',
  conmon: 'CRI_NETSTATUS_CONMON',
} as const;

export type PeerName = keyof typeof PEER_VARIABLES;
export type PeerPaths = Record<PeerName, string>;

/** The scripts/peers.sh target that provides each peer. */
const PEER_TARGET: Record<PeerName, string> = {
  peersDir: 'all',
  crictl: 'crictl',
  critest: 'critest',
  helm: 'helm',
  etcd: 'etcd',
  kubeApiserver: 'kube-apiserver',
  kubeControllerManager: 'kube-node',
  kubeScheduler: 'kube-node',
  kubelet: 'kube-node',
  kubectl: 'kube-node',
  runc: 'debs',
  pauseArchive: 'pause',
  pauseTag: 'pause',
  busyboxArchive: 'busybox',
  monitoringCrds: 'crds',
  containerd: 'debs',
  containerd2: 'containerd2',
  prometheus: 'debs',
  promtool: 'debs',
  prometheusSd: 'prometheus-sd',
  cniBinDir: 'debs',
  imageNode: 'node',
  buildah: 'debs',
  mmdebstrap: 'debs',
  libcniLoaders: 'libcni-loaders',
  crio: 'crio',
  conmon: 'debs',
};

let cached: PeerPaths | undefined;

/**
 * Every peer path as `bash scripts/peers.sh env` prints it (not checked for existence). A variable
 * already set in the environment wins, so a developer can point a test at another build.
 */
export function peerPaths(): PeerPaths {
  if (cached) return cached;
  const script = join(REPO_ROOT, 'scripts', 'peers.sh');
  let output: string;
  try {
    output = execFileSync('bash', [script, 'env'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? '';
    throw new Error(
      `\`bash scripts/peers.sh env\` failed, so the e2e peers cannot be located: ${error instanceof Error ? error.message : String(error)}${stderr ? `\n${stderr}` : ''}`,
    );
  }
  const exported = new Map<string, string>();
  for (const line of output.split('\n')) {
    const match = /^export ([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (match?.[1] && match[2] !== undefined) exported.set(match[1], unquote(match[2]));
  }
  const paths = {} as PeerPaths;
  for (const [name, variable] of Object.entries(PEER_VARIABLES) as [PeerName, string][]) {
    const value = process.env[variable] || exported.get(variable);
    if (!value) {
      throw new Error(
        `\`bash scripts/peers.sh env\` printed no ${variable}; update scripts/peers.sh or this harness`,
      );
    }
    paths[name] = value;
  }
  cached = paths;
  return paths;
}

/** The paths of the named peers, each checked to exist (executable for binaries); throws naming the fix. */
export function requirePeers<K extends PeerName>(...names: K[]): Pick<PeerPaths, K> {
  const missing = missingPeers(names);
  if (missing.length > 0) {
    throw new Error(
      `e2e peers are missing (this test needs real peers and never skips):\n${missing.join('\n')}\nor build everything with \`bash scripts/peers.sh\``,
    );
  }
  return pickPeers(names);
}

function pickPeers<K extends PeerName>(names: readonly K[]): Pick<PeerPaths, K> {
  const paths = peerPaths();
  return Object.fromEntries(names.map((name) => [name, paths[name]])) as Pick<PeerPaths, K>;
}

/** Set to 1 (as .ci/run does) to make skipWithoutPeers fail instead of skip. */
export const REQUIRE_PEERS_VARIABLE = 'CRI_NETSTATUS_REQUIRE_PEERS';

/**
 * For tests whose peer is slow to build (containerd 2.x): undefined when every named peer exists,
 * else the reason to skip, naming the `scripts/peers.sh` target that builds it. Under
 * CRI_NETSTATUS_REQUIRE_PEERS=1 a missing peer throws, as requirePeers does.
 */
export function skipWithoutPeers(...names: PeerName[]): string | undefined {
  const missing = missingPeers(names);
  if (missing.length === 0) return undefined;
  if (process.env[REQUIRE_PEERS_VARIABLE] === '1') {
    throw new Error(`e2e peers are missing and ${REQUIRE_PEERS_VARIABLE}=1:\n${missing.join('\n')}`);
  }
  // One line: the test runner prints a skip reason on the test's own line.
  return `a peer is missing (set ${REQUIRE_PEERS_VARIABLE}=1 to make this a failure): ${missing.map((m) => m.trim()).join('; ')}`;
}

function missingPeers(names: readonly PeerName[]): string[] {
  const paths = peerPaths();
  const missing: string[] = [];
  for (const name of names) {
    const path = paths[name];
    const isDir =
      name === 'cniBinDir' || name === 'peersDir' || name === 'monitoringCrds' || name === 'libcniLoaders';
    const isFile = name === 'pauseArchive' || name === 'busyboxArchive';
    try {
      if (name === 'pauseTag') continue; // a name, not a path
      if (isFile) {
        if (!statSync(path).isFile()) throw new Error('not a file');
      } else if (isDir) {
        if (!statSync(path).isDirectory()) throw new Error('not a directory');
      } else {
        accessSync(path, constants.X_OK);
      }
    } catch {
      missing.push(
        `${name}: ${path} (${PEER_VARIABLES[name]}) is missing; run \`bash scripts/peers.sh ${PEER_TARGET[name]}\``,
      );
    }
  }
  return missing;
}

/** `printf %q` output back to the string (peers.sh quotes paths with %q). */
function unquote(raw: string): string {
  if (raw.startsWith("'") && raw.endsWith("'")) return raw.slice(1, -1);
  if (raw.startsWith("$'")) return raw.slice(2, -1).replace(/\\(.)/g, '$1');
  return raw.replace(/\\(.)/g, '$1');
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Wall time in ms. */
  ms: number;
}

/**
 * Runs a peer to completion without blocking the event loop (an in-process agent must keep
 * answering while crictl or critest talk to it). Kills it after `timeoutMs`.
 */
export function run(
  command: string,
  args: readonly string[],
  options: { timeoutMs?: number; input?: string; env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<RunResult> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      env: { ...process.env, ...options.env },
      cwd: options.cwd,
      stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => {
      stderr += `\n[harness: killed after ${options.timeoutMs ?? 60_000}ms]`;
      child.kill('SIGKILL');
    }, options.timeoutMs ?? 60_000);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${command}: ${error.message}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started });
    });
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}

/** A failed run, described for an assertion message. */
export function describeRun(command: string, args: readonly string[], result: RunResult): string {
  return `${command} ${args.join(' ')}\nexit ${result.code ?? result.signal}\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}`;
}
