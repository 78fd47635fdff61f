// A small gRPC server on node:http2 for the few calls the agent serves: unary calls and one
// server-streaming call (Health.Watch). grpc-js costs about half again as much CPU per call as
// containerd (bench/README.md), and nearly all of that is its generic call machinery; unary gRPC
// itself is one HEADERS frame, one length-prefixed DATA frame and a trailer. Clients (kubelet,
// crictl, critest, grpc-js) see the standard protocol: https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md
import { createServer, constants as h2 } from 'node:http2';
import type { Http2Server, IncomingHttpHeaders, ServerHttp2Session, ServerHttp2Stream } from 'node:http2';
import { GrpcError } from '../errors.js';
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
/** Answers one request message (its bytes) with one response message. */
export type UnaryHandler = (request: Buffer, call: CallContext) => Buffer | Promise<Buffer>;

export interface ServerStream {
  write(message: Buffer): void;
  end(): void;
  /** Called once if the client goes away or the server drains. */
  onClose(listener: () => void): void;
}

export type StreamingHandler = (request: Buffer, call: ServerStream) => void;

/** Per connection: far above a CRI client's needs, low enough to bound one client's cost. */
const MAX_CONCURRENT_STREAMS = 1024;

export interface GrpcServerOptions {
  /** Largest request message accepted; larger ones get RESOURCE_EXHAUSTED. */
  maxRequestBytes: number;
  /** Once per answered call: its path and gRPC status code name (OK, UNIMPLEMENTED, ...). */
  onCallFinished?: (path: string, code: string) => void;
  /** A handler failed with something other than a GrpcError: a bug, answered INTERNAL. */
  onError?: (error: unknown) => void;
}

const CODE_NAMES = new Map<number, string>(Object.entries(GrpcStatus).map(([name, code]) => [code, name]));

type Route = { kind: 'unary'; handler: UnaryHandler } | { kind: 'stream'; handler: StreamingHandler };

const RESPONSE_HEADERS = { ':status': 200, 'content-type': 'application/grpc' } as const;
const OK_TRAILERS = { 'grpc-status': '0' } as const;

export class GrpcServer {
  private readonly routes = new Map<string, Route>();
  private readonly sessions = new Set<ServerHttp2Session>();
  /** Open server-streaming calls, ended with OK trailers when the server closes. */
  private readonly streams = new Set<() => void>();
  private readonly server: Http2Server;

  constructor(private readonly options: GrpcServerOptions) {
    this.server = createServer({
      settings: { maxConcurrentStreams: MAX_CONCURRENT_STREAMS, maxHeaderListSize: 16 * 1024 },
      maxSessionMemory: 16,
    });
    this.server.on('session', (session) => {
      this.sessions.add(session);
      session.on('close', () => this.sessions.delete(session));
      session.on('error', () => session.destroy()); // garbage on the socket ends that connection only
    });
    this.server.on('sessionError', () => undefined);
    this.server.on('stream', (stream, headers) => this.dispatch(stream, headers));
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
    for (const session of this.sessions) session.close();
    const force = setTimeout(() => {
      for (const session of this.sessions) session.destroy();
    }, graceMs);
    return closed.finally(() => clearTimeout(force));
  }

  private dispatch(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    stream.on('error', () => undefined); // a reset stream is the client's business
    if (headers[':method'] !== 'POST') {
      stream.respond({ ':status': 405, allow: 'POST' }, { endStream: true });
      return;
    }
    if (!headers['content-type']?.startsWith('application/grpc')) {
      stream.respond({ ':status': 415 }, { endStream: true });
      return;
    }
    const path = headers[':path'] ?? '';
    const route = this.routes.get(path);
    if (!route) {
      this.fail(stream, path, GrpcStatus.UNIMPLEMENTED, `The server does not implement the method ${path}`);
      return;
    }
    const limit = this.options.maxRequestBytes + 5;
    const chunks: Buffer[] = [];
    let length = 0;
    const onData = (chunk: Buffer): void => {
      length += chunk.length;
      if (length > limit) {
        stream.off('data', onData);
        stream.resume();
        this.fail(
          stream,
          path,
          GrpcStatus.RESOURCE_EXHAUSTED,
          `Received message larger than max (${length - 5} vs. ${this.options.maxRequestBytes})`,
        );
        return;
      }
      chunks.push(chunk);
    };
    stream.on('data', onData);
    stream.once('end', () => {
      if (length > limit) return;
      const message = unframe(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, length));
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
      } else this.runStreaming(stream, path, route.handler, message);
    });
  }

  private runUnary(
    stream: ServerHttp2Stream,
    path: string,
    handler: UnaryHandler,
    request: Buffer,
    call: CallContext,
  ): void {
    let answer: Buffer | Promise<Buffer>;
    try {
      answer = handler(request, call);
    } catch (error) {
      this.failWith(stream, path, error);
      return;
    }
    if (Buffer.isBuffer(answer)) this.reply(stream, path, answer);
    else
      answer
        .then((response) => this.reply(stream, path, response))
        .catch((error: unknown) => this.failWith(stream, path, error));
  }

  private reply(stream: ServerHttp2Stream, path: string, response: Buffer): void {
    if (stream.destroyed || stream.closed) return; // the client gave up (deadline, cancel)
    stream.respond(RESPONSE_HEADERS, { waitForTrailers: true });
    stream.once('wantTrailers', () => stream.sendTrailers(OK_TRAILERS));
    stream.end(frame(response));
    this.options.onCallFinished?.(path, 'OK');
  }

  private runStreaming(
    stream: ServerHttp2Stream,
    path: string,
    handler: StreamingHandler,
    request: Buffer,
  ): void {
    stream.respond(RESPONSE_HEADERS, { waitForTrailers: true });
    stream.once('wantTrailers', () => stream.sendTrailers(OK_TRAILERS));
    const listeners: (() => void)[] = [];
    const session = stream.session;
    let closed = false;
    const close = (): void => {
      if (closed) return;
      closed = true;
      this.streams.delete(end);
      session?.off('goaway', end);
      for (const listener of listeners) listener();
    };
    // Ends the call with OK trailers: on the handler's end(), the client's GOAWAY and server close.
    const end = (): void => {
      if (!stream.destroyed && !stream.writableEnded) stream.end();
      close();
    };
    this.streams.add(end);
    stream.once('close', close);
    session?.once('goaway', end);
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
    this.fail(stream, path, GrpcStatus.INTERNAL, error instanceof Error ? error.message : String(error));
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
