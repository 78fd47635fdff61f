// The few API calls the agent makes, through @kubernetes/client-node's generated CoreV1 request
// factory and response processor. They are imported by path, not from the package index: the index
// loads every API group and model of the client and adds about 60 MiB of RSS to the agent, the
// CoreV1 API alone about 20 MiB (bench/kube-rss.ts measures both). Every call has a timeout and
// fails with a KubeError whose `result` is a small fixed set, used as a metric label (transport.ts).
import {
  CoreV1ApiRequestFactory,
  CoreV1ApiResponseProcessor,
} from '@kubernetes/client-node/dist/gen/apis/CoreV1Api.js';
import { CoreV1Event } from '@kubernetes/client-node/dist/gen/models/CoreV1Event.js';
import type { V1Node } from '@kubernetes/client-node/dist/gen/models/V1Node.js';
import { PatchStrategy } from '@kubernetes/client-node/dist/patch.js';
import type { ExistingCondition } from './condition.js';
import type { ClusterAccess } from './config.js';
import type { EventBody } from './events.js';
import { createTransport } from './transport.js';

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
  const { configuration, call, close } = createTransport(access, {
    maxSockets: 2,
    timeoutMs: TIMEOUT_MS,
    forbiddenHint:
      'the agent needs get on nodes, patch on nodes/status and create/patch on events; see the chart RBAC in docs/kube.md',
  });
  const factory = new CoreV1ApiRequestFactory(configuration);
  const processor = new CoreV1ApiResponseProcessor();

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
    close,
  };
}
