// The transport both API clients share (the reporter's CoreV1 calls in client.ts, the metrics
// authorizer's reviews in review.ts): a keep-alive agent, a generated-client configuration that
// adds the bearer token, and one call() with a timeout that turns every failure into a KubeError
// an operator can act on. Imported by path from @kubernetes/client-node: its index would load
// every API group (docs/kube.md, "Memory").
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { ApiException } from '@kubernetes/client-node/dist/gen/apis/exception.js';
import { createConfiguration } from '@kubernetes/client-node/dist/gen/configuration.js';
import type { Configuration } from '@kubernetes/client-node/dist/gen/configuration.js';
import type { RequestContext, ResponseContext } from '@kubernetes/client-node/dist/gen/http/http.js';
import { ServerConfiguration } from '@kubernetes/client-node/dist/gen/servers.js';
import { errorText } from '../util/text.js';
import type { ClusterAccess } from './config.js';
import { KubeError, resultForStatus } from './errors.js';
import type { WriteResult } from './errors.js';

export interface TransportOptions {
  maxSockets: number;
  timeoutMs: number;
  /** What a 403 tells the operator to grant: the verbs these calls need. */
  forbiddenHint: string;
}

export interface Transport {
  configuration: Configuration;
  /** One request with a timeout; resolves with the parsed body, rejects with a KubeError. */
  call: <T>(
    what: string,
    build: Promise<RequestContext>,
    parse: (response: ResponseContext) => Promise<{ data: T }>,
    contentType?: string,
  ) => Promise<T>;
  close: () => void;
}

export function createTransport(access: ClusterAccess, options: TransportOptions): Transport {
  // Plain http:// only for a local test server or a proxy such as `kubectl proxy`.
  const agent = access.server.startsWith('http://')
    ? new HttpAgent({ keepAlive: true, maxSockets: options.maxSockets })
    : new HttpsAgent({
        keepAlive: true,
        maxSockets: options.maxSockets,
        ...(access.ca ? { ca: access.ca } : {}),
        ...(access.cert ? { cert: access.cert } : {}),
        ...(access.key ? { key: access.key } : {}),
        ...(access.tlsServerName ? { servername: access.tlsServerName } : {}),
        rejectUnauthorized: !access.skipTLSVerify,
      });
  const configuration: Configuration = createConfiguration({
    baseServer: new ServerConfiguration<Record<string, string>>(access.server, {}),
    authMethods: {
      default: {
        getName: () => 'cri-netstatus',
        applySecurityAuthentication(context: RequestContext): void {
          context.setAgent(agent);
          context.setHeaderParam('User-Agent', 'cri-netstatus');
          const token = access.token();
          if (token) context.setHeaderParam('Authorization', `Bearer ${token}`);
        },
      },
    },
  });

  return {
    configuration,
    call: async (what, build, parse, contentType) => {
      const request = await build;
      if (contentType) request.setHeaderParam('Content-Type', contentType);
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), options.timeoutMs);
      request.setSignal(controller.signal);
      try {
        const response = await configuration.httpApi.send(request).toPromise();
        return (await parse(response)).data;
      } catch (error) {
        const failure = classify(what, error, controller.signal.aborted, options);
        if (failure.result === 'unauthorized') access.invalidateToken();
        throw failure;
      } finally {
        clearTimeout(timer);
      }
    },
    close: () => agent.destroy(),
  };
}

/** Turns whatever a call threw into a KubeError an operator can act on. */
function classify(
  what: string,
  error: unknown,
  aborted: boolean,
  options: Pick<TransportOptions, 'timeoutMs' | 'forbiddenHint'>,
): KubeError {
  if (error instanceof KubeError) return error;
  if (error instanceof ApiException) {
    const status = error.code;
    const detail = statusMessage(error.body) ?? error.message;
    const result = resultForStatus(status);
    return new KubeError(
      `${what}: HTTP ${status}: ${detail}${hint(result, options.forbiddenHint)}`,
      result,
      status,
    );
  }
  if (aborted) return new KubeError(`${what}: no answer within ${options.timeoutMs / 1000}s`, 'timeout');
  const code = errorCode(error);
  const message = errorText(error);
  if (code && NETWORK_CODES.has(code))
    return new KubeError(`${what}: API server unreachable: ${message}`, 'unreachable');
  return new KubeError(`${what}: ${message}`, 'error');
}

function hint(result: WriteResult, forbiddenHint: string): string {
  switch (result) {
    case 'forbidden':
      return ` (${forbiddenHint})`;
    case 'unauthorized':
      return ' (the service-account token was rejected: is it expired, or bound to a deleted Pod?)';
    default:
      return '';
  }
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EPIPE',
  'ECONNABORTED',
  'UND_ERR_SOCKET',
]);

function errorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const { code, errno, cause } = error as { code?: unknown; errno?: unknown; cause?: unknown };
  if (typeof code === 'string') return code;
  if (typeof errno === 'string') return errno;
  return cause === undefined ? undefined : errorCode(cause);
}

/** The `message` of a metav1.Status body, which says exactly who may not do what. */
function statusMessage(body: unknown): string | undefined {
  if (typeof body === 'string') {
    try {
      return statusMessage(JSON.parse(body) as unknown);
    } catch {
      return body.slice(0, 300) || undefined;
    }
  }
  if (typeof body === 'object' && body !== null && 'message' in body) {
    const { message } = body;
    return typeof message === 'string' ? message : undefined;
  }
  return undefined;
}
