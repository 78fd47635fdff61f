// The Node condition as pure functions of real refresher states (real files in temp dirs).
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import { Refresher } from '../../src/cni/refresher.js';
import type { Semantics } from '../../src/cni/types.js';
import {
  CONDITION_REASONS,
  CONDITION_TYPE,
  MAX_MESSAGE_LENGTH,
  adoptExisting,
  conditionPatch,
  desiredCondition,
  differs,
  isoSeconds,
  observe,
  removalPatch,
} from '../../src/kube/condition.js';
import { cniDirs, conflist, tempDir, writeAtomic } from '../helpers/fs.js';

function setup(t: TestContext, semantics: Semantics = 'isulad', plugins = ['bridge']) {
  const { confDir, binDir } = cniDirs(tempDir(t), plugins);
  const refresher = new Refresher({ confDir, binDirs: [binDir], semantics, maxFileSize: 1024 * 1024 });
  return { confDir, refresher };
}

test('a loaded network is True/NetworkConfigLoaded with the file, network, version and plugins', (t) => {
  const { confDir, refresher } = setup(t);
  writeAtomic(join(confDir, '10-kindnet.conflist'), conflist('kindnet', ['bridge', 'portmap']));
  const value = desiredCondition(refresher.refresh(), true);
  assert.equal(value.status, 'True');
  assert.equal(value.reason, CONDITION_REASONS.loaded);
  assert.equal(
    value.message,
    `network "kindnet" from ${confDir}/10-kindnet.conflist (cniVersion 1.0.0, plugins bridge, portmap)`,
  );
});

test('an empty conf dir is False/NoNetworkConfig naming the dir', (t) => {
  const { confDir, refresher } = setup(t);
  const value = desiredCondition(refresher.refresh(), false);
  assert.deepEqual(value, {
    status: 'False',
    reason: CONDITION_REASONS.noConfig,
    message: `no network config found in ${confDir}`,
  });
});

test('a file that never parsed is False/InvalidNetworkConfig with the file and the parse error', (t) => {
  const { confDir, refresher } = setup(t);
  writeFileSync(join(confDir, '10-bad.conflist'), '{"name": "x", "plugins": [');
  const value = desiredCondition(refresher.refresh(), false);
  assert.equal(value.status, 'False');
  assert.equal(value.reason, CONDITION_REASONS.invalid);
  assert.match(value.message, /10-bad\.conflist/);
  assert.match(value.message, /JSON|parse|Unexpected/i);
});

test('an unreadable conf dir is False/ConfDirUnreadable', (t) => {
  const { confDir, refresher } = setup(t);
  rmSync(confDir, { recursive: true });
  const value = desiredCondition(refresher.refresh(), false);
  assert.equal(value.status, 'False');
  assert.equal(value.reason, CONDITION_REASONS.dirUnreadable);
  assert.match(value.message, new RegExp(confDir));
});

test('crio semantics with a valid file whose plugin binary is missing is False/CNIPluginNotFound', (t) => {
  const { confDir, refresher } = setup(t, 'crio', []);
  writeAtomic(join(confDir, '10-a.conflist'), conflist('a', ['bridge']));
  const value = desiredCondition(refresher.refresh(), false);
  assert.equal(value.status, 'False');
  assert.equal(value.reason, CONDITION_REASONS.pluginMissing);
  assert.match(value.message, /missing plugin binaries bridge/);
});

test('a broken file with a last good config is True/LastGoodConfigServed, and False/NetworkConfigStale past --stale-after', (t) => {
  const { confDir, refresher } = setup(t);
  const path = join(confDir, '10-a.conflist');
  writeAtomic(path, conflist('a'));
  refresher.refresh();
  writeAtomic(path, '{"cniVersion": "1.0.0", "name": "a", "plugins": [{}]}');
  const state = refresher.refresh();
  assert.equal(state.selection.stale, true);
  const served = desiredCondition(state, true);
  assert.equal(served.status, 'True');
  assert.equal(served.reason, CONDITION_REASONS.lastGood);
  assert.match(served.message, /serving the last good config of network "a" from .*10-a\.conflist/);
  assert.match(served.message, / since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ: /);
  assert.match(served.message, /type/, 'the message carries the validation error');
  const tooLong = desiredCondition(state, false);
  assert.equal(tooLong.status, 'False');
  assert.equal(tooLong.reason, CONDITION_REASONS.staleTooLong);
  assert.match(tooLong.message, /longer than --stale-after/);
  // The message does not move with time: the same state gives the same text later.
  assert.equal(desiredCondition(state, true).message, served.message);
});

test('messages are capped so a huge error cannot bloat the Node object', (t) => {
  const { confDir, refresher } = setup(t);
  writeFileSync(
    join(confDir, `10-${'x'.repeat(200)}.conflist`),
    `{"name": "${'y'.repeat(5000)}", "plugins": [`,
  );
  const value = desiredCondition(refresher.refresh(), false);
  assert.ok(value.message.length <= MAX_MESSAGE_LENGTH, `${value.message.length} chars`);
});

const T0 = Date.parse('2026-11-27T10:00:00.700Z');
const loaded = { status: 'True', reason: CONDITION_REASONS.loaded, message: 'network "a"' } as const;
const broken = { status: 'False', reason: CONDITION_REASONS.invalid, message: 'x: bad' } as const;

test('lastTransitionTime moves only when status or reason changes, in whole seconds', () => {
  const first = observe(undefined, loaded, T0);
  assert.equal(first.lastTransitionTime, Date.parse('2026-11-27T10:00:00Z'));
  assert.equal(first.transitioned, false);
  // Same status and reason, new message: the time stays, the message follows.
  const renamed = observe(first, { ...loaded, message: 'network "b"' }, T0 + 60_000);
  assert.equal(renamed.lastTransitionTime, first.lastTransitionTime);
  assert.equal(renamed.message, 'network "b"');
  // Identical value: the very same object (callers compare by identity to skip work).
  assert.equal(observe(renamed, { ...loaded, message: 'network "b"' }, T0 + 90_000), renamed);
  // Status changes: the time moves.
  const down = observe(renamed, broken, T0 + 120_000);
  assert.equal(down.lastTransitionTime, Date.parse('2026-11-27T10:02:00Z'));
  assert.equal(down.transitioned, true);
  // Reason changes with the same status: the time moves too.
  const other = observe(down, { ...broken, reason: CONDITION_REASONS.noConfig }, T0 + 180_000);
  assert.equal(other.lastTransitionTime, Date.parse('2026-11-27T10:03:00Z'));
});

test('a restart adopts the Node’s transition time when status and reason still match', () => {
  const started = observe(undefined, loaded, T0 + 3_600_000);
  const existing = [
    { type: 'Ready', status: 'True', reason: 'KubeletReady', lastTransitionTime: new Date(T0 - 10_000) },
    {
      type: CONDITION_TYPE,
      status: 'True',
      reason: CONDITION_REASONS.loaded,
      lastTransitionTime: new Date(T0),
    },
  ];
  assert.equal(adoptExisting(started, existing).lastTransitionTime, Date.parse('2026-11-27T10:00:00Z'));
  // Strings (as JSON gives them) work as well as Dates.
  assert.equal(
    adoptExisting(started, [
      {
        type: CONDITION_TYPE,
        status: 'True',
        reason: CONDITION_REASONS.loaded,
        lastTransitionTime: '2026-11-27T10:00:00Z',
      },
    ]).lastTransitionTime,
    Date.parse('2026-11-27T10:00:00Z'),
  );
});

test('a restart does not adopt a time when the status or reason differ, or when it saw a transition itself', () => {
  const started = observe(undefined, loaded, T0 + 3_600_000);
  const wasDown = [
    {
      type: CONDITION_TYPE,
      status: 'False',
      reason: CONDITION_REASONS.invalid,
      lastTransitionTime: new Date(T0),
    },
  ];
  assert.equal(adoptExisting(started, wasDown), started);
  const otherReason = [
    {
      type: CONDITION_TYPE,
      status: 'True',
      reason: CONDITION_REASONS.lastGood,
      lastTransitionTime: new Date(T0),
    },
  ];
  assert.equal(adoptExisting(started, otherReason), started);
  assert.equal(adoptExisting(started, undefined), started);
  assert.equal(
    adoptExisting(started, [{ type: 'Ready', status: 'True', lastTransitionTime: new Date(T0) }]),
    started,
  );
  // Seen going down and up again since start: that transition is real and newer than the Node's record.
  const flapped = observe(observe(started, broken, T0 + 3_601_000), loaded, T0 + 3_602_000);
  const same = [
    {
      type: CONDITION_TYPE,
      status: 'True',
      reason: CONDITION_REASONS.loaded,
      lastTransitionTime: new Date(T0),
    },
  ];
  assert.equal(adoptExisting(flapped, same).lastTransitionTime, flapped.lastTransitionTime);
  // A time in the future of our own observation is not trusted.
  const future = [
    {
      type: CONDITION_TYPE,
      status: 'True',
      reason: CONDITION_REASONS.loaded,
      lastTransitionTime: new Date(T0 + 7_200_000),
    },
  ];
  assert.equal(adoptExisting(started, future), started);
});

test('differs() says when a write would change what the Node says', () => {
  const a = observe(undefined, loaded, T0);
  assert.equal(differs(a, undefined), true);
  assert.equal(differs(a, a), false);
  assert.equal(differs(observe(a, { ...loaded, message: 'other' }, T0 + 1000), a), true);
  assert.equal(differs({ ...a, lastTransitionTime: a.lastTransitionTime - 1000 }, a), true);
});

test('the patch is a strategic-merge body of nodes/status holding only this condition, RFC 3339 seconds', () => {
  const tracked = observe(undefined, loaded, T0);
  const patch = conditionPatch(tracked, T0 + 5_000);
  assert.deepEqual(patch, {
    status: {
      conditions: [
        {
          type: CONDITION_TYPE,
          status: 'True',
          reason: CONDITION_REASONS.loaded,
          message: 'network "a"',
          lastHeartbeatTime: '2026-11-27T10:00:05Z',
          lastTransitionTime: '2026-11-27T10:00:00Z',
        },
      ],
    },
  });
  assert.equal(isoSeconds(T0), '2026-11-27T10:00:00Z');
  assert.deepEqual(removalPatch(), { status: { conditions: [{ type: CONDITION_TYPE, $patch: 'delete' }] } });
});

test('every reason is CamelCase, as Kubernetes condition reasons must be', () => {
  for (const reason of Object.values(CONDITION_REASONS)) assert.match(reason, /^[A-Z][A-Za-z0-9]*$/);
  assert.match(CONDITION_TYPE, /^[A-Z][A-Za-z0-9]*$/);
});
