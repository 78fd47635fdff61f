// The Kubernetes reporter against a REAL control plane: etcd + kube-apiserver (built by
// scripts/peers.sh) with RBAC, a service-account issuer and the ValidatingAdmissionPolicy admission
// plugin. The chart is installed with the real helm (least-privilege RBAC, the admission policy,
// the uninstall cleanup hook). The agent runs as a separate process with a TokenRequest token of the chart's
// service account bound to a Pod on node-a, exactly what a DaemonSet pod gets.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CONDITION_REASONS, CONDITION_TYPE } from '../../src/kube/condition.js';
import { loadKubeconfig } from '../../src/kube/config.js';
import { createKubeApi } from '../../src/kube/client.js';
import type { KubeError } from '../../src/kube/errors.js';
import type { EventBody } from '../../src/kube/events.js';
import { removeConditionEverywhere } from '../../src/kube/cleanup.js';
import { REPO_ROOT, scrape, startServeProcess } from '../helpers/agent.js';
import type { ServeProcess } from '../helpers/agent.js';
import { quantile, statusLatencies } from '../helpers/cri.js';
import { cniDirs, conflist, writeAtomic } from '../helpers/fs.js';
import { sleep, until as waitUntil } from '../helpers/wait.js';
import { startControlPlane } from './harness/apiserver.js';
import type { ControlPlane } from './harness/apiserver.js';
import { describeRun, requirePeers, run } from './harness/peers.js';

const NAMESPACE = 'kube-system';
const RELEASE = 'cri-netstatus';
const SERVICE_ACCOUNT = 'cri-netstatus';
const AGENT_USER = `system:serviceaccount:${NAMESPACE}:${SERVICE_ACCOUNT}`;

interface NodeCondition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
  lastHeartbeatTime?: string;
  lastTransitionTime?: string;
}

interface KubeEvent {
  metadata: { name: string; namespace: string };
  involvedObject: { apiVersion?: string; kind?: string; name?: string };
  type: string;
  reason: string;
  message: string;
  count: number;
  source?: { component?: string; host?: string };
}

/** The shared wait, polling the API server every 200 ms and riding out its errors. */
const until = <T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number): Promise<T> =>
  waitUntil(what, probe, timeoutMs, { intervalMs: 200, retryErrors: true });

describe('kube-apiserver e2e: Node condition, Events, RBAC and admission', { concurrency: false }, () => {
  let cp: ControlPlane;
  let helm: string;
  let root: string;
  let chart: string;
  let confDir: string;
  let binDir: string;
  let agentKubeconfig: string;
  let agent: ServeProcess | undefined;

  const helmRun = (args: string[]) =>
    run(helm, [...args, '--kubeconfig', cp.adminKubeconfig], { timeoutMs: 120_000 });

  async function node(name: string): Promise<{ conditions: NodeCondition[] }> {
    const { status, body } = await cp.get(`/api/v1/nodes/${name}`);
    assert.equal(status, 200, `GET node ${name}: ${JSON.stringify(body)}`);
    return { conditions: (body as { status?: { conditions?: NodeCondition[] } }).status?.conditions ?? [] };
  }
  const mine = async (name = 'node-a') =>
    (await node(name)).conditions.find((c) => c.type === CONDITION_TYPE);
  /** Waits until node-a's condition is one that `accept` takes, and returns it. */
  const mineWhen = (what: string, accept: (c: NodeCondition) => boolean, timeoutMs: number) =>
    until(
      what,
      async () => {
        const c = await mine();
        return c && accept(c) ? c : undefined;
      },
      timeoutMs,
    );

  async function events(): Promise<KubeEvent[]> {
    const { body } = await cp.get('/api/v1/namespaces/default/events');
    return ((body as { items?: KubeEvent[] }).items ?? []).filter(
      (e) => e.source?.component === 'cri-netstatus',
    );
  }

  function startAgent(extra: string[] = []): Promise<ServeProcess> {
    return startServeProcess(join(root, 'cri.sock'), [
      '--cni-conf-dir',
      confDir,
      '--cni-bin-dir',
      binDir,
      '--kube',
      'on',
      '--kubeconfig',
      agentKubeconfig,
      '--node-name',
      'node-a',
      '--kube-heartbeat',
      '2s',
      '--resync-interval',
      '1s',
      // isulad semantics keep a last good config forever; past this it counts as not ready.
      '--stale-after',
      '2s',
      ...extra,
    ]);
  }

  before(async () => {
    helm = requirePeers('helm').helm;
    root = mkdtempSync(join(tmpdir(), 'cri-netstatus-kube-e2e-'));
    cp = await startControlPlane(join(root, 'cp'));
    ({ confDir, binDir } = cniDirs(root, ['bridge', 'portmap']));
    writeAtomic(join(confDir, '10-a.conflist'), conflist('a', ['bridge', 'portmap']));

    // Two Nodes, as the kubelet would register them.
    for (const name of ['node-a', 'node-b']) {
      await cp.kubectlOk(['create', '-f', '-'], {
        input: JSON.stringify({
          apiVersion: 'v1',
          kind: 'Node',
          metadata: { name, labels: { 'kubernetes.io/os': 'linux' } },
        }),
      });
    }
    chart = join(REPO_ROOT, 'charts', 'cri-netstatus');
    const install = [
      'install',
      RELEASE,
      chart,
      '-n',
      NAMESPACE,
      '--set',
      'kube.admissionPolicy.enabled=true',
    ];
    const installed = await helmRun(install);
    assert.equal(installed.code, 0, describeRun('helm', install, installed));

    // The DaemonSet's pod on node-a (no kubelet runs here; the Pod object is what a bound token needs).
    const pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'cri-netstatus-node-a', namespace: NAMESPACE },
      spec: {
        nodeName: 'node-a',
        serviceAccountName: SERVICE_ACCOUNT,
        automountServiceAccountToken: false,
        containers: [{ name: 'cri-netstatus', image: 'registry.invalid/cri-netstatus:e2e' }],
      },
    };
    await cp.kubectlOk(['create', '-f', '-'], { input: JSON.stringify(pod) });
    const token = (
      await cp.kubectlOk([
        'create',
        'token',
        SERVICE_ACCOUNT,
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
    agentKubeconfig = cp.writeKubeconfig('agent-a', token);
  });

  after(async () => {
    await agent?.stop();
    await cp?.stop();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  test('helm installed the chart: least-privilege RBAC, the service account and the admission policy; upgrade with changed values works', async () => {
    const role = JSON.parse(await cp.kubectlOk(['get', 'clusterrole', RELEASE, '-o', 'json'])) as {
      rules: { apiGroups: string[]; resources: string[]; verbs: string[] }[];
    };
    assert.deepEqual(
      role.rules.map((r) => `${r.resources.join(',')}:${r.verbs.join(',')}`),
      ['nodes:get', 'nodes/status:patch'],
    );
    await cp.kubectlOk(['get', 'validatingadmissionpolicy', `${RELEASE}-own-node`]);
    await cp.kubectlOk(['get', 'daemonset', RELEASE, '-n', NAMESPACE]);

    const upgrade = async (set: string): Promise<void> => {
      const args = ['upgrade', RELEASE, chart, '-n', NAMESPACE, '--reuse-values', '--set', set];
      const result = await helmRun(args);
      assert.equal(result.code, 0, describeRun('helm', args, result));
    };
    // A value unlike both the default and the install's, so the assertion proves the upgrade applied.
    await upgrade('kube.admissionPolicy.enabled=false,kube.heartbeat=7m');
    const gone = await cp.kubectl(['get', 'validatingadmissionpolicy', `${RELEASE}-own-node`]);
    assert.notEqual(gone.code, 0, 'the policy is removed when disabled');
    const ds = await cp.kubectlOk(['get', 'daemonset', RELEASE, '-n', NAMESPACE, '-o', 'json']);
    assert.match(ds, /"name": "CRI_NETSTATUS_KUBE_HEARTBEAT",\s*"value": "7m"/);
    await upgrade('kube.admissionPolicy.enabled=true,kube.heartbeat=5m');
    await cp.kubectlOk(['get', 'validatingadmissionpolicybinding', `${RELEASE}-own-node`]);
  });

  test('kubectl apply --dry-run=server accepts every manifest in deploy/ (with the prometheus-operator CRDs)', async (t) => {
    // The monitoring manifests need the prometheus-operator CRDs: the real ones, which
    // scripts/peers.sh takes from the prometheus-operator Go module.
    const crds = requirePeers('monitoringCrds').monitoringCrds;
    for (const kind of ['podmonitors', 'servicemonitors', 'prometheusrules']) {
      await cp.kubectlOk(['create', '-f', join(crds, `monitoring.coreos.com_${kind}.yaml`)]);
    }
    await cp.kubectlOk([
      'wait',
      '--for=condition=Established',
      '--timeout=60s',
      'crd/podmonitors.monitoring.coreos.com',
      'crd/servicemonitors.monitoring.coreos.com',
      'crd/prometheusrules.monitoring.coreos.com',
    ]);

    const deploy = join(REPO_ROOT, 'deploy');
    const files = readdirSync(deploy, { recursive: true, encoding: 'utf8' })
      .filter((f) => /\.ya?ml$/.test(f))
      .sort();
    assert.ok(files.length >= 3, files.join(', '));
    let applied = 0;
    for (const file of files) {
      const path = join(deploy, file);
      const text = readFileSync(path, 'utf8');
      const isKustomization = /(^|\/)kustomization\.ya?ml$/.test(file);
      if (!isKustomization && !/^apiVersion:/m.test(text)) {
        t.diagnostic(
          `${file}: not a Kubernetes manifest (a Prometheus rule file), checked by promtool elsewhere`,
        );
        continue;
      }
      const args = [
        'apply',
        '--dry-run=server',
        isKustomization ? '-k' : '-f',
        isKustomization ? dirname(path) : path,
      ];
      const result = await cp.kubectl(args);
      assert.equal(result.code, 0, describeRun('kubectl', args, result));
      assert.match(result.stdout, /\(server dry run\)/);
      applied++;
    }
    assert.ok(applied >= 4, `${applied} manifests applied`);
  });

  test('kubectl auth can-i proves least privilege for the agent’s service account', async () => {
    const can = async (...args: string[]) => {
      const result = await cp.kubectl(['auth', 'can-i', '--as', AGENT_USER, ...args]);
      return result.stdout.trim();
    };
    const allowed: string[][] = [
      ['get', 'nodes/node-a'],
      ['patch', 'nodes/node-a', '--subresource=status'],
      ['create', 'events', '-n', 'default'],
      ['patch', 'events', '-n', 'default'],
    ];
    const denied: string[][] = [
      ['list', 'nodes'],
      ['watch', 'nodes'],
      ['patch', 'nodes/node-a'],
      ['update', 'nodes/node-a'],
      ['delete', 'nodes/node-a'],
      ['update', 'nodes/node-a', '--subresource=status'],
      ['create', 'nodes'],
      ['get', 'secrets', '-n', NAMESPACE],
      ['list', 'secrets', '-A'],
      ['get', 'configmaps', '-n', NAMESPACE],
      ['get', 'pods', '-n', NAMESPACE],
      ['list', 'pods', '-A'],
      ['create', 'pods', '-n', NAMESPACE],
      ['create', 'pods/eviction', '-n', NAMESPACE],
      ['get', 'events', '-n', 'default'],
      ['list', 'events', '-n', 'default'],
      ['delete', 'events', '-n', 'default'],
      ['create', 'events', '-n', NAMESPACE],
      ['create', 'events.events.k8s.io', '-n', 'default'],
      ['create', 'serviceaccounts/token', '-n', NAMESPACE],
      ['*', '*'],
    ];
    for (const args of allowed) assert.equal(await can(...args), 'yes', `can-i ${args.join(' ')}`);
    for (const args of denied) assert.equal(await can(...args), 'no', `can-i ${args.join(' ')}`);
  });

  test('the agent writes its condition on node-a with the right fields, and nothing on node-b', async () => {
    const startedAt = Date.now();
    agent = await startAgent();
    const condition = await until('the condition on node-a', () => mine(), 20_000);
    assert.equal(condition.status, 'True');
    assert.equal(condition.reason, CONDITION_REASONS.loaded);
    assert.equal(
      condition.message,
      `network "a" from ${confDir}/10-a.conflist (cniVersion 1.0.0, plugins bridge, portmap)`,
    );
    const transition = Date.parse(condition.lastTransitionTime ?? '');
    assert.ok(
      transition >= Math.floor(startedAt / 1000) * 1000 && transition <= Date.now(),
      condition.lastTransitionTime,
    );
    assert.ok(Date.parse(condition.lastHeartbeatTime ?? '') >= transition);
    assert.equal(await mine('node-b'), undefined, 'node-b is not this agent’s node');
    const started = agent;
    assert.match(started.output(), /Kubernetes reporting on: Node condition and Events/);
    // The API server has the write before the agent has read its answer: wait for the agent's view.
    await until(
      "the agent's log and metric of the write",
      async () =>
        new RegExp(`Node condition ${CONDITION_TYPE}=True \\(NetworkConfigLoaded\\)`).test(
          started.output(),
        ) && (await scrape(started.metricsUrl, 'cri_netstatus_kube_condition_synced')) === 1
          ? true
          : undefined,
      10_000,
    );
  });

  test('breaking and fixing the conf dir flips the condition with the right transition times', async () => {
    const current = agent ?? (await startAgent());
    agent = current;
    const before = await until('the condition', () => mine(), 20_000);
    await sleep(1100); // so a new transition time is visibly different
    const brokeAt = Date.now();
    // An in-place writer leaves a broken file: its last good content stays in force.
    writeFileSync(join(confDir, '10-a.conflist'), '{"cniVersion": "1.0.0", "name": "a", "plugins": [{}]}');
    await current.client.status();
    const broken = await mineWhen(
      'the condition to say a last good config is served',
      (c) => c.reason === CONDITION_REASONS.lastGood,
      15_000,
    );
    assert.equal(broken.status, 'True', 'a last good config is still a network');
    assert.match(broken.message ?? '', /serving the last good config of network "a" from .*10-a\.conflist/);
    assert.match(broken.message ?? '', /type/, 'the message carries the validation error');
    const brokeTransition = Date.parse(broken.lastTransitionTime ?? '');
    assert.ok(
      brokeTransition >= Math.floor(brokeAt / 1000) * 1000,
      `${broken.lastTransitionTime} after the break`,
    );
    assert.ok(brokeTransition > Date.parse(before.lastTransitionTime ?? ''));

    // Past --stale-after (2 s) NetworkReady is false, and so is the condition.
    const down = await mineWhen('the condition to turn False', (c) => c.status === 'False', 15_000);
    assert.equal(down.reason, CONDITION_REASONS.staleTooLong);
    assert.match(down.message ?? '', /longer than --stale-after allows/);
    assert.ok(
      Date.parse(down.lastTransitionTime ?? '') >= brokeTransition + 2000,
      `${down.lastTransitionTime}`,
    );

    const fixedAt = Date.now();
    writeAtomic(join(confDir, '10-a.conflist'), conflist('a', ['bridge', 'portmap']));
    await current.client.status();
    const fixed = await mineWhen(
      'the condition to recover',
      (c) => c.status === 'True' && c.reason === CONDITION_REASONS.loaded,
      15_000,
    );
    assert.ok(Date.parse(fixed.lastTransitionTime ?? '') >= Math.floor(fixedAt / 1000) * 1000);
    const warnings = (await events()).filter((e) => e.type === 'Warning').map((e) => e.reason);
    for (const reason of ['FileStale', 'ConfigStale', 'NetworkNotReady'])
      assert.ok(warnings.includes(reason), `${reason} in ${warnings.join(', ')}`);
  });

  test('a heartbeat changes only lastHeartbeatTime', async () => {
    const first = await until('the condition', () => mine(), 20_000);
    const beat = await mineWhen(
      'a heartbeat',
      (c) => c.lastHeartbeatTime !== first.lastHeartbeatTime,
      10_000,
    );
    assert.deepEqual({ ...beat, lastHeartbeatTime: '' }, { ...first, lastHeartbeatTime: '' });
    assert.ok(Date.parse(beat.lastHeartbeatTime ?? '') > Date.parse(first.lastHeartbeatTime ?? ''));
  });

  test('restarting the agent keeps lastTransitionTime and announces nothing new', async () => {
    const before = await until('the condition', () => mine(), 20_000);
    await agent?.stop();
    const eventsBefore = (await events()).map((e) => `${e.metadata.name}:${e.count}`).sort();
    await sleep(1500);
    agent = await startAgent();
    const after = await mineWhen(
      'a write by the new agent',
      (c) => c.lastHeartbeatTime !== before.lastHeartbeatTime,
      20_000,
    );
    assert.equal(after.lastTransitionTime, before.lastTransitionTime);
    assert.equal(after.status, before.status);
    assert.equal(after.reason, before.reason);
    await sleep(1000);
    assert.deepEqual(
      (await events()).map((e) => `${e.metadata.name}:${e.count}`).sort(),
      eventsBefore,
      'no new Events: the Node already said the same',
    );
  });

  test('Events name the Node so kubectl shows them, and a storm of 1,000 refresh failures stays bounded with aggregated counts', async (t) => {
    const current = agent ?? (await startAgent());
    agent = current;
    const listed = await cp.kubectlOk(['events', '-n', 'default', '--for', 'node/node-a']);
    assert.match(listed, /NetworkChanged/, `kubectl events --for node/node-a:\n${listed}`);
    const described = await cp.kubectlOk(['describe', 'node', 'node-a']);
    assert.match(described, new RegExp(`${CONDITION_TYPE}\\s+True`));
    assert.match(described, /cri-netstatus/);

    const writesBefore =
      (await scrape(current.metricsUrl, 'cri_netstatus_kube_writes_total{kind="event",result="success"}')) ??
      0;
    const before = new Set((await events()).map((e) => e.metadata.name));
    // A CNI installer rewriting a file in place, badly, 1,000 times: every other write is a new
    // failure (20 distinct parse errors), every other one loads again.
    const storm = join(confDir, '99-storm.conflist');
    writeAtomic(storm, conflist('storm', ['bridge']));
    for (let i = 0; i < 1000; i++) {
      if (i % 2 === 0) writeFileSync(storm, `{"name": "storm", ${' '.repeat(i % 40)}@}`);
      else writeFileSync(storm, conflist('storm', ['bridge']));
      await current.client.status();
    }
    await sleep(3000);
    // Pending first: a write landing between the two reads then counts an occurrence twice, never zero times.
    const pending = (await scrape(current.metricsUrl, 'cri_netstatus_kube_event_occurrences_pending')) ?? 0;
    const created = (await events()).filter((e) => !before.has(e.metadata.name));
    const stale = (await events()).filter((e) => e.reason === 'FileStale' && e.message.includes('99-storm'));
    const writes =
      ((await scrape(current.metricsUrl, 'cri_netstatus_kube_writes_total{kind="event",result="success"}')) ??
        0) - writesBefore;
    const summary = created.map((e) => `${e.reason} x${e.count}: ${e.message.slice(0, 80)}`).join('\n');
    t.diagnostic(
      `${created.length} new Event objects, ${writes} event writes, ${pending} occurrences pending:\n${summary}`,
    );
    // Per reason: at most 10 distinct messages plus one combined Event, and at most a burst of 25 writes.
    const reasons = new Set(created.map((e) => e.reason));
    assert.ok(reasons.size <= 3, `reasons: ${[...reasons].join(', ')}`);
    assert.ok(created.length <= 11 * reasons.size, `${created.length} new Event objects:\n${summary}`);
    assert.ok(writes <= 25 * reasons.size, `${writes} event writes for 500 failures (burst 25 per reason)`);
    assert.ok(stale.length >= 1 && stale.length <= 11, `${stale.length} FileStale events`);
    const combined = stale.find((e) => e.message.startsWith('(combined from similar events): '));
    assert.ok(combined, `similar events are combined:\n${summary}`);
    assert.ok(
      stale.some((e) => e.count > 1),
      `repeated events carry a count:\n${summary}`,
    );
    // Not lost: every failure is either counted on a written Event or held back for a later write
    // (how many are held back depends on how fast the API server took the burst).
    const counted = created
      .filter((e) => e.message.includes('99-storm'))
      .reduce((sum, e) => sum + e.count, 0);
    assert.ok(
      counted + pending >= 500,
      `${counted} occurrences on the storm's Events + ${pending} pending, for 500 failures`,
    );
    rmSync(storm);
  });

  test('with the admission policy, agent A’s token may write node-a but not node-b', async () => {
    // The agent's own client and token (kubectl patch would GET nodes/status first, which the
    // agent may not): exactly the requests the agent makes.
    const api = createKubeApi(await loadKubeconfig(agentKubeconfig));
    const probe = {
      status: { conditions: [{ type: 'E2EProbe', status: 'True', reason: 'Probe', message: 'probe' }] },
    };
    const event = (about: string): EventBody => ({
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: `probe-${about}`, namespace: 'default' },
      involvedObject: { apiVersion: 'v1', kind: 'Node', name: about, uid: about },
      type: 'Normal',
      reason: 'Probe',
      message: 'probe',
      count: 1,
      firstTimestamp: new Date(),
      lastTimestamp: new Date(),
      source: { component: 'e2e', host: about },
      reportingComponent: 'e2e',
      reportingInstance: about,
    });
    try {
      await api.patchNodeStatus('node-a', probe);
      await assert.rejects(api.patchNodeStatus('node-b', probe), (error: KubeError) => {
        assert.equal(error.result, 'forbidden');
        assert.match(
          error.message,
          /ValidatingAdmissionPolicy.*denied request: cri-netstatus on node node-a may only write about its own Node, not node-b/,
        );
        return true;
      });
      await api.createEvent('default', event('node-a'));
      await assert.rejects(
        api.createEvent('default', event('node-b')),
        /may only write about its own Node, not node-b/,
      );
    } finally {
      api.close();
    }
    // The admin is not the agent: the policy does not apply.
    const admin = await cp.kubectl([
      'patch',
      'node',
      'node-b',
      '--subresource=status',
      '--type=strategic',
      '-p',
      JSON.stringify(probe),
    ]);
    assert.equal(admin.code, 0, admin.stderr);
  });

  test('kube-apiserver stopped mid-run: Status keeps its latency; the condition converges when it returns', async (t) => {
    const current = agent ?? (await startAgent());
    agent = current;
    const baseline = await statusLatencies(current.client, 100);
    await cp.stopApiserver();
    let stopped = true;
    // A failed assertion below must not leave the API server down for the tests after this one.
    t.after(async () => {
      if (stopped) await cp.startApiserver();
    });
    // Changes while the API server is away: the agent must keep answering and remember them.
    writeFileSync(join(confDir, '10-a.conflist'), '{"cniVersion": "1.0.0", "name": "a", "plugins": [{}]}');
    const outage = await statusLatencies(current.client, 100);
    await sleep(3000); // writes are failing and backing off in the background
    const during = await statusLatencies(current.client, 100);
    const p50 = (xs: number[]) => quantile(xs, 0.5);
    const p99 = (xs: number[]) => quantile(xs, 0.99);
    const max = (xs: number[]) => xs[xs.length - 1] ?? 0;
    const report = `baseline p50 ${p50(baseline).toFixed(2)} max ${max(baseline).toFixed(2)}; outage p50 ${p50(outage).toFixed(2)} max ${max(outage).toFixed(2)}; later p50 ${p50(during).toFixed(2)} max ${max(during).toFixed(2)} (ms)`;
    t.diagnostic(report);
    // A call that waited on the API client would take its 10 s timeout; p99, not max, and a 1 s
    // floor, so a GC pause or a scheduler stall on a loaded 2-core machine (290 ms seen at load 11)
    // is not read as that.
    assert.ok(p99(outage) < Math.max(1000, 4 * p99(baseline)), report);
    assert.ok(p99(during) < Math.max(1000, 4 * p99(baseline)), report);
    assert.ok(max(outage) < 2000 && max(during) < 2000, report);
    assert.ok(p50(during) < 3 * p50(baseline) + 2, report);
    const failed = ['unreachable', 'timeout', 'server_error', 'error'];
    let failures = 0;
    for (const result of failed)
      failures +=
        (await scrape(
          current.metricsUrl,
          `cri_netstatus_kube_writes_total{kind="condition",result="${result}"}`,
        )) ?? 0;
    assert.ok(failures >= 1, 'failed writes are counted');
    assert.equal(await scrape(current.metricsUrl, 'cri_netstatus_kube_condition_synced'), 0);

    await cp.startApiserver();
    stopped = false;
    const returned = Date.now();
    const converged = await mineWhen(
      'the condition to converge after the API server returns',
      (c) => c.reason === CONDITION_REASONS.staleTooLong,
      60_000,
    );
    assert.equal(
      converged.status,
      'False',
      'broken during the outage, and stale for longer than --stale-after',
    );
    t.diagnostic(
      `condition converged ${((Date.now() - returned) / 1000).toFixed(1)}s after kube-apiserver was ready again`,
    );
    await until(
      "the agent's metric and log of the write",
      async () =>
        (await scrape(current.metricsUrl, 'cri_netstatus_kube_condition_synced')) === 1 &&
        /Node condition written again/.test(current.output())
          ? true
          : undefined,
      10_000,
    );
    // One warning when writes start failing and one info when they work again, not one per retry.
    const warnings = current
      .output()
      .split('\n')
      .filter((line) => line.includes('cannot write the Node condition'));
    assert.ok(
      warnings.length >= 1 && warnings.length <= 3,
      `${warnings.length} warnings:\n${warnings.join('\n')}`,
    );
    writeAtomic(join(confDir, '10-a.conflist'), conflist('a', ['bridge', 'portmap']));
  });

  test('the uninstall cleanup (the hook Job’s command) removes the condition from every Node with only its own RBAC', async () => {
    await agent?.stop();
    agent = undefined;
    // The hook's RBAC as the chart renders it; helm creates it only when the hook runs, and no
    // kubelet runs the Job here, so the test applies the RBAC and runs the Job's command itself.
    const rendered = await run(helm, [
      'template',
      RELEASE,
      chart,
      '-n',
      NAMESPACE,
      '--show-only',
      'templates/cleanup-hook.yaml',
    ]);
    assert.equal(rendered.code, 0, rendered.stderr);
    const rbacOnly = rendered.stdout
      .split(/^---$/m)
      .filter((doc) => !/^kind: Job$/m.test(doc))
      .join('\n---\n');
    await cp.kubectlOk(['apply', '-f', '-'], { input: rbacOnly });
    const hookUser = `system:serviceaccount:${NAMESPACE}:${RELEASE}-cleanup`;
    assert.equal(
      (await cp.kubectl(['auth', 'can-i', '--as', hookUser, 'list', 'nodes'])).stdout.trim(),
      'yes',
    );
    assert.equal(
      (await cp.kubectl(['auth', 'can-i', '--as', hookUser, 'get', 'secrets', '-A'])).stdout.trim(),
      'no',
    );
    assert.equal(
      (await cp.kubectl(['auth', 'can-i', '--as', hookUser, 'patch', 'nodes/node-b'])).stdout.trim(),
      'no',
    );
    // node-b carries the condition too (as if its agent had written it), node-a another writer's.
    await cp.kubectlOk([
      'patch',
      'node',
      'node-a',
      '--subresource=status',
      '--type=strategic',
      '-p',
      '{"status":{"conditions":[{"type":"E2EProbe","status":"True"}]}}',
    ]);
    await cp.kubectlOk([
      'patch',
      'node',
      'node-b',
      '--subresource=status',
      '--type=strategic',
      '-p',
      JSON.stringify({
        status: {
          conditions: [{ type: CONDITION_TYPE, status: 'True', reason: 'NetworkConfigLoaded', message: 'x' }],
        },
      }),
    ]);
    const hookToken = (await cp.kubectlOk(['create', 'token', `${RELEASE}-cleanup`, '-n', NAMESPACE])).trim();
    const api = createKubeApi(await loadKubeconfig(cp.writeKubeconfig('cleanup', hookToken)));
    try {
      const result = await removeConditionEverywhere(api);
      assert.deepEqual(result.failed, []);
      assert.deepEqual(result.removed.sort(), ['node-a', 'node-b']);
    } finally {
      api.close();
    }
    assert.equal(await mine('node-a'), undefined);
    assert.equal(await mine('node-b'), undefined);
    const kubelet = (await node('node-a')).conditions.find((c) => c.type === 'E2EProbe');
    assert.ok(kubelet, 'other conditions are left alone');

    const uninstall = ['uninstall', RELEASE, '-n', NAMESPACE, '--no-hooks'];
    const removed = await helmRun(uninstall);
    assert.equal(removed.code, 0, describeRun('helm', uninstall, removed));
    assert.notEqual((await cp.kubectl(['get', 'clusterrole', RELEASE])).code, 0, 'the RBAC is gone');
  });
});
