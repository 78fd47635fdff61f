// The gRPC server's limits against abusive or broken clients, on a real unix socket with a raw
// HTTP/2 client: streams per connection, connections, buffered request bytes, idle connections,
// requests that never finish arriving, grpc-web, and calls cut by shutdown.
import assert from 'node:assert/strict';
import { constants as h2 } from 'node:http2';
import type { ClientHttp2Session } from 'node:http2';
import { join } from 'node:path';
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import {
  GrpcServer,
  GrpcStatus,
  MAX_ARRIVING_REQUESTS,
  MAX_BUFFERED_REQUEST_BYTES,
  MAX_CONCURRENT_STREAMS,
  MAX_CONNECTIONS,
  MAX_OPEN_STREAMS,
  MAX_WATCH_STREAMS,
} from '../../src/cri/grpc-server.js';
import type { GrpcServerOptions } from '../../src/cri/grpc-server.js';
import { tempDir } from '../helpers/fs.js';
import { grpcFrame, grpcStatusOf, h2Session, rawRequest } from '../helpers/h2.js';
import type { RawAnswer } from '../helpers/h2.js';
import { sleep, until } from '../helpers/wait.js';

const MAX_REQUEST = 16 * 1024;

async function serve(
  t: TestContext,
  timeouts: GrpcServerOptions['timeouts'] = {},
  maxRequestBytes = MAX_REQUEST,
): Promise<{ server: GrpcServer; socket: string; sessions: ClientHttp2Session[] }> {
  const socket = join(tempDir(t), 'grpc.sock');
  const server = new GrpcServer({ maxRequestBytes, timeouts })
    .unary('/t/Echo', (request) => request)
    .unary('/t/Hang', () => new Promise<Buffer>(() => undefined))
    .serverStreaming('/t/Watch', (request, call) => call.write(request));
  await server.listen(socket);
  const sessions: ClientHttp2Session[] = [];
  t.after(async () => {
    for (const session of sessions) session.destroy();
    await server.close(0);
  });
  return { server, socket, sessions };
}

async function open(socket: string, sessions: ClientHttp2Session[]): Promise<ClientHttp2Session> {
  const session = await h2Session(socket);
  session.on('error', () => undefined);
  sessions.push(session);
  return session;
}

const echo = (session: ClientHttp2Session, text = 'ping'): Promise<RawAnswer> =>
  rawRequest(session, '/t/Echo', grpcFrame(Buffer.from(text))).answer;

/** A Watch stream that stays open: resolves once its first message arrived. */
async function watch(session: ClientHttp2Session): Promise<ReturnType<typeof rawRequest>> {
  const call = rawRequest(session, '/t/Watch', grpcFrame(Buffer.from('w')));
  await new Promise((resolve) => call.stream.once('data', resolve));
  return call;
}

const closed = (session: ClientHttp2Session): Promise<void> =>
  session.closed || session.destroyed
    ? Promise.resolve()
    : new Promise((resolve) => session.once('close', () => resolve()));

test('SETTINGS advertise 100 concurrent streams per connection', async (t) => {
  const { socket, sessions } = await serve(t);
  const session = await open(socket, sessions);
  assert.equal(MAX_CONCURRENT_STREAMS, 100);
  assert.equal(session.remoteSettings.maxConcurrentStreams, 100);
  assert.equal(grpcStatusOf(await echo(session))?.code, GrpcStatus.OK);
});

test('past 128 connections a new one is refused at once, unless an idle one can make room', async (t) => {
  const { socket, sessions } = await serve(t);
  assert.equal(MAX_CONNECTIONS, 128);
  const busy: ClientHttp2Session[] = [];
  const watches: ReturnType<typeof rawRequest>[] = [];
  for (let i = 0; i < MAX_CONNECTIONS; i++) {
    const session = await open(socket, sessions);
    busy.push(session);
    watches.push(await watch(session)); // a connection with a stream is never evicted
  }
  const refused = await open(socket, sessions).catch((error: unknown) =>
    error instanceof Error ? error : new Error(String(error)),
  );
  if (!(refused instanceof Error)) {
    // SETTINGS may be out before the close: the connection still serves nothing.
    const answer = await echo(refused);
    assert.equal(answer.headers[':status'], undefined, 'no answer on a connection past the cap');
    await closed(refused);
  }
  for (const session of busy) assert.equal(session.closed, false, 'the existing connections are kept');

  // The first connection's stream ends: it is now idle, and makes room for a new one.
  watches[0]?.stream.close();
  const fresh = await until(
    'a fresh connection to be served',
    async () => {
      const session = await open(socket, sessions);
      return grpcStatusOf(await echo(session))?.code === GrpcStatus.OK && session;
    },
    10_000,
    { retryErrors: true },
  );
  assert.equal(fresh.closed, false);
  await closed(busy[0] as ClientHttp2Session);
  for (const session of busy.slice(1)) assert.equal(session.closed, false, 'only the idle one was closed');
});

test('request bytes buffered across all streams are capped: the streams past 4 MiB get RESOURCE_EXHAUSTED', async (t) => {
  // Requests up to 64 KiB here, so that fewer than MAX_ARRIVING_REQUESTS of them fill the budget.
  const { socket, sessions } = await serve(t, { requestArrivalMs: 120_000 }, 64 * 1024);
  // 200 requests, each declaring 40,000 bytes and sending 30,000 of them, never ended: 6 MB held.
  const partial = grpcFrame(Buffer.alloc(30_000, 1), 40_000);
  const calls: ReturnType<typeof rawRequest>[] = [];
  for (let c = 0; c < 2; c++) {
    const session = await open(socket, sessions);
    for (let i = 0; i < MAX_CONCURRENT_STREAMS; i++)
      calls.push(rawRequest(session, '/t/Echo', partial, { end: false }));
  }
  const fits = Math.floor(MAX_BUFFERED_REQUEST_BYTES / partial.length);
  assert.ok(fits < calls.length && calls.length < MAX_ARRIVING_REQUESTS);
  const answered: RawAnswer[] = [];
  for (const call of calls) void call.answer.then((answer) => answered.push(answer));
  await until(
    `${calls.length - fits} streams refused`,
    () => answered.length >= calls.length - fits,
    30_000,
    {
      describe: () => `${answered.length} answered`,
    },
  );
  await sleep(200);
  assert.equal(answered.length, calls.length - fits, 'the streams within the budget are still open');
  for (const answer of answered) {
    assert.deepEqual(grpcStatusOf(answer), {
      code: GrpcStatus.RESOURCE_EXHAUSTED,
      message: 'the server is holding too many unfinished requests; retry later',
    });
  }
  // A small call still fits; ending the held requests gives their bytes back.
  const fresh = await open(socket, sessions);
  assert.equal(grpcStatusOf(await echo(fresh))?.code, GrpcStatus.OK);
  for (const call of calls) call.stream.end();
  await Promise.all(calls.map((call) => call.answer));
  const full = await rawRequest(fresh, '/t/Echo', grpcFrame(Buffer.alloc(60_000, 2))).answer;
  assert.equal(grpcStatusOf(full)?.code, GrpcStatus.OK, 'the budget is free again');
  assert.equal(full.body.length, 5 + 60_000);
});

test('past 256 requests still arriving, the one waiting longest is reset to make room', async (t) => {
  const { socket, sessions } = await serve(t, { requestArrivalMs: 120_000 });
  assert.equal(MAX_ARRIVING_REQUESTS, 256);
  const calls: ReturnType<typeof rawRequest>[] = [];
  for (let c = 0; c < 3; c++) {
    const session = await open(socket, sessions);
    for (let i = 0; i < MAX_CONCURRENT_STREAMS; i++)
      calls.push(rawRequest(session, '/t/Echo', grpcFrame(Buffer.alloc(10), 100), { end: false }));
    await sleep(100); // the server sees these before the next connection's: the oldest are known
  }
  const excess = calls.length - MAX_ARRIVING_REQUESTS;
  const reset = await Promise.all(calls.slice(0, excess).map((call) => call.answer));
  for (const answer of reset) assert.equal(answer.rstCode, h2.NGHTTP2_CANCEL);
  const fresh = await open(socket, sessions);
  assert.equal(
    grpcStatusOf(await echo(fresh))?.code,
    GrpcStatus.OK,
    'a request that arrives at once is served',
  );
  const kept = calls.slice(excess + 1); // the oldest of these made room for the fresh one
  assert.deepEqual(kept.filter((call) => call.stream.closed).length, 0, 'the newer requests are still open');
});

test('a connection without a stream is closed once idle (timeout shortened); one with a Watch stream is kept', async (t) => {
  const { socket, sessions } = await serve(t, { idleConnectionMs: 300 });
  const idle = await open(socket, sessions);
  const watching = await open(socket, sessions);
  assert.equal(grpcStatusOf(await echo(idle))?.code, GrpcStatus.OK);
  const call = await watch(watching);
  let goaway = false;
  idle.once('goaway', () => (goaway = true));
  await closed(idle);
  assert.equal(goaway, true, 'closed with GOAWAY');
  await sleep(600); // twice the idle timeout, once the idle one is gone
  assert.equal(watching.closed, false, 'a connection with an open stream is not idle');
  assert.equal(call.stream.closed, false);
});

test('a request that has not fully arrived in time is reset (timeout shortened)', async (t) => {
  const { socket, sessions } = await serve(t, { requestArrivalMs: 300 });
  const session = await open(socket, sessions);
  const half = rawRequest(session, '/t/Echo', grpcFrame(Buffer.alloc(10), 100), { end: false });
  const answer = await half.answer;
  assert.equal(answer.rstCode, h2.NGHTTP2_CANCEL);
  assert.equal(grpcStatusOf(answer), undefined, 'reset, not answered');
  assert.equal(grpcStatusOf(await echo(session))?.code, GrpcStatus.OK, 'the connection keeps serving');
});

test('a message declared larger than the max is refused at once, naming the declared length', async (t) => {
  const { socket, sessions } = await serve(t);
  const session = await open(socket, sessions);
  const call = rawRequest(session, '/t/Echo', grpcFrame(Buffer.alloc(100), 1_000_000), { end: false });
  assert.deepEqual(grpcStatusOf(await call.answer), {
    code: GrpcStatus.RESOURCE_EXHAUSTED,
    message: `Received message larger than max (1000000 vs. ${MAX_REQUEST})`,
  });
});

test('grpc-web is answered 415; application/grpc+proto is gRPC', async (t) => {
  const { socket, sessions } = await serve(t);
  const session = await open(socket, sessions);
  for (const contentType of ['application/grpc-web', 'application/grpc-web+proto', 'application/grpcx']) {
    const { answer } = rawRequest(session, '/t/Echo', grpcFrame(Buffer.from('x')), { contentType });
    assert.equal((await answer).headers[':status'], 415, contentType);
  }
  const { answer } = rawRequest(session, '/t/Echo', grpcFrame(Buffer.from('x')), {
    contentType: 'application/grpc+proto',
  });
  assert.equal(grpcStatusOf(await answer)?.code, GrpcStatus.OK);
});

test('past 600 open streams across connections a new one is refused as retryable (REFUSED_STREAM)', async (t) => {
  const { socket, sessions } = await serve(t);
  assert.equal(MAX_OPEN_STREAMS, 600);
  const hanging: ReturnType<typeof rawRequest>[] = [];
  for (let c = 0; c < MAX_OPEN_STREAMS / MAX_CONCURRENT_STREAMS; c++) {
    const session = await open(socket, sessions);
    for (let i = 0; i < MAX_CONCURRENT_STREAMS; i++)
      hanging.push(rawRequest(session, '/t/Hang', grpcFrame(Buffer.from('h'))));
  }
  const session = await open(socket, sessions);
  // Answered OK until the server has taken up all 600 hanging calls, refused from then on.
  await until(
    'a call past 600 open streams to be refused',
    async () => (await echo(session)).rstCode === h2.NGHTTP2_REFUSED_STREAM,
    10_000,
  );
  hanging.slice(0, 10).forEach((call) => call.stream.close(h2.NGHTTP2_CANCEL));
  await until(
    'a call to be served again',
    async () => grpcStatusOf(await echo(session))?.code === GrpcStatus.OK,
    10_000,
  );
});

test('past 300 Watch streams across connections a new one gets RESOURCE_EXHAUSTED', async (t) => {
  const { socket, sessions } = await serve(t);
  assert.equal(MAX_WATCH_STREAMS, 300);
  const held: Promise<unknown>[] = [];
  for (let c = 0; c < MAX_WATCH_STREAMS / MAX_CONCURRENT_STREAMS; c++) {
    const session = await open(socket, sessions);
    for (let i = 0; i < MAX_CONCURRENT_STREAMS; i++) held.push(watch(session));
  }
  await Promise.all(held);
  const session = await open(socket, sessions);
  const refused = await rawRequest(session, '/t/Watch', grpcFrame(Buffer.from('w'))).answer;
  assert.deepEqual(grpcStatusOf(refused), {
    code: GrpcStatus.RESOURCE_EXHAUSTED,
    message: 'the server holds 300 streaming calls already; retry later',
  });
  assert.equal(grpcStatusOf(await echo(session))?.code, GrpcStatus.OK, 'unary calls are still served');
});

test('100 Watch streams on one connection: no MaxListenersExceededWarning, all ended OK at close', async (t) => {
  const warnings: string[] = [];
  const onWarning = (warning: Error): void => void warnings.push(`${warning.name}: ${warning.message}`);
  process.on('warning', onWarning);
  t.after(() => process.off('warning', onWarning));
  const { server, socket, sessions } = await serve(t);
  const session = await open(socket, sessions);
  const calls = await Promise.all(Array.from({ length: MAX_CONCURRENT_STREAMS }, () => watch(session)));
  await server.close(5000);
  const answers = await Promise.all(calls.map((call) => call.answer));
  assert.deepEqual(new Set(answers.map((answer) => grpcStatusOf(answer)?.code)), new Set([GrpcStatus.OK]));
  await sleep(50); // warnings are emitted on the next tick
  assert.deepEqual(
    warnings.filter((w) => w.includes('MaxListeners')),
    [],
  );
});

test('calls still running when the grace period ends get UNAVAILABLE, not a bare reset', async (t) => {
  const { server, socket, sessions } = await serve(t);
  const session = await open(socket, sessions);
  const calls = Array.from({ length: 20 }, () => rawRequest(session, '/t/Hang', grpcFrame(Buffer.from('x'))));
  await sleep(100);
  await server.close(200);
  for (const answer of await Promise.all(calls.map((call) => call.answer))) {
    assert.deepEqual(grpcStatusOf(answer), {
      code: GrpcStatus.UNAVAILABLE,
      message: 'the agent is shutting down; retry on its replacement',
    });
  }
});
