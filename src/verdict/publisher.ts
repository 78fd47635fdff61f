// Holds the current verdict and fans every new one out to the views. Inputs arrive here and only
// here: refreshes of the conf dir (the refresher's reports), RuntimeReady from the upstream mirror,
// and the clock, which re-decides at the --stale-after deadline even when nothing else happens.
// Views register once; adding a view touches no producer, adding an input touches no view.
import type { PluginStatusReport } from '../cni/plugin-status.js';
import { networkKey } from '../cni/plugin-status.js';
import type { RefreshReport } from '../cni/refresher.js';
import type { NetworkState } from '../cni/types.js';
import { RUNTIME_READY } from '../cri/conditions.js';
import type { RuntimeCondition } from '../gen/runtime/v1/api.js';
import type { Clock, Timer } from '../util/clock.js';
import type { Deadline } from '../util/deadline.js';
import { decideVerdict } from './verdict.js';
import type { RefreshTimeout, Verdict } from './verdict.js';

/** A view of the verdict. Called inside Status calls: no I/O, no awaiting, O(changes). */
export interface VerdictExporter {
  /** A new verdict (an input changed or a deadline passed); `previous` is the one it replaces. */
  onVerdict(verdict: Verdict, previous: Verdict): void;
  /** Every refresh, whether or not it changed anything (counters, durations). */
  onRefresh?(report: RefreshReport): void;
  /** A Status call stopped waiting for its refresh at its deadline (counted per call). */
  onRefreshTimeout?(): void;
  /** Every CNI STATUS probe run, whether or not its results changed (durations). */
  onPluginStatus?(report: PluginStatusReport): void;
}

/** Who runs the CNI STATUS probes (cni/plugin-prober.ts): the publisher only says when. */
export interface StatusProbes {
  /** Probes `state`'s network; resolves when a run that started after this call ends; undefined: none due. */
  probe(state: NetworkState): Promise<void> | undefined;
}

/** Where the network state comes from: the refresher. */
export interface StateSource {
  readonly state: NetworkState;
  /** A state that reflects every change completed before this call (read-your-writes). */
  fresh(): Promise<NetworkState>;
  onRefresh(listener: (report: RefreshReport) => void): void;
  /** When the refresh in flight was asked for, if one is (the worker refresher knows). */
  readonly inFlightSince?: number | undefined;
}

/** What readers need: the verdict now, and one brought up to date with the conf dir. */
export interface VerdictSource {
  readonly current: Verdict;
  /** Waits for the refresh until `deadline` at most; past it, the verdict says RefreshTimeout. */
  fresh(deadline?: Deadline): Promise<Verdict>;
}

export interface VerdictPublisherOptions {
  source: StateSource;
  staleAfterMs: number | undefined;
  /** --refresh-timeout as configured (for the RefreshTimeout message). */
  refreshTimeoutMs?: number;
  clock: Clock;
  /** --plugin-status: probes run on each Status call, and when the network in force changes. */
  probes?: StatusProbes | undefined;
  /** A view that throws, or a refresh that throws: a bug, logged, never thrown into a Status call. */
  onError: (error: unknown) => void;
}

export class VerdictPublisher implements VerdictSource {
  private verdict: Verdict;
  private runtime: RuntimeCondition = RUNTIME_READY;
  private timeout: RefreshTimeout | undefined;
  private lastRefreshedAt: number | undefined;
  private pluginStatus: PluginStatusReport | undefined;
  private readonly exporters: VerdictExporter[] = [];
  private deadline: Timer | undefined;
  private stopped = false;

  constructor(private readonly options: VerdictPublisherOptions) {
    const { source, clock, staleAfterMs } = options;
    this.verdict = decideVerdict(
      { state: source.state, runtime: this.runtime, staleAfterMs },
      clock.now(),
      undefined,
    );
    source.onRefresh((report) => {
      // A completed refresh is the newest fact: it ends a timeout episode.
      this.timeout = undefined;
      this.lastRefreshedAt = report.at;
      const previousKey = networkKey(this.verdict.state);
      this.decide(report.state);
      // A new network in force is probed at once, so metrics and the Node condition follow it.
      if (networkKey(report.state) !== previousKey) void this.probe(report.state);
      for (const exporter of this.exporters) this.guard(() => exporter.onRefresh?.(report));
    });
  }

  /** The verdict now: re-decided first when its --stale-after deadline has passed. */
  get current(): Verdict {
    this.expire();
    return this.verdict;
  }

  async fresh(deadline?: Deadline): Promise<Verdict> {
    const { source, clock } = this.options;
    const askedAt = clock.now();
    const refresh = source.fresh().then(
      () => true,
      (error: unknown) => {
        // A refresh that throws is a bug, not a config problem: answer from the last verdict.
        this.options.onError(error);
        return true;
      },
    );
    if (deadline === undefined) {
      await refresh;
      await this.probe(this.verdict.state);
      return this.current;
    }
    if (!(await this.until(refresh, deadline))) {
      this.refreshTimedOut(source.inFlightSince ?? askedAt);
      return this.current;
    }
    // The probe gets what the refresh left of the same budget; one still running keeps running
    // (bounded by its own timeout) and its result lands in the verdict for later calls.
    const probe = this.probe(this.verdict.state);
    if (probe)
      await this.until(
        probe.then(() => true),
        deadline,
      );
    return this.current;
  }

  /** Waits for `work` until `deadline`; false when the deadline came first. */
  private async until(work: Promise<boolean>, deadline: Deadline): Promise<boolean> {
    let timer: Timer | undefined;
    const expired = new Promise<false>((resolve) => {
      timer = this.options.clock.setTimeout(() => resolve(false), deadline.remainingMs());
    });
    const done = await Promise.race([work, expired]);
    timer?.cancel();
    return done;
  }

  /** Starts (or joins) a probe of `state`'s network, if --plugin-status asks for one now. */
  probe(state: NetworkState): Promise<void> | undefined {
    try {
      return this.options.probes?.probe(state)?.catch((error: unknown) => this.options.onError(error));
    } catch (error) {
      this.options.onError(error);
      return undefined;
    }
  }

  /**
   * A CNI STATUS probe finished. A run whose results equal the current ones keeps the current input
   * (and so the verdict's generation and cached answer); every run reaches onPluginStatus.
   */
  pluginStatusChanged(report: PluginStatusReport): void {
    if (!sameResults(this.pluginStatus, report)) {
      this.pluginStatus = report;
      this.decide(this.verdict.state);
    }
    for (const exporter of this.exporters) this.guard(() => exporter.onPluginStatus?.(report));
  }

  /** A Status call gave up waiting for its refresh at `since`'s scan: the state is no longer current. */
  refreshTimedOut(since: number): void {
    for (const exporter of this.exporters) this.guard(() => exporter.onRefreshTimeout?.());
    // One episode, one input object: the verdict (and its cached answer) stays put while it lasts.
    this.timeout ??= {
      since,
      lastRefreshedAt: this.lastRefreshedAt,
      timeoutMs: this.options.refreshTimeoutMs ?? 0,
    };
    this.decide(this.verdict.state);
  }

  register(exporter: VerdictExporter): void {
    this.exporters.push(exporter);
  }

  /** RuntimeReady changed (the upstream mirror). */
  runtimeChanged(runtime: RuntimeCondition): void {
    this.runtime = runtime;
    this.decide(this.verdict.state);
  }

  stop(): void {
    this.stopped = true;
    this.deadline?.cancel();
  }

  private decide(state: NetworkState): void {
    const { clock, staleAfterMs } = this.options;
    const previous = this.verdict;
    const next = decideVerdict(
      {
        state,
        runtime: this.runtime,
        staleAfterMs,
        refreshTimeout: this.timeout,
        pluginStatus: this.pluginStatus,
      },
      clock.now(),
      previous,
    );
    if (next === previous) return;
    this.verdict = next;
    this.armDeadline(next);
    for (const exporter of this.exporters) this.guard(() => exporter.onVerdict(next, previous));
  }

  private armDeadline(verdict: Verdict): void {
    this.deadline?.cancel();
    this.deadline = undefined;
    if (verdict.expiresAt === undefined || this.stopped) return;
    const { clock } = this.options;
    this.deadline = clock.setTimeout(() => this.expire(), Math.max(0, verdict.expiresAt - clock.now()));
  }

  private expire(): void {
    const { expiresAt } = this.verdict;
    if (expiresAt !== undefined && this.options.clock.now() >= expiresAt) this.decide(this.verdict.state);
  }

  private guard(call: () => void): void {
    try {
      call();
    } catch (error) {
      this.options.onError(error);
    }
  }
}

/** Same network, same outcome per plugin: what every view shows apart from durations and times. */
function sameResults(a: PluginStatusReport | undefined, b: PluginStatusReport): boolean {
  if (a === undefined || a.key !== b.key || a.skipped !== b.skipped || a.plugins.length !== b.plugins.length)
    return false;
  return a.plugins.every((p, i) => {
    const q = b.plugins[i];
    return (
      q !== undefined &&
      p.plugin === q.plugin &&
      p.result === q.result &&
      p.code === q.code &&
      p.message === q.message
    );
  });
}
