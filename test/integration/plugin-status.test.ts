// The CNI STATUS probe with real plugin processes (test/fixtures/plugins/cni-status-test) behind
// real gRPC Status calls on a real socket, and /metrics scraped over real HTTP: every result kind,
// the one budget of a call against a hung plugin (and no process left behind), at most one plugin
// process under a burst of calls, never ADD/DEL/CHECK/GC, and the last good state kept.
import assert from 'node:assert/strict';
import { chmodSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import { scrape, startInProcess } from '../helpers/agent.js';
import { condition, parsedInfo } from '../helpers/cri.js';
import type { CriClient } from '../helpers/cri.js';
import { tempDir } from '../helpers/fs.js';
import { statusPluginNode } from '../helpers/status-plugin.js';
import type { PluginNode } from '../helpers/status-plugin.js';
import { until } from '../helpers/wait.js';

function pluginNode(t: TestContext, extra: Record<string, unknown> = {}, cniVersion = '1.1.0'): PluginNode {
  return statusPluginNode(tempDir(t), extra, cniVersion);
}

async function networkReady(client: CriClient): Promise<{ status: boolean; message: string }> {
  const c = condition(await client.status(), 'NetworkReady');
  return { status: c.status, message: c.message };
}

interface PluginInfo {
  policy: string;
  lastProbe: {
    network: string;
    current: boolean;
    skipped: string | null;
    plugins: Array<{
      plugin: string;
      path: string | null;
      result: string;
      code: number | null;
      message: string | null;
      durationMs: number;
    }>;
  } | null;
}

async function pluginInfo(client: CriClient): Promise<PluginInfo> {
  return parsedInfo(await client.status(true)).pluginStatus as PluginInfo;
}

const gauge = (url: string, result: string) =>
  scrape(url, `cri_netstatus_plugin_status{network="probe-net",plugin="cni-status-test",result="${result}"}`);

test('every STATUS result through a real Status call under containerd-2.1: containerd words, codes 50 and 51 told apart in info and metrics', async (t) => {
  const node = pluginNode(t);
  // A generous budget: on a loaded machine the shell plugin may take a while to start.
  const { client, metricsUrl } = await startInProcess(
    t,
    ['--cni-bin-dir', node.binDir, '--semantics', 'containerd-2.1', '--refresh-timeout', '10s'],
    node.confDir,
  );
  const prefix = 'Network plugin returns error: ';
  const cases: Array<[string, boolean, string, string, number | null]> = [
    ['ok', true, '', 'ok', null],
    ['fail50', false, `${prefix}plugin not ready: agent down`, 'code_50', 50],
    ['fail51', false, `${prefix}plugin not ready: existing pods degraded; agent lost`, 'code_51', 51],
    ['errexit0', true, '', 'ok', null],
    [
      'nonjson',
      false,
      `${prefix}netplugin failed but error parsing its diagnostic message "oops not json\\n": invalid character 'o' looking for beginning of value`,
      'bad_output',
      null,
    ],
    ['stderr', false, `${prefix}netplugin failed: "boom on stderr\\n": exit status 1`, 'bad_output', null],
  ];
  for (const [mode, ready, message, result, code] of cases) {
    node.setMode(mode);
    assert.deepEqual(await networkReady(client), { status: ready, message }, mode);
    const info = await pluginInfo(client);
    assert.equal(info.policy, 'every');
    assert.equal(info.lastProbe?.plugins[0]?.result, result, mode);
    assert.equal(info.lastProbe?.plugins[0]?.code, code, mode);
    assert.equal(await gauge(metricsUrl, result), 1, `${mode}: the gauge shows the current result`);
    assert.equal(
      (await (await fetch(metricsUrl)).text()).match(/^cri_netstatus_plugin_status\{/gm)?.length,
      1,
      `${mode}: one series per plugin`,
    );
  }
  const exposition = await (await fetch(metricsUrl)).text();
  assert.match(
    exposition,
    /^cri_netstatus_plugin_status_duration_seconds_count\{plugin="cni-status-test"\} \d+/m,
  );

  // Could not run: the binary gone, then not executable, then not a binary at all.
  const binary = join(node.binDir, 'cni-status-test');
  renameSync(binary, `${binary}.away`);
  assert.deepEqual(await networkReady(client), {
    status: false,
    message: `${prefix}failed to find plugin "cni-status-test" in path [${node.binDir}]`,
  });
  assert.equal(await gauge(metricsUrl, 'could_not_run'), 1);
  renameSync(`${binary}.away`, binary);
  chmodSync(binary, 0o644);
  const denied = await networkReady(client);
  assert.equal(denied.status, false);
  assert.match(denied.message, new RegExp(`^${prefix}could not run plugin ${binary}: permission denied`));
  writeFileSync(binary, Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 0, 0, 0]), { mode: 0o755 });
  chmodSync(binary, 0o755);
  const garbage = await networkReady(client);
  assert.equal(garbage.status, false);
  assert.match(garbage.message, new RegExp(`^${prefix}could not run plugin ${binary}: exec format error`));
  assert.equal((await pluginInfo(client)).lastProbe?.plugins[0]?.result, 'could_not_run');

  // The runtime never runs anything but STATUS (and VERSION after a failure, to name a too-old plugin).
  const verbs = new Set(node.calls().map((line) => line.split(' ')[0]));
  assert.deepEqual(
    [...verbs].filter((v) => v !== 'STATUS' && v !== 'VERSION'),
    [],
  );
  assert.ok(verbs.has('STATUS'));
});

/** Processes whose process group is `pgid` (from /proc). */
function groupMembers(pgid: number): number[] {
  const members: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // Fields after the parenthesised command: state, ppid, pgrp.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) === pgid) members.push(Number(entry));
    } catch {
      // Gone meanwhile.
    }
  }
  return members;
}

test('one budget: a hung plugin never holds a Status call past --refresh-timeout; it is killed with its whole group at --plugin-status-timeout', async (t) => {
  const node = pluginNode(t);
  node.setMode('hang-child'); // a grandchild keeps stdout open: killing the plugin alone would not end it
  const { client, metricsUrl, agent } = await startInProcess(
    t,
    [
      '--cni-bin-dir',
      node.binDir,
      '--semantics',
      'containerd-2.0',
      '--refresh-timeout',
      '300ms',
      '--plugin-status-timeout',
      '3s',
    ],
    node.confDir,
  );
  const answered = await networkReady(client);
  // The call came back while the plugin still ran: its answer is the files' (no result yet).
  const [line] = await until('the plugin to have started', () => node.calls().length > 0 && node.calls());
  const pid = Number(line?.split(' ')[1]);
  assert.ok(
    groupMembers(pid).length >= 2,
    'the plugin and its grandchild were still running when the call answered',
  );
  assert.equal(answered.status, true);
  // gRPC server, metrics: all still answer while the plugin hangs.
  assert.equal(condition(await client.status(), 'RuntimeReady').status, true);
  assert.equal(await scrape(metricsUrl, 'cri_netstatus_network_ready'), 1);
  const timedOut = await until(
    'the timeout to land in the verdict',
    async () => {
      const ready = await networkReady(client);
      return ready.status ? undefined : ready;
    },
    15_000,
  );
  assert.match(timedOut.message, /did not answer STATUS within --plugin-status-timeout 3s; it was killed/);
  assert.equal(await gauge(metricsUrl, 'timeout'), 1);
  await until('no process of the first plugin group to be left', () => groupMembers(pid).length === 0, 5000);
  // Stopping the agent kills a plugin still running.
  await until(
    'another probe to be running',
    () => node.calls().length > 1 && groupMembers(Number(node.calls().at(-1)?.split(' ')[1])).length > 0,
    10_000,
  );
  const last = Number(node.calls().at(-1)?.split(' ')[1]);
  await agent.stop();
  await until(
    'no process of the last plugin group to be left after stop',
    () => groupMembers(last).length === 0,
    5000,
  );
});

test('50 concurrent Status calls share runs: never two plugin processes at once, far fewer runs than calls', async (t) => {
  const node = pluginNode(t, { statusMode: 'slow', delayMs: 300 });
  node.setMode('slow');
  const { client } = await startInProcess(
    t,
    ['--cni-bin-dir', node.binDir, '--semantics', 'containerd-2.1', '--refresh-timeout', '10s'],
    node.confDir,
  );
  await client.status(); // the start-up probes are done
  const before = node.calls().length;
  let maxInFlight = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const inFlight = new Set(
        node
          .calls()
          .map((l) => Number(l.split(' ')[1]))
          .filter((pid) => groupMembers(pid).length > 0),
      );
      maxInFlight = Math.max(maxInFlight, inFlight.size);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  })();
  const answers = await Promise.all(Array.from({ length: 50 }, () => client.status()));
  sampling = false;
  await sampler;
  assert.equal(answers.length, 50);
  for (const answer of answers) assert.equal(condition(answer, 'NetworkReady').status, true);
  const runs = node.calls().length - before;
  assert.ok(runs >= 1 && runs <= 10, `${runs} runs for 50 calls`);
  assert.ok(maxInFlight <= 1, `${maxInFlight} plugin processes at once`);
});

test('probes follow the plugin at --resync-interval with no Status call, and the Node-facing verdict says so', async (t) => {
  const node = pluginNode(t);
  const { metricsUrl, agent } = await startInProcess(
    t,
    ['--cni-bin-dir', node.binDir, '--semantics', 'containerd-2.1', '--resync-interval', '1s'],
    node.confDir,
  );
  await until('the start-up probe', async () => (await gauge(metricsUrl, 'ok')) === 1);
  node.setMode('fail51');
  await until(
    'the resync probe to see code 51',
    async () => (await gauge(metricsUrl, 'code_51')) === 1,
    10_000,
  );
  const verdict = agent.verdicts.current;
  assert.equal(verdict.nodeCondition.status, 'False');
  assert.equal(verdict.nodeCondition.reason, 'CNIPluginNotReady');
  assert.match(
    verdict.nodeCondition.message,
    /plugin "cni-status-test" of network "probe-net" .* failed CNI STATUS \(code_51, CNI error code 51\): plugin not ready: existing pods degraded; agent lost/,
  );
});

test('auto under crio probes until the first success, then never again; under isulad it never probes; a list below 1.1.0 is skipped', async (t) => {
  const node = pluginNode(t);
  node.setMode('fail50');
  const crio = await startInProcess(
    t,
    ['--cni-bin-dir', node.binDir, '--semantics', 'crio', '--refresh-timeout', '10s'],
    node.confDir,
  );
  assert.equal(
    (await networkReady(crio.client)).message,
    'Network plugin returns error: plugin not ready: agent down',
  );
  node.setMode('ok');
  assert.equal((await networkReady(crio.client)).status, true);
  const runs = node.calls().filter((l) => l.startsWith('STATUS')).length;
  node.setMode('fail50');
  assert.equal((await networkReady(crio.client)).status, true, 'CRI-O stays Ready after its first success');
  assert.equal(node.calls().filter((l) => l.startsWith('STATUS')).length, runs, 'and runs STATUS no more');
  await crio.agent.stop();

  const other = pluginNode(t);
  other.setMode('fail50');
  const isulad = await startInProcess(t, ['--cni-bin-dir', other.binDir], other.confDir);
  assert.equal((await networkReady(isulad.client)).status, true);
  assert.equal((await pluginInfo(isulad.client)).policy, 'never');
  assert.deepEqual(other.calls(), [], 'the default profile runs no plugin');
  await isulad.agent.stop();

  const old = pluginNode(t, {}, '1.0.0');
  old.setMode('fail50');
  const skipped = await startInProcess(
    t,
    ['--cni-bin-dir', old.binDir, '--semantics', 'containerd-2.1', '--plugin-status', 'on'],
    old.confDir,
  );
  assert.equal((await networkReady(skipped.client)).status, true, 'containerd skips STATUS below 1.1.0');
  const info = await pluginInfo(skipped.client);
  assert.match(info.lastProbe?.skipped ?? '', /cniVersion 1\.0\.0 is below 1\.1\.0/);
  assert.equal(info.lastProbe?.plugins[0]?.result, 'skipped');
  assert.deepEqual(old.calls(), []);
});

test('--plugin-status on under isulad: its wording with the code, and the last good config keeps being probed when the file breaks', async (t) => {
  const node = pluginNode(t);
  node.setMode('fail51');
  const { client, metricsUrl } = await startInProcess(
    t,
    ['--cni-bin-dir', node.binDir, '--plugin-status', 'on', '--refresh-timeout', '10s'],
    node.confDir,
  );
  assert.deepEqual(await networkReady(client), {
    status: false,
    message:
      'Network plugin returns error: plugin "cni-status-test" failed CNI STATUS (CNI error code 51): plugin not ready: existing pods degraded; agent lost',
  });
  writeFileSync(node.conf, '{"cniVersion":"1.1.0","name":"probe-'); // a half-written rewrite
  node.setMode('ok');
  const response = await client.status(true);
  assert.equal(
    condition(response, 'NetworkConfigUpToDate').reason,
    'RefreshFailed',
    'the last good config is served',
  );
  assert.equal(condition(response, 'NetworkReady').status, true, 'and its plugin, probed again, is fine now');
  assert.equal(await gauge(metricsUrl, 'ok'), 1);
  assert.equal(await scrape(metricsUrl, 'cri_netstatus_config_stale'), 1);
});

test('--plugin-status off never runs a plugin, even under containerd-2.1', async (t) => {
  const node = pluginNode(t);
  node.setMode('fail50');
  const { client, metricsUrl } = await startInProcess(
    t,
    ['--cni-bin-dir', node.binDir, '--semantics', 'containerd-2.1', '--plugin-status', 'off'],
    node.confDir,
  );
  assert.equal((await networkReady(client)).status, true);
  assert.deepEqual(node.calls(), []);
  assert.equal((await pluginInfo(client)).lastProbe, null);
  assert.equal(await gauge(metricsUrl, 'code_50'), undefined);
});
