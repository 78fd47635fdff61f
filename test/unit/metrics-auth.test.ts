// The /metrics authorization decision and its cache, driven by a fake reviewer (the TokenReview
// and SubjectAccessReview answers of a real API server are tested in e2e/metrics-auth.test.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MetricsAuthorizer, bearerToken } from '../../src/metrics/auth.js';
import type { AccessVerdict, Reviewer, TokenVerdict, UserInfo } from '../../src/metrics/auth.js';

/** Tokens "good-*" belong to a user allowed /metrics, "plain-*" to one that is not; others are invalid. */
class FakeReviewer implements Reviewer {
  tokenReviews = 0;
  accessReviews = 0;
  down = false;
  accessAsked: { user: UserInfo; path: string; verb: string }[] = [];
  private gate: Promise<void> | undefined;
  private open: (() => void) | undefined;

  hold(): void {
    this.gate = new Promise((resolve) => (this.open = resolve));
  }
  release(): void {
    this.open?.();
    this.gate = undefined;
  }

  async reviewToken(token: string): Promise<TokenVerdict> {
    this.tokenReviews++;
    await this.gate;
    if (this.down) throw new Error('create tokenreview: API server unreachable: connect ECONNREFUSED');
    if (token.startsWith('good-') || token.startsWith('plain-')) {
      return { authenticated: true, user: { username: `system:serviceaccount:mon:${token}`, groups: ['g'] } };
    }
    return { authenticated: false, why: 'invalid bearer token' };
  }

  reviewAccess(user: UserInfo, attributes: { path: string; verb: string }): Promise<AccessVerdict> {
    this.accessReviews++;
    this.accessAsked.push({ user, ...attributes });
    const allowed = user.username.includes(':good-');
    return Promise.resolve({ allowed, why: allowed ? 'RBAC: allowed' : '' });
  }
}

function setup(options: { maxEntries?: number; maxInFlight?: number } = {}) {
  const reviewer = new FakeReviewer();
  let now = 1_000_000;
  const authorizer = new MetricsAuthorizer({ reviewer, now: () => now, ...options });
  return { reviewer, authorizer, advance: (ms: number) => (now += ms) };
}

test('bearer tokens: only the Bearer scheme (any case), one token, nothing else', () => {
  assert.equal(bearerToken('Bearer abc.def'), 'abc.def');
  assert.equal(bearerToken('bearer abc'), 'abc');
  assert.equal(bearerToken('Basic dXNlcjpwYXNz'), undefined);
  assert.equal(bearerToken('Bearer'), undefined);
  assert.equal(bearerToken('Bearer a b'), undefined);
  assert.equal(bearerToken(undefined), undefined);
});

test('fake reviewer: no token is 401 without asking the API server; a rejected token is 401; a user without the role 403; with it allowed', async () => {
  const { reviewer, authorizer } = setup();
  const none = await authorizer.authorize(undefined);
  assert.deepEqual(
    [none.allowed, !none.allowed && none.status, !none.allowed && none.reason],
    [false, 401, 'no_token'],
  );
  assert.equal(reviewer.tokenReviews, 0);

  const bad = await authorizer.authorize('Bearer forged');
  assert.ok(!bad.allowed);
  assert.equal(bad.status, 401);
  assert.equal(bad.reason, 'unauthenticated');
  assert.match(bad.message, /did not accept the bearer token: invalid bearer token/);
  assert.equal(reviewer.accessReviews, 0, 'no SubjectAccessReview for an unauthenticated token');

  const plain = await authorizer.authorize('Bearer plain-1');
  assert.ok(!plain.allowed);
  assert.equal(plain.status, 403);
  assert.equal(plain.reason, 'forbidden');
  assert.equal(plain.user, 'system:serviceaccount:mon:plain-1');
  assert.match(
    plain.message,
    /may not get \/metrics; bind it to a ClusterRole with nonResourceURLs \["\/metrics"\]/,
  );

  const good = await authorizer.authorize('Bearer good-1');
  assert.deepEqual(good, { allowed: true, user: 'system:serviceaccount:mon:good-1' });
  assert.deepEqual(reviewer.accessAsked.at(-1), {
    user: { username: 'system:serviceaccount:mon:good-1', groups: ['g'] },
    path: '/metrics',
    verb: 'get',
  });
});

test('fake reviewer: allowed answers are cached a minute, denials 10 s', async () => {
  const { reviewer, authorizer, advance } = setup();
  await authorizer.authorize('Bearer good-1');
  await authorizer.authorize('Bearer forged');
  assert.equal(reviewer.tokenReviews, 2);
  advance(9_000);
  await authorizer.authorize('Bearer good-1');
  await authorizer.authorize('Bearer forged');
  assert.equal(reviewer.tokenReviews, 2, 'both answered from the cache');
  advance(2_000); // 11 s: the denial expired, the allowance did not
  await authorizer.authorize('Bearer good-1');
  assert.equal((await authorizer.authorize('Bearer forged')).allowed, false);
  assert.equal(reviewer.tokenReviews, 3);
  advance(50_000); // 61 s after the first review
  assert.equal((await authorizer.authorize('Bearer good-1')).allowed, true);
  assert.equal(reviewer.tokenReviews, 4);
});

test('fake reviewer: an API server that cannot answer fails closed (503) and is asked again on the next scrape', async () => {
  const { reviewer, authorizer } = setup();
  reviewer.down = true;
  const outcome = await authorizer.authorize('Bearer good-1');
  assert.ok(!outcome.allowed);
  assert.equal(outcome.status, 503);
  assert.equal(outcome.reason, 'unavailable');
  assert.match(outcome.message, /the TokenReview failed: .*ECONNREFUSED/);
  reviewer.down = false;
  assert.equal((await authorizer.authorize('Bearer good-1')).allowed, true, 'the failure was not cached');
  assert.equal(reviewer.tokenReviews, 2);
});

test('fake reviewer: concurrent scrapes with one token share one review', async () => {
  const { reviewer, authorizer } = setup();
  reviewer.hold();
  const answers = Promise.all(Array.from({ length: 20 }, () => authorizer.authorize('Bearer good-1')));
  reviewer.release();
  assert.ok((await answers).every((a) => a.allowed));
  assert.equal(reviewer.tokenReviews, 1);
  assert.equal(reviewer.accessReviews, 1);
});

test('fake reviewer: the cache is bounded and evicts the least recently used token', async () => {
  const { reviewer, authorizer } = setup({ maxEntries: 3 });
  for (const token of ['good-1', 'good-2', 'good-3']) await authorizer.authorize(`Bearer ${token}`);
  await authorizer.authorize('Bearer good-1'); // good-1 is now the most recently used
  await authorizer.authorize('Bearer good-4'); // evicts good-2
  assert.equal(authorizer.size, 3);
  const before = reviewer.tokenReviews;
  await authorizer.authorize('Bearer good-1');
  await authorizer.authorize('Bearer good-3');
  assert.equal(reviewer.tokenReviews, before, 'good-1 and good-3 still cached');
  await authorizer.authorize('Bearer good-2');
  assert.equal(reviewer.tokenReviews, before + 1, 'good-2 was evicted');
  for (let i = 0; i < 100; i++) await authorizer.authorize(`Bearer forged-${i}`);
  assert.equal(authorizer.size, 3, 'a flood of distinct tokens does not grow the cache');
});

test('fake reviewer: distinct tokens under review at once are capped; the rest are refused with 503, not queued', async () => {
  const { reviewer, authorizer } = setup({ maxInFlight: 2 });
  reviewer.hold();
  const first = authorizer.authorize('Bearer good-1');
  const second = authorizer.authorize('Bearer good-2');
  const third = await authorizer.authorize('Bearer good-3');
  assert.ok(!third.allowed);
  assert.equal(third.status, 503);
  assert.match(third.message, /2 token reviews are already in flight/);
  reviewer.release();
  assert.ok((await first).allowed && (await second).allowed);
  assert.equal(reviewer.tokenReviews, 2);
  assert.equal((await authorizer.authorize('Bearer good-3')).allowed, true, 'answered once capacity is back');
});

test('fake reviewer: an oversized token is refused without a review', async () => {
  const { reviewer, authorizer } = setup();
  const outcome = await authorizer.authorize(`Bearer ${'a'.repeat(10_000)}`);
  assert.ok(!outcome.allowed);
  assert.equal(outcome.status, 401);
  assert.equal(reviewer.tokenReviews, 0);
});
