// The Kubernetes view of the verdict: one Node condition and Events on the Node. It is fed new
// verdicts, which must stay cheap (they arrive inside Status calls): onVerdict updates in-memory
// values and arms a timer; every API call happens later,
// in the background, with a timeout, retries with backoff and jitter, and a log line only when the
// health of the writes changes. Nothing here can block or fail a Status call.
import { Counter, Gauge } from 'prom-client';
import type { Registry } from 'prom-client';
import { describeChanges } from '../cni/changes.js';
import { initialState } from '../cni/refresher.js';
import type { Logger } from '../log.js';
import { systemClock } from '../util/clock.js';
import type { Clock, Timer } from '../util/clock.js';
import type { VerdictExporter } from '../verdict/publisher.js';
import type { Verdict } from '../verdict/verdict.js';
import { RetryBackoff, TokenBucket, jittered } from '../backoff.js';
import type { BackoffOptions } from '../backoff.js';
import type { KubeApi } from './client.js';
import { PERMANENT_RESULTS, asKubeError } from './errors.js';
import type { WriteResult } from './errors.js';
import { CONDITION_TYPE, adoptExisting, conditionPatch, differs, isoSeconds, observe } from './condition.js';
import type { ExistingCondition, TrackedCondition } from './condition.js';
import { EventCorrelator, eventName, eventsFor } from './events.js';
import type { EventBody, EventIntent, PendingWrite } from './events.js';

export const COMPONENT = 'cri-netstatus';
export const DEFAULT_HEARTBEAT_MS = 10 * 60_000;
/** Namespace of the Events (Nodes are cluster-scoped; the kubelet uses "default"). */
export const EVENT_NAMESPACE = 'default';
/** Condition writes closer together than this are coalesced (node-problem-detector: 1 s). */
const MIN_WRITE_INTERVAL_MS = 1000;
/** Retry timing for failures the API server may recover from (unreachable, 5xx, 429, timeouts). */
const TRANSIENT_BACKOFF: BackoffOptions = { baseMs: 1000, maxMs: 30_000 };
/** Retry timing for failures only an operator can fix (401, 403, 404, 400/422). */
const PERMANENT_BACKOFF: BackoffOptions = { baseMs: 5000, maxMs: 300_000 };

export interface NodeReporterOptions {
  api: KubeApi;
  nodeName: string;
  /** The verdict when the reporter starts; later ones arrive through onVerdict. */
  verdict: Verdict;
  log: Logger;
  registry: Registry;
  heartbeatMs?: number;
  /**
   * Condition writes caused by changes: a burst, then one per refill period, so a conf dir that
   * flaps for hours costs 360 writes an hour, not one a second. The latest state is always the one
   * written. Heartbeats are not limited (they are already slow).
   */
  conditionBurst?: number;
  conditionRefillMs?: number;
  clock?: Clock;
}

/** What the reporter knows, for tests. */
export interface NodeReporterSnapshot {
  tracked: TrackedCondition;
  written?: TrackedCondition;
  seeded: boolean;
  lastHeartbeatAt?: number;
  pendingEventOccurrences: number;
}

export class NodeReporter implements VerdictExporter {
  private readonly api: KubeApi;
  private readonly node: string;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly heartbeatMs: number;
  private readonly conditionBucket: TokenBucket;
  private readonly correlator: EventCorrelator;
  private readonly writes: Counter<'kind' | 'result'>;
  private stopped = false;

  // The condition.
  private tracked: TrackedCondition;
  private written: TrackedCondition | undefined;
  private seeded = false;
  private conditionTimer: Timer | undefined;
  private conditionBusy: Promise<void> | undefined;
  private readonly conditionBackoff: RetryBackoff;
  private conditionRetryAt = 0;
  private lastWriteAt = -Infinity;
  private lastHeartbeatAt: number | undefined;
  private nextHeartbeatAt = 0;
  private conditionHealth: WriteResult | undefined;

  // Events.
  private startupIntents: EventIntent[] | undefined;
  private eventTimer: Timer | undefined;
  private eventBusy: Promise<void> | undefined;
  private readonly eventBackoff: RetryBackoff;
  private eventBackoffUntil = 0;
  private eventHealth: WriteResult | undefined;
  private sequence = 0;

  constructor(private readonly options: NodeReporterOptions) {
    this.api = options.api;
    this.node = options.nodeName;
    this.clock = options.clock ?? systemClock;
    this.log = options.log.child({ component: 'kube', node: options.nodeName });
    this.heartbeatMs = options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
    this.conditionBucket = new TokenBucket(
      options.conditionBurst ?? 5,
      options.conditionRefillMs ?? 10_000,
      this.now(),
    );
    this.conditionBackoff = new RetryBackoff(TRANSIENT_BACKOFF, PERMANENT_BACKOFF);
    this.eventBackoff = new RetryBackoff(TRANSIENT_BACKOFF, PERMANENT_BACKOFF);
    this.correlator = new EventCorrelator();

    const registers = [options.registry];
    this.writes = new Counter({
      name: 'cri_netstatus_kube_writes_total',
      help: 'Kubernetes API writes by kind (condition: PATCH of nodes/status; event: create or patch of an Event) and result.',
      labelNames: ['kind', 'result'],
      registers,
    });
    const synced = (): number => (this.seeded && !differs(this.tracked, this.written) ? 1 : 0);
    const pending = (): number => this.correlator.pendingOccurrences();
    new Gauge({
      name: 'cri_netstatus_kube_condition_synced',
      help: `Whether the Node's ${CONDITION_TYPE} condition says what the agent sees (1) or a write is pending or failing (0).`,
      registers,
      collect() {
        this.set(synced());
      },
    });
    new Gauge({
      name: 'cri_netstatus_kube_event_occurrences_pending',
      help: 'Event occurrences not yet written to the API (held back by the rate limit or by failing writes).',
      registers,
      collect() {
        this.set(pending());
      },
    });

    const { verdict } = options;
    this.tracked = observe(undefined, verdict.nodeCondition, this.now());
    // What an earlier run of the agent would have reported already; decided once the Node is read.
    this.startupIntents = eventsFor(describeChanges(initialState(verdict.state), verdict.state));
  }

  start(): void {
    this.scheduleCondition(0);
  }

  /** Runs inside Status calls: no I/O, no awaiting, O(changes). */
  onVerdict(verdict: Verdict, previous: Verdict): void {
    if (this.stopped) return;
    const ready = verdict.networkReady;
    const intents = eventsFor(verdict.changes);
    // NetworkReady as served can flip without the selection flipping (--stale-after): say so too.
    if (ready !== previous.networkReady && verdict.state.selection.ready === previous.state.selection.ready) {
      intents.push(
        ready
          ? { type: 'Normal', reason: 'NetworkReady', message: 'network is ready' }
          : {
              type: 'Warning',
              reason: 'NetworkNotReady',
              message: `network is not ready: ${verdict.nodeCondition.message}`,
            },
      );
    }
    const now = this.now();
    const before = this.tracked;
    this.tracked = observe(this.tracked, verdict.nodeCondition, now);
    if (this.tracked !== before) this.scheduleCondition();
    if (intents.length > 0) {
      for (const intent of intents) this.correlator.observe(intent, now);
      this.scheduleEvents(true);
    }
  }

  snapshot(): NodeReporterSnapshot {
    return {
      tracked: this.tracked,
      ...(this.written ? { written: this.written } : {}),
      seeded: this.seeded,
      ...(this.lastHeartbeatAt !== undefined ? { lastHeartbeatAt: this.lastHeartbeatAt } : {}),
      pendingEventOccurrences: this.correlator.pendingOccurrences(),
    };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.conditionTimer?.cancel();
    this.eventTimer?.cancel();
    this.api.close();
    await Promise.allSettled([this.conditionBusy, this.eventBusy]);
  }

  // ---- the condition ----------------------------------------------------------------------------

  /** Arms the condition timer for the next thing to do; `delayMs` forces a delay (start). */
  private scheduleCondition(delayMs?: number): void {
    if (this.stopped || this.conditionBusy) return; // the running write reschedules when done
    const now = this.now();
    let at: number;
    if (delayMs !== undefined) at = now + delayMs;
    else if (!this.seeded || differs(this.tracked, this.written)) {
      at = Math.max(
        now,
        this.conditionRetryAt,
        this.lastWriteAt + MIN_WRITE_INTERVAL_MS,
        // Before the first write there is nothing to limit (a restart must report at once).
        this.written ? now + this.conditionBucket.waitMs(now) : now,
      );
    } else at = Math.max(this.nextHeartbeatAt, this.conditionRetryAt);
    this.conditionTimer?.cancel();
    this.conditionTimer = this.clock.setTimeout(() => this.runCondition(), Math.max(0, at - now));
  }

  private runCondition(): void {
    if (this.stopped || this.conditionBusy) return;
    this.conditionBusy = this.syncCondition().finally(() => {
      this.conditionBusy = undefined;
      this.scheduleCondition();
    });
  }

  private async syncCondition(): Promise<void> {
    try {
      if (!this.seeded) await this.seed();
      const tracked = this.tracked;
      const heartbeat = this.now();
      if (this.written && differs(tracked, this.written)) this.conditionBucket.tryTake(heartbeat);
      this.lastWriteAt = heartbeat;
      try {
        await this.api.patchNodeStatus(this.node, conditionPatch(tracked, heartbeat));
      } catch (error) {
        this.writes.inc({ kind: 'condition', result: asKubeError(error).result });
        throw error;
      }
      this.writes.inc({ kind: 'condition', result: 'success' });
      const changed =
        this.written === undefined ||
        this.written.status !== tracked.status ||
        this.written.reason !== tracked.reason;
      this.written = tracked;
      this.lastHeartbeatAt = heartbeat;
      this.nextHeartbeatAt = heartbeat + jittered(this.heartbeatMs);
      this.conditionBackoff.succeeded();
      this.conditionRetryAt = 0;
      if (this.conditionHealth !== undefined && this.conditionHealth !== 'success') {
        this.log.info(
          { condition: CONDITION_TYPE, status: tracked.status, reason: tracked.reason },
          'Node condition written again',
        );
      } else if (changed) {
        this.log.info(
          {
            condition: CONDITION_TYPE,
            status: tracked.status,
            reason: tracked.reason,
            lastTransitionTime: isoSeconds(tracked.lastTransitionTime),
          },
          `Node condition ${CONDITION_TYPE}=${tracked.status} (${tracked.reason})`,
        );
      }
      this.conditionHealth = 'success';
    } catch (error) {
      const failure = asKubeError(error);
      const delay = this.conditionBackoff.failed(PERMANENT_RESULTS.has(failure.result));
      this.conditionRetryAt = this.now() + delay;
      if (this.conditionHealth !== failure.result) {
        this.log.warn(
          { condition: CONDITION_TYPE, result: failure.result, retryInMs: delay },
          `cannot write the Node condition, retrying with backoff: ${failure.message}`,
        );
        this.conditionHealth = failure.result;
      }
    }
  }

  /**
   * Reads the Node once before the first write: its record of this condition carries the
   * transition time of an earlier run, and decides whether the startup Events are news.
   */
  private async seed(): Promise<void> {
    let existing: readonly ExistingCondition[] | undefined;
    try {
      const node = await this.api.readNode(this.node);
      existing = node.status?.conditions;
    } catch (error) {
      const failure = asKubeError(error);
      if (failure.result !== 'forbidden') throw failure;
      // Without `get nodes` the condition can still be written, but restarts reset its transition time.
      this.log.warn(
        { result: failure.result },
        `cannot read the Node, so lastTransitionTime will restart with the agent: ${failure.message}`,
      );
    }
    this.tracked = adoptExisting(this.tracked, existing);
    this.seeded = true;
    const mine = existing?.find((condition) => condition.type === CONDITION_TYPE);
    const unchanged =
      mine !== undefined &&
      mine.status === this.tracked.status &&
      (mine.reason ?? '') === this.tracked.reason &&
      (mine.message ?? '') === this.tracked.message;
    const startup = this.startupIntents ?? [];
    this.startupIntents = undefined;
    // A restart that finds the Node already saying the same thing has nothing new to announce.
    if (!unchanged) {
      const now = this.now();
      for (const intent of startup) this.correlator.observe(intent, now);
    }
    this.scheduleEvents(true);
  }

  // ---- events -----------------------------------------------------------------------------------

  /** Runs the event writer soon; `fresh` (new occurrences) cuts a rate-limit wait, never a failure backoff. */
  private scheduleEvents(fresh = false): void {
    if (this.stopped || this.eventBusy || this.startupIntents !== undefined) return;
    const now = this.now();
    if (this.eventTimer && !fresh) return;
    if (now < this.eventBackoffUntil) {
      if (!this.eventTimer) this.armEvents(this.eventBackoffUntil - now);
      return;
    }
    this.armEvents(0);
  }

  private armEvents(delayMs: number): void {
    this.eventTimer?.cancel();
    if (this.stopped) return;
    this.eventTimer = this.clock.setTimeout(() => {
      this.eventTimer = undefined;
      if (this.stopped || this.eventBusy) return;
      this.eventBusy = this.writeEvents().finally(() => {
        this.eventBusy = undefined;
      });
    }, delayMs);
  }

  private async writeEvents(): Promise<void> {
    for (;;) {
      if (this.stopped) return;
      const now = this.now();
      const next = this.correlator.next(now);
      if (next === undefined) return;
      if ('waitMs' in next) {
        this.armEvents(next.waitMs);
        return;
      }
      try {
        await this.writeEvent(next);
        this.writes.inc({ kind: 'event', result: 'success' });
        this.eventBackoff.succeeded();
        this.eventBackoffUntil = 0;
        if (this.eventHealth !== undefined && this.eventHealth !== 'success') {
          this.log.info('Events written again');
        }
        this.eventHealth = 'success';
      } catch (error) {
        const failure = asKubeError(error);
        this.writes.inc({ kind: 'event', result: failure.result });
        this.correlator.failed(next, this.now());
        const delay = this.eventBackoff.failed(PERMANENT_RESULTS.has(failure.result));
        this.eventBackoffUntil = this.now() + delay;
        if (this.eventHealth !== failure.result) {
          this.log.warn(
            { result: failure.result, retryInMs: delay },
            `cannot write Events on the Node, retrying with backoff: ${failure.message}`,
          );
          this.eventHealth = failure.result;
        }
        this.armEvents(delay);
        return;
      }
    }
  }

  private async writeEvent(write: PendingWrite): Promise<void> {
    const { record } = write;
    if (write.op === 'patch' && record.name !== undefined) {
      try {
        await this.api.patchEvent(EVENT_NAMESPACE, record.name, {
          count: write.count,
          lastTimestamp: isoSeconds(write.lastTimestamp),
          message: write.message,
        });
        this.correlator.written(write, record.name);
        return;
      } catch (error) {
        // The Event expired (the API server keeps Events for an hour): record it anew, count kept.
        if (asKubeError(error).result !== 'not_found') throw error;
        this.correlator.forget(write);
      }
    }
    for (let attempt = 0; ; attempt++) {
      const name = eventName(this.node, this.now(), this.sequence++);
      try {
        const event: EventBody = {
          apiVersion: 'v1',
          kind: 'Event',
          metadata: { name, namespace: EVENT_NAMESPACE },
          involvedObject: { apiVersion: 'v1', kind: 'Node', name: this.node, uid: this.node },
          type: record.type,
          reason: record.reason,
          message: write.message,
          count: write.count,
          firstTimestamp: new Date(isoSeconds(record.firstTimestamp)),
          lastTimestamp: new Date(isoSeconds(write.lastTimestamp)),
          source: { component: COMPONENT, host: this.node },
          reportingComponent: COMPONENT,
          reportingInstance: this.node,
        };
        await this.api.createEvent(EVENT_NAMESPACE, event);
        this.correlator.written(write, name);
        return;
      } catch (error) {
        // A name taken within the same nanosecond stamp: pick the next one.
        if (asKubeError(error).result !== 'conflict' || attempt >= 2) throw error;
      }
    }
  }

  private now(): number {
    return this.clock.now();
  }
}
