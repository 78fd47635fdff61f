// The metrics endpoint with --metrics-auth kubernetes, offline: real HTTPS on loopback with the
// self-signed or a file certificate (reloaded when it changes), the guard on /metrics only, and an
// API server that cannot be reached (a closed loopback port) failing /metrics closed. The real
// TokenReview/SubjectAccessReview answers are tested against kube-apiserver in e2e/metrics-auth.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { createServer } from 'node:net';
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import { createLogger } from '../../src/log.js';
import { MetricsAuthorizer } from '../../src/metrics/auth.js';
import type { Reviewer } from '../../src/metrics/auth.js';
import { startHttpEndpoint } from '../../src/metrics/http.js';
import { startMetricsSecurity } from '../../src/metrics/secure.js';
import { generateSelfSigned } from '../../src/metrics/self-signed.js';
import { runCli, startInProcess } from '../helpers/agent.js';
import { tempDir } from '../helpers/fs.js';
import { httpsGet } from '../helpers/https.js';
import { until } from '../helpers/wait.js';

/** A loopback port nothing listens on: connecting to it is refused at once. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  assert.ok(address && typeof address === 'object');
  return address.port;
}

function kubeconfigFor(dir: string, server: string): string {
  const path = join(dir, 'kubeconfig');
  writeFileSync(
    path,
    [
      'apiVersion: v1',
      'kind: Config',
      'clusters: [{name: c, cluster: {server: "' + server + '", insecure-skip-tls-verify: true}}]',
      'users: [{name: u, user: {token: agent-token}}]',
      'contexts: [{name: x, context: {cluster: c, user: u}}]',
      'current-context: x',
      '',
    ].join('\n'),
  );
  return path;
}

/** Captures JSON log lines. */
function capture() {
  const lines: Record<string, unknown>[] = [];
  const stream = {
    write(line: string) {
      lines.push(JSON.parse(line) as Record<string, unknown>);
      return true;
    },
  } as unknown as NodeJS.WritableStream;
  return { lines, log: createLogger('info', 'json', stream) };
}

test('fake reviewer: HTTPS with a self-signed certificate; /healthz and /readyz open, /metrics 401 / 403 / 200 / 503 by the guard', async (t) => {
  const cert = generateSelfSigned({ commonName: 'test', hosts: ['127.0.0.1'] });
  let down = false;
  const reviewer: Reviewer = {
    reviewToken: (token) => {
      if (down) return Promise.reject(new Error('API server unreachable'));
      return Promise.resolve(
        token === 'forged'
          ? { authenticated: false, why: 'invalid' }
          : { authenticated: true, user: { username: token } },
      );
    },
    reviewAccess: (user) => Promise.resolve({ allowed: user.username === 'scraper', why: '' }),
  };
  const authorizer = new MetricsAuthorizer({ reviewer, allowTtlMs: 0, denyTtlMs: 0 });
  const registry = new Registry();
  registry.setDefaultLabels({});
  const server = await startHttpEndpoint({
    address: { host: '127.0.0.1', port: 0 },
    registry,
    ready: () => ({ ok: true }),
    tls: { cert: cert.cert, key: cert.key },
    guard: async (request) => {
      const outcome = await authorizer.authorize(request.headers.authorization);
      return outcome.allowed ? undefined : { status: outcome.status, message: outcome.message };
    },
  });
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const bound = server.address();
  assert.ok(bound && typeof bound === 'object');
  const base = `https://127.0.0.1:${bound.port}`;

  const health = await httpsGet(`${base}/healthz`, { ca: cert.cert });
  assert.equal(health.status, 200, 'the kubelet probes need no token');
  assert.equal(
    health.fingerprint256,
    cert.fingerprint256,
    'the certificate logged at start is the one served',
  );
  assert.equal((await httpsGet(`${base}/readyz`, { ca: cert.cert })).status, 200);

  const anonymous = await httpsGet(`${base}/metrics`, { ca: cert.cert });
  assert.equal(anonymous.status, 401);
  assert.match(anonymous.body, /bearer token is required/);
  assert.equal((await httpsGet(`${base}/metrics`, { ca: cert.cert, token: 'forged' })).status, 401);
  const other = await httpsGet(`${base}/metrics`, { ca: cert.cert, token: 'someone-else' });
  assert.equal(other.status, 403);
  assert.match(other.body, /someone-else may not get \/metrics/);
  assert.equal((await httpsGet(`${base}/metrics`, { ca: cert.cert, token: 'scraper' })).status, 200);
  down = true;
  assert.equal((await httpsGet(`${base}/metrics`, { ca: cert.cert, token: 'scraper' })).status, 503);

  // Plain HTTP to the HTTPS port gets no metrics.
  const plain = await fetch(`http://127.0.0.1:${bound.port}/metrics`).then(
    (r) => r.status,
    () => 'refused',
  );
  assert.notEqual(plain, 200);
});

test('startMetricsSecurity: an unreachable API server fails /metrics closed with 503, counts and logs the denials once a minute per reason', async (t) => {
  const dir = tempDir(t);
  const { lines, log } = capture();
  const registry = new Registry();
  const security = await startMetricsSecurity({
    mode: 'kubernetes',
    kubeconfig: kubeconfigFor(dir, `https://127.0.0.1:${await closedPort()}`),
    nodeName: 'node-a',
    env: {},
    log,
    registry,
  });
  assert.ok(security);
  t.after(() => security.stop());
  const started = lines.find((l) => String(l.msg).includes('self-signed'));
  assert.ok(started, 'the self-signed certificate is logged');
  const server = await startHttpEndpoint({
    address: { host: '127.0.0.1', port: 0 },
    registry,
    ready: () => ({ ok: true }),
    tls: security.tls,
    guard: security.guard,
  });
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const bound = server.address();
  assert.ok(bound && typeof bound === 'object');
  const base = `https://127.0.0.1:${bound.port}`;

  const first = await httpsGet(`${base}/metrics`);
  assert.equal(
    first.fingerprint256,
    started.fingerprint256,
    'the logged fingerprint is the served certificate',
  );
  assert.equal(first.status, 401);
  assert.equal(first.headers['www-authenticate'], 'Bearer realm="cri-netstatus"');
  for (let i = 0; i < 3; i++) {
    const answer = await httpsGet(`${base}/metrics`, { token: 'some-token' });
    assert.equal(answer.status, 503);
    assert.equal(answer.headers['retry-after'], '5');
    assert.match(answer.body, /cannot check the bearer token: the TokenReview failed: .*unreachable/);
  }
  const exposition = await registry.metrics();
  const byReason: Record<string, number> = {};
  for (const m of exposition.matchAll(
    /^cri_netstatus_metrics_auth_denied_total\{reason="(\w+)"\} (\d+)$/gm,
  )) {
    byReason[m[1] ?? ''] = Number(m[2]);
  }
  assert.deepEqual(byReason, { no_token: 1, unauthenticated: 0, forbidden: 0, unavailable: 3 });
  const refused = lines.filter((l) => String(l.msg).startsWith('metrics scrape refused'));
  assert.deepEqual(
    refused.map((l) => l.reason),
    ['no_token', 'unavailable'],
    'one line per reason, the repeats counted into the next line',
  );
  assert.equal((await httpsGet(`${base}/healthz`)).status, 200, 'the probes do not depend on the API server');
});

test('startMetricsSecurity: a certificate from files is served and reloaded when the Secret changes; a bad pair keeps the last good one', async (t) => {
  const dir = tempDir(t);
  const certFile = join(dir, 'tls.crt');
  const keyFile = join(dir, 'tls.key');
  const write = (pair: { cert: string; key: string }) => {
    // As a Secret volume changes: both files replaced by rename.
    writeFileSync(`${certFile}.new`, pair.cert);
    writeFileSync(`${keyFile}.new`, pair.key);
    renameSync(`${certFile}.new`, certFile);
    renameSync(`${keyFile}.new`, keyFile);
  };
  const a = generateSelfSigned({ commonName: 'a', hosts: ['127.0.0.1'] });
  const b = generateSelfSigned({ commonName: 'b', hosts: ['127.0.0.1'] });
  write(a);
  const { lines, log } = capture();
  const registry = new Registry();
  const security = await startMetricsSecurity({
    mode: 'kubernetes',
    certFile,
    keyFile,
    kubeconfig: kubeconfigFor(dir, `https://127.0.0.1:${await closedPort()}`),
    env: {},
    log,
    registry,
    reloadIntervalMs: 50,
  });
  assert.ok(security);
  t.after(() => security.stop());
  const server = await startHttpEndpoint({
    address: { host: '127.0.0.1', port: 0 },
    registry,
    ready: () => ({ ok: true }),
    tls: security.tls,
    guard: security.guard,
  });
  security.attach(server);
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const bound = server.address();
  assert.ok(bound && typeof bound === 'object');
  const healthz = `https://127.0.0.1:${bound.port}/healthz`;
  assert.equal((await httpsGet(healthz, { ca: a.cert })).fingerprint256, a.fingerprint256);

  write(b);
  await until(
    'the new certificate served',
    async () => (await httpsGet(healthz)).fingerprint256 === b.fingerprint256,
    10_000,
  );
  assert.ok(lines.some((l) => l.msg === 'metrics endpoint: serving certificate reloaded'));

  write({ cert: a.cert, key: b.key }); // a key that does not belong to the certificate
  await until(
    'the bad pair reported',
    () => lines.some((l) => String(l.msg).includes('does not load')),
    10_000,
  );
  const error = lines.find((l) => String(l.msg).includes('does not load'));
  assert.match(String(error?.err), /--metrics-tls-key .* cannot serve --metrics-tls-cert/);
  assert.equal((await httpsGet(healthz)).fingerprint256, b.fingerprint256, 'the last good certificate stays');
  assert.equal(new X509Certificate(b.cert).subject, 'CN=b');
});

test('serve: metrics flags that do not go together are usage errors (exit 2) naming the flags', async () => {
  const alone = await runCli(['serve', '--metrics-tls-cert', '/x.crt', '--metrics-tls-key', '/x.key']);
  assert.equal(alone.code, 2);
  assert.match(
    alone.stderr,
    /--metrics-tls-cert and --metrics-tls-key are used only with --metrics-auth kubernetes/,
  );
  const half = await runCli(['serve', '--metrics-auth', 'kubernetes', '--metrics-tls-cert', '/x.crt']);
  assert.equal(half.code, 2);
  assert.match(half.stderr, /go together/);
  const bad = await runCli(['serve', '--metrics-auth', 'basic']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--metrics-auth: "basic" is not one of none, kubernetes/);
});

test('--metrics-auth kubernetes without API access fails at start, saying what to pass', async (t) => {
  await assert.rejects(
    startInProcess(t, ['--metrics-auth', 'kubernetes']),
    /--metrics-auth kubernetes needs the API server .*pass --kubeconfig PATH/,
  );
});

test('startMetricsSecurity: a certificate file that is not PEM, or a key of another certificate, fails the start naming the file', async (t) => {
  const dir = tempDir(t);
  const certFile = join(dir, 'tls.crt');
  const keyFile = join(dir, 'tls.key');
  const a = generateSelfSigned({ commonName: 'a', hosts: ['localhost'] });
  const b = generateSelfSigned({ commonName: 'b', hosts: ['localhost'] });
  const { log } = capture();
  const start = () =>
    startMetricsSecurity({
      mode: 'kubernetes',
      certFile,
      keyFile,
      kubeconfig: kubeconfigFor(dir, 'https://127.0.0.1:1'),
      env: {},
      log,
      registry: new Registry(),
    });
  writeFileSync(certFile, 'not a certificate\n');
  writeFileSync(keyFile, a.key);
  await assert.rejects(start(), new RegExp(`--metrics-tls-cert ${certFile} is not a PEM certificate`));
  writeFileSync(certFile, a.cert);
  writeFileSync(keyFile, b.key);
  await assert.rejects(
    start(),
    new RegExp(`--metrics-tls-key ${keyFile} cannot serve --metrics-tls-cert ${certFile}`),
  );
  await assert.rejects(
    startMetricsSecurity({
      mode: 'kubernetes',
      certFile: join(dir, 'missing.crt'),
      keyFile,
      kubeconfig: kubeconfigFor(dir, 'https://127.0.0.1:1'),
      env: {},
      log,
      registry: new Registry(),
    }),
    /--metrics-tls-cert: cannot read .*missing\.crt \(ENOENT\)/,
  );
});
