// The verdict: one pure decision from the network state, RuntimeReady and the clock, and the
// publisher that hands each new one to every view, on a test clock instead of sleeps.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import { Refresher } from '../../src/cni/refresher.js';
import { RUNTIME_READY } from '../../src/cri/conditions.js';
import { VerdictPublisher } from '../../src/verdict/publisher.js';
import type { VerdictExporter } from '../../src/verdict/publisher.js';
import { decideVerdict } from '../../src/verdict/verdict.js';
import type { Verdict } from '../../src/verdict/verdict.js';
import { ManualClock } from '../helpers/clock.js';
import { cniDirs, conflist, tempDir } from '../helpers/fs.js';

function setup(t: TestContext, staleAfterMs?: number) {
  const { confDir, binDir } = cniDirs(tempDir(t));
  const clock = new ManualClock();
  const refresher = new Refresher({
    confDir,
    binDirs: [binDir],
    semantics: 'isulad',
    maxFileSize: 1 << 20,
    clock,
  });
  const verdicts = new VerdictPublisher({
    source: refresher,
    staleAfterMs,
    clock,
    onError: (error) => assert.fail(String(error)),
  });
  const seen: [Verdict, Verdict][] = [];
  const view: VerdictExporter = { onVerdict: (verdict, previous) => seen.push([verdict, previous]) };
  verdicts.register(view);
  t.after(() => verdicts.stop());
  return { path: join(confDir, '10-a.conflist'), clock, refresher, verdicts, seen };
}

test('a verdict changes only when an input does: same state and runtime give the same object', (t) => {
  const { path, refresher, verdicts, seen } = setup(t);
  writeFileSync(path, conflist('a'));
  refresher.refresh();
  const first = verdicts.current;
  assert.equal(first.generation, 1);
  assert.equal(first.networkReady, true);
  assert.deepEqual(
    first.changes.map((c) => c.kind),
    ['FileAccepted', 'NetworkChanged', 'NetworkReady'],
  );
  refresher.refresh(); // nothing on disk changed
  assert.equal(verdicts.current, first, 'no new verdict, so every cache keyed on the generation holds');
  assert.equal(seen.length, 1);
  assert.equal(decideVerdict(first.inputs, Date.now(), first), first);
});

test('RuntimeReady from the mirror is an input: a new generation, the condition first, no file changes', (t) => {
  const { path, refresher, verdicts, seen } = setup(t);
  writeFileSync(path, conflist('a'));
  refresher.refresh();
  const down = { type: 'RuntimeReady', status: false, reason: 'UpstreamRuntimeUnreachable', message: 'gone' };
  verdicts.runtimeChanged(down);
  const verdict = verdicts.current;
  assert.equal(verdict.generation, 2);
  assert.deepEqual(verdict.conditions[0], down);
  assert.equal(verdict.runtimeReady, false);
  assert.deepEqual(verdict.changes, []);
  verdicts.runtimeChanged({ ...down }); // the same condition again
  assert.equal(verdicts.current, verdict);
  verdicts.runtimeChanged(RUNTIME_READY);
  assert.equal(verdicts.current.runtimeReady, true);
  assert.equal(seen.length, 3);
});

test('--stale-after: the deadline turns NetworkReady false with no refresh, and every view hears of it once', async (t) => {
  const { path, clock, refresher, verdicts, seen } = setup(t, 10_000);
  writeFileSync(path, conflist('a'));
  refresher.refresh();
  writeFileSync(path, '{');
  refresher.refresh();
  const stale = verdicts.current;
  assert.equal(stale.state.selection.stale, true);
  assert.equal(stale.networkReady, true);
  assert.equal(stale.expiresAt, (stale.state.staleSince ?? NaN) + 10_001);
  assert.equal(stale.nodeCondition.reason, 'LastGoodConfigServed');
  await clock.advance(10_000);
  assert.equal(verdicts.current, stale, 'not yet: the config is exactly --stale-after old');
  await clock.advance(1);
  const [latest, previous] = seen.at(-1) ?? [];
  assert.equal(previous, stale);
  assert.equal(latest?.networkReady, false);
  assert.equal(latest?.staleTooLong, true);
  assert.equal(latest?.nodeCondition.reason, 'NetworkConfigStale');
  assert.match(latest?.conditions[1].message ?? '', /longer than --stale-after 10s/);
  assert.equal(latest?.expiresAt, undefined);
  assert.equal(clock.timers, 0, 'no deadline left armed');
});
