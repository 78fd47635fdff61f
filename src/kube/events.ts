// Events on the Node, as pure data structures: which changes become Events, and a correlator that
// does what client-go's EventCorrelator does for node-problem-detector (dedup into a count,
// aggregation of similar events, a token-bucket spam filter) with one difference: an occurrence
// that the rate limit holds back is not dropped but folded into the count of a later write, so
// counts stay exact while API writes stay bounded. No I/O here; the clock is passed in.
import type { Change, ChangeKind } from '../cni/changes.js';
import { TokenBucket } from '../backoff.js';
import { truncate } from './condition.js';

export type EventType = 'Normal' | 'Warning';

/** One occurrence to record: the reason is the Change kind, so logs and Events share a vocabulary. */
export interface EventIntent {
  type: EventType;
  reason: ChangeKind;
  message: string;
}

/** Change kinds that are Events. The rest (a file accepted or removed) are log lines only. */
const EVENT_KINDS: Readonly<Partial<Record<ChangeKind, EventType>>> = {
  ConfDirUnreadable: 'Warning',
  FileRejected: 'Warning',
  FileStale: 'Warning',
  NetworkNotReady: 'Warning',
  ConfigStale: 'Warning',
  NetworkChanged: 'Normal',
  NetworkReady: 'Normal',
  ConfigUpToDate: 'Normal',
};

/** Event messages: the API rejects very long ones and `kubectl get events` shows one line. */
export const MAX_EVENT_MESSAGE = 1024;

/** The Events a transition deserves, in the order describeChanges() lists the changes. */
export function eventsFor(changes: readonly Change[]): EventIntent[] {
  const intents: EventIntent[] = [];
  for (const change of changes) {
    let type = EVENT_KINDS[change.kind];
    // A file that loads but names plugin binaries that are missing is a warning, not news.
    if (change.kind === 'FileAccepted' && change.severity === 'warning') type = 'Warning';
    if (type === undefined) continue;
    intents.push({ type, reason: change.kind, message: truncate(change.message, MAX_EVENT_MESSAGE) });
  }
  return intents;
}

export interface CorrelatorOptions {
  /** Writes allowed in a burst, per reason (client-go: 25 per source and object). */
  burst: number;
  /** One more write per this many ms, per reason (client-go: 1 per 300 s). */
  refillMs: number;
  /** More distinct messages than this for one reason within the window are combined (client-go: 10). */
  aggregateAfter: number;
  /** The aggregation window (client-go: 600 s). */
  aggregateWindowMs: number;
  /** Records kept for dedup (client-go: an LRU of 4096). */
  maxRecords: number;
}

export const DEFAULT_CORRELATOR: CorrelatorOptions = {
  burst: 25,
  refillMs: 300_000,
  aggregateAfter: 10,
  aggregateWindowMs: 600_000,
  maxRecords: 4096,
};

export const COMBINED_PREFIX = '(combined from similar events): ';

/** A core/v1 Event as the agent writes it (the fields it sets, structurally a CoreV1Event). */
export interface EventBody {
  apiVersion: 'v1';
  kind: 'Event';
  metadata: { name: string; namespace: string };
  involvedObject: { apiVersion: 'v1'; kind: 'Node'; name: string; uid: string };
  type: EventType;
  reason: string;
  message: string;
  count: number;
  firstTimestamp: Date;
  lastTimestamp: Date;
  source: { component: string; host: string };
  reportingComponent: string;
  reportingInstance: string;
}

/** One Event object as the correlator tracks it. */
export interface EventRecord {
  key: string;
  type: EventType;
  reason: ChangeKind;
  message: string;
  /** Occurrences so far (what the Event's `count` should say). */
  count: number;
  firstTimestamp: number;
  lastTimestamp: number;
  /** The Event object's name once it has been created. */
  name?: string;
  /** The count the API has acknowledged. */
  writtenCount: number;
  /** The message the API has acknowledged (aggregated events carry the latest message). */
  writtenMessage?: string;
}

/** What to write next: a create for a new Event, a patch of count/lastTimestamp for a known one. */
export interface PendingWrite {
  record: EventRecord;
  op: 'create' | 'patch';
  /** The count this write sets; pass it back to written(). */
  count: number;
  message: string;
  lastTimestamp: number;
}

interface AggregateRecord {
  messages: Set<string>;
  lastAt: number;
}

export class EventCorrelator {
  private readonly records = new Map<string, EventRecord>();
  private readonly aggregates = new Map<string, AggregateRecord>();
  private readonly buckets = new Map<string, TokenBucket>();
  readonly options: CorrelatorOptions;

  constructor(options: Partial<CorrelatorOptions> = {}) {
    this.options = { ...DEFAULT_CORRELATOR, ...options };
  }

  /** Records one occurrence and returns the record it was counted in. */
  observe(intent: EventIntent, now: number): EventRecord {
    const { type, reason } = intent;
    let message = intent.message;
    let key = `${type}\u0000${reason}\u0000${message}`;
    if (!this.records.has(key)) {
      // A message not seen before: count it towards aggregation of this reason.
      const group = `${type}\u0000${reason}`;
      let aggregate = this.aggregates.get(group);
      if (!aggregate || now - aggregate.lastAt > this.options.aggregateWindowMs) {
        aggregate = { messages: new Set(), lastAt: now };
        this.aggregates.set(group, aggregate);
      }
      aggregate.messages.add(message);
      aggregate.lastAt = now;
      if (aggregate.messages.size > this.options.aggregateAfter) {
        key = `${group}\u0000(combined)`;
        message = truncate(COMBINED_PREFIX + message, MAX_EVENT_MESSAGE);
      }
    }
    const existing = this.records.get(key);
    if (existing) {
      existing.count++;
      existing.lastTimestamp = now;
      existing.message = message;
      // Most recently used last, so eviction takes the least recently used.
      this.records.delete(key);
      this.records.set(key, existing);
      return existing;
    }
    const record: EventRecord = {
      key,
      type,
      reason,
      message,
      count: 1,
      firstTimestamp: now,
      lastTimestamp: now,
      writtenCount: 0,
    };
    this.records.set(key, record);
    this.evict();
    return record;
  }

  /** Occurrences the API has not been told about yet. */
  pendingOccurrences(): number {
    let pending = 0;
    for (const record of this.records.values()) pending += record.count - record.writtenCount;
    return pending;
  }

  /**
   * The next write the rate limit allows, or how long to wait for one. Records whose reason has no
   * token left stay pending; their occurrences ride on the write that the next token allows.
   * Takes the token: call written() or failed() when the write is done.
   */
  next(now: number): PendingWrite | { waitMs: number } | undefined {
    let waitMs: number | undefined;
    for (const record of this.records.values()) {
      if (!isDirty(record)) continue;
      const bucket = this.bucket(record.reason, now);
      if (!bucket.tryTake(now)) {
        const wait = bucket.waitMs(now);
        waitMs = waitMs === undefined ? wait : Math.min(waitMs, wait);
        continue;
      }
      return {
        record,
        op: record.name === undefined ? 'create' : 'patch',
        count: record.count,
        message: record.message,
        lastTimestamp: record.lastTimestamp,
      };
    }
    return waitMs === undefined ? undefined : { waitMs };
  }

  /** The API accepted `write`; `name` is the Event object's name. */
  written(write: PendingWrite, name: string): void {
    write.record.name = name;
    write.record.writtenCount = Math.max(write.record.writtenCount, write.count);
    write.record.writtenMessage = write.message;
  }

  /** The write did not reach the API (or was refused): keep it pending and return its token. */
  failed(write: PendingWrite, now: number): void {
    this.bucket(write.record.reason, now).giveBack(now);
  }

  /** The Event object is gone (expired after the API server's event TTL): the next write creates it anew. */
  forget(write: PendingWrite): void {
    delete write.record.name;
  }

  /** For tests: the records, least recently used first. */
  snapshot(): readonly EventRecord[] {
    return [...this.records.values()];
  }

  private bucket(reason: string, now: number): TokenBucket {
    let bucket = this.buckets.get(reason);
    if (!bucket) {
      bucket = new TokenBucket(this.options.burst, this.options.refillMs, now);
      this.buckets.set(reason, bucket);
    }
    return bucket;
  }

  private evict(): void {
    if (this.records.size <= this.options.maxRecords) return;
    for (const [key, record] of this.records) {
      if (this.records.size <= this.options.maxRecords) break;
      // Never drop occurrences that were not written yet unless there is no other choice.
      if (!isDirty(record)) this.records.delete(key);
    }
    while (this.records.size > this.options.maxRecords) {
      const oldest = this.records.keys().next();
      if (oldest.done) break;
      this.records.delete(oldest.value);
    }
  }
}

function isDirty(record: EventRecord): boolean {
  return (
    record.name === undefined ||
    record.count > record.writtenCount ||
    record.message !== record.writtenMessage
  );
}

/**
 * Event names follow client-go: `<node>.<hex nanoseconds>`; the sequence number keeps names from
 * one process unique even within one millisecond.
 */
export function eventName(node: string, now: number, sequence: number): string {
  return `${node}.${(BigInt(Math.floor(now)) * 1_000_000n + BigInt(sequence % 1_000_000)).toString(16)}`;
}
