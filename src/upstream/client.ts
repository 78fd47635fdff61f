// A minimal CRI client of the upstream runtime: Version and Status with a deadline, over a unix
// socket. The channel is private to this client (not grpc-js's shared subchannel pool) and is
// dropped after any failure, so a restarted runtime is reached on the very next poll instead of
// after grpc-js's own reconnect backoff (up to two minutes).
import { Metadata, credentials, status as grpcStatus } from '@grpc/grpc-js';
import type { ServiceError } from '@grpc/grpc-js';
import { UpstreamCallError } from '../errors.js';
import { RuntimeServiceClient } from '../gen/runtime/v1/api.js';
import type { StatusResponse, VersionResponse } from '../gen/runtime/v1/api.js';

/** The largest Status answer accepted; containerd's verbose info (its whole config) is tens of KiB. */
const MAX_RESPONSE_BYTES = 8 * 1024 * 1024;

export class UpstreamClient {
  private client: RuntimeServiceClient | undefined;

  constructor(private readonly socketPath: string) {}

  version(timeoutMs: number): Promise<VersionResponse> {
    return this.call(
      (client, options, done) => client.version({ version: '0.1.0' }, new Metadata(), options, done),
      timeoutMs,
    );
  }

  status(verbose: boolean, timeoutMs: number): Promise<StatusResponse> {
    return this.call(
      (client, options, done) => client.status({ verbose }, new Metadata(), options, done),
      timeoutMs,
    );
  }

  /** Drops the channel; the next call opens a fresh one. */
  reset(): void {
    this.client?.close();
    this.client = undefined;
  }

  close(): void {
    this.reset();
  }

  private call<T>(
    invoke: (
      client: RuntimeServiceClient,
      options: { deadline: Date },
      done: (error: ServiceError | null, response: T) => void,
    ) => void,
    timeoutMs = 2000,
  ): Promise<T> {
    this.client ??= new RuntimeServiceClient(`unix:${this.socketPath}`, credentials.createInsecure(), {
      'grpc.use_local_subchannel_pool': 1,
      'grpc.max_receive_message_length': MAX_RESPONSE_BYTES,
      'grpc.initial_reconnect_backoff_ms': 500,
      'grpc.max_reconnect_backoff_ms': 5000,
    });
    const client = this.client;
    return new Promise((resolve, reject) => {
      invoke(client, { deadline: new Date(Date.now() + timeoutMs) }, (error, response) => {
        if (error) {
          reject(new UpstreamCallError(error.code, codeName(error.code), describeGrpcError(error)));
        } else {
          resolve(response);
        }
      });
    });
  }
}

function codeName(code: number): string {
  const names = grpcStatus as unknown as Record<number, string>;
  return names[code] ?? `code ${code}`;
}

/** grpc-js details without its boilerplate, e.g. "connect ENOENT /run/containerd/containerd.sock". */
export function describeGrpcError(error: { code: number; details?: string; message: string }): string {
  let text = error.details || error.message;
  text = /Last error: (.*)$/s.exec(text)?.[1] ?? text;
  text = text
    .replace(/\.? ?Resolution note:.*$/s, '')
    .replace(/^(Error: )+/, '')
    .trim();
  return text || codeName(error.code);
}
