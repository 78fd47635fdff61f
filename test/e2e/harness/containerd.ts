// A real containerd (Debian's 1.6, or the 2.x that scripts/peers.sh builds) as a throwaway e2e
// peer: root, a temp state dir (short, since a unix socket path must stay under 108 bytes), the
// native snapshotter, and a CNI conf dir the test chooses. Also: crictl against any CRI socket, containerd's answer
// "settled" (its CNI reload runs asynchronously on fsnotify events), and the scripted sequence of
// conf-dir changes the differential tests apply to a dir both containerd and the agent watch.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../../helpers/agent.js';
import { sleep, until } from '../../helpers/wait.js';
import { describeRun, requirePeers, run } from './peers.js';
import type { RunResult } from './peers.js';

/** Anything that can run cleanups at the end: a node:test TestContext, or a bench script's list. */
export interface Cleanup {
  after(fn: () => unknown): void;
}

// ---- crictl --------------------------------------------------------------------------------

export interface CrictlCondition {
  type: string;
  status: boolean;
  reason: string;
  message: string;
}

/** `crictl info -o json`: the status, plus every verbose info key at the top level. */
export interface CrictlInfo {
  status: { conditions: CrictlCondition[] };
  [key: string]: unknown;
}

/**
 * Runs crictl against `endpoint` (unix:///…) with no config file, so nothing on the host leaks in;
 * `callTimeout` is crictl's own per-call deadline (its --timeout).
 */
export async function crictl(
  endpoint: string,
  args: readonly string[],
  timeoutMs = 30_000,
  callTimeout = '10s',
): Promise<RunResult> {
  const { crictl: binary } = requirePeers('crictl');
  return run(
    binary,
    ['--config', '/dev/null', '--runtime-endpoint', endpoint, '--timeout', callTimeout, ...args],
    { timeoutMs },
  );
}

/** `crictl info`, parsed; throws with crictl's output when it fails or prints something else than JSON. */
export async function crictlInfo(endpoint: string): Promise<CrictlInfo> {
  const args = ['info', '-o', 'json'];
  const result = await crictl(endpoint, args);
  if (result.code !== 0) throw new Error(`crictl failed:\n${describeRun('crictl', args, result)}`);
  try {
    return JSON.parse(result.stdout) as CrictlInfo;
  } catch (error) {
    throw new Error(
      `crictl info printed no JSON (${String(error)}):\n${describeRun('crictl', args, result)}`,
    );
  }
}

export function crictlCondition(info: CrictlInfo, type: string): CrictlCondition {
  const found = info.status.conditions.find((c) => c.type === type);
  if (!found) throw new Error(`crictl info shows no ${type} condition: ${JSON.stringify(info.status)}`);
  return found;
}

/** What the differential tests compare: NetworkReady and the default network, as crictl shows them. */
export interface NetworkView {
  ready: boolean;
  message: string;
  /** The default network's name when one is loaded (containerd: the first non-loopback network). */
  network: string | null;
  lastCNILoadStatus: string | null;
}

export function networkView(info: CrictlInfo): NetworkView {
  const condition = crictlCondition(info, 'NetworkReady');
  const lastCNILoadStatus = typeof info.lastCNILoadStatus === 'string' ? info.lastCNILoadStatus : null;
  return {
    ready: condition.status,
    message: condition.message,
    network: defaultNetwork(info),
    lastCNILoadStatus,
  };
}

function defaultNetwork(info: CrictlInfo): string | null {
  const cniconfig = info.cniconfig as
    { network?: { name?: string } | null; Networks?: { Config?: { Name?: string } }[] } | undefined;
  if (!cniconfig) return null;
  // The agent names the network in force; containerd lists what go-cni loaded, loopback first.
  if (cniconfig.network !== undefined) return cniconfig.network?.name ?? null;
  const names = (cniconfig.Networks ?? [])
    .map((n) => n.Config?.Name ?? '')
    .filter((n) => n !== 'cni-loopback');
  return names[0] ?? null;
}

// ---- containerd ----------------------------------------------------------------------------

/** Debian's containerd 1.6 (config version 2), or containerd 2.x built by `scripts/peers.sh containerd2`. */
export type ContainerdPeer = 'containerd' | 'containerd2';

export interface ContainerdOptions {
  /** The CNI conf dir containerd's CRI plugin watches. */
  confDir: string;
  /** CNI plugin dir (default: the one scripts/peers.sh reports, /usr/lib/cni). */
  cniBinDir?: string;
  /** Which containerd (default: Debian's 1.6). */
  peer?: ContainerdPeer;
}

/** Each peer's config template: their formats differ (2.x moved the CRI and CNI keys); same placeholders. */
const CONFIG_TEMPLATE: Record<ContainerdPeer, string> = {
  containerd: 'containerd-config.toml.tmpl',
  containerd2: 'containerd2-config.toml.tmpl',
};

/** The config file text for `peer`, every placeholder of its scripts/ template filled in. */
export function containerdConfig(
  peer: ContainerdPeer,
  paths: { stateDir: string; confDir: string; cniBinDir: string },
): string {
  const template = join(REPO_ROOT, 'scripts', CONFIG_TEMPLATE[peer]);
  let text: string;
  try {
    text = readFileSync(template, 'utf8');
  } catch (error) {
    throw new Error(`cannot read ${template} (the ${peer} peer's config template): ${String(error)}`);
  }
  const config = text
    .replaceAll('@STATE_DIR@', paths.stateDir)
    .replaceAll('@CONF_DIR@', paths.confDir)
    .replaceAll('@CNI_BIN_DIR@', paths.cniBinDir);
  const left = /@[A-Z_]+@/.exec(config);
  if (left) throw new Error(`${template} has a placeholder the harness does not fill: ${left[0]}`);
  return config;
}

export interface Containerd {
  /** unix:///…/containerd.sock */
  endpoint: string;
  socket: string;
  stateDir: string;
  confDir: string;
  peer: ContainerdPeer;
  pid(): number | undefined;
  /** Whether the process is up (containerd 2.x exits by itself when its conf dir is removed). */
  running(): boolean;
  /** Everything containerd logged since the harness started it (all runs). */
  log(): string;
  /** SIGTERM and wait for the exit (SIGKILL after 10 s). */
  stop(): Promise<void>;
  /** Starts it again with the same config and state, and waits until it answers. */
  start(): Promise<void>;
  restart(): Promise<void>;
  /** SIGSTOP / SIGCONT: a hung runtime whose socket still accepts connections. */
  freeze(): void;
  thaw(): void;
  info(): Promise<CrictlInfo>;
}

export async function startContainerd(cleanup: Cleanup, options: ContainerdOptions): Promise<Containerd> {
  const peer = options.peer ?? 'containerd';
  const peers = requirePeers(peer, 'crictl', 'cniBinDir');
  const binary = peers[peer];
  if (process.getuid?.() !== 0) {
    throw new Error(
      'the containerd e2e peer must run as root (its CRI plugin sets up state dirs and mounts)',
    );
  }
  const stateDir = mkdtempSync('/tmp/ctrd-');
  const socket = join(stateDir, 'containerd.sock');
  const endpoint = `unix://${socket}`;
  const config = join(stateDir, 'config.toml');
  writeFileSync(
    config,
    containerdConfig(peer, {
      stateDir,
      confDir: options.confDir,
      cniBinDir: options.cniBinDir ?? peers.cniBinDir,
    }),
  );
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let output = '';

  const start = async (): Promise<void> => {
    if (child) throw new Error('containerd is already running');
    const spawned = spawn(binary, ['--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    child = spawned;
    spawned.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    spawned.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    exited = new Promise((resolve) =>
      spawned.once('exit', () => {
        if (child === spawned) child = undefined;
        resolve();
      }),
    );
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (child !== spawned) {
        throw new Error(`containerd exited during startup (config ${config}):\n${output.slice(-4000)}`);
      }
      const result = await crictl(endpoint, ['version'], 5000);
      if (result.code === 0 && result.stdout.includes('containerd')) return;
      if (Date.now() > deadline) {
        throw new Error(
          `containerd did not answer crictl version within 30s:\n${describeRun('crictl', ['version'], result)}\n--- containerd log\n${output.slice(-4000)}`,
        );
      }
      await sleep(100);
    }
  };

  const stop = async (): Promise<void> => {
    const running = child;
    if (!running) return;
    if (running.signalCode === null) running.kill('SIGCONT'); // a frozen process cannot act on SIGTERM
    running.kill('SIGTERM');
    const killer = setTimeout(() => running.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(killer);
  };

  cleanup.after(async () => {
    await stop();
    rmSync(stateDir, { recursive: true, force: true });
  });
  await start();
  return {
    endpoint,
    socket,
    stateDir,
    confDir: options.confDir,
    peer,
    pid: () => child?.pid,
    running: () => child !== undefined,
    log: () => output,
    stop,
    start,
    restart: async () => {
      await stop();
      await start();
    },
    freeze: () => child?.kill('SIGSTOP'),
    thaw: () => child?.kill('SIGCONT'),
    info: () => crictlInfo(endpoint),
  };
}

/**
 * Polls `crictl info` until the answer has stopped changing for `quietMs` (containerd reloads its
 * CNI config in a goroutine after each fsnotify event), within `deadlineMs`. Returns the settled
 * view and how long after the call the last change was seen.
 */
export async function settledNetworkView(
  endpoint: string,
  { quietMs = 1200, deadlineMs = 20_000, pollMs = 100 } = {},
): Promise<{ view: NetworkView; lastChangeMs: number; samples: number }> {
  const started = Date.now();
  let previous: string | undefined;
  let view: NetworkView | undefined;
  let changedAt = started;
  let samples = 0;
  for (;;) {
    view = networkView(await crictlInfo(endpoint));
    samples++;
    const key = JSON.stringify(view);
    const now = Date.now();
    if (key !== previous) {
      previous = key;
      changedAt = now;
    } else if (now - changedAt >= quietMs && samples >= 3) {
      return { view, lastChangeMs: samples === 1 ? 0 : changedAt - started, samples };
    }
    if (now - started > deadlineMs) {
      throw new Error(
        `containerd's answer at ${endpoint} did not settle within ${deadlineMs}ms (last: ${key})`,
      );
    }
    await sleep(pollMs);
  }
}

// ---- the scripted conf-dir sequence ---------------------------------------------------------

export interface StepContext {
  confDir: string;
  containerd: Containerd;
}

/** Why a step is expected to disagree with containerd, for one agent profile. */
export interface KnownDisagreement {
  /** Who is wrong or why the answers differ, with the upstream issue or the design rule. */
  why: string;
  /** An agent bug (containerd is right): the step is a `todo` until the core is fixed. */
  agentBug?: true;
}

export interface ConfDirStep {
  name: string;
  /** What the step does to the dir, in words. */
  does: string;
  apply(context: StepContext): void | Promise<void>;
  /** containerd's NetworkReady once settled, as observed with Debian's containerd 1.6.20. */
  containerd: boolean;
  /** Where the agent's NetworkReady differs from containerd's, per semantics; absent: they agree. */
  differs?: { containerd?: KnownDisagreement; isulad?: KnownDisagreement };
  /**
   * Where containerd 2.x (2.4.2; the agent under containerd-2.1 beside it) does something else than
   * 1.6 at this step: its NetworkReady, whether it exits, and why. The agents' expectations stay.
   */
  containerd2?: { containerd: boolean; exits?: true; why: string };
}

const valid = (name: string): string =>
  `${JSON.stringify(
    {
      cniVersion: '1.0.0',
      name,
      plugins: [
        { type: 'bridge', bridge: 'cni0' },
        { type: 'portmap', capabilities: { portMappings: true } },
      ],
    },
    null,
    2,
  )}\n`;

/** kubelet's AtomicWriter names its payload dirs like this (..2026_11_27_15_00_00.123456789). */
function timestampDir(n: number): string {
  return `..2026_11_27_15_00_0${n}.00000000${n}`;
}

/** Kubelet AtomicWriter steps 5–8: a new payload dir, `..data_tmp` pointing at it, renamed over `..data`. */
function projectPayload(confDir: string, n: number, files: Record<string, string>): void {
  const payload = timestampDir(n);
  mkdirSync(join(confDir, payload));
  for (const [file, content] of Object.entries(files)) writeFileSync(join(confDir, payload, file), content);
  symlinkSync(payload, join(confDir, '..data_tmp'));
  renameSync(join(confDir, '..data_tmp'), join(confDir, '..data'));
}

const ISULAD_SKIPS = 'isulad skips a file that never loaded and serves the next valid one (DESIGN §6)';
const ISULAD_KEEPS_FILE = 'isulad keeps the last good content of a file that breaks (DESIGN §2)';
const ISULAD_KEEPS_DIR = 'isulad keeps the last good network when the dir empties (DESIGN §6)';
const CONTAINERD_11715 =
  'containerd is wrong: its CNI syncer ignores Create events, so a config that appears by creation alone (the user-visible symlink kubelet creates after the ..data rename) is never loaded (containerd/containerd#11715)';
const CONTAINERD_6490 =
  'containerd is wrong: its inotify watch dies with the conf dir and is never re-armed, so the recreated dir is never read again until a restart (containerd/containerd#6490, dup #7196, #11209)';

/**
 * ONE sequence, applied in order to a dir watched by containerd and by the agents. Each step's
 * `containerd` value and `differs` entries are the expected outcome; the differential tests assert
 * that the observed disagreements are exactly these, so any new divergence fails.
 */
export const CONF_DIR_SEQUENCE: readonly ConfDirStep[] = [
  {
    name: 'valid',
    does: 'write 10-net.conflist (valid) into the empty dir',
    apply: ({ confDir }) => writeFileSync(join(confDir, '10-net.conflist'), valid('net')),
    containerd: true,
  },
  {
    name: 'bad-later-file',
    does: 'write 20-broken.conflist (truncated JSON), sorting after the valid file',
    apply: ({ confDir }) =>
      writeFileSync(join(confDir, '20-broken.conflist'), '{"cniVersion": "1.0.0", "name": '),
    // go-cni parses only the first max_conf_num (default 1) files, so a bad file after the default
    // network is never read by containerd.
    containerd: true,
  },
  {
    name: 'bad-first-file',
    does: 'rename 20-broken.conflist to 00-broken.conflist (now first in sort order)',
    apply: ({ confDir }) =>
      renameSync(join(confDir, '20-broken.conflist'), join(confDir, '00-broken.conflist')),
    containerd: false,
    differs: { isulad: { why: ISULAD_SKIPS } },
  },
  {
    name: 'fix-first-file',
    does: 'rewrite 00-broken.conflist in place with a valid network "first"',
    apply: ({ confDir }) => writeFileSync(join(confDir, '00-broken.conflist'), valid('first')),
    containerd: true,
  },
  {
    name: 'truncate-in-place',
    does: 'truncate 00-broken.conflist to 0 bytes in place (the first half of `cp -f`)',
    apply: ({ confDir }) => writeFileSync(join(confDir, '00-broken.conflist'), ''),
    containerd: false,
    differs: { isulad: { why: ISULAD_KEEPS_FILE } },
  },
  {
    name: 'rewrite-in-place',
    does: 'write the valid "first" content back in place',
    apply: ({ confDir }) => writeFileSync(join(confDir, '00-broken.conflist'), valid('first')),
    containerd: true,
  },
  {
    name: 'delete-all',
    does: 'delete every file in the dir',
    apply: ({ confDir }) => {
      for (const name of readdirSync(confDir)) unlinkSync(join(confDir, name));
    },
    containerd: false,
    differs: { isulad: { why: ISULAD_KEEPS_DIR } },
  },
  {
    name: 'configmap-projection',
    does: 'project a ConfigMap as kubelet does: payload dir, ..data_tmp renamed to ..data, then (1 s later) the user-visible symlink 10-cm.conflist -> ..data/10-cm.conflist',
    apply: async ({ confDir, containerd }) => {
      const since = containerd.log().length;
      projectPayload(confDir, 1, { '10-cm.conflist': valid('cm-v1') });
      // containerd reloads on the ..data rename; waiting for that reload makes it read the dir
      // before the symlink exists, as it would with a slow writer, instead of racing it.
      await reloadFailed(containerd, since, 'RENAME', join(confDir, '..data_tmp'));
      symlinkSync('..data/10-cm.conflist', join(confDir, '10-cm.conflist'));
    },
    containerd: false,
    differs: { containerd: { why: CONTAINERD_11715 }, isulad: { why: CONTAINERD_11715 } },
  },
  {
    name: 'configmap-swap',
    does: 'update the ConfigMap: new payload dir, ..data_tmp renamed over ..data, old payload removed',
    apply: ({ confDir }) => {
      projectPayload(confDir, 2, { '10-cm.conflist': valid('cm-v2') });
      rmSync(join(confDir, timestampDir(1)), { recursive: true });
    },
    containerd: true,
  },
  {
    name: 'dir-recreated',
    does: 'delete the conf dir, recreate it and write 10-net.conflist (valid)',
    apply: async ({ confDir, containerd }) => {
      const since = containerd.log().length;
      rmSync(confDir, { recursive: true });
      // containerd handles the dir's own removal before the new dir appears, not racing it.
      if (containerd.peer === 'containerd2') {
        await until('containerd 2.x to exit on the removed dir', () => !containerd.running(), 20_000);
      } else {
        await reloadFailed(containerd, since, 'REMOVE', confDir);
      }
      mkdirSync(confDir);
      writeFileSync(join(confDir, '10-net.conflist'), valid('net'));
    },
    containerd: false,
    differs: { containerd: { why: CONTAINERD_6490 }, isulad: { why: CONTAINERD_6490 } },
    containerd2: {
      containerd: false,
      exits: true,
      why: 'containerd 2.1+ stops its CRI service and exits when the conf dir is removed ("cni conf dir is removed, stop watching", containerd PR #10646) instead of going blind (#6490); the agent keeps serving',
    },
  },
  {
    name: 'runtime-restarted',
    does: 'restart containerd (no change to the dir): it reads the recreated dir afresh',
    apply: ({ containerd }) => containerd.restart(),
    containerd: true,
  },
];

export type Profile = 'containerd' | 'isulad';
export const PROFILES: readonly Profile[] = ['containerd', 'isulad'];

export interface StepObservation {
  step: ConfDirStep;
  containerd: NetworkView;
  agents: Record<Profile, NetworkView>;
  /** When containerd's answer last changed after the step was applied. */
  settleMs: number;
}

/**
 * Applies CONF_DIR_SEQUENCE step by step; after each, waits for containerd's answer to settle and
 * then asks each agent (crictl info on both sides). `onStep` sees each observation as it is made.
 */
export async function observeSequence(options: {
  confDir: string;
  containerd: Containerd;
  agentEndpoints: Record<Profile, string>;
  onStep?: (observation: StepObservation) => void;
}): Promise<StepObservation[]> {
  const { confDir, containerd, agentEndpoints } = options;
  const observations: StepObservation[] = [];
  for (const step of CONF_DIR_SEQUENCE) {
    const since = containerd.log().length;
    await step.apply({ confDir, containerd });
    // containerd 2.x exits at the dir-recreate step: nothing to settle, its fatal line says why.
    const settled = containerd.running()
      ? await settledNetworkView(containerd.endpoint)
      : { view: exitedView(containerd.log().slice(since)), lastChangeMs: 0 };
    const agents = {
      containerd: networkView(await crictlInfo(agentEndpoints.containerd)),
      isulad: networkView(await crictlInfo(agentEndpoints.isulad)),
    };
    const observation = { step, containerd: settled.view, agents, settleMs: settled.lastChangeMs };
    observations.push(observation);
    options.onStep?.(observation);
  }
  return observations;
}

/** A containerd that exited, as a view: not ready, and the fatal line it logged. */
function exitedView(log: string): NetworkView {
  const fatal = log.split('\n').find((line) => line.includes('level=fatal')) ?? '(no fatal line logged)';
  return { ready: false, message: `containerd exited: ${fatal}`, network: null, lastCNILoadStatus: null };
}

/** containerd's NetworkReady at `step`, for the peer that ran it (2.x where it differs from 1.6). */
export function expectedContainerdReady(step: ConfDirStep, peer: ContainerdPeer = 'containerd'): boolean {
  return peer === 'containerd2' && step.containerd2 ? step.containerd2.containerd : step.containerd;
}

/** What the agent under `profile` should answer at `step`: containerd's, unless a known, non-bug difference applies. */
export function expectedAgentReady(
  step: ConfDirStep,
  profile: Profile,
  peer: ContainerdPeer = 'containerd',
): boolean {
  const differs = step.differs?.[profile];
  const containerd = expectedContainerdReady(step, peer);
  return differs && !differs.agentBug ? !containerd : containerd;
}

/** The observations as a plain-text table (≠ marks a disagreement with containerd). */
export function differentialTable(
  observations: readonly StepObservation[],
  columns = { containerd: 'containerd 1.6', agent: 'agent --semantics containerd' },
): string {
  const cell = (view: NetworkView, against?: NetworkView): string =>
    `${view.ready ? 'true' : 'FALSE'}${view.ready && view.network ? ` (${view.network})` : ''}${against && against.ready !== view.ready ? ' ≠' : ''}`;
  const rows = [
    ['step', columns.containerd, columns.agent, 'agent (isulad)', 'containerd final after'],
    ...observations.map((o) => [
      o.step.name,
      cell(o.containerd),
      cell(o.agents.containerd, o.containerd),
      cell(o.agents.isulad, o.containerd),
      `+${o.settleMs}ms`,
    ]),
  ];
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? '').length))) ?? [];
  return rows.map((row) => row.map((text, i) => text.padEnd(widths[i] ?? 0)).join(' | ')).join('\n');
}

/**
 * Waits until containerd has logged a failed CNI reload for the fs event `op` on `path`, in its
 * log after offset `since`. Its CNI syncer (1.6) reloads on every event but Create and logs each
 * failed reload with the event; a successful one is not logged, so use this only where the reload
 * must fail (an empty or removed dir).
 */
export async function reloadFailed(
  containerd: Containerd,
  since: number,
  op: 'RENAME' | 'REMOVE' | 'WRITE',
  path: string,
  timeoutMs = 15_000,
): Promise<void> {
  const escaped = path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const logged = new RegExp(
    `failed to reload cni configuration after receiving fs change event\\(${op}\\s+\\\\"${escaped}\\\\"\\)`,
  );
  await until(
    `containerd to log a failed reload for ${op} ${path}`,
    () => logged.test(containerd.log().slice(since)),
    timeoutMs,
    { intervalMs: 20, describe: () => containerd.log().slice(since).slice(-2000) },
  );
}
