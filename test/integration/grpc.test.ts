import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Client, Metadata, credentials, status as grpcStatus } from '@grpc/grpc-js';
import type { ServiceError } from '@grpc/grpc-js';
import {
  HealthCheckRequest,
  HealthCheckResponse,
  HealthCheckResponse_ServingStatus,
} from '../../src/gen/grpc/health/v1/health.js';
import { scrape, startInProcess } from '../helpers/agent.js';
import { condition, parsedInfo } from '../helpers/cri.js';
import { conflist } from '../helpers/fs.js';
import { until } from '../helpers/wait.js';

function rawCall(
  socket: string,
  path: string,
  body: Buffer,
): Promise<{ error: ServiceError | null; response?: Buffer }> {
  const client = new Client(`unix:${socket}`, credentials.createInsecure());
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      path,
      (value: Buffer) => value,
      (value: Buffer) => value,
      body,
      new Metadata(),
      { deadline: new Date(Date.now() + 5000) },
      (error: ServiceError | null, response?: Buffer) => {
        client.close();
        resolve({ error, ...(response ? { response } : {}) });
      },
    );
  });
}

test('Version answers with every field kubelet and crictl require', async (t) => {
  const { client } = await startInProcess(t);
  const version = await client.version();
  assert.equal(version.version, '0.1.0');
  assert.equal(version.runtimeName, 'cri-netstatus');
  assert.match(version.runtimeVersion, /^\d+\.\d+\.\d+/);
  assert.equal(version.runtimeApiVersion, 'v1');
});

test('empty conf dir: NetworkReady false with NetworkPluginNotReady naming the dir', async (t) => {
  const { client, confDir } = await startInProcess(t);
  mkdirSync(confDir, { recursive: true });
  const response = await client.status();
  assert.deepEqual(
    response.status?.conditions.map((c) => c.type),
    ['RuntimeReady', 'NetworkReady', 'NetworkConfigUpToDate'],
  );
  assert.equal(condition(response, 'RuntimeReady').status, true);
  const network = condition(response, 'NetworkReady');
  assert.equal(network.status, false);
  assert.equal(network.reason, 'NetworkPluginNotReady');
  assert.equal(network.message, `Network plugin returns error: no network config found in ${confDir}`);
  assert.deepEqual(response.info, {}, 'info is empty unless verbose');
});

test('valid file: NetworkReady true, and verbose info holds the network and file, every value JSON', async (t) => {
  const { client, confDir } = await startInProcess(t);
  mkdirSync(confDir, { recursive: true });
  writeFileSync(join(confDir, '10-flannel.conflist'), conflist('cbr0', ['flannel', 'portmap'], '0.3.1'));
  const response = await client.status(true);
  assert.equal(condition(response, 'NetworkReady').status, true);
  assert.equal(condition(response, 'NetworkConfigUpToDate').status, true);
  assert.deepEqual(Object.keys(response.info).sort(), [
    'cniconfig',
    'config',
    'lastCNILoadStatus',
    'pluginStatus',
    'refresh',
    'version',
  ]);
  const info = parsedInfo(response);
  assert.equal(info.lastCNILoadStatus, 'OK');
  const cni = info.cniconfig as {
    PluginConfDir: string;
    Networks: { Config: { Name: string; CNIVersion: string } }[];
    network: { name: string; file: string; plugins: string[] };
    files: { file: string; status: string; missingBinaries: string[] }[];
    verdicts: Record<string, { ready: boolean; network: string }>;
  };
  assert.equal(cni.PluginConfDir, confDir);
  assert.equal(cni.Networks[0]?.Config.Name, 'cbr0');
  assert.equal(cni.Networks[0]?.Config.CNIVersion, '0.3.1');
  assert.deepEqual(cni.network, {
    name: 'cbr0',
    file: '10-flannel.conflist',
    cniVersion: '0.3.1',
    plugins: ['flannel', 'portmap'],
    stale: false,
  });
  assert.equal(cni.files[0]?.status, 'accepted');
  assert.deepEqual(cni.files[0]?.missingBinaries, ['flannel', 'portmap']);
  for (const profile of ['isulad', 'containerd-1.7', 'containerd-2.0', 'containerd-2.1', 'crio'])
    assert.ok(profile in cni.verdicts, profile);
  assert.equal(cni.verdicts.crio?.ready, false, 'crio needs the plugin binaries');
  const refresh = info.refresh as { attempts: number; lastSuccess: string | null };
  assert.ok(refresh.attempts >= 1);
  assert.ok(refresh.lastSuccess !== null);
  assert.equal((info.config as { semantics: string }).semantics, 'isulad');
});

test('every other CRI method answers UNIMPLEMENTED, and the server keeps serving', async (t) => {
  const { socket, client } = await startInProcess(t);
  for (const path of [
    '/runtime.v1.RuntimeService/ListContainers',
    '/runtime.v1.RuntimeService/RunPodSandbox',
    '/runtime.v1.ImageService/ImageFsInfo',
    '/runtime.v1alpha2.RuntimeService/Status',
  ]) {
    const { error } = await rawCall(socket, path, Buffer.alloc(0));
    assert.equal(error?.code, grpcStatus.UNIMPLEMENTED, path);
  }
  assert.equal((await client.version()).runtimeName, 'cri-netstatus');
});

test('an oversized request is refused with RESOURCE_EXHAUSTED and the agent keeps serving', async (t) => {
  const { socket, client } = await startInProcess(t);
  const { error } = await rawCall(socket, '/runtime.v1.RuntimeService/Status', Buffer.alloc(1024 * 1024, 1));
  assert.equal(error?.code, grpcStatus.RESOURCE_EXHAUSTED);
  assert.ok((await client.status()).status);
});

test('a malformed protobuf request gets INTERNAL, not a crash', async (t) => {
  const { socket, client } = await startInProcess(t);
  const { error } = await rawCall(
    socket,
    '/runtime.v1.RuntimeService/Status',
    Buffer.from([0x0a, 0xff, 0xff, 0xff]),
  );
  assert.ok(error, 'a truncated field must fail');
  assert.ok((await client.status()).status);
});

test('grpc.health.v1 reports SERVING for the server and the RuntimeService, NOT_FOUND for others', async (t) => {
  const { socket } = await startInProcess(t);
  for (const service of ['', 'runtime.v1.RuntimeService']) {
    const { error, response } = await rawCall(
      socket,
      '/grpc.health.v1.Health/Check',
      Buffer.from(HealthCheckRequest.encode({ service }).finish()),
    );
    assert.equal(error, null);
    assert.equal(
      HealthCheckResponse.decode(response ?? Buffer.alloc(0)).status,
      HealthCheckResponse_ServingStatus.SERVING,
    );
  }
  const { error } = await rawCall(
    socket,
    '/grpc.health.v1.Health/Check',
    Buffer.from(HealthCheckRequest.encode({ service: 'nope' }).finish()),
  );
  assert.equal(error?.code, grpcStatus.NOT_FOUND);
});

test('status_requests_total counts Status calls by gRPC code, failures included', async (t) => {
  const { socket, client, metricsUrl } = await startInProcess(t);
  const count = async (code: string) =>
    (await scrape(metricsUrl, `cri_netstatus_status_requests_total{code="${code}"}`)) ?? 0;
  const ok = await count('OK');
  const internal = await count('INTERNAL');
  await client.status();
  await client.status(true);
  await rawCall(socket, '/runtime.v1.RuntimeService/Status', Buffer.from([0x0a, 0xff, 0xff, 0xff]));
  assert.equal(await count('OK'), ok + 2);
  assert.equal(await count('INTERNAL'), internal + 1);
});

test('Health.Watch streams are ended with OK at shutdown, without waiting for the grace period', async (t) => {
  const { socket, agent } = await startInProcess(t, ['--shutdown-grace', '10s']);
  const client = new Client(`unix:${socket}`, credentials.createInsecure());
  t.after(() => client.close());
  const statuses: number[] = [];
  const ended: Promise<number>[] = [];
  for (let i = 0; i < 20; i++) {
    const call = client.makeServerStreamRequest(
      '/grpc.health.v1.Health/Watch',
      (value: Buffer) => value,
      (value: Buffer) => value,
      Buffer.from(HealthCheckRequest.encode({ service: i % 2 ? '' : 'no-such-service' }).finish()),
    );
    call.on('data', (bytes: Buffer) => statuses.push(HealthCheckResponse.decode(bytes).status));
    call.on('error', () => undefined);
    ended.push(new Promise((resolve) => call.on('status', (s: { code: number }) => resolve(s.code))));
  }
  await until('20 Watch streams to answer', () => statuses.length >= 20, 10_000);
  const started = Date.now();
  await agent.stop();
  const codes = await Promise.all(ended);
  assert.ok(Date.now() - started < 3000, `stop took ${Date.now() - started} ms`);
  assert.deepEqual(new Set(codes), new Set([grpcStatus.OK]));
});
