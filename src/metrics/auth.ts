// Who may read /metrics (--metrics-auth kubernetes): the bearer token must pass a TokenReview and
// its user a SubjectAccessReview for `get` on the non-resource URL /metrics, as kube-rbac-proxy and
// controller-runtime's metrics filter decide. Answers are cached briefly (allowed 1 min, denied
// 10 s, at most 1,024 tokens, least recently used evicted) so a scrape every few seconds costs the
// API server two reviews a minute per scraper. An API server that cannot answer fails closed.
import { errorText } from '../util/text.js';
import { createHash } from 'node:crypto';

export interface UserInfo {
  username: string;
  uid?: string | undefined;
  groups?: string[] | undefined;
  extra?: Record<string, string[]> | undefined;
}

export type TokenVerdict = { authenticated: true; user: UserInfo } | { authenticated: false; why: string };
export type AccessVerdict = { allowed: boolean; why: string };

/** The two API calls; an interface so the decision can be tested without an API server. */
export interface Reviewer {
  reviewToken(token: string): Promise<TokenVerdict>;
  reviewAccess(user: UserInfo, attributes: { path: string; verb: string }): Promise<AccessVerdict>;
}

export const DENY_REASONS = ['no_token', 'unauthenticated', 'forbidden', 'unavailable'] as const;
export type DenyReason = (typeof DENY_REASONS)[number];

export type AuthOutcome =
  | { allowed: true; user: string }
  | {
      allowed: false;
      /** 401 no or bad token, 403 not allowed, 503 the API server could not decide. */
      status: 401 | 403 | 503;
      reason: DenyReason;
      message: string;
      user?: string;
    };

export interface AuthorizerOptions {
  reviewer: Reviewer;
  /** The non-resource URL and verb a SubjectAccessReview asks about. */
  path?: string;
  verb?: string;
  allowTtlMs?: number;
  denyTtlMs?: number;
  maxEntries?: number;
  /** Distinct tokens under review at once; more are refused (503) rather than queued onto the API server. */
  maxInFlight?: number;
  now?: () => number;
}

export const DEFAULT_ALLOW_TTL_MS = 60_000;
export const DEFAULT_DENY_TTL_MS = 10_000;
export const DEFAULT_MAX_ENTRIES = 1024;
export const DEFAULT_MAX_IN_FLIGHT = 16;
/** Longer than any real token (service-account JWTs are about 1 KiB); refused without a review. */
const MAX_TOKEN_LENGTH = 8192;

export class MetricsAuthorizer {
  private readonly cache = new Map<string, { outcome: AuthOutcome; expiresAt: number }>();
  private readonly inFlight = new Map<string, Promise<AuthOutcome>>();
  private readonly path: string;
  private readonly verb: string;
  private readonly allowTtlMs: number;
  private readonly denyTtlMs: number;
  private readonly maxEntries: number;
  private readonly maxInFlight: number;
  private readonly now: () => number;

  constructor(private readonly options: AuthorizerOptions) {
    this.path = options.path ?? '/metrics';
    this.verb = options.verb ?? 'get';
    this.allowTtlMs = options.allowTtlMs ?? DEFAULT_ALLOW_TTL_MS;
    this.denyTtlMs = options.denyTtlMs ?? DEFAULT_DENY_TTL_MS;
    this.maxEntries = options.maxEntries ?? DEFAULT_MAX_ENTRIES;
    this.maxInFlight = options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT;
    this.now = options.now ?? Date.now;
  }

  /** Decides a request from its Authorization header. Never throws. */
  authorize(authorization: string | undefined): Promise<AuthOutcome> {
    const token = bearerToken(authorization);
    if (token === undefined) {
      return Promise.resolve({
        allowed: false,
        status: 401,
        reason: 'no_token',
        message: 'a bearer token is required (Authorization: Bearer <service-account token>)',
      });
    }
    if (token.length > MAX_TOKEN_LENGTH) {
      return Promise.resolve({
        allowed: false,
        status: 401,
        reason: 'unauthenticated',
        message: `the bearer token is longer than ${MAX_TOKEN_LENGTH} characters`,
      });
    }
    // Keyed by a hash: the cache never holds a usable token.
    const key = createHash('sha256').update(token).digest('base64');
    const cached = this.cache.get(key);
    if (cached && cached.expiresAt > this.now()) {
      this.cache.delete(key); // re-insert: Map order is the LRU order
      this.cache.set(key, cached);
      return Promise.resolve(cached.outcome);
    }
    if (cached) this.cache.delete(key);
    const pending = this.inFlight.get(key);
    if (pending) return pending;
    if (this.inFlight.size >= this.maxInFlight) {
      return Promise.resolve({
        allowed: false,
        status: 503,
        reason: 'unavailable',
        message: `${this.maxInFlight} token reviews are already in flight; retry shortly`,
      });
    }
    const review = this.review(token).then((outcome) => {
      this.inFlight.delete(key);
      // Only the API server's own answers are cached; "could not decide" is retried at once.
      if (outcome.allowed || outcome.status !== 503) this.remember(key, outcome);
      return outcome;
    });
    this.inFlight.set(key, review);
    return review;
  }

  /** Tokens whose answers are cached now (for tests and the bounded-size guarantee). */
  get size(): number {
    return this.cache.size;
  }

  private remember(key: string, outcome: AuthOutcome): void {
    const ttl = outcome.allowed ? this.allowTtlMs : this.denyTtlMs;
    if (ttl <= 0) return;
    this.cache.set(key, { outcome, expiresAt: this.now() + ttl });
    while (this.cache.size > this.maxEntries) {
      const oldest = this.cache.keys().next().value;
      if (oldest === undefined) break;
      this.cache.delete(oldest);
    }
  }

  private async review(token: string): Promise<AuthOutcome> {
    const { reviewer } = this.options;
    let identity: TokenVerdict;
    try {
      identity = await reviewer.reviewToken(token);
    } catch (error) {
      return unavailable('TokenReview', error);
    }
    if (!identity.authenticated) {
      return {
        allowed: false,
        status: 401,
        reason: 'unauthenticated',
        message: `the API server did not accept the bearer token${identity.why ? `: ${identity.why}` : ''}`,
      };
    }
    const { user } = identity;
    let access: AccessVerdict;
    try {
      access = await reviewer.reviewAccess(user, { path: this.path, verb: this.verb });
    } catch (error) {
      return { ...unavailable('SubjectAccessReview', error), user: user.username };
    }
    if (!access.allowed) {
      return {
        allowed: false,
        status: 403,
        reason: 'forbidden',
        message: `${user.username} may not ${this.verb} ${this.path}${access.why ? ` (${access.why})` : ''}; bind it to a ClusterRole with nonResourceURLs ["${this.path}"] verbs ["${this.verb}"]`,
        user: user.username,
      };
    }
    return { allowed: true, user: user.username };
  }
}

function unavailable(what: string, error: unknown): Extract<AuthOutcome, { allowed: false }> {
  const why = errorText(error);
  return {
    allowed: false,
    status: 503,
    reason: 'unavailable',
    message: `cannot check the bearer token: the ${what} failed: ${why}`,
  };
}

/** The token of an `Authorization: Bearer <token>` header (scheme case-insensitive, RFC 7235). */
export function bearerToken(header: string | undefined): string | undefined {
  const match = /^bearer +(\S+) *$/i.exec(header ?? '');
  return match?.[1];
}
