// A small gRPC server on node:http2 for the few calls the agent serves: unary calls and one
// server-streaming call (Health.Watch). grpc-js costs about half again as much CPU per call as
// containerd (bench/README.md), and nearly all of that is its generic call machinery; unary gRPC
// itself is one HEADERS frame, one length-prefixed DATA frame and a trailer. Clients (kubelet,
// crictl, critest, grpc-js) see the standard protocol: https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md
import { createServer, constants as h2 } from 'node:http2';
import type { Http2Server, Http2Session, IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import { GrpcError } from '../errors.js';
import { errorText } from '../util/text.js';
import { collectGarbage } from './relief.js';
import { grpcTimeoutMs } from '../util/deadline.js';

/** gRPC status codes used here (grpc/doc/statuscodes.md). */
export const GrpcStatus = {
  OK: 0,
  NOT_FOUND: 5,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
} as const;

/** What a handler knows of its call besides the request: the client's grpc-timeout, if it sent one. */
export interface CallContext {
  timeoutMs?: number;
}
/**
 * Answers one request message (its bytes) with one response message: its bytes, or parts whose
 * concatenation is the message (written as they are: a part shared by many answers is not copied).
 */
export type Message = Buffer | readonly Buffer[];
export type UnaryHandler = (request: Buffer, call: CallContext) => Message | Promise<Message>;

export interface ServerStream {
  write(message: Buffer): void;
  end(): void;
  /** Called once if the client goes away or the server drains. */
  onClose(listener: () => void): void;
}

export type StreamingHandler = (request: Buffer, call: ServerStream) => void;

// Limits that bound what abusive or broken clients can make the agent hold (README "Limits").
// A kubelet uses one connection and a call or two at a time; these are far above that.
/** Streams per connection, advertised in SETTINGS; Health.Watch streams count like any other. */
export const MAX_CONCURRENT_STREAMS = 100;
/** Connections at once: past it, the longest-idle connection without a stream makes room, else the new one is refused. */
export const MAX_CONNECTIONS = 128;
/** Request bytes buffered across all streams; a stream that would go past it gets RESOURCE_EXHAUSTED. */
export const MAX_BUFFERED_REQUEST_BYTES = 4 * 1024 * 1024;
/**
 * A request this small is never refused for the budget above: a real Status or Version request is
 * a few bytes, and must get through while large unfinished ones fill the budget (at most
 * MAX_ARRIVING_REQUESTS of them arrive at once: 256 KiB past the budget at worst).
 */
export const SMALL_REQUEST_BYTES = 1024;
/** A connection without a stream for this long is closed (GOAWAY); clients reconnect when they need to. */
export const IDLE_CONNECTION_MS = 5 * 60_000;
/** A request that has started but not fully arrived within this is reset. */
export const REQUEST_ARRIVAL_MS = 10_000;
/** Requests still arriving, across all connections: past it the one waiting longest is reset (a real request arrives at once). */
export const MAX_ARRIVING_REQUESTS = 256;
/**
 * Streams open at once across all connections: past it a new stream is refused at once
 * (RST_STREAM REFUSED_STREAM, which gRPC clients read as UNAVAILABLE and may retry). 100
 * connections x 100 Status calls, all within the per-connection limit, ran the agent out of V8
 * heap under the image's 64 MiB cap (a crash): a waiting call holds about 7 KiB, and even a
 * refused stream about 3 KiB until it is closed. At 1,000 the agent still ran out on a loaded
 * machine; at 600 it survived (peak 117–119 MiB on Node 20). Above MAX_WATCH_STREAMS +
 * MAX_ARRIVING_REQUESTS, so held streams alone cannot lock out a Status; far above a kubelet's one or two.
 */
export const MAX_OPEN_STREAMS = 600;
/**
 * Server-streaming calls (Health.Watch) open at once, across all connections: past it a new one
 * gets RESOURCE_EXHAUSTED. A node-local socket has a handful of watchers; 1,000 held streams took a
 * 10,000-stream storm to 132 MiB peak RSS with the refresh worker in the process.
 */
export const MAX_WATCH_STREAMS = 300;

export interface GrpcServerOptions {
  /** Largest request message accepted; larger ones get RESOURCE_EXHAUSTED. */
  maxRequestBytes: number;
  /** Once per answered call: its path and gRPC status code name (OK, UNIMPLEMENTED, ...). */
  onCallFinished?: (path: string, code: string) => void;
  /** A handler failed with something other than a GrpcError: a bug, answered INTERNAL. */
  onError?: (error: unknown) => void;
  /** Overrides IDLE_CONNECTION_MS and REQUEST_ARRIVAL_MS, for tests that cannot wait minutes. */
  timeouts?: { idleConnectionMs?: number; requestArrivalMs?: number };
}

/** What the server tracks per connection: open streams, its idle timer, its Watch streams. */
interface Connection {
  streams: number;
  idleSince: number;
  idleTimer: NodeJS.Timeout | undefined;
  /** Ends of its server-streaming calls: one GOAWAY listener per connection, not one per stream. */
  watches: Set<() => void>;
  closing: boolean;
}

const CODE_NAMES = new Map<number, string>(Object.entries(GrpcStatus).map(([name, code]) => [code, name]));

type Route = { kind: 'unary'; handler: UnaryHandler } | { kind: 'stream'; handler: StreamingHandler };

const RESPONSE_HEADERS = { ':status': 200, 'content-type': 'application/grpc' } as const;
const OK_TRAILERS = { 'grpc-status': '0' } as const;
const SHUTTING_DOWN = 'the agent is shutting down; retry on its replacement';
/** After the grace period, how long cut calls get to carry their UNAVAILABLE before the connections go. */
const CUT_FLUSH_MS = 250;
/** Streams and connections opened since the last full collection that call for one once quiet (relief.ts). */
const RELIEF_CHURN = 1000;
/** How long a quiet server waits before that collection, so that it runs once per burst. */
const RELIEF_DELAY_MS = 1000;

export class GrpcServer {
  private readonly routes = new Map<string, Route>();
  private readonly sessions = new Map<Http2Session, Connection>();
  /** Open server-streaming calls, ended with OK trailers when the server closes. */
  private readonly streams = new Set<() => void>();
  /** Unary calls not yet answered: cut with UNAVAILABLE when the grace period ends. */
  private readonly unanswered = new Map<ServerHttp2Stream, string>();
  /** Answers still being written (a verbose one is 1.3 MB): refused when the grace period ends. */
  private readonly replying = new Set<ServerHttp2Stream>();
  private readonly server: Http2Server;
  private readonly idleMs: number;
  private readonly arrivalMs: number;
  /** Request bytes held across all streams, against MAX_BUFFERED_REQUEST_BYTES. */
  private buffered = 0;
  private readonly frames = new WeakMap<Buffer, Buffer>();
  /** Streams open now, and streams and connections opened since the last collection. */
  private open = 0;
  private churn = 0;
  private relief: NodeJS.Timeout | undefined;
  /** Requests not fully arrived, oldest first, with their arrival timers. */
  private readonly arriving = new Map<ServerHttp2Stream, NodeJS.Timeout>();

  constructor(private readonly options: GrpcServerOptions) {
    this.idleMs = options.timeouts?.idleConnectionMs ?? IDLE_CONNECTION_MS;
    this.arrivalMs = options.timeouts?.requestArrivalMs ?? REQUEST_ARRIVAL_MS;
    this.server = createServer({
      settings: { maxConcurrentStreams: MAX_CONCURRENT_STREAMS, maxHeaderListSize: 16 * 1024 },
      maxSessionMemory: 16,
    });
    this.server.on('session', (session) => this.admit(session));
    this.server.on('sessionError', () => undefined);
    this.server.on('stream', (stream, headers) => this.track(stream, headers));
  }

  unary(path: string, handler: UnaryHandler): this {
    this.routes.set(path, { kind: 'unary', handler });
    return this;
  }

  serverStreaming(path: string, handler: StreamingHandler): this {
    this.routes.set(path, { kind: 'stream', handler });
    return this;
  }

  listen(socketPath: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const fail = (error: Error): void => reject(error);
      this.server.once('error', fail);
      this.server.listen(socketPath, () => {
        this.server.off('error', fail);
        resolve();
      });
    });
  }

  /** Stops accepting connections, lets open calls finish (GOAWAY), and cuts what is left after `graceMs`. */
  close(graceMs: number): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const end of [...this.streams]) end();
    for (const [session, connection] of this.sessions) {
      clearTimeout(connection.idleTimer);
      connection.closing = true;
      session.close();
    }
    // Calls still running when the grace ends are cut with UNAVAILABLE (retryable), never a bare
    // RST_STREAM(NO_ERROR) that clients read as INTERNAL; the connections go right after.
    let flush: NodeJS.Timeout | undefined;
    const force = setTimeout(() => {
      for (const [stream, path] of [...this.unanswered]) this.cut(stream, path);
      // REFUSED_STREAM is what clients read as UNAVAILABLE (retryable); the answer was cut short.
      for (const stream of this.replying) if (!stream.destroyed) stream.close(h2.NGHTTP2_REFUSED_STREAM);
      flush = setTimeout(() => {
        for (const session of this.sessions.keys()) session.destroy();
      }, CUT_FLUSH_MS);
    }, graceMs);
    return closed.finally(() => {
      clearTimeout(this.relief);
      clearTimeout(force);
      clearTimeout(flush);
    });
  }

  /** A new connection: counted against MAX_CONNECTIONS, closed once idle too long. */
  private admit(session: Http2Session): void {
    session.on('error', () => session.destroy()); // garbage on the socket ends that connection only
    const open = [...this.sessions.values()].filter((c) => !c.closing).length;
    if (open >= MAX_CONNECTIONS && !this.evictIdle()) {
      session.destroy();
      return;
    }
    const connection: Connection = {
      streams: 0,
      idleSince: Date.now(),
      idleTimer: undefined,
      watches: new Set(),
      closing: false,
    };
    this.sessions.set(session, connection);
    this.idle(session, connection);
    this.churn++;
    session.on('close', () => {
      clearTimeout(connection.idleTimer);
      this.sessions.delete(session);
      this.relieve();
    });
    session.once('goaway', () => {
      for (const end of [...connection.watches]) end();
    });
  }

  /** Closes the connection that has had no stream the longest, if any: a flood of idle ones must not lock out a kubelet. */
  private evictIdle(): boolean {
    let oldest: [Http2Session, Connection] | undefined;
    for (const entry of this.sessions) {
      const c = entry[1];
      if (!c.closing && c.streams === 0 && (!oldest || c.idleSince < oldest[1].idleSince)) oldest = entry;
    }
    if (!oldest) return false;
    this.release(oldest[0], oldest[1]);
    return true;
  }

  private release(session: Http2Session, connection: Connection): void {
    clearTimeout(connection.idleTimer);
    connection.closing = true;
    session.close();
    // A peer that never finished its preface or stopped reading would hold a graceful close open.
    setTimeout(() => session.destroy(), CUT_FLUSH_MS).unref();
  }

  private idle(session: Http2Session, connection: Connection): void {
    connection.idleSince = Date.now();
    clearTimeout(connection.idleTimer);
    connection.idleTimer = setTimeout(() => this.release(session, connection), this.idleMs);
    connection.idleTimer.unref();
  }

  /** Counts the stream against its connection, and resets it if its request does not arrive in time. */
  private track(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    stream.on('error', () => undefined); // a reset stream is the client's business
    this.churn++; // a refused stream leaves garbage too
    if (this.open >= MAX_OPEN_STREAMS) {
      stream.close(h2.NGHTTP2_REFUSED_STREAM);
      const path = headers[':path'] ?? '';
      if (this.routes.has(path)) this.options.onCallFinished?.(path, 'UNAVAILABLE');
      return;
    }
    this.open++;
    stream.once('close', () => {
      this.open--;
      this.relieve();
    });
    const session = stream.session;
    const connection = session ? this.sessions.get(session) : undefined;
    if (session && connection) {
      connection.streams++;
      clearTimeout(connection.idleTimer);
      stream.once('close', () => {
        if (--connection.streams === 0 && !connection.closing) this.idle(session, connection);
      });
    }
    if (this.arriving.size >= MAX_ARRIVING_REQUESTS) {
      const [oldest] = this.arriving.keys();
      if (oldest) this.reset(oldest);
    }
    this.arriving.set(
      stream,
      setTimeout(() => this.reset(stream), this.arrivalMs),
    );
    const arrived = (): void => {
      clearTimeout(this.arriving.get(stream));
      this.arriving.delete(stream);
    };
    stream.once('end', arrived);
    stream.once('close', arrived);
    this.dispatch(stream, headers, connection);
  }

  /** After a burst of streams or connections, once it is over: give the memory back (relief.ts). */
  private relieve(): void {
    if (this.churn < RELIEF_CHURN || this.relief) return; // steady polling must not keep postponing it
    this.relief = setTimeout(() => {
      this.relief = undefined;
      if (this.open > 10) return; // not over yet: the next close tries again
      this.churn = 0;
      // The first collection frees the objects; the pages they sat on go back at the next one.
      collectGarbage();
      setTimeout(collectGarbage, RELIEF_DELAY_MS).unref();
    }, RELIEF_DELAY_MS);
    this.relief.unref();
  }

  /** RST_STREAM(CANCEL) for a request that did not arrive in time or had to make room. */
  private reset(stream: ServerHttp2Stream): void {
    clearTimeout(this.arriving.get(stream));
    this.arriving.delete(stream);
    if (!stream.destroyed && !stream.closed) stream.close(h2.NGHTTP2_CANCEL);
  }

  private dispatch(
    stream: ServerHttp2Stream,
    headers: IncomingHttpHeaders,
    connection: Connection | undefined,
  ): void {
    if (headers[':method'] !== 'POST') {
      stream.resume();
      stream.respond({ ':status': 405, allow: 'POST' }, { endStream: true });
      return;
    }
    if (!isGrpc(headers['content-type'])) {
      stream.resume();
      stream.respond({ ':status': 415 }, { endStream: true });
      return;
    }
    const path = headers[':path'] ?? '';
    const route = this.routes.get(path);
    if (!route) {
      stream.resume();
      this.fail(stream, path, GrpcStatus.UNIMPLEMENTED, `The server does not implement the method ${path}`);
      return;
    }
    const max = this.options.maxRequestBytes;
    const chunks: Buffer[] = [];
    let length = 0;
    let refused = false;
    const release = (): void => {
      this.buffered -= length;
      length = 0;
      chunks.length = 0;
    };
    const refuse = (message: string): void => {
      refused = true;
      release();
      stream.off('data', onData);
      stream.resume(); // the rest is read and dropped
      this.fail(stream, path, GrpcStatus.RESOURCE_EXHAUSTED, message);
    };
    let declared: number | undefined;
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      length += chunk.length;
      this.buffered += chunk.length;
      // The prefix declares the message's length: a message too large is refused before the rest arrives.
      if (declared === undefined && length >= 5) declared = Buffer.concat(chunks, length).readUInt32BE(1);
      if ((declared ?? 0) > max || length > max + 5) {
        refuse(`Received message larger than max (${Math.max(declared ?? 0, length - 5)} vs. ${max})`);
        return;
      }
      if (this.buffered > MAX_BUFFERED_REQUEST_BYTES && length > SMALL_REQUEST_BYTES) {
        refuse('the server is holding too many unfinished requests; retry later');
      }
    };
    stream.on('data', onData);
    stream.once('close', () => {
      if (!refused) release();
    });
    stream.once('end', () => {
      if (refused) return;
      const body = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, length);
      release();
      const message = unframe(body);
      if (typeof message === 'string') {
        this.fail(
          stream,
          path,
          message === COMPRESSED ? GrpcStatus.UNIMPLEMENTED : GrpcStatus.INTERNAL,
          message,
        );
        return;
      }
      if (route.kind === 'unary') {
        const timeoutMs = grpcTimeoutMs(headers['grpc-timeout']);
        this.runUnary(stream, path, route.handler, message, timeoutMs === undefined ? {} : { timeoutMs });
      } else this.runStreaming(stream, path, route.handler, message, connection);
    });
  }

  private runUnary(
    stream: ServerHttp2Stream,
    path: string,
    handler: UnaryHandler,
    request: Buffer,
    call: CallContext,
  ): void {
    let answer: Message | Promise<Message>;
    try {
      answer = handler(request, call);
    } catch (error) {
      this.failWith(stream, path, error);
      return;
    }
    if (!(answer instanceof Promise)) {
      this.reply(stream, path, answer);
      return;
    }
    this.unanswered.set(stream, path);
    stream.once('close', () => this.unanswered.delete(stream));
    answer
      .then((response) => this.reply(stream, path, response))
      .catch((error: unknown) => this.failWith(stream, path, error));
  }

  private reply(stream: ServerHttp2Stream, path: string, response: Message): void {
    this.unanswered.delete(stream);
    if (stream.destroyed || stream.closed) return; // the client gave up (deadline, cancel)
    stream.respond(RESPONSE_HEADERS, { waitForTrailers: true });
    stream.once('wantTrailers', () => stream.sendTrailers(OK_TRAILERS));
    this.replying.add(stream);
    stream.once('close', () => this.replying.delete(stream));
    if (Buffer.isBuffer(response)) {
      stream.end(this.framed(response));
    } else {
      const length = response.reduce((sum, part) => sum + part.length, 0);
      stream.write(prefix(length));
      for (const part of response) stream.write(part);
      stream.end();
    }
    this.options.onCallFinished?.(path, 'OK');
  }

  /** Framed once per response buffer: callers handed the same cached answer share one copy of its bytes. */
  private framed(response: Buffer): Buffer {
    let framed = this.frames.get(response);
    if (!framed) {
      framed = frame(response);
      this.frames.set(response, framed);
    }
    return framed;
  }

  /** The grace period is over: a call not yet answered is refused as retryable. */
  private cut(stream: ServerHttp2Stream, path: string): void {
    this.unanswered.delete(stream);
    this.fail(stream, path, GrpcStatus.UNAVAILABLE, SHUTTING_DOWN);
  }

  private runStreaming(
    stream: ServerHttp2Stream,
    path: string,
    handler: StreamingHandler,
    request: Buffer,
    connection: Connection | undefined,
  ): void {
    if (this.streams.size >= MAX_WATCH_STREAMS) {
      this.fail(
        stream,
        path,
        GrpcStatus.RESOURCE_EXHAUSTED,
        `the server holds ${MAX_WATCH_STREAMS} streaming calls already; retry later`,
      );
      return;
    }
    stream.respond(RESPONSE_HEADERS, { waitForTrailers: true });
    stream.once('wantTrailers', () => stream.sendTrailers(OK_TRAILERS));
    const listeners: (() => void)[] = [];
    let closed = false;
    const close = (): void => {
      if (closed) return;
      closed = true;
      this.streams.delete(end);
      connection?.watches.delete(end);
      for (const listener of listeners) listener();
    };
    // Ends the call with OK trailers: on the handler's end(), the client's GOAWAY and server close.
    const end = (): void => {
      if (!stream.destroyed && !stream.writableEnded) stream.end();
      close();
    };
    this.streams.add(end);
    connection?.watches.add(end);
    stream.once('close', close);
    try {
      handler(request, {
        write: (message) => {
          if (!closed && !stream.destroyed) stream.write(frame(message));
        },
        end,
        onClose: (listener) => listeners.push(listener),
      });
    } catch (error) {
      this.options.onError?.(error);
      close();
      if (!stream.destroyed) stream.close(h2.NGHTTP2_INTERNAL_ERROR);
    }
    this.options.onCallFinished?.(path, 'OK');
  }

  private failWith(stream: ServerHttp2Stream, path: string, error: unknown): void {
    if (error instanceof GrpcError) {
      this.fail(stream, path, error.grpcCode, error.message);
      return;
    }
    this.options.onError?.(error);
    this.fail(stream, path, GrpcStatus.INTERNAL, errorText(error));
  }

  /** A trailers-only response: the status in the one and only HEADERS frame. */
  private fail(stream: ServerHttp2Stream, path: string, code: number, message: string): void {
    if (stream.destroyed || stream.closed || stream.headersSent) return;
    stream.respond(
      { ...RESPONSE_HEADERS, 'grpc-status': String(code), 'grpc-message': encodeURIComponent(message) },
      { endStream: true },
    );
    this.options.onCallFinished?.(path, CODE_NAMES.get(code) ?? String(code));
  }
}

/** gRPC over HTTP/2 only: application/grpc, +proto or ;params. grpc-web needs a proxy's translation, not ours. */
function isGrpc(contentType: string | undefined): boolean {
  if (!contentType?.startsWith('application/grpc')) return false;
  const rest = contentType.slice('application/grpc'.length);
  return rest === '' || rest.startsWith('+') || rest.startsWith(';');
}

const COMPRESSED = 'compressed requests are not supported; send identity-encoded messages';

/** The one message of a request body: a 5-byte prefix (compressed flag, big-endian length) and the bytes. */
function unframe(body: Buffer): Buffer | string {
  if (body.length < 5) return 'the request carries no gRPC message';
  if (body[0] !== 0) return body[0] === 1 ? COMPRESSED : 'malformed gRPC message prefix';
  const length = body.readUInt32BE(1);
  if (body.length !== 5 + length) return 'the request must carry exactly one gRPC message';
  return body.subarray(5);
}

function frame(message: Buffer): Buffer {
  const framed = Buffer.allocUnsafe(5 + message.length);
  framed[0] = 0;
  framed.writeUInt32BE(message.length, 1);
  message.copy(framed, 5);
  return framed;
}

/** The 5-byte prefix of an uncompressed message of `length` bytes. */
function prefix(length: number): Buffer {
  const bytes = Buffer.alloc(5);
  bytes.writeUInt32BE(length, 1);
  return bytes;
}
