// crictl (cri-tools v1.37.0, built by scripts/peers.sh) against the agent's socket: `version` and
// `info` succeed, `info` shows the three conditions and every info key, whatever the network
// state; and the `cniconfig` shape scripts read from containerd's `crictl info` is there too
// (compared key by key with a live containerd watching the same dir).
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { startInProcess } from '../helpers/agent.js';
import { conflist, tempDir } from '../helpers/fs.js';
import { crictl, crictlCondition, crictlInfo, startContainerd } from './harness/containerd.js';
import type { CrictlInfo } from './harness/containerd.js';
import { describeRun, requirePeers } from './harness/peers.js';

const INFO_KEYS = ['cniconfig', 'config', 'lastCNILoadStatus', 'pluginStatus', 'refresh', 'version'];

async function agentWith(t: import('node:test').TestContext, files: Record<string, string>) {
  const { cniBinDir } = requirePeers('crictl', 'cniBinDir');
  const confDir = join(tempDir(t), 'net.d');
  mkdirSync(confDir);
  for (const [name, content] of Object.entries(files)) writeFileSync(join(confDir, name), content);
  const agent = await startInProcess(t, ['--cni-bin-dir', cniBinDir], confDir);
  return { ...agent, endpoint: `unix://${agent.socket}` };
}

function objectAt(info: CrictlInfo, key: string): Record<string, unknown> {
  const value = info[key];
  assert.ok(
    typeof value === 'object' && value !== null && !Array.isArray(value),
    `crictl info shows ${key} as a JSON object (got ${JSON.stringify(value)})`,
  );
  return value as Record<string, unknown>;
}

test('crictl version: exit 0 and the four fields kubelet requires', async (t) => {
  const { endpoint } = await agentWith(t, { '10-net.conflist': conflist('net') });
  const result = await crictl(endpoint, ['version']);
  assert.equal(result.code, 0, describeRun('crictl', ['version'], result));
  assert.match(result.stdout, /^Version:\s+0\.1\.0$/m);
  assert.match(result.stdout, /^RuntimeName:\s+cri-netstatus$/m);
  assert.match(result.stdout, /^RuntimeVersion:\s+\d+\.\d+\.\d+/m);
  assert.match(result.stdout, /^RuntimeApiVersion:\s+v1$/m);
});

test('crictl info: exit 0, the three conditions true and every info key, as JSON', async (t) => {
  const { endpoint, confDir } = await agentWith(t, {
    '10-net.conflist': conflist('net', ['bridge', 'portmap']),
  });
  const args = ['info'];
  const result = await crictl(endpoint, args);
  assert.equal(result.code, 0, describeRun('crictl', args, result));
  const info = JSON.parse(result.stdout) as CrictlInfo;
  assert.deepEqual(
    info.status.conditions.map((c) => [c.type, c.status]),
    [
      ['RuntimeReady', true],
      ['NetworkReady', true],
      ['NetworkConfigUpToDate', true],
    ],
  );
  for (const key of INFO_KEYS)
    assert.ok(key in info, `crictl info shows info key ${key}: ${Object.keys(info).join(', ')}`);
  assert.equal(info.upstream, undefined, 'no upstream key without --runtime-endpoint');
  const cniconfig = objectAt(info, 'cniconfig');
  assert.equal(cniconfig.PluginConfDir, confDir);
  assert.deepEqual(cniconfig.network, {
    name: 'net',
    file: '10-net.conflist',
    cniVersion: '1.0.0',
    plugins: ['bridge', 'portmap'],
    stale: false,
  });
  assert.equal(
    info.lastCNILoadStatus,
    'OK',
    'crictl trims the quotes of the JSON string "OK", as for containerd',
  );
  assert.equal(objectAt(info, 'config').cniConfDir, confDir);
  assert.equal(typeof objectAt(info, 'refresh').attempts, 'number');
  assert.equal(typeof objectAt(info, 'version').version, 'string');
});

test('crictl info: exit 0 while the network is not ready, with the reason and the load error', async (t) => {
  const { endpoint, confDir } = await agentWith(t, {});
  const result = await crictl(endpoint, ['info']);
  assert.equal(result.code, 0, describeRun('crictl', ['info'], result));
  const info = JSON.parse(result.stdout) as CrictlInfo;
  const network = crictlCondition(info, 'NetworkReady');
  assert.equal(network.status, false);
  assert.equal(network.reason, 'NetworkPluginNotReady');
  assert.equal(network.message, `Network plugin returns error: no network config found in ${confDir}`);
  assert.equal(crictlCondition(info, 'RuntimeReady').status, true);
  assert.equal(info.lastCNILoadStatus, `no network config found in ${confDir}`);
  for (const key of INFO_KEYS) assert.ok(key in info, `info key ${key} is shown while not ready`);
});

test('crictl info: exit 0 while a stale last-good config is served (NetworkConfigUpToDate false)', async (t) => {
  const { endpoint, confDir, client } = await agentWith(t, { '10-net.conflist': conflist('net') });
  await client.status(); // the good content is loaded, then breaks in place
  writeFileSync(join(confDir, '10-net.conflist'), '{"cniVersion": "1.0.0", "name": "net", "plugins": [');
  const result = await crictl(endpoint, ['info']);
  assert.equal(result.code, 0, describeRun('crictl', ['info'], result));
  const info = JSON.parse(result.stdout) as CrictlInfo;
  assert.equal(
    crictlCondition(info, 'NetworkReady').status,
    true,
    'isulad semantics keep the last good config',
  );
  const upToDate = crictlCondition(info, 'NetworkConfigUpToDate');
  assert.equal(upToDate.status, false);
  assert.equal(upToDate.reason, 'RefreshFailed');
  assert.match(upToDate.message, /10-net\.conflist/);
  assert.equal((objectAt(info, 'cniconfig').network as { stale: boolean }).stale, true);
});

test('crictl info --quiet (verbose=false): exit 0, the conditions and no info keys', async (t) => {
  const { endpoint } = await agentWith(t, { '10-net.conflist': conflist('net') });
  const args = ['info', '--quiet'];
  const result = await crictl(endpoint, args);
  assert.equal(result.code, 0, describeRun('crictl', args, result));
  const info = JSON.parse(result.stdout) as CrictlInfo;
  assert.equal(info.status.conditions.length, 3);
  for (const key of INFO_KEYS) assert.equal(info[key], undefined, `no ${key} unless verbose`);
});

test('crictl info -o yaml and go-template work on the agent', async (t) => {
  const { endpoint } = await agentWith(t, { '10-net.conflist': conflist('net') });
  const yaml = await crictl(endpoint, ['info', '-o', 'yaml']);
  assert.equal(yaml.code, 0, describeRun('crictl', ['info', '-o', 'yaml'], yaml));
  assert.match(yaml.stdout, /type: NetworkConfigUpToDate/);
  const templateArgs = [
    'info',
    '-o',
    'go-template',
    '--template',
    '{{.lastCNILoadStatus}} {{.cniconfig.network.name}}',
  ];
  const template = await crictl(endpoint, templateArgs);
  assert.equal(template.code, 0, describeRun('crictl', templateArgs, template));
  assert.equal(template.stdout.trim(), 'OK net');
});

test("crictl info: the agent's cniconfig carries every key of containerd's, for the same conf dir", async (t) => {
  const { endpoint, confDir } = await agentWith(t, {
    '10-net.conflist': conflist('net', ['bridge', 'portmap']),
  });
  const containerd = await startContainerd(t, { confDir });
  const ours = await crictlInfo(endpoint);
  const theirs = await containerd.info();
  assert.equal(crictlCondition(theirs, 'NetworkReady').status, true, 'containerd loaded the same dir');
  const ourConfig = objectAt(ours, 'cniconfig');
  const theirConfig = objectAt(theirs, 'cniconfig');
  for (const key of Object.keys(theirConfig)) {
    assert.ok(key in ourConfig, `cniconfig.${key} (containerd has it) is missing from the agent's`);
  }
  assert.deepEqual(ourConfig.PluginConfDir, theirConfig.PluginConfDir);
  type Networks = { Config: Record<string, unknown>; IFName: string }[];
  const theirNetwork = (theirConfig.Networks as Networks).find((n) => n.Config.Name !== 'cni-loopback');
  const ourNetwork = (ourConfig.Networks as Networks)[0];
  assert.ok(theirNetwork && ourNetwork, 'both list the default network');
  for (const key of Object.keys(theirNetwork.Config)) {
    assert.ok(key in ourNetwork.Config, `cniconfig.Networks[].Config.${key} is missing from the agent's`);
  }
  assert.equal(ourNetwork.Config.Name, theirNetwork.Config.Name);
  assert.equal(ourNetwork.Config.CNIVersion, theirNetwork.Config.CNIVersion);
  assert.equal(ourNetwork.IFName, theirNetwork.IFName);
  assert.equal(ours.lastCNILoadStatus, theirs.lastCNILoadStatus, 'both print OK');
  assert.deepEqual(
    ours.status.conditions.slice(0, 2).map((c) => [c.type, c.status]),
    theirs.status.conditions.slice(0, 2).map((c) => [c.type, c.status]),
    'RuntimeReady and NetworkReady come first, in the same order, with the same answer',
  );
});
