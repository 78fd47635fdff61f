// Retry and heartbeat timing, shared by the Kubernetes writers and the upstream poll. Jitter spreads
// a fleet of agents so that an API server or runtime coming back from an outage, or a DaemonSet
// rolled out at once, is not hit by every node in the same second.

export interface BackoffOptions {
  /** Delay before the first retry, before jitter. */
  baseMs: number;
  /** Ceiling of the delay, before jitter. */
  maxMs: number;
  /** A source of uniform randoms in [0, 1); injectable for tests. */
  random?: () => number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 1000, maxMs: 30_000 };

/**
 * The delay before retry number `attempt` (0 for the first retry): exponential from `baseMs`,
 * capped at `maxMs`, then "equal jitter" (a uniform pick in [delay/2, delay)) so retries never
 * synchronize but still back off.
 */
export function backoffDelay(attempt: number, options: BackoffOptions = DEFAULT_BACKOFF): number {
  const random = options.random ?? Math.random;
  const exponent = Math.min(Math.max(0, Math.floor(attempt)), 30);
  const delay = Math.min(options.maxMs, options.baseMs * 2 ** exponent);
  const jitter = Math.min(Math.max(random(), 0), 1); // an injected source out of [0, 1] is clamped
  return Math.round(delay / 2 + (delay / 2) * jitter);
}

/**
 * Consecutive failures of one writer, and the delay before its next try. The count restarts when
 * failures change class: a 403 from an API server that has just come back (its authorizer not yet
 * warm) must not inherit the exponent of the outage before it and wait minutes.
 */
export class RetryBackoff {
  private failures = 0;
  private permanent: boolean | undefined;

  constructor(
    private readonly transientOptions: BackoffOptions,
    private readonly permanentOptions: BackoffOptions,
  ) {}

  /** The delay before the next try, after a failure that is `permanent` (only an operator can fix it) or not. */
  failed(permanent: boolean): number {
    if (permanent !== this.permanent) {
      this.failures = 0;
      this.permanent = permanent;
    }
    return backoffDelay(this.failures++, permanent ? this.permanentOptions : this.transientOptions);
  }

  succeeded(): void {
    this.failures = 0;
    this.permanent = undefined;
  }
}

/**
 * A heartbeat period with upward jitter, like client-go's wait.Jitter: a uniform pick in
 * [interval, interval × (1 + factor)). It never beats faster than asked.
 */
export function jittered(intervalMs: number, factor = 0.1, random: () => number = Math.random): number {
  // Whole milliseconds picked below an integer spread: rounding a product of floats could land
  // a pick near 1 on the excluded upper bound.
  const spread = Math.floor(intervalMs * factor);
  return intervalMs + Math.floor(spread * random());
}

/**
 * A token bucket: `burst` tokens, refilled at one per `refillMs`. Time is passed in, so the bucket
 * is a pure value that tests drive with a fake clock.
 */
export class TokenBucket {
  private tokens: number;
  private updatedAt: number;

  constructor(
    readonly burst: number,
    readonly refillMs: number,
    now: number,
  ) {
    this.tokens = burst;
    this.updatedAt = now;
  }

  /** Takes a token when one is available. */
  tryTake(now: number): boolean {
    this.refill(now);
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Gives back a token taken for a write that failed before reaching the server. */
  giveBack(now: number): void {
    this.refill(now);
    this.tokens = Math.min(this.burst, this.tokens + 1);
  }

  /** Milliseconds until a token is available (0 when one is). */
  waitMs(now: number): number {
    this.refill(now);
    return this.tokens >= 1 ? 0 : Math.ceil((1 - this.tokens) * this.refillMs);
  }

  private refill(now: number): void {
    if (now > this.updatedAt) {
      this.tokens = Math.min(this.burst, this.tokens + (now - this.updatedAt) / this.refillMs);
      this.updatedAt = now;
    }
  }
}
