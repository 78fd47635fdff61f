// The product as users get it, on a real single-node cluster (test/e2e/harness/cluster.ts): the
// chart installed with the README's command on a real kubelet with containerd, the node's CNI
// config broken and restored, Prometheus finding the agent through Kubernetes service discovery,
// the runbook's commands, helm upgrade, a containerd restart and helm uninstall. The steps share
// one cluster and run in order; each names what it proves.
// Skipped as a whole only with CRI_NETSTATUS_SKIP_CLUSTER=1 (local iteration; never in CI).
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { chmodSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REPO_ROOT } from '../helpers/agent.js';
import { sleep, until } from '../helpers/wait.js';
import {
  clusterLeftovers,
  clusterSkipReason,
  nodePath,
  nodePathsOnHost,
  startCluster,
  sweepCluster,
} from './harness/cluster.js';
import type { Cluster } from './harness/cluster.js';
import { stopChild } from './harness/etcd.js';
import { describeRun, requirePeers } from './harness/peers.js';

const NS = 'kube-system';
const CHART = join(REPO_ROOT, 'charts', 'cri-netstatus');
const SOCKET = '/run/cri-netstatus/cri.sock';
const CONTAINERD = 'unix:///run/containerd/containerd.sock';
const CONF = '10-bridge.conflist';

interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
  lastTransitionTime: string;
}
interface NodeObject {
  status: { conditions: Condition[] };
}

const RUNBOOK = readFileSync(join(REPO_ROOT, 'docs', 'runbooks.md'), 'utf8');

/** The ```sh block of docs/runbooks.md that contains `fragment`. */
function runbookBlock(fragment: string): string {
  const blocks = [...RUNBOOK.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1] ?? '');
  const block = blocks.find((b) => b.includes(fragment));
  assert.ok(block, `docs/runbooks.md has no sh block with ${JSON.stringify(fragment)}`);
  return block;
}

/** The one command (with its backslash continuations) of docs/runbooks.md that contains `fragment`. */
function runbookCommand(fragment: string): string {
  const block = runbookBlock(fragment);
  const commands: string[] = [];
  let current = '';
  for (const line of block.split('\n')) {
    if (line.trimStart().startsWith('#') && current === '') continue;
    current += `${line}\n`;
    if (!line.endsWith('\\')) {
      commands.push(current);
      current = '';
    }
  }
  const found = commands.filter((c) => c.includes(fragment));
  assert.equal(
    found.length,
    1,
    `docs/runbooks.md: ${found.length} commands contain ${JSON.stringify(fragment)}`,
  );
  return (found[0] ?? '').replace(/\s+#.*$/s, '').trim();
}

const skip = clusterSkipReason();

describe('on a real node: the chart on a kubelet with containerd', { skip, timeout: 900_000 }, () => {
  let cluster: Cluster;
  let imageValues: string[];
  let hostPathsBefore: string[] = [];
  const confDir = () => nodePath('/etc/cni/net.d');

  const condition = async (type: string): Promise<Condition | undefined> => {
    const node = await cluster.getJson<NodeObject>(`/api/v1/nodes/${cluster.nodeName}`);
    return node.status.conditions.find((c) => c.type === type);
  };
  const waitCondition = (type: string, status: string, reason: RegExp | undefined, timeoutMs = 60_000) =>
    until(
      `${type}=${status}${reason ? ` ${String(reason)}` : ''}`,
      async () => {
        const c = await condition(type);
        return c?.status === status && (!reason || reason.test(c.reason)) ? c : undefined;
      },
      timeoutMs,
      { intervalMs: 500, retryErrors: true, describe: () => cluster.logs(10) },
    );
  const agentPod = async (): Promise<string> =>
    (
      await cluster.kubectlOk([
        '-n',
        NS,
        'get',
        'pods',
        '-l',
        'app.kubernetes.io/name=cri-netstatus',
        '--field-selector',
        `spec.nodeName=${cluster.nodeName}`,
        '-o',
        'name',
      ])
    ).trim();
  const metrics = async (): Promise<string> =>
    cluster.onNodeOk('curl', ['-sf', `http://${cluster.nodeIp}:9731/metrics`], { timeoutMs: 10_000 });
  const metric = async (name: string): Promise<number | undefined> => {
    const line = (await metrics()).split('\n').find((l) => l.startsWith(`${name} `));
    return line === undefined ? undefined : Number(line.split(' ')[1]);
  };
  const agentStatus = (args: string[] = []) =>
    cluster.sh(
      `kubectl -n ${NS} exec $(kubectl -n ${NS} get pods -l app.kubernetes.io/name=cri-netstatus -o name) -- cri-netstatus status ${args.join(' ')}`,
    );
  const events = async (): Promise<string> =>
    cluster.kubectlOk([
      'get',
      'events',
      '-A',
      '--field-selector',
      `involvedObject.kind=Node,involvedObject.name=${cluster.nodeName}`,
      '-o',
      'jsonpath={range .items[*]}{.reason}{"\\n"}{end}',
    ]);
  const writeInPlace = (content: string) => writeFileSync(join(confDir(), CONF), content);

  before(async () => {
    await sweepCluster(); // an interrupted earlier run's state first, so it is not taken for the machine's own
    hostPathsBefore = nodePathsOnHost();
    cluster = await startCluster();
    const ref = cluster.imageRef; // localhost/cri-netstatus:<version>
    const [repository, tag] = ref.replace(/^localhost\//, '').split(':');
    imageValues = [
      '--set',
      'image.registry=localhost',
      '--set',
      `image.repository=${repository}`,
      '--set',
      `image.tag=${tag}`,
      '--set',
      'image.pullPolicy=Never',
    ];
  });

  after(async () => {
    await cluster?.stop();
    assert.deepEqual(clusterLeftovers(hostPathsBefore), [], 'the cluster left something behind');
  });

  test('helm install with the README command: DaemonSet Ready, crictl info on the node socket, kubectl exec status with no flags, condition True', async () => {
    // README: helm install cri-netstatus charts/cri-netstatus --namespace kube-system (image: the local one)
    const install = await cluster.helm([
      'install',
      'cri-netstatus',
      CHART,
      '--namespace',
      NS,
      ...imageValues,
    ]);
    assert.equal(install.code, 0, describeRun('helm install', [], install));
    const started = Date.now();
    const rollout = await cluster.kubectl(
      ['-n', NS, 'rollout', 'status', 'daemonset/cri-netstatus', '--timeout=180s'],
      { timeoutMs: 200_000 },
    );
    assert.equal(
      rollout.code,
      0,
      `${describeRun('kubectl rollout status', [], rollout)}\n${cluster.logs(20)}`,
    );
    process.stderr.write(`helm install to DaemonSet Ready: ${Date.now() - started} ms\n`);

    const info = await cluster.onNode('crictl', ['--runtime-endpoint', `unix://${SOCKET}`, 'info'], {});
    assert.equal(info.code, 0, describeRun('crictl info', [], info));
    const status = (
      JSON.parse(info.stdout) as { status: { conditions: { type: string; status: boolean }[] } }
    ).status;
    for (const type of ['RuntimeReady', 'NetworkReady', 'NetworkConfigUpToDate']) {
      assert.equal(status.conditions.find((c) => c.type === type)?.status, true, `${type} in ${info.stdout}`);
    }

    const exec = await agentStatus();
    assert.equal(exec.code, 0, describeRun('kubectl exec status', [], exec));
    assert.match(exec.stdout, /^READY: NetworkReady=true/);
    await waitCondition('CNIConfigReady', 'True', /NetworkConfigLoaded/);
  });

  test("the CNI config broken in place, removed, restored: condition, Events, metrics, verbose Status follow; last good kept; the kubelet's Ready goes False and back", async () => {
    const good = readFileSync(join(confDir(), CONF), 'utf8');
    assert.equal((await condition('CNIConfigReady'))?.status, 'True');
    try {
      // Broken in place: the last good content stays in force (documented), visibly stale.
      writeInPlace('{ "cniVersion": "1.0.0", "name": "crins-bridge", "plugins": [ { "type": "bridge",');
      await waitCondition('CNIConfigReady', 'True', /LastGoodConfigServed/);
      await until(
        'cri_netstatus_config_stale 1',
        async () => (await metric('cri_netstatus_config_stale')) === 1,
        30_000,
        {
          intervalMs: 500,
          retryErrors: true,
        },
      );
      assert.equal(await metric('cri_netstatus_network_ready'), 1);
      const stale = await agentStatus(['--verbose']);
      assert.equal(stale.code, 0, describeRun('status --verbose', [], stale));
      assert.match(stale.stdout, /^READY: NetworkReady=true/);
      assert.match(
        stale.stdout,
        /NetworkConfigUpToDate\s+false\s+RefreshFailed\s+serving the last good config of 10-bridge\.conflist/,
      );
      assert.match(stale.stdout, /unexpected end of JSON input/);
      // containerd 1.6 drops the broken config itself: the kubelet's own Ready follows.
      await waitCondition('Ready', 'False', undefined, 90_000);

      // Removed: under the default isulad semantics the last good network is still kept.
      rmSync(join(confDir(), CONF));
      await until(
        'status --verbose naming the empty dir',
        async () => {
          const removed = await agentStatus(['--verbose']);
          return (
            removed.code === 0 && /no network config found in \/host\/etc\/cni\/net\.d/.test(removed.stdout)
          );
        },
        30_000,
        { intervalMs: 500 },
      );
      assert.equal((await condition('CNIConfigReady'))?.reason, 'LastGoodConfigServed');
      assert.equal(await metric('cri_netstatus_config_stale'), 1);
      assert.equal((await condition('Ready'))?.status, 'False');
    } finally {
      // Restored by a rename within the dir (containerd 1.6 ignores a file moved in from elsewhere).
      writeFileSync(join(confDir(), `.${CONF}.tmp`), good);
      renameSync(join(confDir(), `.${CONF}.tmp`), join(confDir(), CONF));
    }
    await waitCondition('CNIConfigReady', 'True', /NetworkConfigLoaded/);
    await until(
      'cri_netstatus_config_stale 0',
      async () => (await metric('cri_netstatus_config_stale')) === 0,
      30_000,
      {
        intervalMs: 500,
        retryErrors: true,
      },
    );
    const fresh = await agentStatus(['--verbose']);
    assert.match(fresh.stdout, /NetworkConfigUpToDate\s+true/);
    await waitCondition('Ready', 'True', undefined, 90_000);
    await until(
      'the Events FileStale, ConfigStale, ConfigUpToDate',
      async () => {
        const reasons = (await events()).split('\n');
        return ['FileStale', 'ConfigStale', 'ConfigUpToDate'].every((r) => reasons.includes(r));
      },
      60_000,
      { intervalMs: 1000, retryErrors: true },
    );
  });

  test("Prometheus finds the agent by kubernetes_sd_configs (role pod) and the chart's scrape annotations, scrapes it, and a broken config takes CriNetstatusConfigStale pending then firing", async () => {
    // Debian's Prometheus is built without Kubernetes discovery: scripts/peers.sh prometheus-sd.
    const { prometheusSd: prometheus } = requirePeers('prometheusSd');
    const dir = nodePath('/var/lib/kubelet');
    const promDir = join(dir, '..', 'prometheus');
    mkdirSync(promDir, { recursive: true });
    // The chart's rules with `for:` shortened (the test value the issue allows).
    const rules = readFileSync(join(CHART, 'files', 'alerts.yaml'), 'utf8').replace(/for: \d+m/g, 'for: 15s');
    writeFileSync(join(promDir, 'alerts.yaml'), rules);
    const pki = '/tmp/crins-cluster/pki';
    writeFileSync(
      join(promDir, 'prometheus.yml'),
      `global: {scrape_interval: 2s, evaluation_interval: 2s}
rule_files: [${join(promDir, 'alerts.yaml')}]
scrape_configs:
  - job_name: cri-netstatus
    kubernetes_sd_configs:
      - role: pod
        api_server: https://${cluster.nodeIp}:6443
        tls_config: {ca_file: ${pki}/ca.crt, cert_file: ${pki}/admin.crt, key_file: ${pki}/admin.key}
    relabel_configs:
      - {source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scrape], action: keep, regex: "true"}
      - {source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_path], action: replace, target_label: __metrics_path__, regex: (.+)}
      - {source_labels: [__address__, __meta_kubernetes_pod_annotation_prometheus_io_port], action: replace, regex: '([^:]+)(?::\\d+)?;(\\d+)', replacement: '$1:$2', target_label: __address__}
      - {source_labels: [__meta_kubernetes_namespace], target_label: namespace}
      - {source_labels: [__meta_kubernetes_pod_name], target_label: pod}
      - {source_labels: [__meta_kubernetes_pod_node_name], target_label: node}
`,
    );
    const prom = cluster.spawnOnNode(
      prometheus,
      [
        `--config.file=${join(promDir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(promDir, 'data')}`,
        '--web.listen-address=127.0.0.1:9090',
      ],
      join(promDir, 'prometheus.log'),
    );
    const api = async <T>(path: string): Promise<T> => {
      const out = await cluster.onNodeOk('curl', ['-sf', `http://127.0.0.1:9090${path}`], {
        timeoutMs: 10_000,
      });
      return (JSON.parse(out) as { data: T }).data;
    };
    try {
      const target = await until(
        'Prometheus scrapes the agent pod it discovered',
        async () => {
          const targets = await api<{
            activeTargets: { health: string; labels: Record<string, string>; scrapeUrl: string }[];
          }>('/api/v1/targets');
          return targets.activeTargets.find((t) => t.labels.job === 'cri-netstatus' && t.health === 'up');
        },
        90_000,
        { intervalMs: 1000, retryErrors: true },
      );
      assert.equal(target.scrapeUrl, `http://${cluster.nodeIp}:9731/metrics`);
      assert.equal(target.labels.node, cluster.nodeName);
      const ready = await api<{ result: { value: [number, string] }[] }>(
        '/api/v1/query?query=cri_netstatus_network_ready',
      );
      assert.equal(ready.result[0]?.value[1], '1');

      writeInPlace('{ "cniVersion": "1.0.0", "name": "crins-bridge", "plugins": [');
      const alertState = async () => {
        const alerts = await api<{ alerts: { labels: { alertname: string }; state: string }[] }>(
          '/api/v1/alerts',
        );
        return alerts.alerts.find((a) => a.labels.alertname === 'CriNetstatusConfigStale')?.state;
      };
      await until('CriNetstatusConfigStale pending', async () => (await alertState()) === 'pending', 60_000, {
        intervalMs: 500,
        retryErrors: true,
      });
      await until('CriNetstatusConfigStale firing', async () => (await alertState()) === 'firing', 60_000, {
        intervalMs: 1000,
        retryErrors: true,
      });
      writeInPlace(cluster.bridgeConflist);
      await until('the alert resolved', async () => (await alertState()) === undefined, 60_000, {
        intervalMs: 1000,
        retryErrors: true,
      });
      await waitCondition('CNIConfigReady', 'True', /NetworkConfigLoaded/);
    } finally {
      writeInPlace(cluster.bridgeConflist);
      await stopChild(prom, 10_000);
      rmSync(promDir, { recursive: true, force: true });
    }
  });

  test('the runbook on a real node: its commands, as docs/runbooks.md writes them, give the documented output', async () => {
    const NODE = cluster.nodeName;
    // The runbook's own "Set these once" block, with the placeholders filled.
    const setup = runbookBlock('NODE=<node name>')
      .replace('<node name>', NODE)
      .replace(/^IMAGE=.*$/m, `IMAGE=${cluster.imageRef}`);
    // A kubectl debug pod does not clean itself up (the runbook says so): its log (the command's
    // output, should the attach have missed it) is read, then it is deleted.
    const debugPodLogs = async (): Promise<string> => {
      const logs = await cluster.sh(
        "for p in $(kubectl get pods -o name | grep '^pod/node-debugger-'); do kubectl logs $p; kubectl delete $p --wait=false >/dev/null; done",
      );
      return logs.stdout;
    };
    const scriptFile = join(nodePath('/var/lib/kubelet'), '..', 'runbook.sh');
    const runbook = async (fragment: string, expect: RegExp, exitCode: number | undefined = 0) => {
      const command = runbookCommand(fragment);
      writeFileSync(scriptFile, `${setup}\n${command}\n`);
      // `-it` as written: an operator's terminal, given by script(1).
      const result = command.includes(' -it ')
        ? await cluster.sh(`script -qec 'bash ${scriptFile}' /dev/null </dev/null`, { timeoutMs: 120_000 })
        : await cluster.sh(`bash ${scriptFile}`, { timeoutMs: 120_000 });
      const output =
        result.stdout + result.stderr + (command.includes('kubectl debug') ? await debugPodLogs() : '');
      assert.match(output, expect, describeRun(command, [], result));
      // kubectl debug's own exit code is not the command's (it may only have streamed the log).
      if (exitCode !== undefined && !command.includes('kubectl debug')) {
        assert.equal(result.code, exitCode, describeRun(command, [], result));
      }
      return output;
    };

    // Tools: status and check through kubectl exec, with no flags.
    await runbook('exec $POD -- cri-netstatus status            #', /^READY: NetworkReady=true/m);
    await runbook('exec $POD -- cri-netstatus status --verbose', new RegExp(`accepted ${CONF}`));
    await runbook('exec $POD -- cri-netstatus check          #', /isulad/);
    // kubectl debug node/…: the node's socket, the node's conf dir under /host (0755, then 0700).
    await runbook(
      'cri-netstatus status --socket /host/run/cri-netstatus/cri.sock --verbose',
      /READY: NetworkReady=true/,
    );
    await runbook('-- cri-netstatus check --host-root /host\n', new RegExp(CONF));
    chmodSync(confDir(), 0o700);
    try {
      // The image's user (65532) cannot read a 0700 root conf dir: the runbook's documented limit.
      await runbook('-- cri-netstatus check --host-root /host\n', /permission denied/i, undefined);
    } finally {
      chmodSync(confDir(), 0o755);
    }
    // The k3s paths.
    writeFileSync(
      join(nodePath('/var/lib/rancher/k3s/agent/etc/cni/net.d'), '10-flannel.conflist'),
      cluster.bridgeConflist,
    );
    await runbook('--cni-conf-dir /var/lib/rancher/k3s/agent/etc/cni/net.d', /10-flannel\.conflist/);
    // The node's real runtime through the same CLI, and crictl on the node through busybox's chroot.
    await runbook('--socket /host/run/containerd/containerd.sock', /READY: NetworkReady=true/);
    await runbook('crictl --runtime-endpoint unix:///run/cri-netstatus/cri.sock info', /"NetworkReady"/);
    await runbook("'ls -la --time-style=full-iso /etc/cni/net.d;", new RegExp(`== /etc/cni/net.d/${CONF}`));
    // The Node condition and its Events.
    await runbook(
      "kubectl describe node $NODE | sed -n '/Conditions:/,/Addresses:/p'",
      /CNIConfigReady\s+True\s+.*NetworkConfigLoaded/,
    );
    await runbook('{.status.conditions[?(@.type=="CNIConfigReady")]}', /"reason":"NetworkConfigLoaded"/);
    await runbook('kubectl events --for node/$NODE', /NetworkReady/);
  });

  test('helm upgrade with a changed value (the runtime endpoint mirror) rolls the pod; the gap without an agent on the socket is measured; lastTransitionTime kept', async () => {
    const podBefore = await agentPod();
    const transitionBefore = (await condition('CNIConfigReady'))?.lastTransitionTime;
    const socket = nodePath(SOCKET);
    let down: number | undefined;
    let gapMs = 0;
    let polling = true;
    const accepts = () =>
      new Promise<boolean>((resolve) => {
        const conn = connect(socket);
        conn.once('connect', () => {
          conn.destroy();
          resolve(true);
        });
        conn.once('error', () => resolve(false));
      });
    const poller = (async () => {
      while (polling) {
        const up = await accepts();
        const now = Date.now();
        if (!up && down === undefined) down = now;
        if (up && down !== undefined) {
          gapMs = Math.max(gapMs, now - down);
          down = undefined;
        }
        await sleep(50);
      }
    })();
    const upgrade = await cluster.helm([
      'upgrade',
      'cri-netstatus',
      CHART,
      '--namespace',
      NS,
      ...imageValues,
      '--set',
      `agent.runtimeEndpoint=${CONTAINERD}`,
    ]);
    assert.equal(upgrade.code, 0, describeRun('helm upgrade', [], upgrade));
    const rollout = await cluster.kubectl(
      ['-n', NS, 'rollout', 'status', 'daemonset/cri-netstatus', '--timeout=180s'],
      { timeoutMs: 200_000 },
    );
    assert.equal(rollout.code, 0, describeRun('rollout status', [], rollout));
    await until('the socket accepting again', accepts, 60_000, { intervalMs: 100 });
    await sleep(500);
    polling = false;
    await poller;
    const podAfter = await agentPod();
    assert.notEqual(podAfter, podBefore, 'helm upgrade with a changed value must roll the pod');
    assert.ok(gapMs > 0, 'the poller saw the socket refuse during the roll');
    process.stderr.write(`helm upgrade: socket gap ${gapMs} ms (no agent accepting on ${SOCKET})\n`);
    const transitionAfter = await waitCondition('CNIConfigReady', 'True', /NetworkConfigLoaded/);
    assert.equal(
      transitionAfter.lastTransitionTime,
      transitionBefore,
      'lastTransitionTime must survive the roll',
    );
    await until(
      'cri_netstatus_upstream_up 1',
      async () => (await metric('cri_netstatus_upstream_up')) === 1,
      60_000,
      { intervalMs: 500, retryErrors: true },
    );
  });

  test('containerd restarted: the agent keeps serving; its runtime-endpoint mirror reports the outage and the recovery', async () => {
    await cluster.stopContainerd();
    try {
      await until(
        'cri_netstatus_upstream_up 0',
        async () => (await metric('cri_netstatus_upstream_up')) === 0,
        60_000,
        { intervalMs: 500, retryErrors: true },
      );
      const during = await cluster.onNode('crictl', ['--runtime-endpoint', `unix://${SOCKET}`, 'info'], {});
      assert.equal(during.code, 0, describeRun('crictl info during the outage', [], during));
      const runtimeReady = (
        JSON.parse(during.stdout) as { status: { conditions: { type: string; status: boolean }[] } }
      ).status.conditions.find((c) => c.type === 'RuntimeReady');
      assert.equal(runtimeReady?.status, false, 'RuntimeReady mirrors the stopped runtime');
    } finally {
      await cluster.startContainerd();
    }
    await until(
      'cri_netstatus_upstream_up 1',
      async () => (await metric('cri_netstatus_upstream_up')) === 1,
      90_000,
      { intervalMs: 500, retryErrors: true },
    );
    const info = await cluster.onNodeOk('crictl', ['--runtime-endpoint', `unix://${SOCKET}`, 'info']);
    assert.ok(
      (
        JSON.parse(info) as { status: { conditions: { type: string; status: boolean }[] } }
      ).status.conditions.every((c) => c.status),
    );
  });

  test('helm uninstall removes the condition and leaves nothing behind', async () => {
    const uninstall = await cluster.helm(
      ['uninstall', 'cri-netstatus', '--namespace', NS], // the README's command
      { timeoutMs: 240_000 },
    );
    assert.equal(uninstall.code, 0, describeRun('helm uninstall', [], uninstall));
    process.stderr.write(`helm uninstall (with the cleanup Job): ${uninstall.ms} ms\n`);
    await until(
      'the condition removed',
      async () => (await condition('CNIConfigReady')) === undefined,
      60_000,
      { intervalMs: 1000, retryErrors: true },
    );
    await until(
      'no object of the release left',
      async () => {
        const left = await cluster.kubectlOk([
          'get',
          'all,sa,role,rolebinding,clusterrole,clusterrolebinding,configmap',
          '-A',
          '-l',
          'app.kubernetes.io/instance=cri-netstatus',
          '-o',
          'name',
        ]);
        return left.trim() === '' ? true : undefined;
      },
      120_000,
      { intervalMs: 2000, retryErrors: true },
    );
    const pods = await cluster.onNodeOk('crictl', [
      '--runtime-endpoint',
      CONTAINERD,
      'ps',
      '-a',
      '--name',
      'cri-netstatus',
      '-q',
    ]);
    assert.equal(pods.trim(), '', 'no agent container left on the node');
  });
});
