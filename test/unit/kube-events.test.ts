// Events as pure data: which changes become Events, dedup into counts, aggregation of similar
// events, and the per-reason rate limit that folds held-back occurrences into later writes.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { describeChanges } from '../../src/cni/changes.js';
import { Refresher } from '../../src/cni/refresher.js';
import { COMBINED_PREFIX, EventCorrelator, eventName, eventsFor } from '../../src/kube/events.js';
import type { EventIntent, PendingWrite } from '../../src/kube/events.js';
import { cniDirs, conflist, tempDir, writeAtomic } from '../helpers/fs.js';

test('changes become Events with the same reason and message as the log line', (t) => {
  const { confDir, binDir } = cniDirs(tempDir(t));
  const refresher = new Refresher({ confDir, binDirs: [binDir], semantics: 'isulad', maxFileSize: 1 << 20 });
  const empty = refresher.refresh();
  writeAtomic(join(confDir, '10-a.conflist'), conflist('a'));
  const up = refresher.refresh();
  const upEvents = eventsFor(describeChanges(empty, up));
  assert.deepEqual(
    upEvents.map((e) => [e.type, e.reason]),
    [
      ['Normal', 'NetworkChanged'],
      ['Normal', 'NetworkReady'],
    ],
  );
  const changed = describeChanges(empty, up).find((c) => c.kind === 'NetworkChanged');
  assert.equal(upEvents[0]?.message, changed?.message);

  writeFileSync(join(confDir, '10-a.conflist'), '{"name": "a", "plugins": [');
  writeFileSync(join(confDir, '20-b.conf'), '{');
  const broken = refresher.refresh();
  const warnings = eventsFor(describeChanges(up, broken));
  assert.deepEqual(
    warnings.map((e) => [e.type, e.reason]),
    [
      ['Warning', 'FileStale'],
      ['Warning', 'FileRejected'],
      ['Warning', 'ConfigStale'],
    ],
  );
  assert.match(warnings[0]?.message ?? '', /10-a\.conflist failed to load, keeping its last good content/);
  // A file that loads is news for the log, not an Event; a missing plugin binary is a Warning.
  writeAtomic(join(confDir, '10-a.conflist'), conflist('a', ['no-such-plugin']));
  const missing = eventsFor(describeChanges(broken, refresher.refresh()));
  assert.ok(
    missing.some(
      (e) => e.type === 'Warning' && e.reason === 'FileAccepted' && /no-such-plugin/.test(e.message),
    ),
  );
});

const warning = (message: string): EventIntent => ({ type: 'Warning', reason: 'FileRejected', message });

/** Drains every write the limiter allows at `now`, acknowledging each as the API would. */
function drain(correlator: EventCorrelator, now: number, names = new Map<string, string>()): PendingWrite[] {
  const writes: PendingWrite[] = [];
  for (;;) {
    const next = correlator.next(now);
    if (next === undefined || 'waitMs' in next) return writes;
    const name = next.record.name ?? `ev-${names.size}`;
    names.set(next.record.key, name);
    correlator.written(next, name);
    writes.push(next);
  }
}

test('an identical event is counted on the same record and written as a patch of the count', () => {
  const correlator = new EventCorrelator();
  const a = correlator.observe(warning('x rejected'), 1000);
  const writes = drain(correlator, 1000);
  assert.deepEqual(
    writes.map((w) => [w.op, w.count]),
    [['create', 1]],
  );
  assert.equal(correlator.observe(warning('x rejected'), 2000), a);
  correlator.observe(warning('x rejected'), 3000);
  const again = drain(correlator, 3000);
  assert.deepEqual(
    again.map((w) => [w.op, w.count, w.lastTimestamp]),
    [['patch', 3, 3000]],
  );
  assert.equal(a.firstTimestamp, 1000);
  assert.equal(correlator.pendingOccurrences(), 0);
});

test('more than 10 distinct messages of one reason in 10 minutes are combined into one event', () => {
  const correlator = new EventCorrelator();
  for (let i = 0; i < 30; i++) correlator.observe(warning(`file-${i} rejected`), 1000 + i);
  const records = correlator.snapshot();
  assert.equal(records.length, 11, '10 individual events and one combined');
  const combined = records.find((r) => r.message.startsWith(COMBINED_PREFIX));
  assert.ok(combined);
  assert.equal(combined.count, 20);
  assert.equal(
    combined.message,
    `${COMBINED_PREFIX}file-29 rejected`,
    'the combined event shows the latest message',
  );
  // Other reasons are aggregated separately.
  correlator.observe({ type: 'Warning', reason: 'FileStale', message: 'other' }, 2000);
  assert.equal(correlator.snapshot().length, 12);
  // After a quiet window the grouping starts again.
  correlator.observe(warning('fresh after the window'), 1000 + 600_001 + 30);
  assert.ok(correlator.snapshot().some((r) => r.message === 'fresh after the window'));
});

test('writes are rate limited per reason (burst 25, then 1 per 5 min) and held-back occurrences are not lost', () => {
  const correlator = new EventCorrelator();
  let now = 0;
  let writes = 0;
  // 1,000 occurrences alternating between two messages (a flapping file), one per 10 ms.
  for (let i = 0; i < 1000; i++) {
    correlator.observe(warning(i % 2 ? 'a rejected' : 'b rejected'), now);
    writes += drain(correlator, now).length;
    now += 10;
  }
  assert.equal(writes, 25, 'the burst');
  assert.equal(correlator.snapshot().length, 2, 'two Event objects');
  const next = correlator.next(now);
  assert.ok(next && 'waitMs' in next, 'the limiter asks to wait');
  assert.ok(next.waitMs >= 280_000 && next.waitMs <= 300_000, `${next.waitMs}`);
  assert.equal(correlator.pendingOccurrences(), 975, 'every held-back occurrence is remembered');
  // Ten minutes later two tokens have refilled: both objects are patched with their exact counts.
  const later = drain(correlator, now + 600_000);
  assert.equal(later.length, 2);
  assert.deepEqual(later.map((w) => w.count).sort(), [500, 500]);
  assert.equal(correlator.pendingOccurrences(), 0);
  // Another reason has its own budget: a recovery is not starved by a storm of warnings.
  correlator.observe({ type: 'Normal', reason: 'NetworkReady', message: 'network is ready' }, now + 600_001);
  assert.equal(drain(correlator, now + 600_001).length, 1);
});

test('a failed write keeps the occurrence pending and returns its token', () => {
  const correlator = new EventCorrelator({ burst: 1 });
  correlator.observe(warning('x'), 0);
  const first = correlator.next(0);
  assert.ok(first && !('waitMs' in first));
  correlator.failed(first, 0);
  const retry = correlator.next(0);
  assert.ok(retry && !('waitMs' in retry), 'the token came back');
  assert.equal(retry.op, 'create');
  correlator.written(retry, 'ev-1');
  correlator.observe(warning('x'), 1);
  const patch = correlator.next(400_000);
  assert.ok(patch && !('waitMs' in patch));
  assert.equal(patch.op, 'patch');
  // The Event expired on the server: the next write creates it again, with the full count.
  correlator.forget(patch);
  correlator.failed(patch, 400_000);
  const recreate = correlator.next(400_000);
  assert.ok(recreate && !('waitMs' in recreate));
  assert.deepEqual([recreate.op, recreate.count], ['create', 2]);
});

test('the record cache is bounded and evicts written records first', () => {
  const correlator = new EventCorrelator({ maxRecords: 5, aggregateAfter: 1000, burst: 1000 });
  for (let i = 0; i < 5; i++) correlator.observe(warning(`m${i}`), i);
  drain(correlator, 10);
  for (let i = 5; i < 8; i++) correlator.observe(warning(`m${i}`), i + 10);
  const records = correlator.snapshot();
  assert.equal(records.length, 5);
  assert.deepEqual(
    records.map((r) => r.message),
    ['m3', 'm4', 'm5', 'm6', 'm7'],
  );
});

test('event names follow client-go (<node>.<hex nanoseconds>) and are unique within a millisecond', () => {
  const a = eventName('node-a', 1_764_237_600_000, 0);
  const b = eventName('node-a', 1_764_237_600_000, 1);
  assert.match(a, /^node-a\.[0-9a-f]+$/);
  assert.notEqual(a, b);
  assert.equal(BigInt(`0x${a.split('.')[1] ?? ''}`), 1_764_237_600_000n * 1_000_000n);
});
