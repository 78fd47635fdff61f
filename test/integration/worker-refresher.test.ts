// The refresher in its worker thread (what `serve` runs): the same read-your-writes contract as the
// in-thread Refresher, and callers that arrive while a scan runs share the next one, never stack.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import { WorkerRefresher } from '../../src/cni/worker-refresher.js';
import { cniDirs, conflist, tempDir } from '../helpers/fs.js';

function start(t: TestContext) {
  const { confDir, binDir } = cniDirs(tempDir(t));
  const refresher = new WorkerRefresher({
    confDir,
    binDirs: [binDir],
    semantics: 'isulad',
    maxFileSize: 1 << 20,
    onError: (error) => assert.fail(String(error)),
  });
  t.after(() => refresher.stop());
  return { refresher, path: join(confDir, '10-a.conflist') };
}

test('every fresh() after a write sees it, across the thread boundary', async (t) => {
  const { refresher, path } = start(t);
  for (let round = 0; round < 50; round++) {
    writeFileSync(path, conflist(`net-${String(round).padStart(3, '0')}`));
    const state = await refresher.fresh();
    assert.equal(state.selection.network?.name, `net-${String(round).padStart(3, '0')}`);
    assert.equal(refresher.state, state);
  }
  const before = refresher.state;
  assert.equal(await refresher.fresh(), before, 'an unchanged state keeps its identity (views cache on it)');
});

test('200 concurrent callers share scans: at most one in flight and one queued behind it', async (t) => {
  const { refresher, path } = start(t);
  writeFileSync(path, conflist('a'));
  await refresher.fresh();
  const before = refresher.stats.attempts;
  const calls = [];
  for (let i = 0; i < 200; i++) {
    calls.push(refresher.fresh());
    if (i % 50 === 0) refresher.refreshInBackground();
  }
  const states = await Promise.all(calls);
  assert.ok(states.every((state) => state.selection.network?.name === 'a'));
  const scans = refresher.stats.attempts - before;
  assert.ok(scans >= 1 && scans <= 2, `200 callers in one tick cost ${scans} scans, expected 1 or 2`);
});
