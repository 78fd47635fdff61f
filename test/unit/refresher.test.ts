import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import { ConfDirLister } from '../../src/cni/files.js';
import { Refresher } from '../../src/cni/refresher.js';
import type { RefreshReport } from '../../src/cni/refresher.js';
import type { Semantics } from '../../src/cni/types.js';
import { cniDirs, conflist, tempDir, writeAtomic } from '../helpers/fs.js';
import { sleep } from '../helpers/wait.js';

function setup(t: TestContext, semantics: Semantics = 'isulad') {
  const root = tempDir(t);
  const { confDir, binDir } = cniDirs(root, ['bridge', 'portmap']);
  const refresher = new Refresher({ confDir, binDirs: [binDir], semantics, maxFileSize: 1024 * 1024 });
  const reports: RefreshReport[] = [];
  refresher.onRefresh((report) => reports.push(report));
  return { root, confDir, binDir, refresher, reports };
}

test('a valid file is in force; an unchanged dir re-reads nothing and keeps the same state', async (t) => {
  const { confDir, refresher } = setup(t);
  writeFileSync(join(confDir, '10-a.conflist'), conflist('a'));
  const first = refresher.refresh();
  assert.equal(first.selection.ready, true);
  assert.equal(first.selection.network?.name, 'a');
  assert.equal(first.selection.file, '10-a.conflist');
  await sleep(80); // past the racy window, so stat alone decides
  refresher.refresh();
  const reads = refresher.stats.filesRead;
  for (let i = 0; i < 100; i++) assert.equal(refresher.refresh(), refresher.state);
  assert.equal(refresher.stats.filesRead, reads, 'no file is read while nothing changed');
  assert.equal(refresher.state.generation, first.generation);
});

test('an in-place rewrite of the same size within the same clock tick is still seen (racy-clean)', (t) => {
  const { confDir, refresher } = setup(t);
  const path = join(confDir, '10-a.conflist');
  writeFileSync(path, conflist('aaaa'));
  assert.equal(refresher.refresh().selection.network?.name, 'aaaa');
  writeFileSync(path, conflist('bbbb')); // same length, immediately
  assert.equal(refresher.refresh().selection.network?.name, 'bbbb');
});

test('a file that breaks keeps its last good content, is stale, and the failure is counted once', (t) => {
  const { confDir, refresher, reports } = setup(t);
  const path = join(confDir, '10-a.conflist');
  writeFileSync(path, conflist('good'));
  refresher.refresh();
  writeFileSync(path, '{"name": "good", "plugins": [');
  const state = refresher.refresh();
  assert.equal(state.selection.ready, true);
  assert.equal(state.selection.network?.name, 'good');
  assert.equal(state.selection.stale, true);
  assert.ok(state.staleSince !== undefined);
  assert.equal(state.lastError?.reason, 'parse_error');
  assert.equal(state.lastError.file, path);
  assert.equal(reports.at(-1)?.newFailure, 'parse_error');
  refresher.refresh();
  assert.equal(reports.at(-1)?.newFailure, undefined, 'the same failure is not counted again');
  assert.equal(refresher.stats.failures, 1);
  writeFileSync(path, conflist('fixed'));
  const fixed = refresher.refresh();
  assert.equal(fixed.selection.stale, false);
  assert.equal(fixed.selection.network?.name, 'fixed');
  assert.equal(fixed.lastError, undefined);
  assert.equal(fixed.staleSince, undefined);
});

test('profiles on a dir whose first file is bad', (t) => {
  for (const [semantics, ready, network] of [
    ['isulad', true, 'second'],
    ['containerd-1.7', false, undefined],
    ['crio', true, 'second'],
  ] as const) {
    const { confDir, refresher } = setup(t, semantics);
    writeFileSync(join(confDir, '00-bad.conflist'), '{"name":"x","plugins":[]}');
    writeFileSync(join(confDir, '10-second.conflist'), conflist('second'));
    const { selection } = refresher.refresh();
    assert.equal(selection.ready, ready, semantics);
    assert.equal(selection.network?.name, network, semantics);
    if (!ready)
      assert.match(
        selection.reason ?? '',
        /failed to load CNI config list file .*00-bad\.conflist: .*no plugins in list: invalid cni config/,
      );
  }
});

test('crio skips files whose plugin binaries are missing; the others report them', (t) => {
  for (const semantics of ['crio', 'isulad'] as const) {
    const { confDir, refresher } = setup(t, semantics);
    writeFileSync(join(confDir, '10-calico.conflist'), conflist('calico', ['calico']));
    writeFileSync(join(confDir, '20-bridge.conflist'), conflist('bridge', ['bridge', 'portmap']));
    const state = refresher.refresh();
    assert.deepEqual(state.files[0]?.missingBinaries, ['calico']);
    assert.equal(state.selection.network?.name, semantics === 'crio' ? 'bridge' : 'calico');
  }
});

test('an emptied dir: isulad keeps the last good network (stale), containerd and crio are not ready', (t) => {
  const { confDir, refresher, reports } = setup(t);
  writeFileSync(join(confDir, '10-a.conflist'), conflist('a'));
  refresher.refresh();
  unlinkSync(join(confDir, '10-a.conflist'));
  const state = refresher.refresh();
  assert.equal(state.verdicts.isulad.ready, true);
  assert.equal(state.verdicts.isulad.network?.name, 'a');
  assert.equal(state.verdicts.isulad.stale, true);
  assert.match(state.verdicts.isulad.reason ?? '', /no network config found in/);
  assert.equal(state.verdicts['containerd-1.7'].ready, false);
  assert.match(
    state.verdicts['containerd-1.7'].reason ?? '',
    /no network config found in .*: cni plugin not initialized/,
  );
  assert.equal(state.verdicts.crio.ready, false);
  assert.match(state.verdicts.crio.reason ?? '', /Has your network provider started\?/);
  assert.equal(reports.at(-1)?.newFailure, 'no_config');
});

test('the conf dir deleted keeps the last good state; recreated, it recovers', (t) => {
  const { confDir, refresher } = setup(t);
  writeFileSync(join(confDir, '10-a.conflist'), conflist('a'));
  refresher.refresh();
  rmSync(confDir, { recursive: true });
  const gone = refresher.refresh();
  assert.equal(gone.selection.ready, true);
  assert.equal(gone.selection.stale, true);
  assert.match(gone.dirError?.message ?? '', /the directory does not exist/);
  mkdirSync(confDir);
  writeFileSync(join(confDir, '20-b.conflist'), conflist('b'));
  const back = refresher.refresh();
  assert.equal(back.selection.network?.name, 'b');
  assert.equal(back.selection.stale, false);
  assert.equal(back.dirError, undefined);
});

test('a ConfigMap-style ..data symlink swap is followed', (t) => {
  const { confDir, refresher } = setup(t);
  mkdirSync(join(confDir, '..v1'));
  writeFileSync(join(confDir, '..v1', '10-net.conflist'), conflist('one'));
  symlinkSync('..v1', join(confDir, '..data'));
  symlinkSync('..data/10-net.conflist', join(confDir, '10-net.conflist'));
  assert.equal(refresher.refresh().selection.network?.name, 'one');
  mkdirSync(join(confDir, '..v2'));
  writeFileSync(join(confDir, '..v2', '10-net.conflist'), conflist('two'));
  symlinkSync('..v2', join(confDir, '..data_tmp'));
  renameSync(join(confDir, '..data_tmp'), join(confDir, '..data'));
  rmSync(join(confDir, '..v1'), { recursive: true });
  assert.equal(refresher.refresh().selection.network?.name, 'two');
});

test('non-regular files, broken links and oversized files are rejected with a reason, without blocking', (t) => {
  const { confDir, refresher } = setup(t);
  execFileSync('mkfifo', [join(confDir, '01-fifo.conf')]);
  mkdirSync(join(confDir, 'subdir'));
  symlinkSync('subdir', join(confDir, '02-dirlink.conf'));
  symlinkSync('nowhere.conflist', join(confDir, '03-broken.conflist'));
  writeFileSync(join(confDir, '04-huge.conflist'), Buffer.alloc(2 * 1024 * 1024, 0x20));
  mkdirSync(join(confDir, '05-dir.conf')); // a directory with a config name is not a candidate
  writeFileSync(join(confDir, '10-x.CONF'), 'ignored: extensions are case-sensitive');
  writeFileSync(join(confDir, '99-good.conflist'), conflist('good'));
  const state = refresher.refresh();
  const byFile = Object.fromEntries(
    state.files.map((f) => [
      f.file,
      f.current.ok ? 'ok' : `${f.current.error.reason}: ${f.current.error.message}`,
    ]),
  );
  assert.deepEqual(Object.keys(byFile), [
    '01-fifo.conf',
    '02-dirlink.conf',
    '03-broken.conflist',
    '04-huge.conflist',
    '99-good.conflist',
  ]);
  assert.match(byFile['01-fifo.conf'] ?? '', /^read_error: a FIFO, not a regular file/);
  // libcni's own words first (what the runtime logs), then ours.
  assert.match(
    byFile['02-dirlink.conf'] ?? '',
    /^read_error: error reading \S+\/02-dirlink\.conf: read \S+: is a directory \(a directory, not a regular file/,
  );
  assert.match(
    byFile['03-broken.conflist'] ?? '',
    /^read_error: error reading \S+: open \S+: no such file or directory \(a symlink to nowhere\.conflist, which does not exist/,
  );
  assert.match(byFile['04-huge.conflist'] ?? '', /^too_large: 2 MiB, over the 1 MiB limit/);
  assert.equal(state.selection.network?.name, 'good');
});

test('an unreadable file is reported as a read error with what to do', (t) => {
  if (process.getuid?.() === 0) {
    // root reads mode-000 files; use a dir entry that cannot be opened instead
    const { confDir, refresher } = setup(t);
    writeFileSync(join(confDir, '10-a.conflist'), conflist('a'));
    chmodSync(join(confDir, '10-a.conflist'), 0o000);
    assert.equal(refresher.refresh().selection.network?.name, 'a', 'root can still read it');
    return;
  }
  const { confDir, refresher } = setup(t);
  writeFileSync(join(confDir, '10-a.conflist'), conflist('a'));
  chmodSync(join(confDir, '10-a.conflist'), 0o000);
  const file = refresher.refresh().files[0];
  assert.ok(file && !file.current.ok);
  assert.match(file.current.error.message, /permission denied; make the file readable/);
});

test('file names sort by UTF-8 bytes, as Go does', (t) => {
  const { confDir, refresher } = setup(t);
  for (const name of [
    'b.conf',
    'a.conflist',
    '\u00e9.conf',
    '\ud83d\ude00.conf',
    '\uff5e.conf',
    '100.conf',
    '11.conf',
  ]) {
    writeFileSync(join(confDir, name), '{"type":"bridge","name":"n"}');
  }
  assert.deepEqual(
    refresher.refresh().files.map((f) => f.file),
    ['100.conf', '11.conf', 'a.conflist', 'b.conf', '\u00e9.conf', '\uff5e.conf', '\ud83d\ude00.conf'],
  );
});

test('fresh() shares one refresh among callers that arrive together', async (t) => {
  const { confDir, refresher } = setup(t);
  writeFileSync(join(confDir, '10-a.conflist'), conflist('a'));
  const before = refresher.stats.attempts;
  const states = await Promise.all(Array.from({ length: 50 }, () => refresher.fresh()));
  assert.equal(refresher.stats.attempts - before, 1);
  assert.ok(states.every((s) => s === states[0]));
  writeAtomic(join(confDir, '10-a.conflist'), conflist('b'));
  assert.equal(
    (await refresher.fresh()).selection.network?.name,
    'b',
    'a call after a write gets a new refresh',
  );
});

test('containerd semantics: only the first file decides; a bad file after it is never read', (t) => {
  const { confDir, refresher } = setup(t, 'containerd-1.7');
  writeFileSync(join(confDir, '10-a.conflist'), conflist('a'));
  writeFileSync(join(confDir, '20-b.conflist'), '{bad');
  const { verdicts } = refresher.refresh();
  assert.equal(verdicts['containerd-1.7'].ready, true);
  assert.equal(verdicts['containerd-1.7'].network?.name, 'a');
});

test('the conf dir is re-listed only when its own stat changes, or while a change is racily recent', async (t) => {
  const { confDir } = setup(t);
  const lister = new ConfDirLister(confDir);
  writeFileSync(join(confDir, '10-a.conflist'), conflist('a'));
  const listed = (): readonly string[] => {
    const listing = lister.list(Date.now());
    assert.ok(listing.ok);
    return listing.files;
  };
  assert.deepEqual(listed(), ['10-a.conflist']);
  writeFileSync(join(confDir, '20-b.conflist'), conflist('b')); // right after the read: racy
  assert.deepEqual(listed(), ['10-a.conflist', '20-b.conflist']);
  await sleep(80); // real time, not a test clock: the kernel's file timestamp must tick past the change
  listed(); // one read safely after the last change
  const reads = lister.readdirs;
  for (let i = 0; i < 50; i++) listed();
  assert.equal(lister.readdirs, reads, 'a quiet dir costs stat(dir) only');
  unlinkSync(join(confDir, '10-a.conflist'));
  assert.deepEqual(listed(), ['20-b.conflist']);
  assert.equal(lister.readdirs, reads + 1);
});

test('a plugin type no path can hold (NUL byte, 300 characters) is reported missing, never thrown', (t) => {
  const { confDir, refresher } = setup(t);
  writeFileSync(join(confDir, '10-a.conflist'), conflist('a', ['bridge\u0000x', 'p'.repeat(300), 'bridge']));
  const state = refresher.refresh(true);
  assert.deepEqual(state.files[0]?.missingBinaries, ['bridge\u0000x', 'p'.repeat(300)]);
  assert.equal(state.selection.network?.name, 'a');
});

test('a plugin binary that becomes executable is found on the next refresh', (t) => {
  const { confDir, binDir, refresher } = setup(t, 'crio');
  writeFileSync(join(binDir, 'calico'), '#!/bin/sh\n', { mode: 0o644 });
  writeFileSync(join(confDir, '10-calico.conflist'), conflist('calico', ['calico']));
  assert.equal(refresher.refresh(true).selection.ready, false, 'not executable yet');
  chmodSync(join(binDir, 'calico'), 0o755); // changes the file, not the bin dir's own stat
  const state = refresher.refresh(true);
  assert.deepEqual(state.files[0]?.missingBinaries, []);
  assert.equal(state.selection.ready, true);
});
