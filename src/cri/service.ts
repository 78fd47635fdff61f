// The RuntimeService handlers. Status refreshes the network config (sharing the refresh with
// concurrent calls), then answers from the state; the encoded non-verbose answer is cached per
// state generation, so a call on an unchanged node costs one scan and no protobuf encoding.
import type { Refresher } from '../cni/refresher.js';
import type { NetworkState } from '../cni/types.js';
import { StatusResponse } from '../gen/runtime/v1/api.js';
import type {
  RuntimeCondition,
  StatusRequest,
  VersionRequest,
  VersionResponse,
} from '../gen/runtime/v1/api.js';
import { conditions, isStaleTooLong } from './conditions.js';
import { cniconfigInfo, contextInfo } from './info.js';
import type { InfoContext } from './info.js';

export const RUNTIME_NAME = 'cri-netstatus';
export const RUNTIME_API_VERSION = 'v1';
/** The kubelet runtime API version every CRI runtime reports. */
export const KUBELET_API_VERSION = '0.1.0';

/**
 * The RuntimeService calls the agent answers; Status answers encoded bytes so it can cache them,
 * in parts whose concatenation is the message (a verbose answer's big part is shared).
 */
export interface CriHandlers {
  version(request: VersionRequest): VersionResponse;
  status(request: StatusRequest): Promise<Buffer | readonly Buffer[]>;
}

export interface CriServiceOptions {
  refresher: Refresher;
  version: string;
  staleAfterMs?: number | undefined;
  /** RuntimeReady: true while serving, or mirrored from the node's runtime. */
  runtimeCondition: () => RuntimeCondition;
  /** Everything `info` shows besides the network state. */
  infoContext: () => InfoContext;
  onError?: (error: unknown) => void;
}

export function criHandlers(options: CriServiceOptions): CriHandlers {
  const { refresher } = options;
  let cacheKey = '';
  let cached: Buffer = Buffer.alloc(0);
  // The verbose answer's `cniconfig` grows with the files (about 1.3 MB for 5,000): it is encoded
  // once per state and shared by every verbose answer, as its own protobuf map entry (protobuf
  // messages concatenate: the entry appended to the rest of the answer is one message).
  let cniconfigState: NetworkState | undefined;
  let cniconfigEntry: Buffer = Buffer.alloc(0);

  const encode = (
    state: NetworkState,
    context: InfoContext | undefined,
    now: number,
    runtime: RuntimeCondition,
  ): Buffer => {
    const response: StatusResponse = {
      status: { conditions: conditions(state, now, { runtime, staleAfterMs: options.staleAfterMs }) },
      info: context ? contextInfo(state, context) : {},
      runtimeHandlers: [],
      features: undefined,
    };
    return Buffer.from(StatusResponse.encode(response).finish());
  };

  const answer = (state: NetworkState, verbose: boolean): Buffer | readonly Buffer[] => {
    const now = Date.now();
    const runtime = options.runtimeCondition();
    const key = `${state.generation}|${isStaleTooLong(state, now, options.staleAfterMs)}|${runtime.status}|${runtime.reason}|${runtime.message}`;
    if (verbose) {
      if (state !== cniconfigState) {
        const entry: StatusResponse = {
          status: undefined,
          info: { cniconfig: cniconfigInfo(state) },
          runtimeHandlers: [],
          features: undefined,
        };
        cniconfigEntry = Buffer.from(StatusResponse.encode(entry).finish());
        cniconfigState = state;
      }
      return [encode(state, options.infoContext(), now, runtime), cniconfigEntry];
    }
    if (key !== cacheKey) {
      // The key and the body are made from the same runtime condition.
      cached = encode(state, undefined, now, runtime);
      cacheKey = key;
    }
    return cached;
  };

  return {
    version: () => ({
      version: KUBELET_API_VERSION,
      runtimeName: RUNTIME_NAME,
      runtimeVersion: options.version,
      runtimeApiVersion: RUNTIME_API_VERSION,
    }),
    async status(request) {
      let state: NetworkState;
      try {
        state = await refresher.fresh();
      } catch (error) {
        // A refresh that throws is a bug, not a config problem: answer from the last state.
        options.onError?.(error);
        state = refresher.state;
      }
      return answer(state, request.verbose);
    },
  };
}
