// A promise-based CRI client built from the committed proto code, over a real unix socket.
import { Metadata, credentials } from '@grpc/grpc-js';
import type { ServiceError } from '@grpc/grpc-js';
import { RuntimeServiceClient } from '../../src/gen/runtime/v1/api.js';
import type { RuntimeCondition, StatusResponse, VersionResponse } from '../../src/gen/runtime/v1/api.js';

export interface CriClient {
  version(): Promise<VersionResponse>;
  status(verbose?: boolean): Promise<StatusResponse>;
  close(): void;
}

export function criClient(socket: string, timeoutMs = 5000): CriClient {
  const client = new RuntimeServiceClient(`unix:${socket}`, credentials.createInsecure());
  const options = () => ({ deadline: new Date(Date.now() + timeoutMs) });
  return {
    version: () =>
      new Promise((resolve, reject) =>
        client.version({ version: '0.1.0' }, new Metadata(), options(), (error: ServiceError | null, r) =>
          error ? reject(error) : resolve(r),
        ),
      ),
    status: (verbose = false) =>
      new Promise((resolve, reject) =>
        client.status({ verbose }, new Metadata(), options(), (error: ServiceError | null, r) =>
          error ? reject(error) : resolve(r),
        ),
      ),
    close: () => client.close(),
  };
}

export function condition(response: StatusResponse, type: string): RuntimeCondition {
  const found = response.status?.conditions.find((c) => c.type === type);
  if (!found) throw new Error(`no ${type} condition in ${JSON.stringify(response.status)}`);
  return found;
}

/** The verbose info map with every value parsed as JSON (throws if one is not JSON). */
export function parsedInfo(response: StatusResponse): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(response.info).map(([key, value]) => [key, JSON.parse(value) as unknown]),
  );
}

/** Sequential non-verbose Status calls, as kubelet makes them: each call's latency in ms, sorted. */
export async function statusLatencies(client: CriClient, calls: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < calls; i++) {
    const started = process.hrtime.bigint();
    await client.status();
    times.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  return times.sort((a, b) => a - b);
}

/** The q-quantile (0..1) of sorted values. */
export function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}
