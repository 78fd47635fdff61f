import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  DEFAULT_TIMING,
  UPSTREAM_REASONS,
  classifyError,
  divergenceSample,
  mirroredRuntimeCondition,
  nextPollDelay,
  semanticsOf,
  upstreamNetworkReady,
} from '../../src/upstream/policy.js';
import type { Observation, PollResult } from '../../src/upstream/policy.js';
import { describeGrpcError } from '../../src/upstream/client.js';

const timing = { intervalMs: 5000, initialBackoffMs: 1000, maxBackoffMs: 30_000 };
const endpoint = 'unix:///run/containerd/containerd.sock';
const base: Observation = { endpoint, timeoutMs: 2000 };

test('polls every interval while the upstream answers', () => {
  assert.equal(
    nextPollDelay(0, timing, () => 0.5),
    5000,
  );
  assert.equal(
    nextPollDelay(0, timing, () => 0),
    5000,
    'no jitter on the steady interval',
  );
});

test('backs off exponentially with equal jitter while the upstream fails, capped', () => {
  // failures=n → ceiling initial×2^(n−1), delay uniform in [ceiling/2, ceiling]
  assert.equal(
    nextPollDelay(1, timing, () => 0),
    500,
  );
  assert.equal(
    nextPollDelay(1, timing, () => 1),
    1000,
  );
  assert.equal(
    nextPollDelay(2, timing, () => 1),
    2000,
  );
  assert.equal(
    nextPollDelay(4, timing, () => 0.5),
    6000,
  );
  assert.equal(
    nextPollDelay(6, timing, () => 1),
    30_000,
    '32s ceiling is capped at 30s',
  );
  assert.equal(
    nextPollDelay(1000, timing, () => 0),
    15_000,
    'huge failure counts neither overflow nor exceed the cap',
  );
  assert.equal(
    nextPollDelay(3, timing, () => 7),
    4000,
    'a random source out of [0,1] is clamped',
  );
  for (let failures = 1; failures < 40; failures++) {
    const delay = nextPollDelay(failures, timing);
    assert.ok(delay >= 500 && delay <= 30_000, `delay ${delay} after ${failures} failures`);
  }
});

test('the defaults are a bounded timeout below the interval', () => {
  assert.ok(DEFAULT_TIMING.timeoutMs < DEFAULT_TIMING.intervalMs);
  assert.deepEqual(
    { interval: DEFAULT_TIMING.intervalMs, timeout: DEFAULT_TIMING.timeoutMs },
    { interval: 5000, timeout: 2000 },
  );
});

test('RuntimeReady mirrors an answering upstream, reason and message included', () => {
  const ok = (status: boolean, reason = '', message = ''): PollResult => ({
    kind: 'ok',
    conditions: [
      { type: 'RuntimeReady', status, reason, message },
      { type: 'NetworkReady', status: true, reason: '', message: '' },
    ],
  });
  assert.deepEqual(mirroredRuntimeCondition({ ...base, runtimeName: 'containerd', last: ok(true) }), {
    type: 'RuntimeReady',
    status: true,
    reason: '',
    message: '',
  });
  const down = mirroredRuntimeCondition({
    ...base,
    runtimeName: 'iSulad',
    last: ok(false, 'iSuladDaemonNotReady', 'iSulad: failed to get iSulad version: x'),
  });
  assert.equal(down.status, false);
  assert.equal(down.reason, 'iSuladDaemonNotReady', "the upstream's own reason is kept");
  assert.equal(
    down.message,
    `iSulad at ${endpoint} reports RuntimeReady=false: iSulad: failed to get iSulad version: x`,
  );
  const bare = mirroredRuntimeCondition({ ...base, last: ok(false) });
  assert.equal(bare.reason, UPSTREAM_REASONS.notReady);
  assert.equal(bare.message, `the CRI runtime at ${endpoint} reports RuntimeReady=false`);
});

test('RuntimeReady is false with an actionable reason whenever the upstream does not answer', () => {
  const since = Date.parse('2026-11-27T10:00:00Z');
  const unreachable = mirroredRuntimeCondition({
    ...base,
    failingSince: since,
    last: {
      kind: 'unreachable',
      code: 14,
      codeName: 'UNAVAILABLE',
      error: 'connect ENOENT /run/containerd/containerd.sock',
    },
  });
  assert.equal(unreachable.status, false);
  assert.equal(unreachable.reason, 'UpstreamRuntimeUnreachable');
  assert.equal(
    unreachable.message,
    `cannot reach the CRI runtime at ${endpoint} (failing since 2026-11-27T10:00:00.000Z): connect ENOENT /run/containerd/containerd.sock; check that the runtime is running and that its socket is mounted into this pod (--runtime-endpoint)`,
  );
  const timeout = mirroredRuntimeCondition({
    ...base,
    runtimeName: 'containerd',
    last: { kind: 'timeout', code: 4, codeName: 'DEADLINE_EXCEEDED', error: 'Deadline exceeded' },
  });
  assert.equal(timeout.reason, 'UpstreamRuntimeTimeout');
  assert.match(
    timeout.message,
    /^containerd at unix:\/\/\/run\/containerd\/containerd\.sock did not answer Status within 2s; it may be hung/,
  );
  const failed = mirroredRuntimeCondition({
    ...base,
    last: {
      kind: 'failed',
      code: 12,
      codeName: 'UNIMPLEMENTED',
      error: 'unknown service runtime.v1.RuntimeService',
    },
  });
  assert.equal(failed.reason, 'UpstreamStatusFailed');
  assert.match(
    failed.message,
    /answered Status with UNIMPLEMENTED: unknown service runtime\.v1\.RuntimeService$/,
  );
  const missing = mirroredRuntimeCondition({
    ...base,
    last: { kind: 'ok', conditions: [{ type: 'NetworkReady', status: true, reason: '', message: '' }] },
  });
  assert.equal(missing.reason, 'UpstreamRuntimeReadyMissing');
  assert.match(missing.message, /without a RuntimeReady condition \(conditions: NetworkReady\)$/);
  const pending = mirroredRuntimeCondition(base);
  assert.equal(pending.status, false);
  assert.equal(pending.reason, 'UpstreamNotPolledYet');
});

test('the upstream NetworkReady is unknown unless it answered with that condition', () => {
  assert.equal(upstreamNetworkReady(undefined), undefined);
  assert.equal(
    upstreamNetworkReady({ kind: 'timeout', code: 4, codeName: 'DEADLINE_EXCEEDED', error: '' }),
    undefined,
  );
  assert.equal(upstreamNetworkReady({ kind: 'ok', conditions: [] }), undefined);
  const notReady: PollResult = {
    kind: 'ok',
    conditions: [{ type: 'NetworkReady', status: false, reason: 'NetworkPluginNotReady', message: '' }],
  };
  assert.equal(upstreamNetworkReady(notReady), false);
  assert.equal(divergenceSample(notReady, true), true, 'runtime not ready, conf dir ready: diverged');
  assert.equal(divergenceSample(notReady, false), false, 'both not ready: they agree');
  assert.equal(
    divergenceSample({ kind: 'ok', conditions: [] }, true),
    false,
    'unknown is never a divergence',
  );
  assert.equal(
    divergenceSample({ kind: 'unreachable', code: 14, codeName: 'UNAVAILABLE', error: '' }, true),
    false,
  );
});

test("the upstream's loading rules follow its runtime name", () => {
  assert.equal(semanticsOf('containerd'), 'containerd-1.7', 'an unreadable version keeps the 1.6/1.7 rules');
  assert.equal(semanticsOf('containerd', 'v1.6.20'), 'containerd-1.7');
  assert.equal(semanticsOf('containerd', '2.0.5'), 'containerd-2.0');
  assert.equal(semanticsOf('containerd', 'v2.4.2'), 'containerd-2.1');
  assert.equal(semanticsOf('cri-o'), 'crio');
  assert.equal(semanticsOf('iSulad'), 'isulad');
  assert.equal(semanticsOf('cri-netstatus'), undefined);
  assert.equal(semanticsOf(undefined), undefined);
});

test('UNAVAILABLE is unreachable, DEADLINE_EXCEEDED a timeout, anything else an answer that failed', () => {
  assert.equal(classifyError(14), 'unreachable');
  assert.equal(classifyError(4), 'timeout');
  assert.equal(classifyError(12), 'failed');
  assert.equal(classifyError(13), 'failed');
});

test('grpc-js errors are reduced to the cause an operator can act on', () => {
  assert.equal(
    describeGrpcError({
      code: 14,
      details:
        'No connection established. Last error: Error: connect ENOENT /run/containerd/containerd.sock. Resolution note: ',
      message: '',
    }),
    'connect ENOENT /run/containerd/containerd.sock',
  );
  assert.equal(
    describeGrpcError({ code: 4, details: 'Deadline exceeded after 2.001s', message: '' }),
    'Deadline exceeded after 2.001s',
  );
  assert.equal(describeGrpcError({ code: 12, details: '', message: '' }), 'UNIMPLEMENTED');
});
