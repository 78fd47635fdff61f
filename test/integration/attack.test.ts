// The attacks that once took the agent past the chart's memory limit, against a real `serve`
// child with the image's NODE_OPTIONS: held streams, many Watch streams, many idle connections,
// half-sent frames, 10,000 Status calls at once, and concurrent verbose calls over 5,000 files.
// During each the agent must stay up and serve a normal Status on a fresh connection, its peak RSS
// (VmHWM) must stay under a bound well inside the chart's memory limit (130 MiB on Node 20, 165 MiB
// on Node 24: see BOUNDS) and RSS come back near its baseline within 30 s of the release. The child runs on the Node that runs the tests
// (process.execPath): `npm test` under the image's Node 24, as .ci/run does, tests the image's runtime.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { ClientHttp2Session } from 'node:http2';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import { REPO_ROOT, startServeProcess } from '../helpers/agent.js';
import type { ServeProcess } from '../helpers/agent.js';
import { condition, criClient } from '../helpers/cri.js';
import { conflist, tempDir } from '../helpers/fs.js';
import { grpcFrame, grpcStatusOf, h2Session, rawRequest } from '../helpers/h2.js';
import { MAX_OPEN_STREAMS } from '../../src/cri/grpc-server.js';
import { StatusRequest } from '../../src/gen/runtime/v1/api.js';
import { until } from '../helpers/wait.js';

const MiB = 1024 * 1024;
/** The chart's memory limit, where the kubelet kills the agent: read from values.yaml so the two cannot drift. */
const CHART_LIMIT = ((): number => {
  const values = readFileSync(join(REPO_ROOT, 'charts', 'cri-netstatus', 'values.yaml'), 'utf8');
  const match = /^ {2}limits:\n {4}memory: (\d+)Mi$/m.exec(values);
  if (!match?.[1]) throw new Error('no resources.limits.memory in the chart values');
  return Number(match[1]) * MiB;
})();
/**
 * Peak RSS and settle bounds per Node major. Node 20: issue 12's 120 MiB plus the refresh worker
 * thread's own isolate (issue 11: about 9 MiB of baseline, 60.8 → 69.7 MiB). Node 24, the image's:
 * its runtime alone idles 20 MiB higher (90 MiB: 11 MiB more of the larger node binary resident,
 * about 9 MiB more in the two V8 isolates' new trusted spaces and larger heaps), and the same storms
 * add 40–65 MiB of short-lived stream objects before V8 collects them, peaking at 130–158 MiB; after
 * the half-sent storm up to 30 MiB of malloc'd memory can stay resident though V8's heap is back at
 * its baseline. So its bounds are 165 MiB and 35 MiB: the peak stays 27 MiB under the chart's
 * 192 MiB limit, which was raised from 160 MiB for Node 24. Any other Node is held to Node 24's.
 */
const BOUNDS =
  process.versions.node.split('.')[0] === '20'
    ? { peak: 130 * MiB, settledAboveBaseline: 25 * MiB }
    : { peak: 165 * MiB, settledAboveBaseline: 35 * MiB };
const PEAK_LIMIT = BOUNDS.peak;
const SETTLED_ABOVE_BASELINE = BOUNDS.settledAboveBaseline;
const STATUS = '/runtime.v1.RuntimeService/Status';
const WATCH = '/grpc.health.v1.Health/Watch';
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

/** The image's NODE_OPTIONS, read from the Dockerfile so the two cannot drift apart. */
const IMAGE_NODE_OPTIONS = ((): string => {
  const match = /NODE_OPTIONS="([^"]*)"/.exec(readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8'));
  if (!match?.[1]) throw new Error('no NODE_OPTIONS in the Dockerfile');
  return match[1];
})();

function procStatus(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match?.[1]) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(match[1]) * 1024;
}

const mib = (bytes: number): string => `${(bytes / MiB).toFixed(1)} MiB`;

async function startAgent(t: TestContext, files = 1): Promise<{ agent: ServeProcess; socket: string }> {
  const dir = tempDir(t);
  const confDir = join(dir, 'net.d');
  const binDir = join(dir, 'bin');
  mkdirSync(confDir);
  mkdirSync(binDir);
  writeFileSync(join(binDir, 'bridge'), '#!/bin/sh\n', { mode: 0o755 });
  for (let i = 0; i < files; i++)
    writeFileSync(join(confDir, `${String(i).padStart(5, '0')}-net.conflist`), conflist(`net-${i}`));
  const socket = join(dir, 'cri.sock');
  const agent = await startServeProcess(
    socket,
    ['--cni-conf-dir', confDir, '--cni-bin-dir', binDir, '--kube', 'off'],
    { NODE_OPTIONS: IMAGE_NODE_OPTIONS },
  );
  t.after(async () => {
    // A crash (V8 out of heap, say) explains whatever failed: show how the agent ended.
    if (agent.child.exitCode !== null || agent.child.signalCode !== null)
      t.diagnostic(
        `the agent died (${agent.child.signalCode ?? agent.child.exitCode}): ${agent.output().slice(-2000)}`,
      );
    await agent.stop();
  });
  return { agent, socket };
}

/**
 * Baseline RSS (after a few calls), then `attack` (which resolves once it is in place and returns
 * its release), a normal Status on a fresh connection while it holds, the release, and the bounds.
 */
async function underAttack(
  t: TestContext,
  attack: (socket: string) => Promise<() => unknown>,
  files = 1,
): Promise<void> {
  const { agent, socket } = await startAgent(t, files);
  for (let i = 0; i < 5; i++) await agent.client.status(true);
  const baseline = procStatus(agent.pid, 'VmRSS');
  const release = await attack(socket);
  const order: string[] = [];
  const fresh = criClient(socket, 20_000);
  try {
    const answer = await fresh.status();
    order.push('status answered');
    assert.equal(condition(answer, 'NetworkReady').status, true);
  } finally {
    fresh.close();
  }
  order.push('released');
  await release();
  assert.deepEqual(order, ['status answered', 'released'], 'a normal Status is answered during the attack');
  const peak = procStatus(agent.pid, 'VmHWM');
  t.diagnostic(`Node ${process.versions.node}: baseline ${mib(baseline)}, peak ${mib(peak)}`);
  assert.ok(
    peak <= PEAK_LIMIT,
    `peak RSS ${mib(peak)} over ${mib(PEAK_LIMIT)} on Node ${process.versions.node}`,
  );
  // Kubelet-like polling meanwhile: the agent is not idle after an attack either.
  let settled = 0;
  let heap = '';
  const settling = until(
    `RSS to settle within ${mib(SETTLED_ABOVE_BASELINE)} of the baseline ${mib(baseline)}`,
    async () => {
      await agent.client.status();
      settled = procStatus(agent.pid, 'VmRSS');
      const metrics = await (await fetch(agent.metricsUrl)).text();
      heap = metrics
        .split('\n')
        .filter((line) => /^nodejs_(heap_size_(used|total)|external_memory)_bytes /.test(line))
        .map((line) => line.replace(/ (\d+)$/, (_, n: string) => ` ${mib(Number(n))}`))
        .join(', ');
      return settled <= baseline + SETTLED_ABOVE_BASELINE;
    },
    30_000,
    { intervalMs: 500, describe: () => `RSS ${mib(settled)}; ${heap}` },
  );
  await settling;
  t.diagnostic(`RSS after the release: ${mib(settled)}`);
  assert.ok((await agent.client.status()).status, 'the agent still serves after the attack');
}

async function sessions(socket: string, count: number): Promise<ClientHttp2Session[]> {
  const opened: ClientHttp2Session[] = [];
  for (let i = 0; i < count; i++) {
    const session = await h2Session(socket);
    session.on('error', () => undefined);
    opened.push(session);
  }
  return opened;
}

test("the peak bound keeps at least 24 MiB under the chart's memory limit, where the kubelet kills", () => {
  assert.ok(
    PEAK_LIMIT + 24 * MiB <= CHART_LIMIT,
    `peak bound ${mib(PEAK_LIMIT)} against the chart's limit ${mib(CHART_LIMIT)}: raise the limit or lower the peak`,
  );
});

test('held streams: 10 connections x 1,100 Status requests carrying 16 KiB, never ended', async (t) => {
  await underAttack(t, async (socket) => {
    const held = await sessions(socket, 10);
    const body = grpcFrame(Buffer.alloc(16 * 1024 - 5, 1), 16 * 1024);
    const answers: Promise<unknown>[] = [];
    for (const session of held)
      for (let i = 0; i < 1100; i++) answers.push(rawRequest(session, STATUS, body, { end: false }).answer);
    // In place once the server holds its share: the rest are refused, or queued by this client past 100 per connection.
    await new Promise((resolve) => setTimeout(resolve, 2000));
    return () => held.forEach((session) => session.destroy());
  });
});

test('many Watch streams: 100 connections x 100 Health.Watch streams', async (t) => {
  await underAttack(t, async (socket) => {
    const held = await sessions(socket, 100);
    const started: Promise<unknown>[] = [];
    for (const session of held)
      for (let i = 0; i < 100; i++) {
        const { stream } = rawRequest(session, WATCH, grpcFrame(Buffer.alloc(0)));
        started.push(new Promise((resolve) => stream.once('data', resolve).once('close', resolve)));
      }
    await Promise.all(started);
    return () => held.forEach((session) => session.destroy());
  });
});

test('10,000 Status calls at once: 100 connections x 100 complete requests', async (t) => {
  const codes = new Map<string, number>();
  let answered: Promise<unknown> = Promise.resolve();
  await underAttack(t, async (socket) => {
    const held = await sessions(socket, 100);
    const request = grpcFrame(Buffer.from(StatusRequest.encode({ verbose: false }).finish()));
    const count = (code: string): void => void codes.set(code, (codes.get(code) ?? 0) + 1);
    answered = Promise.all(
      held.flatMap((session) =>
        Array.from({ length: 100 }, async () => {
          const answer = await rawRequest(session, STATUS, request).answer;
          count(String(grpcStatusOf(answer)?.code ?? `reset ${answer.rstCode}`));
        }),
      ),
    );
    await answered;
    return () => held.forEach((session) => session.destroy());
  });
  // Each call is answered OK or refused as retryable (REFUSED_STREAM, 7) past MAX_OPEN_STREAMS;
  // before that limit these calls ran the agent out of V8 heap (a crash).
  t.diagnostic(`Status calls by gRPC code: ${JSON.stringify(Object.fromEntries(codes))}`);
  assert.deepEqual(
    [...codes.keys()].filter((code) => code !== '0' && code !== 'reset 7'),
    [],
    'every call answered OK or refused as retryable',
  );
  assert.equal(
    [...codes.values()].reduce((a, b) => a + b, 0),
    10_000,
  );
  assert.ok((codes.get('0') ?? 0) >= MAX_OPEN_STREAMS, `at least ${MAX_OPEN_STREAMS} calls answered OK`);
});

/**
 * Opens `count` raw connections and writes `bytes` on each; resolves once the server has taken up
 * every one (its SETTINGS arrived, or it closed the connection), so none is still in the accept
 * backlog when the test's own fresh connection comes: a backlog drained after it would make the
 * fresh connection the longest idle one and close it to make room (MAX_CONNECTIONS).
 */
async function rawSockets(socket: string, count: number, bytes: () => Buffer): Promise<Socket[]> {
  const opened: Socket[] = [];
  const taken: Promise<unknown>[] = [];
  for (let i = 0; i < count; i++) {
    const conn = connect(socket);
    conn.on('error', () => undefined);
    taken.push(new Promise((resolve) => conn.once('data', resolve).once('close', resolve)));
    await new Promise((resolve) => conn.once('connect', resolve).once('close', resolve));
    conn.write(bytes());
    opened.push(conn);
  }
  await Promise.all(taken);
  return opened;
}

test('many idle connections: 2,000 that sent the preface and nothing else', async (t) => {
  await underAttack(t, async (socket) => {
    const idle = await rawSockets(socket, 2000, () => Buffer.concat([PREFACE, settingsFrame()]));
    return () => idle.forEach((conn) => conn.destroy());
  });
});

test('half-sent frames: prefaces, HEADERS and DATA frames cut short, 300 connections of each', async (t) => {
  await underAttack(t, async (socket) => {
    const cut = [
      ...(await rawSockets(socket, 300, () => PREFACE.subarray(0, 10))),
      // A HEADERS frame header announcing 16 KiB of header block, then 3 bytes of it.
      ...(await rawSockets(socket, 300, () =>
        Buffer.concat([PREFACE, settingsFrame(), frameHeader(16_000, 0x1, 0x4, 1), Buffer.from([0, 0, 0])]),
      )),
    ];
    // A request whose DATA frame announces 16 KiB and delivers 100 bytes, on real HTTP/2 sessions.
    const held = await sessions(socket, 100);
    for (const session of held)
      for (let i = 0; i < 100; i++)
        rawRequest(session, STATUS, grpcFrame(Buffer.alloc(100), 16_000), { end: false });
    await new Promise((resolve) => setTimeout(resolve, 1000));
    return () => {
      cut.forEach((conn) => conn.destroy());
      held.forEach((session) => session.destroy());
    };
  });
});

test('5,000 files with 200 concurrent verbose Status calls, four rounds', async (t) => {
  const codes = new Map<string, number>();
  let rounds: Promise<void> = Promise.resolve();
  await underAttack(
    t,
    async (socket) => {
      // Raw connections, 4 calls each: grpc-js would put every client on one shared connection.
      const held = await sessions(socket, 50);
      const verbose = grpcFrame(Buffer.from(StatusRequest.encode({ verbose: true }).finish()));
      const count = (code: string): void => void codes.set(code, (codes.get(code) ?? 0) + 1);
      rounds = (async () => {
        for (let round = 0; round < 4; round++)
          await Promise.all(
            Array.from({ length: 200 }, async (_, i) => {
              const session = held[i % held.length] as ClientHttp2Session;
              const answer = await rawRequest(session, STATUS, verbose).answer;
              count(String(grpcStatusOf(answer)?.code ?? `reset ${answer.rstCode}`));
            }),
          );
      })().finally(() => held.forEach((session) => session.close()));
      await new Promise((resolve) => setTimeout(resolve, 500));
      return () => rounds; // the release is the end of the four rounds
    },
    5000,
  );
  await rounds;
  t.diagnostic(`verbose calls by gRPC code: ${JSON.stringify(Object.fromEntries(codes))}`);
  assert.deepEqual(Object.fromEntries(codes), { '0': 800 }, 'every verbose call answered OK');
});

/** An HTTP/2 frame header: 24-bit length, type, flags, stream id. */
function frameHeader(length: number, type: number, flags: number, stream: number): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(stream, 5);
  return header;
}

/** An empty SETTINGS frame, as a client sends right after its preface. */
function settingsFrame(): Buffer {
  return frameHeader(0, 0x4, 0, 0);
}
