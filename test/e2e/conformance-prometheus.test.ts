// A real Prometheus scrapes the agent (loopback, temp config and TSDB): the target is up, PromQL
// sees NetworkReady, and the refresh-failure counter rises once a config file breaks on disk
// (nobody calls Status: the watcher alone must keep metrics current). promtool lints the
// exposition, with and without the upstream metrics. (The chart's alerts, the upstream ones included,
// are checked and unit-tested in promtool.test.ts.)
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import { startInProcess } from '../helpers/agent.js';
import { conflist, tempDir } from '../helpers/fs.js';
import { startContainerd } from './harness/containerd.js';
import { describeRun, requirePeers } from './harness/peers.js';
import { promtool, startPrometheus } from './harness/prometheus.js';

async function agentWithConfig(t: TestContext, extraArgs: string[] = []) {
  const { cniBinDir } = requirePeers('cniBinDir');
  const confDir = join(tempDir(t), 'net.d');
  mkdirSync(confDir);
  writeFileSync(join(confDir, '10-net.conflist'), conflist('net', ['bridge', 'portmap']));
  return startInProcess(t, ['--cni-bin-dir', cniBinDir, ...extraArgs], confDir);
}

test('Prometheus scrapes the agent: target up, NetworkReady 1, then the failure counter rises when a file breaks', async (t) => {
  const agent = await agentWithConfig(t);
  const prometheus = await startPrometheus(t, { targets: [agent.agent.metricsAddress] });
  const job = prometheus.job;

  await prometheus.waitFor(
    `up{job="${job}"}`,
    (s) => s.length === 1 && s[0]?.value === 1,
    'the agent target up',
  );
  const [target] = await prometheus.targets();
  assert.equal(target?.health, 'up', `target health: ${JSON.stringify(target)}`);
  assert.equal(target.lastError, '');
  assert.equal(target.scrapeUrl, `http://${agent.agent.metricsAddress}/metrics`);

  const ready = await prometheus.waitFor(
    `cri_netstatus_network_ready{job="${job}"}`,
    (s) => s.length === 1,
    'cri_netstatus_network_ready',
  );
  assert.equal(ready[0]?.value, 1);
  const info = await prometheus.query(`cri_netstatus_config_info{job="${job}"}`);
  assert.deepEqual(
    info.map((s) => [s.metric.network, s.metric.file, s.value]),
    [['net', '10-net.conflist', 1]],
  );
  const failuresQuery = `sum(cri_netstatus_config_refresh_failures_total{job="${job}"})`;
  const [before] = await prometheus.query(failuresQuery);
  assert.equal(before?.value, 0, 'no failures before the file breaks');

  // Break the file in place; no Status call follows, so only the watcher can notice.
  writeFileSync(
    join(agent.confDir, '10-net.conflist'),
    '{"cniVersion": "1.0.0", "name": "net", "plugins": [',
  );
  await prometheus.waitFor(failuresQuery, (s) => (s[0]?.value ?? 0) > 0, 'the failure counter rise');
  const byReason = await prometheus.query(`cri_netstatus_config_refresh_failures_total{job="${job}"} > 0`);
  assert.deepEqual(
    byReason.map((s) => s.metric.reason),
    ['parse_error'],
  );
  const stale = await prometheus.waitFor(
    `cri_netstatus_config_stale{job="${job}"}`,
    (s) => s[0]?.value === 1,
    'cri_netstatus_config_stale 1',
  );
  assert.equal(stale[0]?.value, 1);
  const [stillReady] = await prometheus.query(`cri_netstatus_network_ready{job="${job}"}`);
  assert.equal(stillReady?.value, 1, 'the last good config keeps NetworkReady (isulad semantics)');
});

test('promtool check metrics: the cri_netstatus_* families have no problems, upstream metrics included', async (t) => {
  const plain = await agentWithConfig(t);
  const containerdConf = join(tempDir(t), 'containerd-net.d');
  mkdirSync(containerdConf);
  writeFileSync(join(containerdConf, '10-net.conflist'), conflist('net'));
  const containerd = await startContainerd(t, { confDir: containerdConf });
  const mirrored = await agentWithConfig(t, ['--runtime-endpoint', containerd.endpoint]);
  for (const [name, agent] of [
    ['plain', plain],
    ['--runtime-endpoint', mirrored],
  ] as const) {
    const exposition = await (await fetch(agent.metricsUrl)).text();
    if (name === '--runtime-endpoint') {
      assert.match(exposition, /^cri_netstatus_upstream_condition\{type="NetworkReady"\} 1$/m);
      assert.match(exposition, /^cri_netstatus_network_ready_divergence 0$/m);
    }
    const ours = exposition
      .split('\n')
      .filter((line) => /^(# (HELP|TYPE) )?cri_netstatus_/.test(line))
      .join('\n');
    const result = await promtool(['check', 'metrics'], `${ours}\n`);
    assert.equal(result.code, 0, `${name}: ${describeRun('promtool', ['check', 'metrics'], result)}`);
    assert.equal(`${result.stdout}${result.stderr}`.trim(), '', `${name}: promtool reports no problems`);
  }
});

test('promtool check metrics: the whole exposition has no problems', async (t) => {
  const agent = await agentWithConfig(t);
  const exposition = await (await fetch(agent.metricsUrl)).text();
  const result = await promtool(['check', 'metrics'], exposition);
  assert.equal(result.code, 0, describeRun('promtool', ['check', 'metrics'], result));
  assert.equal(`${result.stdout}${result.stderr}`.trim(), '');
});
