// grpc.health.v1.Health on the CRI socket: "" and the RuntimeService report SERVING while the
// agent serves and NOT_SERVING once it drains; Watch streams changes.
import { status as grpcStatus } from '@grpc/grpc-js';
import type { ServerWritableStream, handleServerStreamingCall, handleUnaryCall } from '@grpc/grpc-js';
import { HealthCheckResponse_ServingStatus as Serving } from '../gen/grpc/health/v1/health.js';
import type { HealthCheckRequest, HealthCheckResponse } from '../gen/grpc/health/v1/health.js';

export const HEALTH_SERVICES = ['', 'runtime.v1.RuntimeService'] as const;

export class HealthState {
  private serving = Serving.SERVING;
  private readonly watchers = new Set<ServerWritableStream<HealthCheckRequest, HealthCheckResponse>>();

  setServing(serving: boolean): void {
    this.serving = serving ? Serving.SERVING : Serving.NOT_SERVING;
    for (const call of this.watchers) call.write({ status: this.serving });
  }

  handlers(): {
    [method: string]:
      | handleUnaryCall<HealthCheckRequest, HealthCheckResponse>
      | handleServerStreamingCall<HealthCheckRequest, HealthCheckResponse>;
    check: handleUnaryCall<HealthCheckRequest, HealthCheckResponse>;
    watch: handleServerStreamingCall<HealthCheckRequest, HealthCheckResponse>;
  } {
    const known = (service: string): boolean => (HEALTH_SERVICES as readonly string[]).includes(service);
    return {
      check: (call, callback) => {
        if (!known(call.request.service)) {
          callback({ code: grpcStatus.NOT_FOUND, details: `unknown service "${call.request.service}"` });
          return;
        }
        callback(null, { status: this.serving });
      },
      watch: (call) => {
        if (!known(call.request.service)) {
          call.write({ status: Serving.SERVICE_UNKNOWN });
          return;
        }
        call.write({ status: this.serving });
        this.watchers.add(call);
        const forget = (): void => {
          this.watchers.delete(call);
        };
        call.on('cancelled', forget);
        call.on('close', forget);
      },
    };
  }

  endWatches(): void {
    for (const call of this.watchers) call.end();
    this.watchers.clear();
  }
}
