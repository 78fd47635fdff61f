// The CNI STATUS differential sequence: containerd 2.x (which runs STATUS on every Status) and two
// agents (`--semantics containerd-2.1`, which probes as containerd does, and the default `isulad`
// with `--plugin-status off`) watch one conf dir whose list runs the real test plugin
// test/fixtures/plugins/cni-status-test. Each runner finds the plugin in its own bin dir, through a
// wrapper that logs the run under the runner's name and then execs the plugin (same pid), so the
// runs can be counted per runner; the plugin's own callLog counts them all. The plugin's behaviour
// is switched through its modeFile, so most steps change no conf file at all.
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { STATUS_PLUGIN } from '../../helpers/status-plugin.js';
import { sleep, until } from '../../helpers/wait.js';
import { crictl, crictlInfo, networkView, settledNetworkView } from './containerd.js';
import type { Containerd, CrictlInfo, KnownDisagreement, NetworkView } from './containerd.js';
import { describeRun } from './peers.js';

export const STATUS_NETWORK = 'status-net';
export const LIST_FILE = '10-status.conflist';

/** The agents in the sequence, by the profile they run. */
export const STATUS_AGENTS = ['containerd-2.1', 'isulad'] as const;
export type StatusAgent = (typeof STATUS_AGENTS)[number];
/** Everything that may run a plugin. */
export type Runner = 'containerd' | StatusAgent;
const RUNNERS: readonly Runner[] = ['containerd', ...STATUS_AGENTS];

/** One plugin run, as a log line `<CNI_COMMAND> <pid>` says it. */
export interface PluginRun {
  command: string;
  pid: number;
}

/** The dirs and files a STATUS sequence works on; everything but the conf dir lives beside it. */
export interface StatusRig {
  root: string;
  confDir: string;
  /** Its first line overrides the plugin's statusMode (no conf rewrite, so no reload). */
  modeFile: string;
  /** The plugin's own callLog: every run, whoever ran it. */
  callLog: string;
  binDirs: Record<Runner, string>;
  setMode(mode: string): void;
  /** Writes the list file IN PLACE (containerd 2.x misses Create-only events, containerd#11715). */
  writeList(cniVersion: string, plugins: readonly Record<string, unknown>[]): void;
  /** The test plugin's entry in a list: its modeFile and callLog set. */
  testPlugin(): Record<string, unknown>;
  /** The runs `runner` made so far. */
  runs(runner: Runner): PluginRun[];
  /** The runs logged in the plugin's callLog. */
  allRuns(): PluginRun[];
  /** SIGKILLs `runner`'s plugin runs that are still alive (a hang); returns how many. */
  killLive(runner: Runner): number;
  /** `text` with every runner's bin dir written as <bin dir> (they differ by design). */
  withoutBinDirs(text: string): string;
}

/**
 * Makes the rig under `root`: the conf dir (empty), a copy of the test plugin, and one bin dir per
 * runner holding the logging wrapper and links to the bridge and loopback plugins of `cniBinDir`.
 */
export function makeStatusRig(root: string, cniBinDir: string): StatusRig {
  const confDir = join(root, 'net.d');
  const modeFile = join(root, 'mode');
  const callLog = join(root, 'calls.log');
  const plugin = join(root, 'plugin', 'cni-status-test');
  mkdirSync(confDir);
  mkdirSync(join(root, 'plugin'));
  copyFileSync(STATUS_PLUGIN, plugin);
  chmodSync(plugin, 0o755);
  writeFileSync(modeFile, 'ok\n');
  writeFileSync(callLog, '');
  const binDirs = {} as Record<Runner, string>;
  const runLog = (runner: Runner): string => join(root, `runs-${runner}.log`);
  for (const runner of RUNNERS) {
    const dir = join(root, `bin-${runner}`);
    mkdirSync(dir);
    writeFileSync(runLog(runner), '');
    writeFileSync(
      join(dir, 'cni-status-test'),
      [
        '#!/bin/sh',
        `# ${runner}'s cni-status-test: log the run, then become the test plugin (same pid).`,
        `printf '%s %s\\n' "$CNI_COMMAND" "$$" >>'${runLog(runner)}'`,
        `exec '${plugin}' "$@"`,
        '',
      ].join('\n'),
      { mode: 0o755 },
    );
    for (const other of ['bridge', 'loopback']) symlinkSync(join(cniBinDir, other), join(dir, other));
    binDirs[runner] = dir;
  }
  const parse = (file: string): PluginRun[] =>
    (existsSync(file) ? readFileSync(file, 'utf8') : '')
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => {
        const [command = '', pid = ''] = line.split(' ');
        return { command, pid: Number(pid) };
      });
  return {
    root,
    confDir,
    modeFile,
    callLog,
    binDirs,
    setMode: (mode) => writeFileSync(modeFile, `${mode}\n`),
    writeList: (cniVersion, plugins) =>
      writeFileSync(
        join(confDir, LIST_FILE),
        `${JSON.stringify({ cniVersion, name: STATUS_NETWORK, plugins }, null, 2)}\n`,
      ),
    testPlugin: () => ({ type: 'cni-status-test', modeFile, callLog }),
    runs: (runner) => parse(runLog(runner)),
    allRuns: () => parse(callLog),
    withoutBinDirs: (text) =>
      Object.values(binDirs)
        .sort((a, b) => b.length - a.length) // bin-containerd is a prefix of bin-containerd-2.1
        .reduce((out, dir) => out.replaceAll(dir, '<bin dir>'), text),
    killLive: (runner) => {
      let killed = 0;
      for (const { pid } of parse(runLog(runner))) {
        if (isPluginAlive(pid, plugin)) {
          try {
            process.kill(pid, 'SIGKILL');
            killed++;
          } catch {
            // gone in between
          }
        }
      }
      return killed;
    },
  };
}

/** Whether `pid` is still a running (not zombie) test plugin or the `sleep` its hang mode became. */
function isPluginAlive(pid: number, plugin: string): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return false;
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.includes(plugin) || cmdline.startsWith('sleep\0');
  } catch {
    return false;
  }
}

/** The live (not zombie) child processes of `pid`: the plugin runs an agent has in flight. */
export function liveChildren(pid: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // fields[0] is the state (field 3), fields[1] the parent pid (field 4)
      if (fields[1] === String(pid) && fields[0] !== 'Z') children.push(Number(entry));
    } catch {
      // exited while we looked
    }
  }
  return children;
}

// ---- the sequence ----------------------------------------------------------------------------

/** What containerd 2.x does at a step: answers (NetworkReady and, when false, its message), hangs, or exits. */
export type ContainerdOutcome =
  { ready: true } | { ready: false; message: string | RegExp } | { hangs: true } | { exits: RegExp };

export interface StatusStep {
  name: string;
  /** What the step does, in words. */
  does: string;
  apply(rig: StatusRig): void;
  /** containerd 2.4.2's answer once settled, as observed (../shared/reference/runtimes-2x.md). */
  containerd: ContainerdOutcome;
  /** STATUS runs per Status call of the test plugin (0 below cniVersion 1.1.0 or without it). */
  probes: 0 | 1;
  /** Where an agent's NetworkReady differs from containerd's answer (containerd hangs or exits: always). */
  differs?: Partial<Record<StatusAgent, KnownDisagreement>>;
  /**
   * Where both say NetworkReady false but the containerd-2.1 agent words it its own way: what it
   * says, and why. Absent: its message is containerd's, word for word (each runner's own bin dir
   * written as <bin dir>).
   */
  ownMessage?: { agent: RegExp; why: string };
  /** What each agent answers where containerd hangs or exits (no answer of its own to compare with). */
  agentsSay?: Record<StatusAgent, { ready: boolean; message?: RegExp }>;
}

const PROBING_OFF =
  'the default isulad agent runs with --plugin-status off: it decides from files only and runs no plugin (`--plugin-status on` adds probing)';
const BINARIES_NOT_REQUIRED =
  'the default isulad agent (--plugin-status off) does not require plugin binaries: a missing one is listed in info and the Node condition, not in NetworkReady (only the crio profile requires them, as CRI-O does)';
const ISULAD_KEEPS_DIR = 'isulad keeps the last good network when the dir empties (DESIGN §6)';
const CONTAINERD_HANGS =
  'containerd is unbounded: it waits for the hung plugin with no timeout (crictl gets DeadlineExceeded); the agent kills the plugin at --plugin-status-timeout and answers within its budget';
const CONTAINERD_EXITS =
  'containerd 2.1+ stops its CRI service and exits when the conf dir is removed (containerd PR #10646); the agent re-arms its watch and keeps serving';

const PREFIX = 'Network plugin returns error: ';
const exact = (cause: string): string => `${PREFIX}${cause}`;

/** The list with the test plugin (cniVersion 1.1.0), written in place, the plugin answering ok. */
function okList(name: string, does: string): StatusStep {
  return {
    name,
    does,
    apply: (rig) => {
      rig.setMode('ok');
      rig.writeList('1.1.0', [rig.testPlugin()]);
    },
    containerd: { ready: true },
    probes: 1,
  };
}

/** A step that only switches the plugin's mode (no conf change): the isulad agent, probing off, stays ready. */
function pluginSays(
  mode: string,
  does: string,
  containerd: { ready: true } | { ready: false; message: string },
): StatusStep {
  return {
    name: mode,
    does: `the plugin ${does}`,
    apply: (rig) => rig.setMode(mode),
    containerd,
    probes: 1,
    ...(containerd.ready ? {} : { differs: { isulad: { why: PROBING_OFF } } }),
  };
}

/**
 * ONE sequence, in order. The hang step comes last but one (it holds containerd's lock until its
 * plugin is killed), the dir-recreate step last (containerd 2.x exits).
 */
export const STATUS_SEQUENCE: readonly StatusStep[] = [
  okList('ok', `write ${LIST_FILE} (cniVersion 1.1.0, the test plugin) in place; STATUS succeeds`),
  pluginSays('fail50', 'answers STATUS with error code 50 (exit 1)', {
    ready: false,
    message: exact('plugin not ready: agent down'),
  }),
  pluginSays('fail51', 'answers with code 51 and details', {
    ready: false,
    message: exact('plugin not ready: existing pods degraded; agent lost'),
  }),
  pluginSays('errexit0', 'prints an error JSON but exits 0', { ready: true }),
  pluginSays('nonjson', 'prints non-JSON on stdout and exits 1', {
    ready: false,
    message: exact(
      `netplugin failed but error parsing its diagnostic message "oops not json\\n": invalid character 'o' looking for beginning of value`,
    ),
  }),
  pluginSays('stderr', 'prints only on stderr and exits 1', {
    ready: false,
    message: exact('netplugin failed: "boom on stderr\\n": exit status 1'),
  }),
  {
    name: 'cniVersion-1.0.0',
    does: 'the plugin fails (code 50) but the list says cniVersion 1.0.0 (rewritten in place): STATUS is skipped',
    apply: (rig) => {
      rig.setMode('fail50');
      rig.writeList('1.0.0', [rig.testPlugin()]);
    },
    containerd: { ready: true },
    probes: 0,
  },
  {
    name: 'missing-binary',
    does: 'the 1.1.0 list names a plugin no bin dir has (nosuchplugin)',
    apply: (rig) => rig.writeList('1.1.0', [{ type: 'nosuchplugin' }]),
    containerd: {
      ready: false,
      message: /^Network plugin returns error: failed to find plugin "nosuchplugin" in path \[/,
    },
    probes: 0,
    differs: { isulad: { why: BINARIES_NOT_REQUIRED } },
  },
  {
    name: 'too-old-bridge',
    does: "the 1.1.0 list runs Debian's bridge 1.1.1, which predates STATUS",
    apply: (rig) => rig.writeList('1.1.0', [{ type: 'bridge', bridge: 'cnst0' }]),
    containerd: { ready: false, message: exact('missing containerID') },
    probes: 0,
    differs: { isulad: { why: PROBING_OFF } },
    ownMessage: {
      agent:
        /^Network plugin returns error: missing containerID; this plugin supports CNI up to 1\.0\.0, STATUS needs 1\.1\.0: /,
      why: "containerd's message, then the agent's hint: the plugin predates STATUS, and what to do",
    },
  },
  {
    name: 'empty-dir',
    does: `delete ${LIST_FILE}: the dir is empty`,
    apply: (rig) => rmSync(join(rig.confDir, LIST_FILE)),
    containerd: { ready: false, message: exact('cni plugin not initialized') },
    probes: 0,
    differs: { isulad: { why: ISULAD_KEEPS_DIR } },
    ownMessage: {
      agent: /no network config found/,
      why: 'containerd says go-cni is not initialized; the agent names the empty dir (as with containerd 1.6)',
    },
  },
  okList('ok-again', `write ${LIST_FILE} (1.1.0, the test plugin) back; STATUS succeeds`),
  {
    name: 'hang',
    does: 'the plugin hangs in STATUS (sleeps an hour)',
    apply: (rig) => rig.setMode('hang'),
    containerd: { hangs: true },
    probes: 1,
    differs: { 'containerd-2.1': { why: CONTAINERD_HANGS }, isulad: { why: CONTAINERD_HANGS } },
    agentsSay: {
      'containerd-2.1': { ready: false, message: /timed out|timeout/i },
      isulad: { ready: true },
    },
  },
  {
    name: 'dir-recreated',
    does: `remove the conf dir, recreate it and write ${LIST_FILE} (1.1.0, plugin ok) into it`,
    apply: (rig) => {
      rig.setMode('ok');
      rmSync(rig.confDir, { recursive: true });
      mkdirSync(rig.confDir);
      rig.writeList('1.1.0', [rig.testPlugin()]);
    },
    containerd: { exits: /cni conf dir is removed, stop watching/ },
    probes: 1,
    differs: { 'containerd-2.1': { why: CONTAINERD_EXITS }, isulad: { why: CONTAINERD_EXITS } },
    agentsSay: { 'containerd-2.1': { ready: true }, isulad: { ready: true } },
  },
];

// ---- observing it ----------------------------------------------------------------------------

/** Extra Status calls made to each runner once a step has settled, to count plugin runs per call. */
export const COUNTED_CALLS = 3;

export type ContainerdObserved =
  { answered: true; view: NetworkView } | { answered: false; hung?: true; exited?: true; what: string };

export interface StatusObservation {
  step: StatusStep;
  containerd: ContainerdObserved;
  agents: Record<StatusAgent, NetworkView>;
  /** Plugin runs per runner during the COUNTED_CALLS calls (or, at hang and exit, during the step). */
  runs: Record<Runner, number>;
  /** Hang step: the most plugin runs of the containerd-2.1 agent seen alive at once. */
  maxInFlight?: number;
  /** Hang step: how containerd came back (its plugin killed, or a fresh containerd). */
  recovered?: string;
}

export interface StatusAgentEndpoint {
  endpoint: string;
  pid: number;
}

/** STATUS runs so far per runner (the agent may also ask VERSION to explain a failure). */
const runCounts = (rig: StatusRig): Record<Runner, number> =>
  Object.fromEntries(
    RUNNERS.map((r) => [r, rig.runs(r).filter((run) => run.command === 'STATUS').length]),
  ) as Record<Runner, number>;

const runsSince = (rig: StatusRig, before: Record<Runner, number>): Record<Runner, number> => {
  const now = runCounts(rig);
  return Object.fromEntries(RUNNERS.map((r) => [r, now[r] - before[r]])) as Record<Runner, number>;
};

/** A step being observed: the rig, the runners, and the STATUS runs counted before it was applied. */
interface Observing {
  step: StatusStep;
  rig: StatusRig;
  containerd: Containerd;
  agents: Record<StatusAgent, StatusAgentEndpoint>;
  before: Record<Runner, number>;
}

/** Each agent's answer (crictl info). */
async function askAgents(
  agents: Record<StatusAgent, StatusAgentEndpoint>,
): Promise<Record<StatusAgent, NetworkView>> {
  return {
    'containerd-2.1': networkView(await crictlInfo(agents['containerd-2.1'].endpoint)),
    isulad: networkView(await crictlInfo(agents.isulad.endpoint)),
  };
}

/**
 * Applies STATUS_SEQUENCE step by step and observes containerd and each agent (crictl info on every
 * side). `onStep` sees each observation as it is made.
 */
export async function observeStatusSequence(options: {
  rig: StatusRig;
  containerd: Containerd;
  agents: Record<StatusAgent, StatusAgentEndpoint>;
  onStep?: (observation: StatusObservation) => void;
}): Promise<StatusObservation[]> {
  const { rig, containerd, agents } = options;
  const agentViews = (): Promise<Record<StatusAgent, NetworkView>> => askAgents(agents);
  const observations: StatusObservation[] = [];
  for (const step of STATUS_SEQUENCE) {
    const before = runCounts(rig);
    step.apply(rig);
    let observation: StatusObservation;
    if ('hangs' in step.containerd) {
      observation = await observeHang({ step, rig, containerd, agents, before });
    } else if ('exits' in step.containerd) {
      observation = await observeExit({ step, rig, containerd, agents, before });
    } else {
      const settled = await settledNetworkView(containerd.endpoint);
      const views = await agentViews();
      const counted = runCounts(rig);
      for (let i = 0; i < COUNTED_CALLS; i++) {
        await crictlInfo(containerd.endpoint);
        await agentViews();
      }
      observation = {
        step,
        containerd: { answered: true, view: settled.view },
        agents: views,
        runs: runsSince(rig, counted),
      };
    }
    observations.push(observation);
    options.onStep?.(observation);
  }
  return observations;
}

/**
 * The hang: containerd's Status waits for the plugin with no bound, so crictl's own 2 s deadline
 * fails; meanwhile the agents are asked every 250 ms for at least 6 s (three --plugin-status-timeout
 * periods) and until the containerd-2.1 agent says the plugin timed out, while its plugin runs
 * alive at once are sampled. Then the plugin is switched back to ok and containerd's hung runs
 * are killed; if containerd still does not answer, it is restarted (a fresh containerd).
 */
async function observeHang({ step, rig, containerd, agents, before }: Observing): Promise<StatusObservation> {
  const args = ['info', '-o', 'json'];
  const hung = crictl(containerd.endpoint, args, 30_000, '2s');
  let maxInFlight = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      maxInFlight = Math.max(maxInFlight, liveChildren(agents['containerd-2.1'].pid).length);
      await sleep(50);
    }
  })();
  // Until 6 s have passed and the containerd-2.1 agent says what the step expects (30 s at most:
  // then the last answers are observed as they are, and the assertions say what was wrong).
  const started = Date.now();
  const said = step.agentsSay?.['containerd-2.1'].message;
  let views: Record<StatusAgent, NetworkView>;
  try {
    for (;;) {
      views = await askAgents(agents);
      const elapsed = Date.now() - started;
      if (elapsed >= 6000 && (!said || said.test(views['containerd-2.1'].message))) break;
      if (elapsed >= 30_000) break;
      await sleep(250);
    }
  } finally {
    sampling = false;
    await sampler;
  }
  const result = await hung;
  const what =
    result.code === 0
      ? `answered: ${result.stdout.slice(0, 200)}`
      : `${result.stderr.trim().split('\n').pop() ?? ''} (crictl --timeout 2s, exit ${result.code})`;
  const runs = runsSince(rig, before);
  rig.setMode('ok');
  rig.killLive('containerd');
  let recovered = 'its hung plugin run killed';
  try {
    await until(
      'containerd to answer again once its hung plugin run is killed',
      async () => (await crictl(containerd.endpoint, args, 10_000, '2s')).code === 0,
      15_000,
      { intervalMs: 200 },
    );
  } catch {
    recovered = 'restarted (still stuck after its plugin run was killed)';
    await containerd.restart();
  }
  return {
    step,
    containerd:
      result.code === 0
        ? { answered: true, view: networkView(JSON.parse(result.stdout) as CrictlInfo) }
        : { answered: false, hung: true, what },
    agents: views,
    runs,
    maxInFlight,
    recovered,
  };
}

/** The dir-recreate step: containerd 2.x exits (its log says why); the agents keep answering. */
async function observeExit({ step, rig, containerd, agents, before }: Observing): Promise<StatusObservation> {
  const since = containerd.log().length;
  let containerdObserved: ContainerdObserved;
  try {
    await until('containerd to exit', () => !containerd.running(), 20_000, { intervalMs: 100 });
    const fatal = containerd
      .log()
      .slice(since)
      .split('\n')
      .find((line) => line.includes('level=fatal'));
    containerdObserved = { answered: false, exited: true, what: fatal ?? '(exited; no fatal line)' };
  } catch {
    const result = await crictl(containerd.endpoint, ['info', '-o', 'json'], 10_000, '2s');
    containerdObserved =
      result.code === 0
        ? { answered: true, view: networkView(JSON.parse(result.stdout) as CrictlInfo) }
        : { answered: false, what: describeRun('crictl', ['info'], result) };
  }
  // The agents re-arm their watch on the new dir: wait until both show the network again.
  const views = await until(
    'both agents to serve the recreated dir',
    async () => {
      const seen = await askAgents(agents);
      return seen['containerd-2.1'].ready && seen.isulad.ready ? seen : undefined;
    },
    20_000,
    { intervalMs: 250 },
  ).catch(() => askAgents(agents)); // as they are: the assertions say what is wrong
  return { step, containerd: containerdObserved, agents: views, runs: runsSince(rig, before) };
}

/** What an agent should answer at `step`: containerd's NetworkReady unless a known difference applies. */
export function expectedStatusReady(step: StatusStep, agent: StatusAgent): boolean {
  const says = step.agentsSay?.[agent];
  if (says) return says.ready;
  const ready = 'ready' in step.containerd && step.containerd.ready;
  return step.differs?.[agent] ? !ready : ready;
}

/** The observations as a plain-text table (≠ marks a disagreement with containerd). */
export function statusTable(observations: readonly StatusObservation[]): string {
  const containerdCell = (o: StatusObservation): string =>
    o.containerd.answered
      ? `${o.containerd.view.ready ? 'true' : 'FALSE'}: ${o.containerd.view.message || '-'}`
      : o.containerd.hung
        ? 'no answer (hung)'
        : o.containerd.exited
          ? 'exited'
          : o.containerd.what;
  const agentCell = (o: StatusObservation, agent: StatusAgent): string => {
    const view = o.agents[agent];
    const differs = !o.containerd.answered || o.containerd.view.ready !== view.ready;
    return `${view.ready ? 'true' : 'FALSE'}${differs ? ' ≠' : ''}: ${view.message || '-'}`;
  };
  const rows = [
    ['step', 'containerd 2.4.2', 'agent containerd-2.1', 'agent isulad (probing off)', 'runs c/a/i'],
    ...observations.map((o) => [
      o.step.name,
      containerdCell(o),
      agentCell(o, 'containerd-2.1'),
      agentCell(o, 'isulad'),
      `${o.runs.containerd}/${o.runs['containerd-2.1']}/${o.runs.isulad}`,
    ]),
  ];
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? '').length))) ?? [];
  return rows.map((row) => row.map((text, i) => text.padEnd(widths[i] ?? 0)).join(' | ')).join('\n');
}
