import assert from 'node:assert/strict';
import { mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { scrape, startInProcess } from '../helpers/agent.js';
import { condition, parsedInfo } from '../helpers/cri.js';
import { conflist } from '../helpers/fs.js';
import { ManualClock } from '../helpers/clock.js';
import { until } from '../helpers/wait.js';

const failures = (url: string, reason: string) =>
  scrape(url, `cri_netstatus_config_refresh_failures_total{reason="${reason}"}`);

test('the default file rewritten in place with truncated JSON keeps serving the last good network, visibly stale', async (t) => {
  const { client, confDir, metricsUrl } = await startInProcess(t);
  mkdirSync(confDir, { recursive: true });
  const path = join(confDir, '10-calico.conflist');
  writeFileSync(path, conflist('k8s-pod-network', ['calico', 'portmap']));
  assert.equal(condition(await client.status(), 'NetworkReady').status, true);
  const before = (await failures(metricsUrl, 'parse_error')) ?? NaN;

  writeFileSync(path, conflist('k8s-pod-network', ['calico', 'portmap']).slice(0, 40)); // in place, cut short
  const response = await client.status(true);
  assert.equal(condition(response, 'NetworkReady').status, true, 'the last good network stays in force');
  const upToDate = condition(response, 'NetworkConfigUpToDate');
  assert.equal(upToDate.status, false);
  assert.equal(upToDate.reason, 'RefreshFailed');
  assert.match(
    upToDate.message,
    /serving the last good config of 10-calico\.conflist \(network "k8s-pod-network"\)/,
  );
  const info = parsedInfo(response);
  assert.equal((info.cniconfig as { network: { name: string } }).network.name, 'k8s-pod-network');
  assert.match(
    String(info.lastCNILoadStatus),
    new RegExp(
      `^${path}: error parsing configuration list: unexpected end of JSON input \\(line \\d+, column \\d+: the file ends early`,
    ),
  );
  assert.equal(await scrape(metricsUrl, 'cri_netstatus_config_stale'), 1);
  assert.equal(await scrape(metricsUrl, 'cri_netstatus_network_ready'), 1);
  assert.equal(await failures(metricsUrl, 'parse_error'), before + 1);

  await client.status(); // the same broken file again: not a new failure
  assert.equal(await failures(metricsUrl, 'parse_error'), before + 1);

  writeFileSync(path, conflist('k8s-pod-network', ['calico', 'portmap']));
  const fixed = await client.status(true);
  assert.equal(condition(fixed, 'NetworkConfigUpToDate').status, true);
  assert.equal(parsedInfo(fixed).lastCNILoadStatus, 'OK');
  assert.equal(await scrape(metricsUrl, 'cri_netstatus_config_stale'), 0);
});

test('--stale-after turns NetworkReady false once a stale config has been served too long', async (t) => {
  const clock = new ManualClock();
  const { client, confDir, metricsUrl } = await startInProcess(t, ['--stale-after', '2s'], undefined, {
    clock,
  });
  mkdirSync(confDir, { recursive: true });
  writeFileSync(join(confDir, '10-a.conflist'), conflist('a'));
  await client.status();
  writeFileSync(join(confDir, '10-a.conflist'), '{');
  assert.equal(condition(await client.status(), 'NetworkReady').status, true);
  await clock.advance(2000);
  assert.equal(condition(await client.status(), 'NetworkReady').status, true, 'not before 2s have passed');
  assert.equal(await scrape(metricsUrl, 'cri_netstatus_network_ready'), 1);
  await clock.advance(1);
  assert.equal(
    await scrape(metricsUrl, 'cri_netstatus_network_ready'),
    0,
    'the metric follows with no Status call',
  );
  const network = condition(await client.status(), 'NetworkReady');
  assert.equal(network.status, false);
  assert.equal(network.reason, 'NetworkPluginNotReady');
  assert.match(
    network.message,
    /^Network plugin returns error: network config stale since \d{4}-\d\d-\d\dT[\d:.]+Z, longer than --stale-after 2s: .*10-a\.conflist: error parsing configuration list/,
  );
  assert.equal(await scrape(metricsUrl, 'cri_netstatus_network_ready'), 0);
});

test('conf dir deleted and recreated: recovers without a restart, through Status and through the watcher', async (t) => {
  const { client, confDir, metricsUrl } = await startInProcess(t);
  mkdirSync(confDir, { recursive: true });
  writeFileSync(join(confDir, '10-a.conflist'), conflist('a'));
  assert.equal(condition(await client.status(), 'NetworkReady').status, true);
  rmSync(confDir, { recursive: true });
  const gone = await client.status(true);
  assert.equal(condition(gone, 'NetworkReady').status, true, 'isulad keeps the last good network');
  assert.match(String(parsedInfo(gone).lastCNILoadStatus), /the directory does not exist/);
  mkdirSync(confDir);
  writeFileSync(join(confDir, '10-b.conflist'), conflist('b'));
  const back = parsedInfo(await client.status(true));
  assert.equal((back.cniconfig as { network: { name: string } }).network.name, 'b');

  // Without Status calls: the watcher must have been re-armed on the new dir.
  writeFileSync(join(confDir, '05-c.conflist'), conflist('c'));
  await until('the watcher to see 05-c.conflist', async () =>
    (await fetchBody(metricsUrl)).includes('cri_netstatus_config_info{network="c"'),
  );
});

test('a ConfigMap-style ..data symlink swap is picked up, through Status and through the watcher', async (t) => {
  const { client, confDir, metricsUrl } = await startInProcess(t);
  mkdirSync(join(confDir, '..2026_01'), { recursive: true });
  writeFileSync(join(confDir, '..2026_01', '10-net.conflist'), conflist('one'));
  symlinkSync('..2026_01', join(confDir, '..data'));
  symlinkSync('..data/10-net.conflist', join(confDir, '10-net.conflist'));
  assert.equal(
    (parsedInfo(await client.status(true)).cniconfig as { network: { name: string } }).network.name,
    'one',
  );

  const swap = (version: string, name: string) => {
    mkdirSync(join(confDir, version));
    writeFileSync(join(confDir, version, '10-net.conflist'), conflist(name));
    symlinkSync(version, join(confDir, '..data_tmp'));
    renameSync(join(confDir, '..data_tmp'), join(confDir, '..data'));
  };
  swap('..2026_02', 'two');
  assert.equal(
    (parsedInfo(await client.status(true)).cniconfig as { network: { name: string } }).network.name,
    'two',
  );
  swap('..2026_03', 'three');
  await until('the watcher to see the swap', async () =>
    (await fetchBody(metricsUrl)).includes('cri_netstatus_config_info{network="three"'),
  );
});

test('metrics and state follow the watcher between Status calls', async (t) => {
  const { confDir, metricsUrl } = await startInProcess(t);
  mkdirSync(confDir, { recursive: true });
  await until(
    'network_ready 0 on an empty dir',
    async () => (await scrape(metricsUrl, 'cri_netstatus_network_ready')) === 0,
  );
  writeFileSync(join(confDir, '10-a.conflist'), conflist('a'));
  await until(
    'network_ready 1 after a file appears',
    async () => (await scrape(metricsUrl, 'cri_netstatus_network_ready')) === 1,
  );
  writeFileSync(join(confDir, '10-a.conflist'), '{"broken"');
  await until(
    'config_stale 1 after the file breaks',
    async () => (await scrape(metricsUrl, 'cri_netstatus_config_stale')) === 1,
  );
});

async function fetchBody(url: string): Promise<string> {
  return (await fetch(url)).text();
}
