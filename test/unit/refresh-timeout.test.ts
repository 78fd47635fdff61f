// --refresh-timeout as a verdict input: a Status call that stops waiting for its refresh answers
// from the last state with NetworkConfigUpToDate reason RefreshTimeout, a fixed timestamp, and the
// --stale-after rule of a failed refresh. A hang on demand needs a filesystem that blocks (the FUSE
// e2e test, test/e2e/stalled-fs.test.ts); here a fake hung source holds a real Refresher's scans.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import { Refresher } from '../../src/cni/refresher.js';
import type { RefreshReport } from '../../src/cni/refresher.js';
import type { NetworkState } from '../../src/cni/types.js';
import { Deadline, grpcTimeoutMs } from '../../src/util/deadline.js';
import { Writable } from 'node:stream';
import { createLogger } from '../../src/log.js';
import { TransitionLog } from '../../src/verdict/transition-log.js';
import { VerdictPublisher } from '../../src/verdict/publisher.js';
import type { StateSource } from '../../src/verdict/publisher.js';
import { ManualClock } from '../helpers/clock.js';
import { cniDirs, conflist, tempDir } from '../helpers/fs.js';

/** Fake hung source: a real Refresher whose Status-path scans wait until `release()`. */
class HeldSource implements StateSource {
  private held: (() => void)[] = [];
  hold = false;
  inFlightSince: number | undefined;
  constructor(
    readonly refresher: Refresher,
    private readonly clock: ManualClock,
  ) {}
  get state(): NetworkState {
    return this.refresher.state;
  }
  onRefresh(listener: (report: RefreshReport) => void): void {
    this.refresher.onRefresh(listener);
  }
  fresh(): Promise<NetworkState> {
    if (!this.hold) return Promise.resolve(this.refresher.refresh());
    this.inFlightSince ??= this.clock.now();
    return new Promise((resolve) => this.held.push(() => resolve(this.refresher.state)));
  }
  release(): void {
    this.hold = false;
    this.inFlightSince = undefined;
    this.refresher.refresh();
    for (const done of this.held.splice(0)) done();
  }
}

function setup(t: TestContext, staleAfterMs?: number) {
  const { confDir, binDir } = cniDirs(tempDir(t));
  const clock = new ManualClock(Date.UTC(2026, 0, 1, 12, 0, 0));
  const refresher = new Refresher({
    confDir,
    binDirs: [binDir],
    semantics: 'isulad',
    maxFileSize: 1 << 20,
    clock,
  });
  const source = new HeldSource(refresher, clock);
  const verdicts = new VerdictPublisher({
    source,
    staleAfterMs,
    refreshTimeoutMs: 1000,
    clock,
    onError: (error) => assert.fail(String(error)),
  });
  let timeouts = 0;
  verdicts.register({ onVerdict: () => undefined, onRefreshTimeout: () => timeouts++ });
  const logLines: { level: number; kind?: string; msg: string }[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logLines.push(JSON.parse(chunk.toString()) as { level: number; kind?: string; msg: string });
      done();
    },
  });
  verdicts.register(new TransitionLog(createLogger('info', 'json', sink)));
  const timeoutLogs = () => logLines.filter((line) => line.kind === 'RefreshTimeout');
  t.after(() => verdicts.stop());
  const path = join(confDir, '10-a.conflist');
  writeFileSync(path, conflist('a'));
  refresher.refresh();
  /** One Status call's wait: its deadline passes on the manual clock while the scan is held. */
  const status = async (budgetMs = 1000, grpcMs?: number) => {
    const call = verdicts.fresh(Deadline.after(clock, budgetMs, grpcMs));
    await clock.advance(budgetMs);
    return call;
  };
  return { path, clock, source, verdicts, status, timeouts: () => timeouts, timeoutLogs };
}

test('a held refresh: the call answers at its deadline with RefreshTimeout and a fixed "last refreshed at" (fake hung source)', async (t) => {
  const { clock, source, status, timeouts, timeoutLogs } = setup(t);
  const refreshedAt = clock.now();
  await clock.advance(5000);
  source.hold = true;
  const first = await status();
  const upToDate = first.conditions[2];
  assert.equal(upToDate.status, false);
  assert.equal(upToDate.reason, 'RefreshTimeout');
  assert.match(upToDate.message, new RegExp(`last refreshed at ${new Date(refreshedAt).toISOString()}`));
  assert.equal(first.networkReady, true, 'within --stale-after (none here) the network stays ready');
  assert.equal(first.nodeCondition.reason, 'RefreshTimeout');
  assert.equal(first.nodeCondition.status, 'True');

  await clock.advance(60_000);
  const later = await status();
  assert.equal(later, first, 'one episode is one verdict: the message never carries a growing age');
  assert.equal(timeouts(), 2, 'every call that gave up is counted');

  source.release();
  const after = await status();
  assert.equal(after.conditions[2].status, true, 'a completed refresh ends the episode');
  assert.equal(after.conditions[2].reason, '');
  assert.equal(timeouts(), 2);
  assert.deepEqual(
    timeoutLogs().map((line) => line.level),
    [40, 30],
    'one warning when the episode starts, one info line when it ends, none per call',
  );
  assert.match(timeoutLogs()[0]?.msg ?? '', /took longer than --refresh-timeout 1s/);
});

test('the newest fact wins: RefreshFailed, then RefreshTimeout while held, then RefreshFailed again (fake hung source)', async (t) => {
  const { path, source, status } = setup(t);
  writeFileSync(path, '{"truncated":');
  assert.equal((await status()).conditions[2].reason, 'RefreshFailed');
  source.hold = true;
  assert.equal((await status()).conditions[2].reason, 'RefreshTimeout');
  source.release();
  assert.equal((await status()).conditions[2].reason, 'RefreshFailed');
});

test('--stale-after runs from when the held refresh was asked for, like a failed refresh (fake hung source)', async (t) => {
  const { clock, source, status } = setup(t, 10_000);
  source.hold = true;
  const askedAt = clock.now();
  const first = await status();
  assert.equal(first.networkReady, true);
  assert.equal(first.expiresAt, askedAt + 10_001, 'the publisher re-decides at the deadline with no call');
  await clock.advance(9500);
  assert.equal((await status()).networkReady, false, 'asked at T, 10.5 s later: past --stale-after');
  const verdict = source.refresher && (await status());
  assert.match(verdict.conditions[1].message, /did not finish in time/);
  assert.equal(verdict.nodeCondition.status, 'False');
  assert.equal(verdict.nodeCondition.reason, 'NetworkConfigStale');
  source.release();
  const back = await status();
  assert.equal(back.networkReady, true);
  assert.equal(back.conditions[2].status, true);
});

test("the call's grpc-timeout caps the budget, and grpc-timeout headers parse as gRPC defines them", () => {
  const clock = new ManualClock(1000);
  assert.equal(Deadline.after(clock, 1000).at, 2000);
  assert.equal(Deadline.after(clock, 1000, 200).at, 1200, 'a shorter client deadline wins');
  assert.equal(Deadline.after(clock, 1000, 5000).at, 2000, '--refresh-timeout wins over a longer one');
  assert.equal(grpcTimeoutMs('2S'), 2000);
  assert.equal(grpcTimeoutMs('150m'), 150);
  assert.equal(grpcTimeoutMs('3M'), 180_000);
  assert.equal(grpcTimeoutMs('500000u'), 500);
  assert.equal(grpcTimeoutMs('1x'), undefined);
  assert.equal(grpcTimeoutMs(undefined), undefined);
});
