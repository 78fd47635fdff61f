// The RuntimeService handlers: a view of the verdict. Status brings the verdict up to date (sharing
// the refresh with concurrent calls), then answers from it; the encoded non-verbose answer is
// cached per verdict generation, so a call on an unchanged node costs one scan and no encoding.
import type { NetworkState } from '../cni/types.js';
import { StatusResponse } from '../gen/runtime/v1/api.js';
import type { StatusRequest, VersionRequest, VersionResponse } from '../gen/runtime/v1/api.js';
import { Deadline } from '../util/deadline.js';
import { systemClock } from '../util/clock.js';
import type { Clock } from '../util/clock.js';
import type { VerdictExporter, VerdictSource } from '../verdict/publisher.js';
import type { Verdict } from '../verdict/verdict.js';
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
  /** `call.timeoutMs`: the client's grpc-timeout, which caps --refresh-timeout. */
  status(request: StatusRequest, call?: { timeoutMs?: number }): Promise<Buffer | readonly Buffer[]>;
}

export interface CriServiceOptions {
  verdicts: VerdictSource;
  /** The Status answers, a view registered with the verdict publisher. */
  answers: StatusAnswers;
  version: string;
  /** --refresh-timeout: the longest a Status call waits for its refresh (0: no limit). */
  refreshTimeoutMs?: number;
  clock?: Clock;
}

/**
 * The Status answers: the non-verbose one encoded once per verdict; a verbose one as two parts, the
 * small per-call part and `cniconfig`, which grows with the files (about 1.3 MB for 5,000) and is
 * encoded once per state and shared by every verbose answer (protobuf messages concatenate: the
 * map entry appended to the rest is one message).
 */
export class StatusAnswers implements VerdictExporter {
  private generation = -1;
  private encoded: Buffer = Buffer.alloc(0);
  private cniconfigState: NetworkState | undefined;
  private cniconfigEntry: Buffer = Buffer.alloc(0);

  constructor(private readonly info: InfoContext) {}

  onVerdict(verdict: Verdict, previous: Verdict): void {
    // Not needed again: release them now rather than at the next call.
    this.encoded = Buffer.alloc(0);
    this.generation = -1;
    if (verdict.state !== previous.state) {
      this.cniconfigEntry = Buffer.alloc(0);
      this.cniconfigState = undefined;
    }
  }

  answer(verdict: Verdict, verbose: boolean): Buffer | readonly Buffer[] {
    if (verbose)
      return [encode(verdict, contextInfo(verdict.state, this.info)), this.cniconfig(verdict.state)];
    if (verdict.generation !== this.generation) {
      this.encoded = encode(verdict, {});
      this.generation = verdict.generation;
    }
    return this.encoded;
  }

  private cniconfig(state: NetworkState): Buffer {
    if (state !== this.cniconfigState) {
      const entry: StatusResponse = {
        status: undefined,
        info: { cniconfig: cniconfigInfo(state) },
        runtimeHandlers: [],
        features: undefined,
      };
      this.cniconfigEntry = Buffer.from(StatusResponse.encode(entry).finish());
      this.cniconfigState = state;
    }
    return this.cniconfigEntry;
  }
}

function encode(verdict: Verdict, info: Record<string, string>): Buffer {
  const response: StatusResponse = {
    status: { conditions: [...verdict.conditions] },
    info,
    runtimeHandlers: [],
    features: undefined,
  };
  return Buffer.from(StatusResponse.encode(response).finish());
}

export function criHandlers(options: CriServiceOptions): CriHandlers {
  const { verdicts, answers } = options;
  return {
    version: () => ({
      version: KUBELET_API_VERSION,
      runtimeName: RUNTIME_NAME,
      runtimeVersion: options.version,
      runtimeApiVersion: RUNTIME_API_VERSION,
    }),
    async status(request, call = {}) {
      const { refreshTimeoutMs, clock = systemClock } = options;
      const budget = refreshTimeoutMs ? refreshTimeoutMs : call.timeoutMs;
      const deadline = budget === undefined ? undefined : Deadline.after(clock, budget, call.timeoutMs);
      return answers.answer(await verdicts.fresh(deadline), request.verbose);
    },
  };
}
