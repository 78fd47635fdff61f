// The few API calls the agent makes, through @kubernetes/client-node's generated CoreV1 request
// factory and response processor. They are imported by path, not from the package index: the index
// loads every API group and model of the client and adds about 60 MiB of RSS to the agent, the
// CoreV1 API alone about 20 MiB (bench/kube-rss.ts measures both). Every call has a timeout and
// fails with a KubeError whose `result` is a small fixed set, used as a metric label.
import { errorText } from '../util/text.js';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import {
  CoreV1ApiRequestFactory,
  CoreV1ApiResponseProcessor,
} from '@kubernetes/client-node/dist/gen/apis/CoreV1Api.js';
import { ApiException } from '@kubernetes/client-node/dist/gen/apis/exception.js';
import { createConfiguration } from '@kubernetes/client-node/dist/gen/configuration.js';
import type { Configuration } from '@kubernetes/client-node/dist/gen/configuration.js';
import type { RequestContext, ResponseContext } from '@kubernetes/client-node/dist/gen/http/http.js';
import { CoreV1Event } from '@kubernetes/client-node/dist/gen/models/CoreV1Event.js';
import type { V1Node } from '@kubernetes/client-node/dist/gen/models/V1Node.js';
import { ServerConfiguration } from '@kubernetes/client-node/dist/gen/servers.js';
import { PatchStrategy } from '@kubernetes/client-node/dist/patch.js';
import type { ExistingCondition } from './condition.js';
import type { ClusterAccess } from './config.js';
import type { EventBody } from './events.js';
import { KubeError, resultForStatus } from './errors.js';
import type { WriteResult } from './errors.js';

export type { CoreV1Event, V1Node };

/** The parts of a Node the agent reads (a V1Node satisfies it). */
export interface NodeView {
  metadata?: { name?: string | undefined } | undefined;
  status?: { conditions?: ExistingCondition[] | undefined } | undefined;
}

/** The calls the reporter makes; an interface so the reporter can be driven without a network. */
export interface KubeApi {
  readNode(name: string): Promise<NodeView>;
  listNodes(): Promise<NodeView[]>;
  /** Resolves with the updated Node (callers here only need to know it succeeded). */
  patchNodeStatus(name: string, patch: object): Promise<unknown>;
  createEvent(namespace: string, event: EventBody): Promise<unknown>;
  patchEvent(namespace: string, name: string, patch: object): Promise<unknown>;
  close(): void;
}

/** Per-call timeout: a slow API server must not hold a write forever. */
export const TIMEOUT_MS = 10_000;

export function createKubeApi(access: ClusterAccess): KubeApi {
  // Plain http:// only for a local test server or a proxy such as `kubectl proxy`.
  const agent = access.server.startsWith('http://')
    ? new HttpAgent({ keepAlive: true, maxSockets: 2 })
    : new HttpsAgent({
        keepAlive: true,
        maxSockets: 2,
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
  const factory = new CoreV1ApiRequestFactory(configuration);
  const processor = new CoreV1ApiResponseProcessor();

  async function call<T>(
    what: string,
    build: Promise<RequestContext>,
    parse: (response: ResponseContext) => Promise<{ data: T }>,
    contentType?: string,
  ): Promise<T> {
    const request = await build;
    if (contentType) request.setHeaderParam('Content-Type', contentType);
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), TIMEOUT_MS);
    request.setSignal(controller.signal);
    try {
      const response = await configuration.httpApi.send(request).toPromise();
      return (await parse(response)).data;
    } catch (error) {
      const failure = classify(what, error, controller.signal.aborted, TIMEOUT_MS);
      if (failure.result === 'unauthorized') access.invalidateToken();
      throw failure;
    } finally {
      clearTimeout(timer);
    }
  }

  return {
    readNode: (name) =>
      call(`get node ${name}`, factory.readNode(name), (r) => processor.readNodeWithHttpInfo(r)),
    listNodes: async () => {
      // Pages of 200: a 5,000-node list in one response would be tens of megabytes.
      const nodes: V1Node[] = [];
      let next: string | undefined;
      do {
        const page = await call(
          'list nodes',
          factory.listNode(undefined, undefined, next, undefined, undefined, 200),
          (r) => processor.listNodeWithHttpInfo(r),
        );
        nodes.push(...page.items);
        next = page.metadata?._continue || undefined;
      } while (next);
      return nodes;
    },
    patchNodeStatus: (name, patch) =>
      call(
        `patch node ${name} status`,
        factory.patchNodeStatus(name, patch, undefined, undefined, 'cri-netstatus'),
        (r) => processor.patchNodeStatusWithHttpInfo(r),
        PatchStrategy.StrategicMergePatch,
      ),
    createEvent: (namespace, event) =>
      // The generated serializer reads fields by name; the instance only satisfies its parameter type.
      call(
        `create event in ${namespace}`,
        factory.createNamespacedEvent(namespace, Object.assign(new CoreV1Event(), event)),
        (r) => processor.createNamespacedEventWithHttpInfo(r),
      ),
    patchEvent: (namespace, name, patch) =>
      call(
        `patch event ${namespace}/${name}`,
        factory.patchNamespacedEvent(name, namespace, patch),
        (r) => processor.patchNamespacedEventWithHttpInfo(r),
        PatchStrategy.StrategicMergePatch,
      ),
    close: () => agent.destroy(),
  };
}

/** Turns whatever a call threw into a KubeError an operator can act on. */
export function classify(what: string, error: unknown, aborted: boolean, timeoutMs: number): KubeError {
  if (error instanceof KubeError) return error;
  if (error instanceof ApiException) {
    const status = error.code;
    const detail = statusMessage(error.body) ?? error.message;
    const result = resultForStatus(status);
    return new KubeError(`${what}: HTTP ${status}: ${detail}${hint(result)}`, result, status);
  }
  if (aborted) return new KubeError(`${what}: no answer within ${timeoutMs / 1000}s`, 'timeout');
  const code = errorCode(error);
  const message = errorText(error);
  if (code && NETWORK_CODES.has(code))
    return new KubeError(`${what}: API server unreachable: ${message}`, 'unreachable');
  return new KubeError(`${what}: ${message}`, 'error');
}

function hint(result: WriteResult): string {
  switch (result) {
    case 'forbidden':
      return ' (the agent needs get on nodes, patch on nodes/status and create/patch on events; see the chart RBAC in docs/kube.md)';
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
