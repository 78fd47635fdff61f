import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { test } from 'node:test';
import { REPO_ROOT, runCli, spawnServe } from '../helpers/agent.js';
import { condition, criClient } from '../helpers/cri.js';
import { conflist, tempDir, writeAtomic } from '../helpers/fs.js';

function confDirWith(root: string): string {
  const dir = join(root, 'net.d');
  mkdirSync(dir);
  writeFileSync(join(dir, '10-a.conflist'), conflist('a'));
  return dir;
}

test('garbage bytes on the socket do not stop the agent from serving', async (t) => {
  const root = tempDir(t);
  const socket = join(root, 'cri.sock');
  await spawnServe(t, ['--cni-conf-dir', confDirWith(root), '--metrics-address', 'off'], socket);
  for (const garbage of [
    Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'),
    Buffer.alloc(64 * 1024, 0xff),
    Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x04\x08\x00\x00\x00\x00\x00'),
  ]) {
    await new Promise<void>((resolve) => {
      const s = connect(socket, () => s.end(garbage));
      s.on('error', () => resolve());
      s.on('close', () => resolve());
      s.resume();
    });
  }
  const client = criClient(socket);
  t.after(() => client.close());
  assert.equal(condition(await client.status(), 'NetworkReady').status, true);
});

test('a second serve on a live socket exits with a clear error and leaves the first one serving', async (t) => {
  const root = tempDir(t);
  const socket = join(root, 'cri.sock');
  const conf = confDirWith(root);
  await spawnServe(t, ['--cni-conf-dir', conf, '--metrics-address', 'off'], socket);
  const second = await runCli([
    'serve',
    '--cni-conf-dir',
    conf,
    '--socket',
    socket,
    '--metrics-address',
    'off',
    '--kube',
    'off',
  ]);
  assert.equal(second.code, 1);
  assert.match(
    second.stderr,
    new RegExp(
      `another process is serving on ${socket}; stop it \\(or its pod\\) first, or choose another --socket`,
    ),
  );
  const client = criClient(socket);
  t.after(() => client.close());
  assert.equal((await client.version()).runtimeName, 'cri-netstatus');
});

test('a stale socket left by a killed agent is replaced; a non-socket file is never deleted', async (t) => {
  const root = tempDir(t);
  const socket = join(root, 'cri.sock');
  const conf = confDirWith(root);
  const first = await spawnServe(t, ['--cni-conf-dir', conf, '--metrics-address', 'off'], socket);
  first.child.kill('SIGKILL');
  await first.exited;
  assert.ok(lstatSync(socket).isSocket(), 'SIGKILL leaves the socket file behind');
  const second = await spawnServe(t, ['--cni-conf-dir', conf, '--metrics-address', 'off'], socket);
  assert.match(second.output(), /serving CRI/);

  const plain = join(root, 'not-a-socket');
  writeFileSync(plain, 'precious');
  const refused = await runCli([
    'serve',
    '--cni-conf-dir',
    conf,
    '--socket',
    plain,
    '--metrics-address',
    'off',
    '--kube',
    'off',
  ]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /refusing to replace .*not-a-socket: it exists and is not a socket/);
  assert.ok(existsSync(plain));
});

test('SIGTERM with calls in flight: they complete, the socket is removed, exit 0', async (t) => {
  const root = tempDir(t);
  const socket = join(root, 'cri.sock');
  const conf = confDirWith(root);
  // Enough files that verbose answers take the server real work, so calls are in flight at SIGTERM.
  for (let i = 0; i < 300; i++) writeFileSync(join(conf, `${100 + i}-n.conflist`), conflist(`n${i}`));
  const agent = await spawnServe(
    t,
    ['--cni-conf-dir', conf, '--metrics-address', 'off', '--log-format', 'text'],
    socket,
  );
  const client = criClient(socket);
  t.after(() => client.close());
  await client.status();
  // Sixteen clients call back to back; SIGTERM lands while calls are in flight.
  const calls: { start: number; end: number; result: string }[] = [];
  let exited = false;
  void agent.exited.then(() => (exited = true));
  const worker = async () => {
    while (!exited) {
      const start = performance.now();
      const result = await client.status(true).then(
        () => 'ok',
        (error: unknown) => (error instanceof Error ? error.message : String(error)),
      );
      calls.push({ start, end: performance.now(), result });
      if (result !== 'ok') break;
    }
  };
  const workers = Array.from({ length: 16 }, worker);
  // Real time, not a test clock: the agent is another process; let the calls get in flight.
  await new Promise((resolve) => setTimeout(resolve, 300));
  const signalAt = performance.now();
  agent.child.kill('SIGTERM');
  const code = await agent.exited;
  await Promise.all(workers);
  assert.equal(code, 0, agent.output());
  const straddling = calls.filter((c) => c.start < signalAt && c.end > signalAt);
  assert.ok(
    straddling.some((c) => c.result === 'ok'),
    `a call in flight at SIGTERM was answered: ${JSON.stringify(straddling.slice(0, 3))}`,
  );
  // Calls sent after the drain began see UNAVAILABLE; none is cut off mid-answer.
  for (const { result } of calls) assert.ok(result === 'ok' || /UNAVAILABLE/.test(result), result);
  assert.equal(existsSync(socket), false, 'the socket is removed');
  assert.match(agent.output(), /shutting down: draining in-flight calls/);
});

test('SIGINT stops the agent the same way', async (t) => {
  const root = tempDir(t);
  const socket = join(root, 'cri.sock');
  const agent = await spawnServe(
    t,
    ['--cni-conf-dir', confDirWith(root), '--metrics-address', 'off'],
    socket,
  );
  agent.child.kill('SIGINT');
  assert.equal(await agent.exited, 0);
  assert.equal(existsSync(socket), false);
});

test('the socket is created with mode 0660 by default and --socket-mode when given', async (t) => {
  const root = tempDir(t);
  const conf = confDirWith(root);
  const a = join(root, 'a.sock');
  await spawnServe(t, ['--cni-conf-dir', conf, '--metrics-address', 'off'], a);
  assert.equal(lstatSync(a).mode & 0o777, 0o660);
  const b = join(root, 'b.sock');
  await spawnServe(t, ['--cni-conf-dir', conf, '--metrics-address', 'off', '--socket-mode', '0600'], b);
  assert.equal(lstatSync(b).mode & 0o777, 0o600);
});

test('npm start serves the embedded example config', async (t) => {
  const root = tempDir(t);
  const socket = join(root, 'cri.sock');
  // The same flags package.json's start script uses, on a private socket and port.
  await spawnServe(
    t,
    [
      '--cni-conf-dir',
      join(REPO_ROOT, 'examples', 'net.d'),
      '--cni-bin-dir',
      '/opt/cni/bin,/usr/lib/cni',
      '--metrics-address',
      '127.0.0.1:0',
      '--log-format',
      'text',
    ],
    socket,
  );
  const client = criClient(socket);
  t.after(() => client.close());
  assert.equal(condition(await client.status(), 'NetworkReady').status, true);
  const pkg = await import('node:fs').then(
    (fs) =>
      JSON.parse(fs.readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } },
  );
  assert.match(pkg.scripts.start, /serve --cni-conf-dir examples\/net\.d/);
});

test('logs say one line per state transition, never one per Status call', async (t) => {
  const root = tempDir(t);
  const socket = join(root, 'cri.sock');
  const conf = confDirWith(root);
  const agent = await spawnServe(t, ['--cni-conf-dir', conf, '--metrics-address', 'off'], socket);
  const client = criClient(socket);
  t.after(() => client.close());
  await client.status();
  const lines = () => agent.output().trim().split('\n');
  const before = lines().length;
  for (let i = 0; i < 200; i++) await client.status(i % 2 === 0);
  assert.equal(lines().length, before, 'no log line for unchanged Status calls');

  // Atomically: an in-place write's truncation could be seen on its own, a second transition.
  writeAtomic(join(conf, '10-a.conflist'), '{"name": "a", "plugins": [');
  await client.status();
  await client.status();
  const after = lines()
    .slice(before)
    .map((line) => JSON.parse(line) as { level: number; msg: string; kind: string; file?: string });
  const kinds = after.map((entry) => entry.kind);
  assert.deepEqual(kinds.sort(), ['ConfigStale', 'FileStale']);
  const stale = after.find((entry) => entry.kind === 'FileStale');
  assert.equal(stale?.level, 40);
  assert.equal(stale?.file, '10-a.conflist');
  assert.match(
    stale?.msg ?? '',
    /10-a\.conflist failed to load, keeping its last good content: error parsing configuration list: unexpected end of JSON input \(line 1, column \d+: the file ends early; is it truncated or still being written\?\)/,
  );
});

test('a start-up failure after the socket is up stops everything: exit 1, no socket left, no process left', async (t) => {
  const root = tempDir(t);
  const socket = join(root, 'cri.sock');
  const taken = createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  t.after(() => taken.close());
  const address = taken.address();
  assert.ok(address && typeof address === 'object');
  const result = await runCli([
    'serve',
    '--cni-conf-dir',
    confDirWith(root),
    '--socket',
    socket,
    '--metrics-address',
    `127.0.0.1:${address.port}`,
    '--kube',
    'off',
  ]);
  assert.equal(result.code, 1);
  assert.match(result.stderr, /cannot listen on 127\.0\.0\.1:\d+ \(--metrics-address\): .*EADDRINUSE/);
  assert.equal(existsSync(socket), false, 'the CRI socket is removed again');
});
