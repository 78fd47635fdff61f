// The conf-dir watcher's failure paths, on a real dir and a real Refresher. fs.watch failures
// cannot be caused here without root (ENOSPC needs the node's inotify limit lowered), so they are
// injected into a real fs.watch, and the test names say so.
import assert from 'node:assert/strict';
import { watch } from 'node:fs';
import type { FSWatcher } from 'node:fs';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import { Refresher } from '../../src/cni/refresher.js';
import { ConfDirWatcher } from '../../src/cni/watcher.js';
import { conflist, tempDir, writeAtomic } from '../helpers/fs.js';
import { until } from '../helpers/wait.js';

const RESYNC_MS = 300;

function setup(t: TestContext) {
  const root = tempDir(t);
  const confDir = join(root, 'net.d');
  mkdirSync(confDir);
  const refresher = new Refresher({ confDir, binDirs: [], semantics: 'isulad', maxFileSize: 1024 * 1024 });
  const attempts: string[] = [];
  const watchers: FSWatcher[] = [];
  const reported: string[] = [];
  let failing = false;
  const injected = ((path: string, ...rest: unknown[]) => {
    attempts.push(path);
    if (failing && path === confDir) {
      throw Object.assign(new Error('ENOSPC: System limit for number of file watchers reached'), {
        code: 'ENOSPC',
      });
    }
    const watcher = (watch as (...args: unknown[]) => FSWatcher)(path, ...rest);
    watchers.push(watcher);
    return watcher;
  }) as typeof watch;
  const watcher = new ConfDirWatcher(refresher, {
    resyncIntervalMs: RESYNC_MS,
    watch: injected,
    onWatchError: (path) => reported.push(path),
  });
  t.after(() => watcher.stop());
  return {
    confDir,
    refresher,
    watcher,
    attempts: () => attempts.filter((path) => path === confDir).length,
    watchers,
    reported,
    fail: (on: boolean) => (failing = on),
  };
}

test('a conf-dir watch that cannot be created (ENOSPC, injected) is retried at the resync, never once per Status call', async (t) => {
  const { confDir, refresher, watcher, attempts, reported, fail } = setup(t);
  fail(true);
  refresher.refresh();
  watcher.start();
  for (let i = 0; i < 100; i++) refresher.refresh(); // what 100 Status calls do
  assert.equal(attempts(), 1, 'one attempt, not one per refresh');
  assert.deepEqual(reported, [confDir], 'reported once');
  assert.equal(watcher.watching, false);

  fail(false);
  await until('the resync to re-arm the watch', () => watcher.watching, RESYNC_MS * 10);
  assert.equal(attempts(), 2);
  assert.deepEqual(reported, [confDir]);
  writeAtomic(join(confDir, '10-a.conflist'), conflist('a'));
  await until('the watch to pick up a new file', () => refresher.state.selection.network?.name === 'a');
});

test('a conf-dir watch that fails later (an injected error event) is re-armed, and reported once', async (t) => {
  const { confDir, refresher, watcher, attempts, watchers, reported } = setup(t);
  refresher.refresh(); // as serve does before it starts the watcher
  watcher.start();
  assert.equal(attempts(), 1);
  const dirWatch = watchers.at(-1);
  assert.ok(dirWatch && watcher.watching);
  dirWatch.emit('error', new Error('injected watch failure'));
  assert.deepEqual(reported, [confDir]);
  for (let i = 0; i < 100; i++) refresher.refresh();
  assert.equal(attempts(), 1, 'not retried on every refresh');
  await until('the resync to re-arm the watch', () => watcher.watching, RESYNC_MS * 10);
  assert.equal(attempts(), 2);
  writeAtomic(join(confDir, '10-a.conflist'), conflist('a'));
  await until(
    'the re-armed watch to pick up a new file',
    () => refresher.state.selection.network?.name === 'a',
  );
  assert.deepEqual(reported, [confDir]);
});

test('a change inside a libcni v1.3 plugin subdir (<dir>/<network>/*.conf) is seen without a Status call', async (t) => {
  const root = tempDir(t);
  const confDir = join(root, 'net.d');
  mkdirSync(join(confDir, 'n'), { recursive: true });
  writeFileSync(join(confDir, '10-n.conflist'), '{"cniVersion":"1.0.0","name":"n"}');
  writeFileSync(join(confDir, 'n', '10-pm.conf'), '{"type":"portmap"}');
  const refresher = new Refresher({
    confDir,
    binDirs: [],
    semantics: 'containerd-2.1',
    maxFileSize: 1 << 20,
  });
  const watcher = new ConfDirWatcher(refresher, { resyncIntervalMs: 60_000 });
  t.after(() => watcher.stop());
  assert.deepEqual(refresher.refresh().selection.network?.plugins, [
    { type: 'portmap', conf: '{"cniVersion":"1.0.0","name":"n","type":"portmap"}' },
  ]);
  watcher.start();
  // Written in place inside the subdir: the conf dir itself does not change.
  writeFileSync(join(confDir, 'n', '10-pm.conf'), '{"type":"bandwidth"}');
  await until(
    'the subdir watch to refresh',
    () => refresher.state.selection.network?.plugins[0]?.type === 'bandwidth',
  );
  writeFileSync(join(confDir, 'n', '10-pm.conf'), '{"typ');
  await until('a broken plugin file to fail the list', () => !refresher.state.selection.ready);
  assert.match(
    refresher.state.selection.reason ?? '',
    /10-n\.conflist: error parsing configuration: unexpected end of JSON input/,
  );
});

test("the conf dir's parent deleted and recreated: the watch follows at once, not at the resync", async (t) => {
  const root = tempDir(t);
  const parent = join(root, 'etc', 'cni');
  const confDir = join(parent, 'net.d');
  mkdirSync(confDir, { recursive: true });
  const refresher = new Refresher({ confDir, binDirs: [], semantics: 'isulad', maxFileSize: 1024 * 1024 });
  // A resync far beyond the waits below: only the watches can make these changes seen in time.
  const watcher = new ConfDirWatcher(refresher, { resyncIntervalMs: 600_000 });
  t.after(() => watcher.stop());
  refresher.refresh();
  watcher.start();
  for (const name of ['a', 'b', 'c']) {
    writeAtomic(join(confDir, '10-net.conflist'), conflist(name));
    await until(`network ${name} to be seen`, () => refresher.state.selection.network?.name === name);
    assert.equal(refresher.state.dirError, undefined);
    rmSync(parent, { recursive: true });
    await until('the deleted dir to be seen', () => refresher.state.dirError !== undefined);
    mkdirSync(confDir, { recursive: true }); // then the next round's file
  }
  writeAtomic(join(confDir, '10-net.conflist'), conflist('d'));
  await until('the recreated dir to be watched again', () => refresher.state.selection.network?.name === 'd');
  assert.equal(refresher.state.dirError, undefined);
  assert.equal(watcher.watching, true);
});

test('a conf dir removed and recreated is reported once per replacement (containerd 2.x exits there; the agent says so and keeps watching)', async (t) => {
  const confDir = join(tempDir(t), 'net.d');
  mkdirSync(confDir);
  writeFileSync(join(confDir, '10-net.conflist'), conflist('a'));
  const refresher = new Refresher({ confDir, binDirs: [], semantics: 'isulad', maxFileSize: 1024 * 1024 });
  const replaced: string[] = [];
  const watcher = new ConfDirWatcher(refresher, {
    resyncIntervalMs: 600_000,
    onDirReplaced: (dir) => replaced.push(dir),
  });
  t.after(() => watcher.stop());
  refresher.refresh();
  watcher.start();
  writeFileSync(join(confDir, '10-net.conflist'), conflist('b'));
  await until('a write in place to be seen', () => refresher.state.selection.network?.name === 'b');
  assert.deepEqual(replaced, [], 'a write inside the dir replaces nothing');
  for (const name of ['c', 'd']) {
    rmSync(confDir, { recursive: true });
    await until('the removed dir to be seen', () => refresher.state.dirError !== undefined);
    mkdirSync(confDir);
    writeFileSync(join(confDir, '10-net.conflist'), conflist(name));
    await until(`network ${name} in the new dir`, () => refresher.state.selection.network?.name === name);
  }
  await until('both replacements reported', () => replaced.length >= 2);
  assert.deepEqual(replaced, [confDir, confDir]);
  assert.equal(watcher.watching, true);
});
