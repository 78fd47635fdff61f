// grpc.health.v1.Health on the CRI socket: "" and the RuntimeService report SERVING while the
// agent serves and NOT_SERVING once it drains; Watch streams changes.
import {
  HealthCheckRequest,
  HealthCheckResponse,
  HealthCheckResponse_ServingStatus as Serving,
} from '../gen/grpc/health/v1/health.js';
import { GrpcError } from '../errors.js';
import { GrpcStatus } from './grpc-server.js';
import type { GrpcServer, ServerStream } from './grpc-server.js';

export const HEALTH_SERVICES = ['', 'runtime.v1.RuntimeService'] as const;

const encode = (status: Serving): Buffer => Buffer.from(HealthCheckResponse.encode({ status }).finish());

function serviceOf(bytes: Buffer): string {
  try {
    return HealthCheckRequest.decode(bytes).service;
  } catch {
    throw new GrpcError(GrpcStatus.INTERNAL, 'cannot decode the HealthCheckRequest');
  }
}
const known = (service: string): boolean => (HEALTH_SERVICES as readonly string[]).includes(service);

export class HealthState {
  private serving = Serving.SERVING;
  private readonly watchers = new Set<ServerStream>();

  setServing(serving: boolean): void {
    this.serving = serving ? Serving.SERVING : Serving.NOT_SERVING;
    for (const call of this.watchers) call.write(encode(this.serving));
  }

  register(server: GrpcServer): void {
    server.unary('/grpc.health.v1.Health/Check', (bytes) => {
      const service = serviceOf(bytes);
      if (!known(service)) throw new GrpcError(GrpcStatus.NOT_FOUND, `unknown service "${service}"`);
      return encode(this.serving);
    });
    server.serverStreaming('/grpc.health.v1.Health/Watch', (bytes, call) => {
      const service = serviceOf(bytes);
      if (!known(service)) {
        call.write(encode(Serving.SERVICE_UNKNOWN));
        return;
      }
      call.write(encode(this.serving));
      this.watchers.add(call);
      call.onClose(() => this.watchers.delete(call));
    });
  }
}
