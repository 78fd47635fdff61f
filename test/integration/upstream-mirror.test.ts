// The upstream mirror against a fake CRI runtime on a real unix socket: a grpc-js server whose
// conditions the test sets, a socket that accepts connections and never answers (a hung runtime),
// and no socket at all. The real containerd is exercised in test/e2e/conformance-upstream.test.ts.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import type { Server as NetServer, Socket } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import type { Semantics } from '../../src/cni/types.js';
import { RuntimeServiceService } from '../../src/gen/runtime/v1/api.js';
import type { RuntimeCondition, RuntimeServiceServer } from '../../src/gen/runtime/v1/api.js';
import { createLogger } from '../../src/log.js';
import { startUpstreamMirror } from '../../src/upstream/mirror.js';
import type { UpstreamMirror, UpstreamMirrorOptions } from '../../src/upstream/mirror.js';
import { sampleValue, scrape, startInProcess } from '../helpers/agent.js';
import { condition, parsedInfo } from '../helpers/cri.js';
import { conflist, tempDir } from '../helpers/fs.js';
import { until } from '../helpers/wait.js';

const READY: RuntimeCondition[] = [
  { type: 'RuntimeReady', status: true, reason: '', message: '' },
  { type: 'NetworkReady', status: true, reason: '', message: '' },
];
const NETWORK_NOT_READY: RuntimeCondition[] = [
  { type: 'RuntimeReady', status: true, reason: '', message: '' },
  {
    type: 'NetworkReady',
    status: false,
    reason: 'NetworkPluginNotReady',
    message: 'Network plugin returns error: cni plugin not initialized',
  },
];

interface FakeRuntime {
  conditions: RuntimeCondition[];
  info: Record<string, string>;
  statusCalls: number;
  stop(): Promise<void>;
}

/** A CRI runtime that answers Version and Status with whatever the test sets. */
async function startFakeRuntime(t: TestContext, socket: string, name = 'containerd'): Promise<FakeRuntime> {
  const server = new Server();
  const fake: FakeRuntime = {
    conditions: READY,
    info: { lastCNILoadStatus: 'OK' },
    statusCalls: 0,
    stop: () => new Promise((resolve) => server.tryShutdown(() => resolve())),
  };
  const handlers: RuntimeServiceServer = {
    version: (_call, callback) =>
      callback(null, {
        version: '0.1.0',
        runtimeName: name,
        runtimeVersion: '1.6.20',
        runtimeApiVersion: 'v1',
      }),
    status: (call, callback) => {
      fake.statusCalls++;
      callback(null, {
        status: { conditions: fake.conditions },
        info: call.request.verbose ? fake.info : {},
        runtimeHandlers: [],
        features: undefined,
      });
    },
  };
  server.addService(RuntimeServiceService, handlers);
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`unix:${socket}`, ServerCredentials.createInsecure(), (error) =>
      error ? reject(error) : resolve(),
    ),
  );
  t.after(() => server.forceShutdown());
  return fake;
}

/** A socket that accepts connections and never says a word: a hung runtime. */
async function startHungSocket(t: TestContext, socket: string): Promise<NetServer> {
  const held: Socket[] = [];
  const server = createServer((connection) => held.push(connection));
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  t.after(() => {
    for (const connection of held) connection.destroy();
    server.close();
  });
  return server;
}

interface Logs {
  lines: () => { level: number; msg: string; [key: string]: unknown }[];
}

function mirrorFor(
  t: TestContext,
  socket: string,
  overrides: Partial<UpstreamMirrorOptions> = {},
): { mirror: UpstreamMirror; registry: Registry; logs: Logs } {
  const registry = new Registry();
  const records: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      records.push(chunk.toString());
      done();
    },
  });
  const mirror = startUpstreamMirror({
    socketPath: socket,
    log: createLogger('info', 'json', stream),
    registry,
    networkReady: () => true,
    intervalMs: 40,
    timeoutMs: 5000, // generous: a loaded 2-core CI machine can take over 1 s for a first connect and two calls
    initialBackoffMs: 40,
    maxBackoffMs: 160,
    ...overrides,
  });
  t.after(() => mirror.stop());
  return {
    mirror,
    registry,
    logs: {
      lines: () =>
        records.flatMap((chunk) =>
          chunk
            .split('\n')
            .filter(Boolean)
            .map((line) => JSON.parse(line) as { level: number; msg: string }),
        ),
    },
  };
}

async function metric(registry: Registry, sample: string): Promise<number | undefined> {
  return sampleValue(await registry.metrics(), sample);
}

test('RuntimeReady, the upstream conditions and info follow an answering runtime', async (t) => {
  const socket = join(tempDir(t), 'runtime.sock');
  const fake = await startFakeRuntime(t, socket);
  const { mirror, registry } = mirrorFor(t, socket);
  await mirror.firstPoll;
  assert.deepEqual(mirror.runtimeCondition(), READY[0]);
  assert.equal(await metric(registry, 'cri_netstatus_upstream_up'), 1);
  assert.equal(await metric(registry, 'cri_netstatus_upstream_condition{type="RuntimeReady"}'), 1);
  assert.equal(await metric(registry, 'cri_netstatus_upstream_condition{type="NetworkReady"}'), 1);

  fake.conditions = [
    { type: 'RuntimeReady', status: false, reason: 'ContainerdNotReady', message: 'shutting down' },
    READY[1] as RuntimeCondition,
  ];
  await until('RuntimeReady turns false', () => !mirror.runtimeCondition().status);
  assert.deepEqual(mirror.runtimeCondition(), {
    type: 'RuntimeReady',
    status: false,
    reason: 'ContainerdNotReady',
    message: `containerd at unix://${socket} reports RuntimeReady=false: shutting down`,
  });
  assert.equal(await metric(registry, 'cri_netstatus_upstream_condition{type="RuntimeReady"}'), 0);
  assert.equal(
    await metric(registry, 'cri_netstatus_upstream_up'),
    1,
    'a not-ready answer is still an answer',
  );

  fake.conditions = READY;
  await until('RuntimeReady recovers', () => mirror.runtimeCondition().status);
  const info = JSON.parse(JSON.stringify(mirror.info())) as Record<string, unknown>;
  assert.equal(info.endpoint, `unix://${socket}`);
  assert.deepEqual(info.runtime, { name: 'containerd', version: '1.6.20', apiVersion: 'v1' });
  assert.equal(info.reachable, true);
  assert.equal(info.lastCNILoadStatus, 'OK');
  assert.deepEqual(info.conditions, READY);
  assert.match(String(info.lastPoll), /^\d{4}-\d\d-\d\dT/);
  assert.equal(info.error, null);
});

test('a missing socket is unreachable at once, and the runtime is picked up when it appears', async (t) => {
  const socket = join(tempDir(t), 'runtime.sock');
  const { mirror, registry } = mirrorFor(t, socket);
  await mirror.firstPoll;
  const down = mirror.runtimeCondition();
  assert.equal(down.status, false);
  assert.equal(down.reason, 'UpstreamRuntimeUnreachable');
  assert.ok(down.message.includes(`unix://${socket}`), down.message);
  assert.ok(down.message.includes('ENOENT'), `the message names the error: ${down.message}`);
  assert.equal(await metric(registry, 'cri_netstatus_upstream_up'), 0);
  assert.equal(
    await metric(registry, 'cri_netstatus_upstream_condition{type="RuntimeReady"}'),
    undefined,
    'no upstream conditions are exported while it does not answer',
  );

  await startFakeRuntime(t, socket);
  await until('the runtime is reached', () => mirror.runtimeCondition().status);
  assert.equal(await metric(registry, 'cri_netstatus_upstream_up'), 1);
});

test('a runtime that stops and restarts on the same socket is followed down and back up', async (t) => {
  const socket = join(tempDir(t), 'runtime.sock');
  let fake = await startFakeRuntime(t, socket);
  const { mirror, registry, logs } = mirrorFor(t, socket);
  await mirror.firstPoll;
  assert.equal(mirror.runtimeCondition().status, true);
  await fake.stop();
  await until('RuntimeReady turns false', () => !mirror.runtimeCondition().status);
  assert.equal(mirror.runtimeCondition().reason, 'UpstreamRuntimeUnreachable');
  // several failed polls in a row: still one log line for going down
  await until(
    'a few retries happened',
    () => (mirror.info() as { consecutiveFailures: number }).consecutiveFailures >= 3,
  );
  fake = await startFakeRuntime(t, socket);
  await until('RuntimeReady recovers', () => mirror.runtimeCondition().status);
  const unreachablePolls = await metric(registry, 'cri_netstatus_upstream_polls_total{result="unreachable"}');
  assert.ok((unreachablePolls ?? 0) >= 3, `unreachable polls counted: ${unreachablePolls}`);
  const messages = logs.lines().map((line) => line.msg);
  assert.deepEqual(messages, [
    'mirroring the upstream CRI runtime',
    'the upstream CRI runtime does not answer; serving RuntimeReady=false',
    'the upstream CRI runtime answers again',
  ]);
});

test('a hung runtime times out within the bound and never holds up the mirrored answer', async (t) => {
  const socket = join(tempDir(t), 'runtime.sock');
  await startHungSocket(t, socket);
  const started = Date.now();
  const { mirror } = mirrorFor(t, socket, { timeoutMs: 300 });
  await mirror.firstPoll;
  const elapsed = Date.now() - started;
  assert.ok(elapsed < 2000, `the first poll is bounded by the timeout (took ${elapsed}ms)`);
  const hung = mirror.runtimeCondition();
  assert.equal(hung.status, false);
  assert.equal(hung.reason, 'UpstreamRuntimeTimeout');
  assert.match(
    hung.message,
    /did not answer Status within 0\.3s \(failing since [^)]+\); it may be hung or overloaded$/,
  );
});

test('divergence: the runtime says NetworkReady=false for two polls while its own rules find a network', async (t) => {
  const socket = join(tempDir(t), 'runtime.sock');
  const fake = await startFakeRuntime(t, socket, 'containerd');
  let confDirReady = true;
  const asked: Semantics[] = [];
  const { mirror, registry, logs } = mirrorFor(t, socket, {
    networkReady: () => {
      throw new Error('the served NetworkReady must not be used when the runtime is known');
    },
    verdictReady: (semantics) => {
      asked.push(semantics);
      return confDirReady;
    },
  });
  await mirror.firstPoll;
  assert.equal(await metric(registry, 'cri_netstatus_network_ready_divergence'), 0);
  fake.conditions = NETWORK_NOT_READY;
  await until(
    'divergence is reported',
    () =>
      (mirror.info() as { networkReadyDivergence: { diverged: boolean } }).networkReadyDivergence.diverged,
  );
  assert.equal(await metric(registry, 'cri_netstatus_network_ready_divergence'), 1);
  assert.equal(await metric(registry, 'cri_netstatus_upstream_condition{type="NetworkReady"}'), 0);
  assert.ok(
    asked.every((s) => s === 'containerd-1.7'),
    `compared under containerd's rules: ${asked.join(',')}`,
  );
  const info = mirror.info() as { networkReadyDivergence: { comparedWith: string; since: string | null } };
  assert.equal(info.networkReadyDivergence.comparedWith, 'the conf dir under containerd-1.7 semantics');
  assert.match(String(info.networkReadyDivergence.since), /^\d{4}-/);

  confDirReady = false; // the dir is really empty now: the runtime is right
  await until(
    'divergence clears',
    () =>
      !(mirror.info() as { networkReadyDivergence: { diverged: boolean } }).networkReadyDivergence.diverged,
  );
  assert.equal(await metric(registry, 'cri_netstatus_network_ready_divergence'), 0);
  const messages = logs.lines().map((line) => line.msg);
  assert.equal(messages.filter((m) => m.startsWith('the runtime reports NetworkReady=false')).length, 1);
  assert.equal(messages.filter((m) => m.startsWith('the runtime and the conf dir agree')).length, 1);
});

test('a single not-ready answer (a runtime mid-reload) is not a divergence', async (t) => {
  const socket = join(tempDir(t), 'runtime.sock');
  const fake = await startFakeRuntime(t, socket, 'some-runtime');
  const { mirror, registry } = mirrorFor(t, socket, { networkReady: () => true, intervalMs: 250 });
  await mirror.firstPoll;
  const diverged = (): boolean =>
    (mirror.info() as { networkReadyDivergence: { diverged: boolean } }).networkReadyDivergence.diverged;
  fake.conditions = NETWORK_NOT_READY;
  const calls = fake.statusCalls;
  await until('one not-ready poll', () => fake.statusCalls >= calls + 1);
  fake.conditions = READY;
  assert.equal(diverged(), false, 'one not-ready sample is not a divergence');
  assert.equal(await metric(registry, 'cri_netstatus_network_ready_divergence'), 0);
  await until('two more polls', () => fake.statusCalls >= calls + 3);
  assert.equal(diverged(), false);
  const info = mirror.info() as { networkReadyDivergence: { comparedWith: string } };
  assert.equal(
    info.networkReadyDivergence.comparedWith,
    'served NetworkReady',
    'unknown runtime: served NetworkReady',
  );
});

test("refuses to mirror the agent's own socket", (t) => {
  const dir = tempDir(t);
  assert.throws(
    () =>
      startUpstreamMirror({
        socketPath: join(dir, 'cri.sock'),
        ownSocketPath: join(dir, 'cri.sock'),
        log: createLogger('silent', 'json'),
        registry: new Registry(),
        networkReady: () => true,
      }),
    /is this agent's own --socket; point it at the node's container runtime/,
  );
});

test('serve --runtime-endpoint: the first Status call already mirrors the runtime, and info.upstream shows it', async (t) => {
  const dir = tempDir(t);
  const socket = join(dir, 'runtime.sock');
  await startFakeRuntime(t, socket);
  const confDir = join(dir, 'net.d');
  mkdirSync(confDir);
  writeFileSync(join(confDir, '10-net.conflist'), conflist('net'));
  const { client, metricsUrl } = await startInProcess(t, ['--runtime-endpoint', `unix://${socket}`], confDir);
  const response = await client.status(true);
  assert.equal(condition(response, 'RuntimeReady').status, true);
  const info = parsedInfo(response);
  const upstream = info.upstream as Record<string, unknown>;
  assert.equal(upstream.endpoint, `unix://${socket}`);
  assert.equal(upstream.lastCNILoadStatus, 'OK');
  assert.deepEqual(upstream.conditions, READY);
  assert.equal(await scrape(metricsUrl, 'cri_netstatus_upstream_up'), 1);
  assert.equal(await scrape(metricsUrl, 'cri_netstatus_runtime_ready'), 1);
  assert.equal(await scrape(metricsUrl, 'cri_netstatus_network_ready_divergence'), 0);
});

test('serve --runtime-endpoint with a hung runtime: Status answers at once, RuntimeReady false with the reason', async (t) => {
  const dir = tempDir(t);
  const socket = join(dir, 'runtime.sock');
  await startHungSocket(t, socket);
  const { client, metricsUrl } = await startInProcess(t, ['--runtime-endpoint', `unix://${socket}`]);
  const slowest = { ms: 0 };
  for (let i = 0; i < 20; i++) {
    const started = process.hrtime.bigint();
    const response = await client.status();
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    slowest.ms = Math.max(slowest.ms, ms);
    const runtime = condition(response, 'RuntimeReady');
    assert.equal(runtime.status, false);
    assert.equal(runtime.reason, 'UpstreamRuntimeTimeout');
  }
  // A Status that waited for the upstream would take the 2s poll timeout.
  assert.ok(slowest.ms < 1000, `Status never waits for the upstream (slowest ${slowest.ms.toFixed(1)}ms)`);
  assert.equal(await scrape(metricsUrl, 'cri_netstatus_runtime_ready'), 0);
  assert.equal(await scrape(metricsUrl, 'cri_netstatus_upstream_up'), 0);
});

test('serve --semantics auto picks the profile of the runtime on --runtime-endpoint, else isulad', async (t) => {
  const dir = tempDir(t);
  const socket = join(dir, 'runtime.sock');
  await startFakeRuntime(t, socket); // containerd 1.6.20
  const confDir = join(dir, 'net.d');
  mkdirSync(confDir);
  // A string disableCheck: libcni v1.1 (containerd 1.6/1.7) rejects it; newer ones accept it.
  writeFileSync(
    join(confDir, '10-net.conflist'),
    '{"name":"net","disableCheck":"true","plugins":[{"type":"bridge"}]}',
  );
  const picked = await startInProcess(
    t,
    ['--semantics', 'auto', '--runtime-endpoint', `unix://${socket}`],
    confDir,
  );
  const info = JSON.stringify(parsedInfo(await picked.client.status(true)));
  assert.match(info, /"semantics":"containerd-1\.7"/);
  assert.equal(condition(await picked.client.status(false), 'NetworkReady').status, false);
  const alone = await startInProcess(t, ['--semantics', 'auto'], confDir);
  assert.match(JSON.stringify(parsedInfo(await alone.client.status(true))), /"semantics":"isulad"/);
  assert.equal(condition(await alone.client.status(false), 'NetworkReady').status, true);
});
