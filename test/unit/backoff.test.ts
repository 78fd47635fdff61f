// Retry and heartbeat timing, and the token bucket, with injected randomness and clocks.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RetryBackoff, TokenBucket, backoffDelay, jittered } from '../../src/backoff.js';

test('backoff doubles from the base, is capped, and jitter stays within [delay/2, delay]', () => {
  const options = { baseMs: 1000, maxMs: 30_000 };
  const low = (attempt: number) => backoffDelay(attempt, { ...options, random: () => 0 });
  const high = (attempt: number) => backoffDelay(attempt, { ...options, random: () => 0.999999 });
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 50].map(low), [500, 1000, 2000, 4000, 8000, 15_000, 15_000, 15_000]);
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5, 6, 50].map(high),
    [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000],
  );
  // With real randomness, a fleet spreads out: 1,000 agents do not retry in the same 100 ms.
  const delays = Array.from({ length: 1000 }, () => backoffDelay(5, options));
  const buckets = new Set(delays.map((d) => Math.floor(d / 100)));
  assert.ok(buckets.size > 100, `${buckets.size} distinct 100 ms slots`);
  assert.ok(delays.every((d) => d >= 15_000 && d <= 30_000));
});

test('a retry backoff restarts its exponent when failures change class, and on success', () => {
  const top = () => 0.999999;
  const retry = new RetryBackoff(
    { baseMs: 1000, maxMs: 30_000, random: top },
    { baseMs: 5000, maxMs: 300_000, random: top },
  );
  // An outage: unreachable, unreachable, … up to the transient cap.
  assert.deepEqual(
    Array.from({ length: 7 }, () => retry.failed(false)),
    [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000],
  );
  // The API server is back but its authorizer is not warm yet: the first 403 waits 5 s, not minutes.
  assert.deepEqual([retry.failed(true), retry.failed(true)], [5000, 10_000]);
  assert.equal(retry.failed(false), 1000, 'back to transient: from the base again');
  retry.succeeded();
  assert.equal(retry.failed(true), 5000);
});

test('the heartbeat is jittered upwards only: never faster than asked, at most 10% slower', () => {
  assert.equal(
    jittered(300_000, 0.1, () => 0),
    300_000,
  );
  assert.equal(
    jittered(300_000, 0.1, () => 0.5),
    315_000,
  );
  // The largest pick Math.random can return must still stay under the bound.
  assert.ok(jittered(300_000, 0.1, () => 1 - Number.EPSILON) < 330_000);
  for (let i = 0; i < 1000; i++) {
    const period = jittered(300_000);
    assert.ok(period >= 300_000 && period < 330_000, `${period}`);
  }
});

test('a token bucket allows a burst, then refills one token per period', () => {
  const bucket = new TokenBucket(3, 1000, 0);
  assert.deepEqual(
    [0, 0, 0, 0].map(() => bucket.tryTake(0)),
    [true, true, true, false],
  );
  assert.equal(bucket.waitMs(0), 1000);
  assert.equal(bucket.waitMs(400), 600);
  assert.equal(bucket.tryTake(999), false);
  assert.equal(bucket.tryTake(1000), true);
  bucket.giveBack(1000);
  assert.equal(bucket.tryTake(1000), true);
  // Never more than the burst, however long it rests.
  assert.deepEqual(
    [0, 0, 0, 0].map(() => bucket.tryTake(1_000_000)),
    [true, true, true, false],
  );
});
