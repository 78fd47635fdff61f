// How long a Status call may wait, as one object every waiter inside the call draws from. The budget
// is --refresh-timeout, capped by the call's own grpc-timeout; the refresh waits for at most what is
// left, and a later waiter (a CNI STATUS probe) takes what the refresh did not use, so the call as a
// whole never waits longer than the budget however many waiters it has.
import type { Clock } from './clock.js';

export class Deadline {
  private constructor(
    private readonly clock: Clock,
    /** Clock time at which the call stops waiting. */
    readonly at: number,
  ) {}

  /** A deadline `budgetMs` from now, or sooner when the caller's own timeout (`capMs`) is shorter. */
  static after(clock: Clock, budgetMs: number, capMs?: number): Deadline {
    const ms = capMs === undefined ? budgetMs : Math.min(budgetMs, capMs);
    return new Deadline(clock, clock.now() + Math.max(0, ms));
  }

  /** Milliseconds left (0 once passed). */
  remainingMs(): number {
    return Math.max(0, this.at - this.clock.now());
  }
}

/** Parses a gRPC `grpc-timeout` header ("<digits><H|M|S|m|u|n>") into ms; undefined when absent or malformed. */
export function grpcTimeoutMs(header: string | string[] | undefined): number | undefined {
  if (typeof header !== 'string') return undefined;
  const match = /^(\d{1,8})([HMSmun])$/.exec(header);
  if (!match) return undefined;
  const value = Number(match[1]);
  const unitMs: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };
  return value * (unitMs[match[2] ?? ''] ?? 1);
}
