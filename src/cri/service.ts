// The RuntimeService handlers. Status refreshes the network config (sharing the refresh with
// concurrent calls), then answers from the state; the encoded non-verbose answer is cached per
// state generation, so a call on an unchanged node costs one scan and no protobuf encoding.
import { status as grpcStatus } from '@grpc/grpc-js';
import type { handleUnaryCall } from '@grpc/grpc-js';
import type { Refresher } from '../cni/refresher.js';
import type { NetworkState } from '../cni/types.js';
import { RuntimeServiceService, StatusResponse } from '../gen/runtime/v1/api.js';
import type {
  RuntimeCondition,
  StatusRequest,
  VersionRequest,
  VersionResponse,
} from '../gen/runtime/v1/api.js';
import { conditions, isStaleTooLong } from './conditions.js';
import { statusInfo } from './info.js';
import type { InfoContext } from './info.js';

export const RUNTIME_NAME = 'cri-netstatus';
export const RUNTIME_API_VERSION = 'v1';
/** The kubelet runtime API version every CRI runtime reports. */
export const KUBELET_API_VERSION = '0.1.0';

/** RuntimeService with Status answering pre-encoded bytes, so cached answers skip encoding. */
export const CriServiceDefinition = {
  version: RuntimeServiceService.version,
  status: { ...RuntimeServiceService.status, responseSerialize: (value: Buffer): Buffer => value },
} as const;

export interface CriHandlers {
  [method: string]: handleUnaryCall<VersionRequest, VersionResponse> | handleUnaryCall<StatusRequest, Buffer>;
  version: handleUnaryCall<VersionRequest, VersionResponse>;
  status: handleUnaryCall<StatusRequest, Buffer>;
}

export interface CriServiceOptions {
  refresher: Refresher;
  version: string;
  staleAfterMs?: number | undefined;
  /** RuntimeReady: true while serving, or mirrored from the node's runtime. */
  runtimeCondition: () => RuntimeCondition;
  /** Everything `info` shows besides the network state. */
  infoContext: () => InfoContext;
  /** Called once per Status call with its gRPC status code name, for metrics. */
  onStatusServed?: (code: 'OK') => void;
  onError?: (error: unknown) => void;
}

export function criHandlers(options: CriServiceOptions): CriHandlers {
  const { refresher } = options;
  let cacheKey = '';
  let cached: Buffer = Buffer.alloc(0);

  const encode = (state: NetworkState, verbose: boolean, now: number): Buffer => {
    const runtime = options.runtimeCondition();
    const response: StatusResponse = {
      status: { conditions: conditions(state, now, { runtime, staleAfterMs: options.staleAfterMs }) },
      info: verbose ? statusInfo(state, options.infoContext()) : {},
      runtimeHandlers: [],
      features: undefined,
    };
    return Buffer.from(StatusResponse.encode(response).finish());
  };

  return {
    version(_call, callback) {
      callback(null, {
        version: KUBELET_API_VERSION,
        runtimeName: RUNTIME_NAME,
        runtimeVersion: options.version,
        runtimeApiVersion: RUNTIME_API_VERSION,
      });
    },
    status(call, callback) {
      refresher
        .fresh()
        .catch((error: unknown) => {
          // A refresh that throws is a bug, not a config problem: answer from the last state.
          options.onError?.(error);
          return refresher.state;
        })
        .then((state) => {
          const now = Date.now();
          if (call.request.verbose) {
            callback(null, encode(state, true, now));
          } else {
            const runtime = options.runtimeCondition();
            const key = `${state.generation}|${isStaleTooLong(state, now, options.staleAfterMs)}|${runtime.status}|${runtime.reason}|${runtime.message}`;
            if (key !== cacheKey) {
              cached = encode(state, false, now);
              cacheKey = key;
            }
            callback(null, cached);
          }
          options.onStatusServed?.('OK');
        })
        .catch((error: unknown) => {
          options.onError?.(error);
          callback({ code: grpcStatus.INTERNAL, details: `answering Status failed: ${String(error)}` });
        });
    },
  };
}
