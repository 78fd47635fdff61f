// Who the agent is to the API server: --kube auto/on/off, the in-cluster service account and
// kubeconfig files (real files in temp dirs).
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { inClusterAvailable, loadInCluster, loadKubeconfig } from '../../src/kube/config.js';
import { decide } from '../../src/kube/reporter.js';
import { tempDir } from '../helpers/fs.js';

const inClusterEnv = { KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443' };

test('--kube auto is on only in a Pod with a token that knows its node name', () => {
  assert.deepEqual(decide({ mode: 'auto', nodeName: 'a', env: inClusterEnv }, true), {
    on: true,
    nodeName: 'a',
    source: { inCluster: true },
  });
  const noNode = decide({ mode: 'auto', env: inClusterEnv }, true);
  assert.equal(noNode.on, false);
  assert.match(noNode.on ? '' : noNode.why, /NODE_NAME/);
  const outside = decide({ mode: 'auto', nodeName: 'a', kubeconfig: '/k', env: {} }, false);
  assert.equal(outside.on, false);
  assert.match(outside.on ? '' : outside.why, /--kube on/);
  assert.deepEqual(decide({ mode: 'off', nodeName: 'a', env: inClusterEnv }, true), {
    on: false,
    why: '--kube off',
  });
});

test('--kube on fails with what to do when the node name or API access is missing', () => {
  assert.throws(
    () => decide({ mode: 'on', kubeconfig: '/k', env: {} }, false),
    /--node-name or set NODE_NAME/,
  );
  assert.throws(() => decide({ mode: 'on', nodeName: 'a', env: {} }, false), /--kubeconfig PATH/);
  assert.deepEqual(decide({ mode: 'on', nodeName: 'a', kubeconfig: '/k', env: {} }, false), {
    on: true,
    nodeName: 'a',
    source: { kubeconfig: '/k' },
  });
});

test('the in-cluster config reads the service-account token and CA, and re-reads a rotated token', (t) => {
  const dir = tempDir(t);
  assert.equal(inClusterAvailable(inClusterEnv, dir), false, 'no token file yet');
  writeFileSync(join(dir, 'token'), 'first-token\n');
  writeFileSync(join(dir, 'ca.crt'), 'CA PEM');
  assert.equal(inClusterAvailable(inClusterEnv, dir), true);
  assert.equal(inClusterAvailable({}, dir), false);
  const access = loadInCluster(inClusterEnv, dir);
  assert.equal(access.server, 'https://10.0.0.1:443');
  assert.equal(access.ca?.toString(), 'CA PEM');
  assert.equal(access.token(), 'first-token');
  writeFileSync(join(dir, 'token'), 'rotated-token\n');
  assert.equal(access.token(), 'first-token', 'cached for a minute, like client-go');
  access.invalidateToken(); // what a 401 does
  assert.equal(access.token(), 'rotated-token');
  const v6 = loadInCluster({ KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' }, dir);
  assert.equal(v6.server, 'https://[fd00::1]:443');
});

test('a missing service-account token is an error naming the file', (t) => {
  const dir = tempDir(t);
  assert.throws(
    () => loadInCluster(inClusterEnv, dir),
    new RegExp(`cannot read the service-account token at ${dir}/token \\(ENOENT\\)`),
  );
});

test('a kubeconfig with inline data and a token', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'config');
  writeFileSync(
    path,
    `apiVersion: v1
kind: Config
current-context: agent
clusters:
- name: test
  cluster:
    server: https://127.0.0.1:6443/
    certificate-authority-data: ${Buffer.from('CA PEM').toString('base64')}
    tls-server-name: kubernetes
users:
- name: agent
  user:
    token: abc.def
contexts:
- name: other
  context: {cluster: nope, user: nope}
- name: agent
  context: {cluster: test, user: agent}
`,
  );
  const access = await loadKubeconfig(path);
  assert.equal(access.server, 'https://127.0.0.1:6443');
  assert.equal(access.ca?.toString(), 'CA PEM');
  assert.equal(access.tlsServerName, 'kubernetes');
  assert.equal(access.token(), 'abc.def');
  assert.equal(access.skipTLSVerify, false);
  assert.match(access.source, /context agent/);
});

test('a kubeconfig with files relative to itself: CA, client certificate and token file', async (t) => {
  const dir = tempDir(t);
  mkdirSync(join(dir, 'pki'));
  writeFileSync(join(dir, 'pki', 'ca.crt'), 'CA');
  writeFileSync(join(dir, 'pki', 'client.crt'), 'CERT');
  writeFileSync(join(dir, 'pki', 'client.key'), 'KEY');
  writeFileSync(join(dir, 'token'), 'from-file\n');
  const path = join(dir, 'config');
  writeFileSync(
    path,
    JSON.stringify({
      'current-context': 'c',
      clusters: [{ name: 'k', cluster: { server: 'https://h:1', 'certificate-authority': 'pki/ca.crt' } }],
      users: [
        {
          name: 'u',
          user: {
            'client-certificate': 'pki/client.crt',
            'client-key': 'pki/client.key',
            'token-file': 'token',
          },
        },
      ],
      contexts: [{ name: 'c', context: { cluster: 'k', user: 'u' } }],
    }),
  );
  const access = await loadKubeconfig(path);
  assert.equal(access.ca?.toString(), 'CA');
  assert.equal(access.cert?.toString(), 'CERT');
  assert.equal(access.key?.toString(), 'KEY');
  assert.equal(access.token(), 'from-file');
});

test('kubeconfig errors say what is wrong and where', async (t) => {
  const dir = tempDir(t);
  const write = (name: string, text: string) => {
    writeFileSync(join(dir, name), text);
    return join(dir, name);
  };
  await assert.rejects(
    loadKubeconfig(join(dir, 'missing')),
    /cannot read the kubeconfig at .*missing \(ENOENT\)/,
  );
  await assert.rejects(loadKubeconfig(write('bad', 'a: [')), /is not valid YAML/);
  await assert.rejects(
    loadKubeconfig(write('noctx', 'current-context: x\ncontexts: []\n')),
    /context "x" not found/,
  );
  const exec = write(
    'exec',
    `current-context: c
clusters: [{name: k, cluster: {server: "https://h:1"}}]
users: [{name: u, user: {exec: {command: aws}}}]
contexts: [{name: c, context: {cluster: k, user: u}}]
`,
  );
  await assert.rejects(
    loadKubeconfig(exec),
    /exec or auth-provider plugin.*use a token, token-file or client certificate/,
  );
  const noServer = write(
    'noserver',
    `current-context: c
clusters: [{name: k, cluster: {}}]
contexts: [{name: c, context: {cluster: k}}]
`,
  );
  await assert.rejects(loadKubeconfig(noServer), /cluster "k" has no server/);
});
