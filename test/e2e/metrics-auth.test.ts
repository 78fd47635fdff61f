// --metrics-auth kubernetes against a REAL control plane (etcd + kube-apiserver with RBAC): the
// chart installed by the real helm with metrics.auth.mode=kubernetes and kube.mode=off, so the
// agent's identity holds nothing but the chart's two review verbs. The agent runs as a separate
// process with a bound token of the chart's service account; scrapers are service accounts with
// and without the chart's metrics-reader ClusterRole, and Debian's Prometheus.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REPO_ROOT, startServeProcess } from '../helpers/agent.js';
import type { ServeProcess } from '../helpers/agent.js';
import { condition } from '../helpers/cri.js';
import { cniDirs, conflist, writeAtomic } from '../helpers/fs.js';
import { httpsGet } from '../helpers/https.js';
import { until } from '../helpers/wait.js';
import { startControlPlane } from './harness/apiserver.js';
import type { ControlPlane } from './harness/apiserver.js';
import { describeRun, requirePeers, run } from './harness/peers.js';
import { startPrometheus } from './harness/prometheus.js';

const NAMESPACE = 'kube-system';
const RELEASE = 'cri-netstatus';

describe(
  'kube-apiserver e2e: /metrics behind TokenReview + SubjectAccessReview',
  { concurrency: false },
  () => {
    let cp: ControlPlane;
    let root: string;
    let agent: ServeProcess;
    let base: string;

    const token = async (account: string, namespace = 'monitoring'): Promise<string> =>
      (await cp.kubectlOk(['create', 'token', account, '-n', namespace, '--duration', '1h'])).trim();

    before(async () => {
      const { helm } = requirePeers('helm');
      root = mkdtempSync(join(tmpdir(), 'cri-netstatus-metrics-auth-'));
      cp = await startControlPlane(join(root, 'cp'));
      const install = [
        'install',
        RELEASE,
        join(REPO_ROOT, 'charts', 'cri-netstatus'),
        '-n',
        NAMESPACE,
        '--set',
        'metrics.auth.mode=kubernetes,kube.mode=off',
        '--kubeconfig',
        cp.adminKubeconfig,
      ];
      const installed = await run(helm, install, { timeoutMs: 120_000 });
      assert.equal(installed.code, 0, describeRun('helm', install, installed));

      // The agent's pod on node-a (no kubelet here; the Pod object is what a bound token needs).
      await cp.kubectlOk(['create', '-f', '-'], {
        input: JSON.stringify({
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { name: 'cri-netstatus-node-a', namespace: NAMESPACE },
          spec: {
            nodeName: 'node-a',
            serviceAccountName: RELEASE,
            automountServiceAccountToken: false,
            containers: [{ name: 'cri-netstatus', image: 'registry.invalid/cri-netstatus:e2e' }],
          },
        }),
      });
      const agentToken = (
        await cp.kubectlOk([
          'create',
          'token',
          RELEASE,
          '-n',
          NAMESPACE,
          '--bound-object-kind',
          'Pod',
          '--bound-object-name',
          'cri-netstatus-node-a',
          '--duration',
          '1h',
        ])
      ).trim();

      // Scrapers: prometheus is bound to the chart's reader ClusterRole, nobody is not.
      await cp.kubectlOk(['create', 'namespace', 'monitoring']);
      await cp.kubectlOk(['create', 'serviceaccount', 'prometheus', '-n', 'monitoring']);
      await cp.kubectlOk(['create', 'serviceaccount', 'nobody', '-n', 'monitoring']);
      await cp.kubectlOk([
        'create',
        'clusterrolebinding',
        'prometheus-cri-netstatus',
        `--clusterrole=${RELEASE}-metrics-reader`,
        '--serviceaccount=monitoring:prometheus',
      ]);

      const { confDir, binDir } = cniDirs(root, ['bridge']);
      writeAtomic(join(confDir, '10-a.conflist'), conflist('a', ['bridge']));
      agent = await startServeProcess(join(root, 'cri.sock'), [
        '--cni-conf-dir',
        confDir,
        '--cni-bin-dir',
        binDir,
        '--kube',
        'off',
        '--metrics-auth',
        'kubernetes',
        '--kubeconfig',
        cp.writeKubeconfig('agent-a', agentToken),
        '--node-name',
        'node-a',
      ]);
      base = agent.metricsUrl.replace(/^http:/, 'https:').replace(/\/metrics$/, '');
    });

    after(async () => {
      await agent?.stop();
      await cp?.stop();
      if (root) rmSync(root, { recursive: true, force: true });
    });

    test("the chart's RBAC for the agent is exactly create on tokenreviews and subjectaccessreviews; the reader role is get on /metrics", async () => {
      const role = JSON.parse(await cp.kubectlOk(['get', 'clusterrole', RELEASE, '-o', 'json'])) as {
        rules: { apiGroups: string[]; resources: string[]; verbs: string[] }[];
      };
      assert.deepEqual(
        role.rules.map((r) => `${r.apiGroups.join(',')}/${r.resources.join(',')}:${r.verbs.join(',')}`),
        ['authentication.k8s.io/tokenreviews:create', 'authorization.k8s.io/subjectaccessreviews:create'],
      );
      const reader = JSON.parse(
        await cp.kubectlOk(['get', 'clusterrole', `${RELEASE}-metrics-reader`, '-o', 'json']),
      ) as { rules: { nonResourceURLs: string[]; verbs: string[] }[] };
      assert.deepEqual(reader.rules, [{ nonResourceURLs: ['/metrics'], verbs: ['get'] }]);
      // The agent may not read nodes: kube.mode=off gets no reporter verbs.
      const canI = await cp.kubectl([
        'auth',
        'can-i',
        'get',
        'nodes',
        `--as=system:serviceaccount:${NAMESPACE}:${RELEASE}`,
      ]);
      assert.equal(canI.stdout.trim(), 'no');
    });

    test('anonymous → 401, a token without the ClusterRole → 403, with it → 200; the probes need no token', async () => {
      const logged = await until(
        'the self-signed certificate logged',
        () =>
          agent
            .output()
            .split('\n')
            .find((l) => l.includes('self-signed certificate')),
        10_000,
      );
      const { fingerprint256 } = JSON.parse(logged) as { fingerprint256: string };

      const health = await httpsGet(`${base}/healthz`);
      assert.equal(health.status, 200);
      assert.equal(health.fingerprint256, fingerprint256, 'the served certificate is the logged one');
      assert.equal((await httpsGet(`${base}/readyz`)).status, 200);

      const anonymous = await httpsGet(`${base}/metrics`);
      assert.equal(anonymous.status, 401, anonymous.body);
      const forged = await httpsGet(`${base}/metrics`, { token: 'not-a-real-token' });
      assert.equal(forged.status, 401, forged.body);

      const nobody = await httpsGet(`${base}/metrics`, { token: await token('nobody') });
      assert.equal(nobody.status, 403, nobody.body);
      assert.match(nobody.body, /system:serviceaccount:monitoring:nobody may not get \/metrics/);

      const prometheus = await httpsGet(`${base}/metrics`, { token: await token('prometheus') });
      assert.equal(prometheus.status, 200, prometheus.body);
      assert.match(prometheus.body, /^cri_netstatus_network_ready 1$/m);
      assert.match(prometheus.body, /^cri_netstatus_metrics_auth_denied_total\{reason="forbidden"\} 1$/m);
      assert.match(prometheus.body, /^cri_netstatus_metrics_auth_denied_total\{reason="no_token"\} 1$/m);
      assert.match(
        prometheus.body,
        /^cri_netstatus_metrics_auth_denied_total\{reason="unauthenticated"\} 1$/m,
      );
      const refused = agent
        .output()
        .split('\n')
        .filter((l) => l.includes('metrics scrape refused'))
        .map((l) => JSON.parse(l) as { reason: string; user?: string });
      assert.ok(
        refused.some((l) => l.reason === 'forbidden' && l.user === 'system:serviceaccount:monitoring:nobody'),
        `a log line names the refused user: ${JSON.stringify(refused)}`,
      );
    });

    test("Debian's Prometheus with the service-account token (authorization + tls_config) scrapes: up is 1", async (t) => {
      const credentialsFile = join(root, 'prometheus.token');
      writeFileSync(credentialsFile, await token('prometheus'), { mode: 0o600 });
      const target = new URL(base).host;
      const prometheus = await startPrometheus(t, {
        targets: [target],
        https: { credentialsFile, insecureSkipVerify: true },
      });
      await prometheus.waitFor(
        `up{job="${prometheus.job}"}`,
        (samples) => samples.length === 1 && samples[0]?.value === 1,
        'up == 1 over HTTPS with the token',
        60_000,
      );
      const [health] = await prometheus.targets();
      assert.equal(health?.scrapeUrl, `${base}/metrics`);
      const ready = await prometheus.query('cri_netstatus_network_ready');
      assert.equal(ready[0]?.value, 1);
    });

    test('API server stopped: /metrics fails closed (503) for a token not yet reviewed, while Status, /healthz and /readyz keep answering; back when it returns', async () => {
      const fresh = await token('prometheus'); // never reviewed, so not in the cache
      await cp.stopApiserver();
      try {
        const answer = await httpsGet(`${base}/metrics`, { token: fresh });
        assert.equal(answer.status, 503, answer.body);
        assert.equal(answer.headers['retry-after'], '5');
        assert.match(answer.body, /cannot check the bearer token: the TokenReview failed/);
        const status = await agent.client.status();
        assert.equal(condition(status, 'NetworkReady').status, true);
        assert.equal(condition(status, 'RuntimeReady').status, true);
        assert.equal((await httpsGet(`${base}/healthz`)).status, 200);
        assert.equal((await httpsGet(`${base}/readyz`)).status, 200);
        assert.match(agent.output(), /"reason":"unavailable"/);
      } finally {
        await cp.startApiserver();
      }
      await until(
        'the token accepted again',
        async () => (await httpsGet(`${base}/metrics`, { token: fresh })).status === 200,
        60_000,
        { intervalMs: 500 },
      );
    });
  },
);
