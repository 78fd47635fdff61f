// --runtime-endpoint against a live containerd (Debian's 1.6): RuntimeReady follows it; stopped →
// RuntimeReady false saying why, while the agent's own Status latency stays what it was (measured);
// frozen (SIGSTOP: the socket accepts, nobody answers) → false after the poll timeout, latency
// unaffected; restarted or thawed → recovers. And the divergence signal on the bug it exists for:
// containerd loses its watch when the conf dir is recreated (containerd#6490).
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { AgentProcess } from '../helpers/agent.js';
import { scrape, spawnServe } from '../helpers/agent.js';
import { condition, criClient, parsedInfo, quantile, statusLatencies } from '../helpers/cri.js';
import type { CriClient } from '../helpers/cri.js';
import { conflist, tempDir } from '../helpers/fs.js';
import { until } from '../helpers/wait.js';
import {
  crictlCondition,
  crictlInfo,
  settledNetworkView,
  reloadFailed,
  startContainerd,
} from './harness/containerd.js';
import { requirePeers } from './harness/peers.js';

interface UpstreamInfo {
  endpoint: string;
  runtime: { name: string; version: string; apiVersion: string } | null;
  reachable: boolean;
  lastPoll: string | null;
  lastSuccess: string | null;
  error: string | null;
  conditions: { type: string; status: boolean }[];
  lastCNILoadStatus: string | null;
  networkReadyDivergence: { diverged: boolean; since: string | null; comparedWith: string };
}

async function upstreamInfo(client: CriClient): Promise<UpstreamInfo> {
  const info = parsedInfo(await client.status(true));
  assert.ok(info.upstream, `info.upstream is shown with --runtime-endpoint: ${Object.keys(info).join(', ')}`);
  return info.upstream as UpstreamInfo;
}

/** Waits until the agent has polled the upstream `n` more times. */
async function polls(client: CriClient, n: number): Promise<void> {
  let seen = (await upstreamInfo(client)).lastPoll;
  for (let i = 0; i < n; i++) {
    const from = seen;
    seen = await until(
      'the next upstream poll',
      async () => {
        const at = (await upstreamInfo(client)).lastPoll;
        return at !== from ? at : undefined;
      },
      40_000,
    );
  }
}

interface Latency {
  calls: number;
  p50: number;
  p99: number;
  max: number;
}

/** Sequential non-verbose Status calls, as kubelet makes them; milliseconds. */
async function statusLatency(client: CriClient, calls = 300): Promise<Latency> {
  const times = await statusLatencies(client, calls);
  const at = (q: number): number => quantile(times, q);
  return { calls, p50: at(0.5), p99: at(0.99), max: times[times.length - 1] ?? NaN };
}

const fmt = (l: Latency): string =>
  `p50 ${l.p50.toFixed(2)}ms, p99 ${l.p99.toFixed(2)}ms, max ${l.max.toFixed(2)}ms over ${l.calls} calls`;

function metricsAddress(agent: AgentProcess): string {
  const match = /"metrics":"([^"]+)"/.exec(agent.output());
  if (!match?.[1]) throw new Error(`the agent did not log its metrics address:\n${agent.output()}`);
  return `http://${match[1]}/metrics`;
}

async function setup(t: import('node:test').TestContext, extraArgs: string[] = []) {
  const { cniBinDir } = requirePeers('containerd', 'crictl', 'cniBinDir');
  const dir = tempDir(t);
  const confDir = join(dir, 'net.d');
  mkdirSync(confDir);
  writeFileSync(join(confDir, '10-net.conflist'), conflist('net', ['bridge', 'portmap']));
  const containerd = await startContainerd(t, { confDir, cniBinDir });
  const socket = join(dir, 'agent.sock');
  const agent = await spawnServe(
    t,
    [
      '--cni-conf-dir',
      confDir,
      '--cni-bin-dir',
      cniBinDir,
      '--metrics-address',
      '127.0.0.1:0',
      '--runtime-endpoint',
      containerd.endpoint,
      ...extraArgs,
    ],
    socket,
  );
  const client = criClient(socket, 10_000);
  t.after(() => client.close());
  return { confDir, containerd, agent, client, socket, metrics: metricsAddress(agent) };
}

test('RuntimeReady follows a live containerd: down and hung → false with the reason, Status latency unaffected; back → recovers', async (t) => {
  const { containerd, agent, client, socket, metrics } = await setup(t);

  // Up: the very first answer already mirrors containerd (serve waits for the first poll).
  const up = await client.status(true);
  assert.deepEqual(condition(up, 'RuntimeReady'), {
    type: 'RuntimeReady',
    status: true,
    reason: '',
    message: '',
  });
  const upstream = await upstreamInfo(client);
  assert.equal(upstream.endpoint, containerd.endpoint);
  assert.equal(upstream.runtime?.name, 'containerd');
  assert.equal(upstream.reachable, true);
  assert.equal(upstream.lastCNILoadStatus, 'OK', "containerd's own lastCNILoadStatus");
  assert.deepEqual(
    upstream.conditions.slice(0, 2).map((c) => [c.type, c.status]),
    [
      ['RuntimeReady', true],
      ['NetworkReady', true],
    ],
  );
  const viaCrictl = await crictlInfo(`unix://${socket}`);
  assert.equal(typeof viaCrictl.upstream, 'object', 'crictl info shows the upstream key as a JSON object');
  assert.equal(await scrape(metrics, 'cri_netstatus_upstream_up'), 1);
  assert.equal(await scrape(metrics, 'cri_netstatus_upstream_condition{type="RuntimeReady"}'), 1);
  assert.equal(await scrape(metrics, 'cri_netstatus_upstream_condition{type="NetworkReady"}'), 1);
  assert.equal(await scrape(metrics, 'cri_netstatus_runtime_ready'), 1);
  const latencyUp = await statusLatency(client);
  t.diagnostic(`Status latency, containerd up:      ${fmt(latencyUp)}`);

  // Stopped: within one poll interval (5 s) RuntimeReady turns false and says why.
  await containerd.stop();
  const down = await until(
    'RuntimeReady turns false',
    async () => {
      const runtime = condition(await client.status(), 'RuntimeReady');
      return runtime.status ? undefined : runtime;
    },
    10_000,
  );
  assert.equal(down.reason, 'UpstreamRuntimeUnreachable');
  assert.ok(down.message.includes(containerd.endpoint), `the message names the socket: ${down.message}`);
  assert.match(down.message, /connect (ENOENT|ECONNREFUSED)/, `the message names the error: ${down.message}`);
  const whileDown = await client.status();
  assert.equal(
    condition(whileDown, 'NetworkReady').status,
    true,
    "the agent's own network verdict is unaffected",
  );
  assert.equal(await scrape(metrics, 'cri_netstatus_upstream_up'), 0);
  assert.equal(await scrape(metrics, 'cri_netstatus_runtime_ready'), 0);
  const latencyDown = await statusLatency(client);
  t.diagnostic(`Status latency, containerd stopped: ${fmt(latencyDown)}`);
  // A Status that waited for the upstream would take at least the 2 s poll timeout.
  assert.ok(latencyDown.max < 1000, `Status never waits for the upstream: ${fmt(latencyDown)}`);

  // Restarted: recovers within the backoff (≤ 30 s cap; a short outage is retried within seconds).
  await containerd.start();
  await until(
    'RuntimeReady recovers',
    async () => (condition(await client.status(), 'RuntimeReady').status ? true : undefined),
    35_000,
  );
  assert.equal(await scrape(metrics, 'cri_netstatus_upstream_up'), 1);

  // Frozen: the socket still accepts connections but nobody answers; the 2 s poll timeout applies.
  containerd.freeze();
  const hung = await until(
    'RuntimeReady turns false on a hung runtime',
    async () => {
      const runtime = condition(await client.status(), 'RuntimeReady');
      return runtime.status ? undefined : runtime;
    },
    15_000,
  );
  assert.equal(hung.reason, 'UpstreamRuntimeTimeout');
  assert.match(hung.message, /did not answer Status within 2s/);
  const latencyHung = await statusLatency(client);
  t.diagnostic(`Status latency, containerd frozen:  ${fmt(latencyHung)}`);
  assert.ok(latencyHung.max < 1000, `Status never waits for a hung upstream: ${fmt(latencyHung)}`);
  containerd.thaw();
  await until(
    'RuntimeReady recovers after SIGCONT',
    async () => (condition(await client.status(), 'RuntimeReady').status ? true : undefined),
    35_000,
  );

  // Logs: one line per change of state, however many polls failed in between. While down, a new
  // reason is a new line (a restarting containerd answers "server is not initialized yet" before
  // it is ready), the same one never twice.
  const lines = agent
    .output()
    .split('\n')
    .filter((line) => line.includes('upstream CRI runtime'))
    .map((line) => JSON.parse(line) as { msg: string; reason?: string });
  for (const [i, line] of lines.entries()) {
    const before = lines[i - 1];
    assert.ok(
      !before || before.msg !== line.msg || before.reason !== line.reason,
      `the same state logged twice in a row: ${line.msg} (${line.reason ?? ''})`,
    );
  }
  const messages = lines.map((line) => line.msg).filter((msg, i, all) => msg !== all[i - 1]);
  assert.deepEqual(messages, [
    'mirroring the upstream CRI runtime',
    'the upstream CRI runtime does not answer; serving RuntimeReady=false',
    'the upstream CRI runtime answers again',
    'the upstream CRI runtime does not answer; serving RuntimeReady=false',
    'the upstream CRI runtime answers again',
  ]);
});

test('divergence against a live containerd: 0 when the dir empties (containerd is right), 1 when it is recreated (containerd#6490)', async (t) => {
  // Default (isulad) semantics: the agent keeps serving NetworkReady=true on an emptied dir, yet
  // the divergence compares containerd with containerd's own rules, so that is no divergence.
  const { confDir, containerd, client, metrics } = await setup(t);
  assert.equal(await scrape(metrics, 'cri_netstatus_network_ready_divergence'), 0);

  unlinkSync(join(confDir, '10-net.conflist'));
  const emptied = await settledNetworkView(containerd.endpoint);
  assert.equal(emptied.view.ready, false, 'containerd: no config, not ready');
  assert.equal(
    condition(await client.status(), 'NetworkReady').status,
    true,
    'the agent keeps the last good',
  );
  await polls(client, 2);
  let info = await upstreamInfo(client);
  assert.equal(info.networkReadyDivergence.diverged, false, 'containerd is right about an empty dir');
  assert.equal(info.networkReadyDivergence.comparedWith, 'the conf dir under containerd-1.7 semantics');
  assert.equal(await scrape(metrics, 'cri_netstatus_upstream_condition{type="NetworkReady"}'), 0);
  assert.equal(await scrape(metrics, 'cri_netstatus_network_ready_divergence'), 0);

  // Recreate the dir with a valid file: containerd's watch is gone, it never looks again.
  const since = containerd.log().length;
  rmSync(confDir, { recursive: true });
  await reloadFailed(containerd, since, 'REMOVE', confDir);
  mkdirSync(confDir);
  writeFileSync(join(confDir, '10-net.conflist'), conflist('net', ['bridge', 'portmap']));
  const stuck = await settledNetworkView(containerd.endpoint);
  assert.equal(stuck.view.ready, false, 'containerd#6490: containerd stays not ready');
  await polls(client, 2);
  info = await upstreamInfo(client);
  assert.equal(info.networkReadyDivergence.diverged, true, JSON.stringify(info.networkReadyDivergence));
  assert.match(String(info.networkReadyDivergence.since), /^\d{4}-/);
  assert.equal(await scrape(metrics, 'cri_netstatus_network_ready_divergence'), 1);

  // A restart makes containerd read the dir again: the divergence clears.
  await containerd.restart();
  assert.equal(crictlCondition(await containerd.info(), 'NetworkReady').status, true);
  await until(
    'the divergence clears',
    async () => ((await scrape(metrics, 'cri_netstatus_network_ready_divergence')) === 0 ? true : undefined),
    40_000,
  );
});
