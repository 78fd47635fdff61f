// Pure decisions of the upstream mirror: when to poll next, what RuntimeReady to serve from the
// last poll, and whether the upstream's NetworkReady contradicts the conf dir. No I/O here, so
// every rule is unit-tested with plain values.
import { backoffDelay } from '../backoff.js';
import { profileForRuntime } from '../cni/profiles.js';
import type { Semantics } from '../cni/types.js';
import type { RuntimeCondition } from '../gen/runtime/v1/api.js';

export const UPSTREAM_REASONS = {
  /** Before the first poll has answered (normally never served: serve waits for the first poll). */
  notPolledYet: 'UpstreamNotPolledYet',
  /** No connection: the socket is missing, refuses connections, or the runtime closed it. */
  unreachable: 'UpstreamRuntimeUnreachable',
  /** Connected, but Status did not answer within the poll timeout (a hung or overloaded runtime). */
  timeout: 'UpstreamRuntimeTimeout',
  /** The runtime answered Status with a gRPC error. */
  failed: 'UpstreamStatusFailed',
  /** The runtime answered Status without a RuntimeReady condition. */
  missing: 'UpstreamRuntimeReadyMissing',
  /** The runtime says RuntimeReady=false without giving a reason of its own. */
  notReady: 'UpstreamRuntimeNotReady',
} as const;

export interface PollTiming {
  /** Delay between polls while the upstream answers. */
  intervalMs: number;
  /** First retry delay after a failed poll; doubles with every further failure. */
  initialBackoffMs: number;
  /** Upper bound of the retry delay. */
  maxBackoffMs: number;
}

export const DEFAULT_TIMING: PollTiming & { timeoutMs: number } = {
  intervalMs: 5000,
  timeoutMs: 2000,
  initialBackoffMs: 1000,
  maxBackoffMs: 30_000,
};

/**
 * Delay before the next poll. After a success: the interval. After `failures` consecutive failures:
 * exponential backoff (initial × 2^(failures−1), capped) with "equal jitter", i.e. a uniformly random
 * delay in [d/2, d], so a runtime restart is noticed within about a second while a long outage costs
 * one cheap connect attempt every 15–30 s. `random` is Math.random by default; tests pass their own.
 */
export function nextPollDelay(
  failures: number,
  timing: PollTiming,
  random: () => number = Math.random,
): number {
  if (failures <= 0) return timing.intervalMs;
  return backoffDelay(failures - 1, {
    baseMs: timing.initialBackoffMs,
    maxMs: timing.maxBackoffMs,
    random,
  });
}

/** The result of one poll of the upstream runtime. */
export type PollResult =
  | {
      kind: 'ok';
      conditions: RuntimeCondition[];
      /** containerd's verbose `lastCNILoadStatus` (a plain string there), when the runtime sends one. */
      lastCNILoadStatus?: string;
    }
  | { kind: 'unreachable' | 'timeout' | 'failed'; code: number; codeName: string; error: string };

/** What the mirror knows, as the decisions below need it. */
export interface Observation {
  /** "unix:///path" of the upstream. */
  endpoint: string;
  /** The runtime's name from Version (e.g. "containerd"), once known. */
  runtimeName?: string;
  /** The last poll's result; undefined before the first poll answered. */
  last?: PollResult;
  /** When the current run of failures began (ms since epoch). */
  failingSince?: number;
  timeoutMs: number;
}

/** RuntimeReady as this agent serves it: the upstream's own, or false saying why it is unknown. */
export function mirroredRuntimeCondition(observation: Observation): RuntimeCondition {
  const { endpoint, last } = observation;
  const runtime = observation.runtimeName ?? 'the CRI runtime';
  const failing =
    observation.failingSince === undefined
      ? ''
      : ` (failing since ${new Date(observation.failingSince).toISOString()})`;
  const notReady = (reason: string, message: string): RuntimeCondition => ({
    type: 'RuntimeReady',
    status: false,
    reason,
    message,
  });
  if (last === undefined) {
    return notReady(
      UPSTREAM_REASONS.notPolledYet,
      `waiting for the first Status answer from ${runtime} at ${endpoint}`,
    );
  }
  switch (last.kind) {
    case 'unreachable':
      return notReady(
        UPSTREAM_REASONS.unreachable,
        `cannot reach ${runtime} at ${endpoint}${failing}: ${last.error}; check that the runtime is running and that its socket is mounted into this pod (--runtime-endpoint)`,
      );
    case 'timeout':
      return notReady(
        UPSTREAM_REASONS.timeout,
        `${runtime} at ${endpoint} did not answer Status within ${formatSeconds(observation.timeoutMs)}${failing}; it may be hung or overloaded`,
      );
    case 'failed':
      return notReady(
        UPSTREAM_REASONS.failed,
        `${runtime} at ${endpoint} answered Status with ${last.codeName}${failing}: ${last.error}`,
      );
    case 'ok': {
      const found = last.conditions.find((c) => c.type === 'RuntimeReady');
      if (!found) {
        const types = last.conditions.map((c) => c.type).join(', ') || 'none';
        return notReady(
          UPSTREAM_REASONS.missing,
          `${runtime} at ${endpoint} answered Status without a RuntimeReady condition (conditions: ${types})`,
        );
      }
      if (found.status)
        return { type: 'RuntimeReady', status: true, reason: found.reason, message: found.message };
      return notReady(
        found.reason || UPSTREAM_REASONS.notReady,
        `${runtime} at ${endpoint} reports RuntimeReady=false${found.message ? `: ${found.message}` : ''}`,
      );
    }
  }
}

/** The upstream's NetworkReady from the last poll: undefined when unknown (no answer, or no such condition). */
export function upstreamNetworkReady(last: PollResult | undefined): boolean | undefined {
  if (last?.kind !== 'ok') return undefined;
  return last.conditions.find((c) => c.type === 'NetworkReady')?.status;
}

/**
 * The loading rules the upstream applies to the conf dir, from its Version runtimeName, so the
 * divergence signal compares like with like: an emptied dir is "not ready" for containerd and
 * CRI-O but keeps the last good network under the isulad profile, and neither runtime is wrong then.
 */
export function semanticsOf(runtimeName: string | undefined, runtimeVersion?: string): Semantics | undefined {
  // containerd's rules changed with its vendored libcni: compare with the profile of its release
  // (a containerd whose version cannot be read is compared with containerd-1.7, as before).
  if (runtimeName?.toLowerCase() === 'containerd')
    return profileForRuntime(runtimeName, runtimeVersion) ?? 'containerd-1.7';
  return profileForRuntime(runtimeName, runtimeVersion);
}

/**
 * One divergence sample, taken at each successful poll: the upstream says NetworkReady=false while
 * the conf dir holds a network its own loading rules accept. The exported signal requires two
 * consecutive samples (see UpstreamMirror), so the runtime's asynchronous reload never shows up.
 */
export function divergenceSample(last: PollResult | undefined, agentReady: boolean): boolean {
  return upstreamNetworkReady(last) === false && agentReady;
}

/** gRPC status codes that mean "no answer", as opposed to an answer that is an error. */
export function classifyError(code: number): 'unreachable' | 'timeout' | 'failed' {
  if (code === 14) return 'unreachable'; // UNAVAILABLE
  if (code === 4) return 'timeout'; // DEADLINE_EXCEEDED
  return 'failed';
}

function formatSeconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${(ms / 1000).toFixed(1)}s`;
}
