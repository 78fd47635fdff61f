// The HTTP endpoint: /metrics for Prometheus, /healthz (the process answers) and /readyz (the CRI
// socket is serving). Readiness does not follow NetworkReady: a node without a network must still
// roll out the agent that reports it.
import { createServer } from 'node:http';
import type { IncomingMessage, RequestListener, Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { SecureContextOptions } from 'node:tls';
import type { Registry } from 'prom-client';
import { ListenError } from '../errors.js';

/** Why a /metrics request is refused: the status, a line the scraper's operator can act on, headers. */
export interface Denial {
  status: number;
  message: string;
  headers?: Record<string, string>;
}

/** Connections the metrics endpoint holds at once. */
export const MAX_HTTP_CONNECTIONS = 64;

export interface HttpEndpointOptions {
  address: { host: string; port: number };
  registry: Registry;
  ready: () => { ok: boolean; why?: string };
  /** Serve HTTPS with this certificate and key (--metrics-auth kubernetes) instead of HTTP. */
  tls?: SecureContextOptions;
  /** Decides who may read /metrics; /healthz and /readyz stay open for the kubelet's probes. */
  guard?: (request: IncomingMessage) => Promise<Denial | undefined>;
}

export async function startHttpEndpoint(options: HttpEndpointOptions): Promise<Server> {
  const handler: RequestListener = (request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    switch (path) {
      case '/metrics': {
        const serveMetrics = (): void => {
          options.registry.metrics().then(
            (body) => response.writeHead(200, { 'content-type': options.registry.contentType }).end(body),
            (error: unknown) =>
              response
                .writeHead(500, { 'content-type': 'text/plain' })
                .end(`collecting metrics failed: ${String(error)}\n`),
          );
        };
        if (!options.guard) {
          serveMetrics();
          return;
        }
        options.guard(request).then(
          (denial) => {
            if (!denial) return serveMetrics();
            response
              .writeHead(denial.status, { 'content-type': 'text/plain', ...denial.headers })
              .end(`${denial.message}\n`);
          },
          (error: unknown) =>
            response
              .writeHead(500, { 'content-type': 'text/plain' })
              .end(`checking the bearer token failed: ${String(error)}\n`),
        );
        return;
      }
      case '/healthz':
        response.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
        return;
      case '/readyz': {
        const { ok, why } = options.ready();
        response
          .writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' })
          .end(ok ? 'ok\n' : `not ready: ${why ?? ''}\n`);
        return;
      }
      default:
        response
          .writeHead(404, { 'content-type': 'text/plain' })
          .end('not found: try /metrics, /healthz or /readyz\n');
    }
  };
  const server = options.tls ? createHttpsServer(options.tls, handler) : createServer(handler);
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  // On the host network: a scraper or two and the kubelet's probes need a handful; past it a new connection is closed at once.
  server.maxConnections = MAX_HTTP_CONNECTIONS;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) =>
      reject(
        new ListenError(
          `cannot listen on ${options.address.host}:${options.address.port} (--metrics-address): ${error.message}`,
          error,
        ),
      ),
    );
    server.listen(options.address.port, options.address.host, resolve);
  });
  return server;
}
