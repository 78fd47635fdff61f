// The CRI socket: RuntimeService (Version, Status) and grpc.health.v1.Health on a unix socket.
// Every other CRI method answers UNIMPLEMENTED. Requests are capped small: the largest legitimate
// one is a few bytes.
import { chmodSync } from 'node:fs';
import { StatusRequest, VersionRequest, VersionResponse } from '../gen/runtime/v1/api.js';
import { GrpcError, ListenError } from '../errors.js';
import { errorText } from '../util/text.js';
import { GrpcServer, GrpcStatus } from './grpc-server.js';
import { HealthState } from './health.js';
import { criHandlers } from './service.js';
import type { CriServiceOptions } from './service.js';
import { claimSocketPath, removeSocketIfOurs, socketIno } from './socket.js';

export const MAX_REQUEST_BYTES = 16 * 1024;

/** Told of every answered call: the method name (Status, Version, Check, ...) and its gRPC code name. */
export interface CallObserver {
  callFinished(method: string, code: string): void;
}

export interface CriServerOptions extends CriServiceOptions {
  socketPath: string;
  /** File mode of the socket, e.g. 0o660. */
  socketMode: number;
  calls?: CallObserver;
  /** A handler that threw: a bug, logged; the caller gets INTERNAL. */
  onError?: (error: unknown) => void;
}

/** Decodes a request, answering INTERNAL (not logged: a client's mistake, not ours) when it is not protobuf. */
function decoding<T>(decode: (bytes: Buffer) => T): (bytes: Buffer) => T {
  return (bytes) => {
    try {
      return decode(bytes);
    } catch (error) {
      throw new GrpcError(GrpcStatus.INTERNAL, `cannot decode the request: ${errorText(error)}`);
    }
  };
}

export class CriServer {
  private readonly server: GrpcServer;
  private readonly health = new HealthState();
  private ino: number | undefined;
  private listening = false;

  constructor(private readonly options: CriServerOptions) {
    const { calls } = options;
    this.server = new GrpcServer({
      maxRequestBytes: MAX_REQUEST_BYTES,
      onError: options.onError,
      ...(calls
        ? {
            onCallFinished: (path: string, code: string) =>
              calls.callFinished(path.slice(path.lastIndexOf('/') + 1), code),
          }
        : {}),
    });
    const handlers = criHandlers(options);
    const versionRequest = decoding((bytes) => VersionRequest.decode(bytes));
    const statusRequest = decoding((bytes) => StatusRequest.decode(bytes));
    this.server
      .unary('/runtime.v1.RuntimeService/Version', (bytes) =>
        Buffer.from(VersionResponse.encode(handlers.version(versionRequest(bytes))).finish()),
      )
      .unary('/runtime.v1.RuntimeService/Status', (bytes, call) =>
        handlers.status(statusRequest(bytes), call),
      );
    this.health.register(this.server);
  }

  get isServing(): boolean {
    return this.listening;
  }

  /** For /readyz: the agent is ready once its socket serves (NetworkReady is what it reports, not a gate). */
  readiness(): { ok: boolean; why?: string } {
    return this.listening ? { ok: true } : { ok: false, why: 'the CRI socket is not serving' };
  }

  async start(): Promise<void> {
    const { socketPath, socketMode } = this.options;
    await claimSocketPath(socketPath);
    // Bind under a umask that already yields the final mode, so the socket is never wider than asked.
    // bind(2) happens inside listen(), synchronously: the umask is restored before anything else runs.
    const umask = process.umask(0o777 & ~socketMode);
    let listening: Promise<void>;
    try {
      listening = this.server.listen(socketPath);
    } finally {
      process.umask(umask);
    }
    try {
      await listening;
    } catch (error) {
      throw new ListenError(`cannot listen on ${socketPath}: ${errorText(error)}`, error);
    }
    chmodSync(socketPath, socketMode);
    this.ino = socketIno(socketPath);
    this.listening = true;
  }

  /** Stops accepting calls, lets in-flight calls finish (up to `graceMs`), then removes the socket. */
  async stop(graceMs = 5000): Promise<void> {
    if (!this.listening) return;
    this.listening = false;
    this.health.setServing(false);
    await this.server.close(graceMs);
    removeSocketIfOurs(this.options.socketPath, this.ino);
  }
}
