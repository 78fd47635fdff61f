// The RuntimeService handlers: a view of the verdict. Status brings the verdict up to date (sharing
// the refresh with concurrent calls), then answers from it; the encoded non-verbose answer is
// cached per verdict generation, so a call on an unchanged node costs one scan and no encoding.
import { StatusResponse } from '../gen/runtime/v1/api.js';
import type { StatusRequest, VersionRequest, VersionResponse } from '../gen/runtime/v1/api.js';
import { Deadline } from '../util/deadline.js';
import { systemClock } from '../util/clock.js';
import type { Clock } from '../util/clock.js';
import type { VerdictExporter, VerdictSource } from '../verdict/publisher.js';
import type { Verdict } from '../verdict/verdict.js';
import { statusInfo } from './info.js';
import type { InfoContext } from './info.js';

export const RUNTIME_NAME = 'cri-netstatus';
export const RUNTIME_API_VERSION = 'v1';
/** The kubelet runtime API version every CRI runtime reports. */
export const KUBELET_API_VERSION = '0.1.0';

/** The RuntimeService calls the agent answers; Status answers encoded bytes so it can cache them. */
export interface CriHandlers {
  version(request: VersionRequest): VersionResponse;
  /** `call.timeoutMs`: the client's grpc-timeout, which caps --refresh-timeout. */
  status(request: StatusRequest, call?: { timeoutMs?: number }): Promise<Buffer>;
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

/** The Status answer, encoded once per verdict. */
export class StatusAnswers implements VerdictExporter {
  private generation = -1;
  private encoded: Buffer = Buffer.alloc(0);

  constructor(private readonly info: InfoContext) {}

  onVerdict(): void {
    this.encoded = Buffer.alloc(0); // not needed again: release it now
    this.generation = -1;
  }

  answer(verdict: Verdict, verbose: boolean): Buffer {
    if (verbose) return encode(verdict, statusInfo(verdict.state, this.info));
    if (verdict.generation !== this.generation) {
      this.encoded = encode(verdict, {});
      this.generation = verdict.generation;
    }
    return this.encoded;
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
