// The gRPC server on the unix socket: RuntimeService (Version, Status) and Health. Every other
// CRI method falls through to grpc-js's UNIMPLEMENTED. Requests are capped small: the largest
// legitimate one is a few bytes.
import { chmodSync } from 'node:fs';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import { HealthService } from '../gen/grpc/health/v1/health.js';
import { HealthState } from './health.js';
import { CriServiceDefinition, criHandlers } from './service.js';
import type { CriServiceOptions } from './service.js';
import { claimSocketPath, removeSocketIfOurs, socketIno } from './socket.js';

export const MAX_REQUEST_BYTES = 16 * 1024;

export interface CriServerOptions extends CriServiceOptions {
  socketPath: string;
  /** File mode of the socket, e.g. 0o660. */
  socketMode: number;
}

export class CriServer {
  private readonly server = new Server({
    'grpc.max_receive_message_length': MAX_REQUEST_BYTES,
    'grpc.max_concurrent_streams': 1024,
  });
  private readonly health = new HealthState();
  private ino: number | undefined;
  private listening = false;

  constructor(private readonly options: CriServerOptions) {
    this.server.addService(CriServiceDefinition, criHandlers(options));
    this.server.addService(HealthService, this.health.handlers());
  }

  get isServing(): boolean {
    return this.listening;
  }

  async start(): Promise<void> {
    const { socketPath, socketMode } = this.options;
    await claimSocketPath(socketPath);
    // Bind under a umask that already yields the final mode, so the socket is never wider than asked.
    const umask = process.umask(0o777 & ~socketMode);
    try {
      await new Promise<number>((resolve, reject) => {
        this.server.bindAsync(`unix:${socketPath}`, ServerCredentials.createInsecure(), (error, port) => {
          if (error) reject(new Error(`cannot listen on ${socketPath}: ${error.message}`));
          else resolve(port);
        });
      });
    } finally {
      process.umask(umask);
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
    this.health.endWatches();
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, graceMs);
      this.server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
    removeSocketIfOurs(this.options.socketPath, this.ino);
  }
}
