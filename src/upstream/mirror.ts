// Mirrors the node's real CRI runtime (--runtime-endpoint): a background loop polls the upstream's
// Status (bounded by a timeout, every interval while it answers, with exponential backoff and
// jitter while it does not), and everything this agent serves reads the cached last result, so
// the agent's own Status never waits for the upstream. RuntimeReady follows the upstream's;
// metrics export the upstream's conditions and a divergence signal for when the runtime says
// NetworkReady=false although the conf dir holds a network its own rules accept (containerd loses
// its inotify watch when the dir is recreated, containerd#6490, and ignores created files,
// containerd#11715). Logs are written on state changes only.
import { realpathSync } from 'node:fs';
import { Counter, Gauge } from 'prom-client';
import type { Registry } from 'prom-client';
import type { Semantics } from '../cni/types.js';
import type { RuntimeCondition } from '../gen/runtime/v1/api.js';
import { formatDuration } from '../util/text.js';
import type { Logger } from '../log.js';
import { systemClock } from '../util/clock.js';
import type { Clock, Timer } from '../util/clock.js';
import { ConfigError, UpstreamCallError } from '../errors.js';
import { UpstreamClient } from './client.js';
import {
  DEFAULT_TIMING,
  classifyError,
  divergenceSample,
  mirroredRuntimeCondition,
  nextPollDelay,
  semanticsOf,
  upstreamNetworkReady,
} from './policy.js';
import type { Observation, PollResult } from './policy.js';

export interface UpstreamMirrorOptions {
  /** Absolute path of the upstream runtime's unix socket. */
  socketPath: string;
  log: Logger;
  registry: Registry;
  /** NetworkReady as this agent serves it, for the divergence signal. */
  networkReady: () => boolean;
  /**
   * Whether the conf dir holds a network under a given runtime's loading rules (the refresher's
   * `state.verdicts[semantics].ready`). When given and the upstream's runtime is known, the
   * divergence signal compares the runtime with its own rules instead of with `networkReady`.
   */
  verdictReady?: (semantics: Semantics) => boolean;
  /** This agent's own --socket: mirroring it would be a loop, so it is refused. */
  ownSocketPath?: string;
  intervalMs?: number;
  timeoutMs?: number;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** Told of every new RuntimeReady to serve (the verdict publisher's input). */
  onRuntimeCondition?: (condition: RuntimeCondition) => void;
  clock?: Clock;
}

export interface UpstreamMirror {
  /** RuntimeReady to serve: the upstream's, or false with a reason while it is unreachable. */
  runtimeCondition(): RuntimeCondition;
  /** What `info.upstream` shows (JSON-serialisable). */
  info(): unknown;
  stop(): void;
  /** Settles once the first poll has answered or failed (at most the poll timeout); never rejects. */
  readonly firstPoll: Promise<void>;
  /** The upstream's CRI Version (runtime name and version), once it has answered. */
  readonly runtime: { name: string; version: string } | undefined;
}

/** Caps the label values of cri_netstatus_upstream_condition, whatever the upstream sends. */
const MAX_CONDITION_TYPES = 16;

export function startUpstreamMirror(options: UpstreamMirrorOptions): UpstreamMirror {
  if (options.ownSocketPath !== undefined && samePath(options.ownSocketPath, options.socketPath)) {
    throw new ConfigError(
      `--runtime-endpoint unix://${options.socketPath} is this agent's own --socket; point it at the node's container runtime instead (e.g. unix:///run/containerd/containerd.sock)`,
    );
  }
  return new Mirror(options);
}

interface RuntimeIdentity {
  name: string;
  version: string;
  apiVersion: string;
}

class Mirror implements UpstreamMirror {
  readonly firstPoll: Promise<void>;
  private readonly endpoint: string;
  private readonly client: UpstreamClient;
  private readonly timing: {
    intervalMs: number;
    timeoutMs: number;
    initialBackoffMs: number;
    maxBackoffMs: number;
  };
  /** The upstream's Version answer; kept while it is away, asked again once it answers. */
  runtime: RuntimeIdentity | undefined;
  private askVersion = true;
  private last: PollResult | undefined;
  /** The conditions of the last successful poll, kept for `info` while the upstream is away. */
  private lastConditions: RuntimeCondition[] = [];
  private lastCNILoadStatus: string | undefined;
  /** The upstream's NetworkReady from its last answer that had one. */
  private knownNetworkReady: boolean | undefined;
  private lastPollAt: number | undefined;
  private lastSuccessAt: number | undefined;
  private failingSince: number | undefined;
  private failures = 0;
  private nextPollAt: number | undefined;
  private sample = false;
  private diverged = false;
  private divergedSince: number | undefined;
  private comparedWith = 'served NetworkReady';
  private condition: RuntimeCondition;
  private timer: Timer | undefined;
  private readonly clock: Clock;
  private stopped = false;
  private warnedSelf = false;
  private readonly polls: Counter<'result'>;

  constructor(private readonly options: UpstreamMirrorOptions) {
    this.endpoint = `unix://${options.socketPath}`;
    this.clock = options.clock ?? systemClock;
    this.client = new UpstreamClient(options.socketPath);
    this.timing = {
      intervalMs: options.intervalMs ?? DEFAULT_TIMING.intervalMs,
      timeoutMs: options.timeoutMs ?? DEFAULT_TIMING.timeoutMs,
      initialBackoffMs: options.initialBackoffMs ?? DEFAULT_TIMING.initialBackoffMs,
      maxBackoffMs: options.maxBackoffMs ?? DEFAULT_TIMING.maxBackoffMs,
    };
    this.condition = mirroredRuntimeCondition(this.observation());

    const registers = [options.registry];
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const mirror = this;
    new Gauge({
      name: 'cri_netstatus_upstream_up',
      help: 'Whether the last poll of the upstream CRI runtime (--runtime-endpoint) got a Status answer (1) or not (0).',
      registers,
      collect() {
        this.set(mirror.last?.kind === 'ok' ? 1 : 0);
      },
    });
    new Gauge({
      name: 'cri_netstatus_upstream_condition',
      help: "The upstream CRI runtime's Status conditions from its last answer (1 true, 0 false); absent while it does not answer.",
      labelNames: ['type'],
      registers,
      collect() {
        this.reset();
        if (mirror.last?.kind !== 'ok') return;
        for (const condition of mirror.last.conditions.slice(0, MAX_CONDITION_TYPES)) {
          this.set({ type: condition.type }, condition.status ? 1 : 0);
        }
      },
    });
    new Gauge({
      name: 'cri_netstatus_network_ready_divergence',
      help: '1 while the upstream CRI runtime has reported NetworkReady=false for two consecutive polls although the conf dir holds a network its own loading rules accept (its config is out of date, e.g. containerd lost its watch on a recreated conf dir); else 0.',
      registers,
      collect() {
        this.set(mirror.diverged ? 1 : 0);
      },
    });
    this.polls = new Counter({
      name: 'cri_netstatus_upstream_polls_total',
      help: 'Polls of the upstream CRI runtime by result (ok, unreachable, timeout, failed).',
      labelNames: ['result'],
      registers,
    });
    for (const result of ['ok', 'unreachable', 'timeout', 'failed']) this.polls.inc({ result }, 0);

    this.firstPoll = this.poll();
  }

  runtimeCondition(): RuntimeCondition {
    return this.condition;
  }

  info(): unknown {
    const iso = (ms: number | undefined): string | null =>
      ms === undefined ? null : new Date(ms).toISOString();
    const last = this.last;
    return {
      endpoint: this.endpoint,
      runtime: this.runtime ?? null,
      reachable: last?.kind === 'ok',
      lastPoll: iso(this.lastPollAt),
      lastSuccess: iso(this.lastSuccessAt),
      nextPoll: iso(this.nextPollAt),
      error: last && last.kind !== 'ok' ? `${last.codeName}: ${last.error}` : null,
      failingSince: iso(this.failingSince),
      consecutiveFailures: this.failures,
      runtimeReady: this.condition,
      conditions: this.lastConditions,
      lastCNILoadStatus: this.lastCNILoadStatus ?? null,
      networkReadyDivergence: {
        diverged: this.diverged,
        since: iso(this.divergedSince),
        comparedWith: this.comparedWith,
      },
      pollIntervalSeconds: this.timing.intervalMs / 1000,
      timeoutSeconds: this.timing.timeoutMs / 1000,
    };
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
    this.timer = undefined;
    this.nextPollAt = undefined;
    this.client.close();
  }

  private observation(): Observation {
    return {
      endpoint: this.endpoint,
      ...(this.runtime ? { runtimeName: this.runtime.name } : {}),
      ...(this.last ? { last: this.last } : {}),
      ...(this.failingSince !== undefined ? { failingSince: this.failingSince } : {}),
      timeoutMs: this.timing.timeoutMs,
    };
  }

  /** One poll; never throws. Schedules the next one unless stopped. */
  private async poll(): Promise<void> {
    const result = await this.ask();
    if (this.stopped) return;
    try {
      this.record(result, this.clock.now());
    } catch (error) {
      // A view must not end the loop: keep polling, and say what broke.
      this.options.log.error({ err: error, endpoint: this.endpoint }, 'recording an upstream poll failed');
    }
    const delay = nextPollDelay(this.failures, this.timing);
    this.nextPollAt = this.clock.now() + delay;
    this.timer = this.clock.setTimeout(() => void this.poll(), delay);
  }

  private async ask(): Promise<PollResult> {
    const { timeoutMs } = this.timing;
    try {
      if (this.askVersion) {
        const version = await this.client.version(timeoutMs);
        this.runtime = {
          name: version.runtimeName,
          version: version.runtimeVersion,
          apiVersion: version.runtimeApiVersion,
        };
        this.askVersion = false;
      }
      const response = await this.client.status(true, timeoutMs);
      const conditions = response.status?.conditions ?? [];
      const loadStatus = response.info.lastCNILoadStatus;
      return {
        kind: 'ok',
        conditions,
        ...(loadStatus !== undefined ? { lastCNILoadStatus: loadStatus } : {}),
      };
    } catch (error) {
      this.client.reset();
      // Who answers may have changed (a restarted or replaced runtime): ask Version again next time.
      this.askVersion = true;
      if (error instanceof UpstreamCallError) {
        return {
          kind: classifyError(error.grpcCode),
          code: error.grpcCode,
          codeName: error.grpcCodeName,
          error: error.message,
        };
      }
      return { kind: 'failed', code: 2, codeName: 'UNKNOWN', error: String(error) };
    }
  }

  private record(result: PollResult, now: number): void {
    const before = {
      last: this.last,
      condition: this.condition,
      diverged: this.diverged,
      failingSince: this.failingSince,
    };
    this.last = result;
    this.lastPollAt = now;
    this.polls.inc({ result: result.kind });
    if (result.kind === 'ok') {
      this.failures = 0;
      this.failingSince = undefined;
      this.lastSuccessAt = now;
      this.lastConditions = result.conditions;
      this.lastCNILoadStatus = result.lastCNILoadStatus;
    } else {
      this.failures++;
      this.failingSince ??= now;
    }
    this.condition = mirroredRuntimeCondition(this.observation());
    this.options.onRuntimeCondition?.(this.condition);
    this.updateDivergence(result, now);
    this.logChanges(before, result, now);
  }

  private updateDivergence(result: PollResult, now: number): void {
    const semantics = semanticsOf(this.runtime?.name, this.runtime?.version);
    const { verdictReady, networkReady } = this.options;
    let agentReady: boolean;
    if (semantics && verdictReady) {
      this.comparedWith = `the conf dir under ${semantics} semantics`;
      agentReady = verdictReady(semantics);
    } else {
      this.comparedWith = 'served NetworkReady';
      agentReady = networkReady();
    }
    const sample = divergenceSample(result, agentReady);
    const diverged = sample && this.sample;
    this.sample = sample;
    if (diverged && !this.diverged) this.divergedSince = now;
    if (!diverged) this.divergedSince = undefined;
    this.diverged = diverged;
  }

  private logChanges(
    before: {
      last: PollResult | undefined;
      condition: RuntimeCondition;
      diverged: boolean;
      failingSince: number | undefined;
    },
    result: PollResult,
    now: number,
  ): void {
    const { log } = this.options;
    const endpoint = this.endpoint;
    const runtime = this.runtime ? `${this.runtime.name} ${this.runtime.version}` : undefined;
    const first = before.last === undefined;
    const wasUp = before.last?.kind === 'ok';
    const isUp = result.kind === 'ok';
    const condition = this.condition;

    if (isUp && this.runtime?.name === 'cri-netstatus' && !this.warnedSelf) {
      this.warnedSelf = true;
      log.warn(
        { endpoint },
        'the upstream runtime is another cri-netstatus agent, not the container runtime; point --runtime-endpoint at containerd, CRI-O or iSulad',
      );
    }
    if (first) {
      const fields = {
        endpoint,
        runtime,
        runtimeReady: condition.status,
        reason: condition.reason || undefined,
      };
      if (isUp) log.info(fields, 'mirroring the upstream CRI runtime');
      else
        log.warn(
          { ...fields, message: condition.message },
          'the upstream CRI runtime does not answer; serving RuntimeReady=false',
        );
    } else if (wasUp !== isUp || (!isUp && before.condition.reason !== condition.reason)) {
      if (isUp) {
        const downFor =
          before.failingSince === undefined ? undefined : formatDuration(now - before.failingSince);
        log.info(
          { endpoint, runtime, runtimeReady: condition.status, downFor },
          'the upstream CRI runtime answers again',
        );
      } else {
        log.warn(
          { endpoint, reason: condition.reason, message: condition.message },
          'the upstream CRI runtime does not answer; serving RuntimeReady=false',
        );
      }
    } else if (
      isUp &&
      (before.condition.status !== condition.status || before.condition.reason !== condition.reason)
    ) {
      const fields = {
        endpoint,
        runtime,
        reason: condition.reason || undefined,
        message: condition.message || undefined,
      };
      if (condition.status) log.info(fields, 'the upstream CRI runtime reports RuntimeReady=true');
      else log.warn(fields, 'the upstream CRI runtime reports RuntimeReady=false');
    }

    const networkReady = upstreamNetworkReady(result);
    if (result.kind === 'ok' && networkReady !== undefined) {
      const known = this.knownNetworkReady;
      this.knownNetworkReady = networkReady;
      if (networkReady !== known && !(known === undefined && networkReady)) {
        const found = result.conditions.find((c) => c.type === 'NetworkReady');
        log.info(
          {
            endpoint,
            networkReady,
            reason: found?.reason || undefined,
            message: found?.message || undefined,
            lastCNILoadStatus: this.lastCNILoadStatus,
          },
          'the upstream CRI runtime changed its NetworkReady',
        );
      }
    }
    if (this.diverged !== before.diverged) {
      if (this.diverged) {
        log.warn(
          {
            endpoint,
            comparedWith: this.comparedWith,
            lastCNILoadStatus: this.lastCNILoadStatus,
            since: new Date(now).toISOString(),
          },
          'the runtime reports NetworkReady=false although the conf dir holds a network its own rules accept: its CNI config is out of date (containerd#6490: watch lost on a recreated conf dir; containerd#11715: created files ignored); restart the runtime, or rewrite a config file in place to make it reload',
        );
      } else {
        log.info({ endpoint }, 'the runtime and the conf dir agree on NetworkReady again');
      }
    }
  }
}

function samePath(a: string, b: string): boolean {
  if (a === b) return true;
  try {
    return realpathSync(a) === realpathSync(b);
  } catch {
    return false;
  }
}
