// When and over what the CNI STATUS verb runs: every plugin of the selected network, in list order,
// stopping at the first failure, for lists whose cniVersion is at least 1.1.0 (as libcni's
// GetStatusNetworkList). One run is in flight at a time (so at most one process per plugin) and at
// most one is queued: callers that arrive during a run join the queued one, which starts after it
// and probes the newest network, so a caller only ever waits for a probe that started after it
// asked. Every run ends within the plugins' timeouts, whoever stopped waiting for it.
import { stat } from 'node:fs/promises';
import { versionAtLeast } from './libcni.js';
import { networkKey } from './plugin-status.js';
import type { PluginStatus, PluginStatusReport } from './plugin-status.js';
import { classify, execPlugin, findInPath, supportedVersions, wouldNotExec } from './status-probe.js';
import type { ExecOutcome, ExecRequest } from './status-probe.js';
import type { NetworkState, Semantics } from './types.js';
import type { Clock } from '../util/clock.js';

/** --plugin-status: `auto` probes when the profile's runtime does. */
export const PLUGIN_STATUS_MODES = ['auto', 'on', 'off'] as const;
export type PluginStatusMode = (typeof PLUGIN_STATUS_MODES)[number];

/** When STATUS runs: on every Status call, until its first success (CRI-O 1.34), or never. */
export type ProbePolicy = 'every' | 'until-success' | 'never';

/** `auto`: containerd 2.0+ probes on every Status, CRI-O until the first success; 1.x and iSulad never. */
export function probePolicy(mode: PluginStatusMode, semantics: Semantics): ProbePolicy {
  if (mode === 'off') return 'never';
  if (mode === 'on') return 'every';
  if (semantics === 'containerd-2.0' || semantics === 'containerd-2.1') return 'every';
  if (semantics === 'crio') return 'until-success';
  return 'never';
}

/** The spec version that introduced STATUS. */
export const STATUS_MIN_VERSION = '1.1.0';

export interface PluginProberOptions {
  mode: PluginStatusMode;
  /** --plugin-status-timeout: a plugin still running after this is killed (its process group). */
  timeoutMs: number;
  clock: Clock;
  /** Every run's report (also "skipped" ones), as it completes. */
  onReport: (report: PluginStatusReport) => void;
  /** Replaced only by unit tests that drive the coalescing on a ManualClock. */
  exec?: (request: ExecRequest) => Promise<ExecOutcome>;
  /** Replaced only by unit tests: where a plugin's binary is. */
  find?: typeof findInPath;
}

interface Queued {
  state: NetworkState;
  done: Promise<void>;
  resolve: () => void;
}

export class PluginProber {
  private running: Promise<void> | undefined;
  private queued: Queued | undefined;
  private succeededAt: number | undefined;
  private lastKey: string | undefined;
  private stopped = false;
  private readonly abort = new AbortController();
  /** Plugins found too old for STATUS, by path+size+mtime, so VERSION runs once per binary. */
  private readonly versions = new Map<string, string[] | undefined>();

  constructor(private readonly options: PluginProberOptions) {}

  /** What the mode means under `state`'s profile (auto follows --semantics auto's pick). */
  policy(state: NetworkState): ProbePolicy {
    return probePolicy(this.options.mode, state.semantics);
  }

  /**
   * Probes `state`'s selected network, sharing runs with concurrent callers. Resolves when a run
   * that started after this call has finished; undefined when no run is due (no network, probing
   * off for the profile, or the list is skipped, which is reported at once).
   */
  probe(state: NetworkState): Promise<void> | undefined {
    const policy = this.policy(state);
    const network = state.selection.network;
    if (policy === 'never' || !network || this.stopped) return undefined;
    const skipped = this.skipReason(state, policy);
    if (skipped !== undefined) {
      const key = networkKey(state) ?? '';
      if (key !== this.lastKey) this.report(this.skippedReport(state, key, skipped));
      return undefined;
    }
    if (this.running === undefined) return this.start(state);
    if (this.queued === undefined) {
      let resolve!: () => void;
      const done = new Promise<void>((r) => (resolve = r));
      this.queued = { state, done, resolve };
    }
    this.queued.state = state; // the newest network wins
    return this.queued.done;
  }

  /** No new runs; a plugin still running is killed (its process group). */
  stop(): void {
    this.stopped = true;
    this.abort.abort();
  }

  private skipReason(state: NetworkState, policy: ProbePolicy): string | undefined {
    const network = state.selection.network;
    if (network && !versionAtLeast(network.cniVersion, STATUS_MIN_VERSION)) {
      return `the list's cniVersion ${network.cniVersion || 'unset'} is below ${STATUS_MIN_VERSION}: runtimes run STATUS only from ${STATUS_MIN_VERSION}`;
    }
    if (policy === 'until-success' && this.succeededAt !== undefined) {
      return `the crio profile probes only until the first success (at ${new Date(this.succeededAt).toISOString()}), as CRI-O does`;
    }
    return undefined;
  }

  private start(state: NetworkState): Promise<void> {
    const run = this.run(state).then(
      (report) => this.report(report),
      () => undefined, // run() does not throw; a bug there must not wedge the queue
    );
    this.running = run.finally(() => {
      this.running = undefined;
      const next = this.queued;
      this.queued = undefined;
      if (next) void (this.probe(next.state) ?? Promise.resolve()).then(next.resolve);
    });
    return run;
  }

  private report(report: PluginStatusReport): void {
    this.lastKey = report.key;
    if (report.failed === undefined && report.skipped === undefined) this.succeededAt ??= report.at;
    this.options.onReport(report);
  }

  private skippedReport(state: NetworkState, key: string, why: string): PluginStatusReport {
    const network = state.selection.network;
    const at = this.options.clock.now();
    return {
      key,
      network: network?.name ?? '',
      ...(state.selection.file === undefined ? {} : { file: state.selection.file }),
      cniVersion: network?.cniVersion ?? '',
      at,
      plugins: (network?.plugins ?? []).map((p) => ({
        plugin: p.type,
        result: 'skipped',
        message: why,
        durationMs: 0,
        at,
      })),
      skipped: why,
    };
  }

  private async run(state: NetworkState): Promise<PluginStatusReport> {
    const { clock } = this.options;
    const network = state.selection.network;
    const at = clock.now();
    const plugins: PluginStatus[] = [];
    let failed: PluginStatus | undefined;
    for (const plugin of network?.plugins ?? []) {
      if (failed) {
        plugins.push({
          plugin: plugin.type,
          result: 'skipped',
          message: `not probed: plugin "${failed.plugin}" failed first (runtimes stop at the first failure)`,
          durationMs: 0,
          at: clock.now(),
        });
        continue;
      }
      const status = await this.probeOne(plugin.type, plugin.conf, state.binDirs);
      plugins.push(status);
      if (status.result !== 'ok') failed = status;
    }
    return {
      key: networkKey(state) ?? '',
      network: network?.name ?? '',
      ...(state.selection.file === undefined ? {} : { file: state.selection.file }),
      cniVersion: network?.cniVersion ?? '',
      at,
      plugins,
      ...(failed ? { failed } : {}),
    };
  }

  private async probeOne(type: string, conf: string, binDirs: readonly string[]): Promise<PluginStatus> {
    const { clock, timeoutMs } = this.options;
    const at = clock.now();
    const found = await (this.options.find ?? findInPath)(type, binDirs);
    if ('error' in found) {
      return {
        plugin: type,
        result: 'could_not_run',
        message: found.error,
        durationMs: clock.now() - at,
        at,
      };
    }
    const exec = this.options.exec ?? execPlugin;
    if (this.options.exec === undefined && (await wouldNotExec(found.path))) {
      const error = Object.assign(new Error(`exec ${found.path}: exec format error`), { code: 'ENOEXEC' });
      const outcome = {
        stdout: Buffer.alloc(0),
        stderr: Buffer.alloc(0),
        spawnError: error,
        timedOut: false,
        durationMs: clock.now() - at,
      };
      return classify(type, found.path, outcome, at, timeoutMs);
    }
    const outcome = await exec({
      path: found.path,
      command: 'STATUS',
      stdin: conf,
      binDirs,
      timeoutMs,
      clock,
      signal: this.abort.signal,
    });
    const status = classify(type, found.path, outcome, at, timeoutMs);
    if (status.result === 'ok' || status.result === 'timeout' || status.result === 'could_not_run')
      return status;
    const hint = await this.tooOldHint(found.path, binDirs);
    return hint ? { ...status, message: `${status.message ?? ''}; ${hint}` } : status;
  }

  /** After a failure: does the binary's VERSION say it predates STATUS? Asked once per binary. */
  private async tooOldHint(path: string, binDirs: readonly string[]): Promise<string | undefined> {
    let id: string;
    try {
      const stats = await stat(path);
      id = `${path}\u0000${stats.size}\u0000${stats.mtimeMs}`;
    } catch {
      return undefined;
    }
    if (!this.versions.has(id)) {
      const { clock, timeoutMs } = this.options;
      const exec = this.options.exec ?? execPlugin;
      // libcni's GetVersionInfo sends the newest spec version it knows.
      const outcome = await exec({
        path,
        command: 'VERSION',
        stdin: `{"cniVersion":"${STATUS_MIN_VERSION}"}`,
        binDirs,
        timeoutMs,
        clock,
        signal: this.abort.signal,
      });
      this.versions.set(id, supportedVersions(outcome));
    }
    const versions = this.versions.get(id);
    if (!versions || versions.length === 0) return undefined;
    if (versions.some((v) => versionAtLeast(v, STATUS_MIN_VERSION))) return undefined;
    const newest = versions.reduce((a, b) => (versionAtLeast(b, a) ? b : a));
    return `this plugin supports CNI up to ${newest}, STATUS needs ${STATUS_MIN_VERSION}: upgrade it or set the list's cniVersion below ${STATUS_MIN_VERSION}`;
  }
}
