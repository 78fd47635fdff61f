// A real Kubernetes control plane for the e2e tests: etcd and kube-apiserver (built by
// scripts/peers.sh) on loopback with free ports, RBAC authorization, a service-account issuer and
// signing key, and an admin identity (a static token in system:masters), as envtest starts them
// (test-peers.md §3.4). Certificates are made with openssl. Missing binaries fail the test with
// the command that builds them; nothing is skipped.
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { WriteStream } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { requirePeers, run } from './peers.js';
import type { RunResult } from './peers.js';
import { until } from '../../helpers/wait.js';
import { freePort, startEtcd, stopChild, tail } from './etcd.js';
import type { Etcd } from './etcd.js';

export const KUBECTL = '/usr/bin/kubectl';

export interface ControlPlane {
  /** https://127.0.0.1:PORT */
  url: string;
  dir: string;
  caFile: string;
  adminKubeconfig: string;
  apiserverLog: string;
  /** kubectl as the admin (system:masters); resolves with the result, never throws on exit codes. */
  kubectl(
    args: readonly string[],
    options?: { input?: string; kubeconfig?: string; timeoutMs?: number },
  ): Promise<RunResult>;
  /** kubectl that throws with the output when it fails; returns stdout. */
  kubectlOk(args: readonly string[], options?: { input?: string; kubeconfig?: string }): Promise<string>;
  /** A kubeconfig for this API server with a bearer token (e.g. a service account's). */
  writeKubeconfig(name: string, token: string): string;
  /** GET as the admin; the parsed JSON body and status. */
  get(path: string): Promise<{ status: number; body: unknown }>;
  /** Stops kube-apiserver only (etcd keeps the data). */
  stopApiserver(): Promise<void>;
  /** Starts kube-apiserver again on the same port with the same keys and waits until it is ready. */
  startApiserver(): Promise<void>;
  stop(): Promise<void>;
}

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString() ?? '';
    throw new Error(`openssl ${args.join(' ')} failed: ${stderr || String(error)}`);
  }
}

/** A CA, a serving certificate for 127.0.0.1/localhost, and the service-account key pair. */
function makePki(dir: string): { ca: string; cert: string; key: string; saKey: string; saPub: string } {
  mkdirSync(dir, { recursive: true });
  openssl(
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'ca.key',
      '-out',
      'ca.crt',
      '-days',
      '2',
      '-subj',
      '/CN=cri-netstatus-e2e-ca',
    ],
    dir,
  );
  openssl(
    [
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'apiserver.key',
      '-out',
      'apiserver.csr',
      '-subj',
      '/CN=kube-apiserver',
    ],
    dir,
  );
  writeFileSync(
    join(dir, 'apiserver.ext'),
    [
      'subjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc',
      'basicConstraints=CA:FALSE',
      'keyUsage=digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth',
      '',
    ].join('\n'),
  );
  openssl(
    [
      'x509',
      '-req',
      '-in',
      'apiserver.csr',
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      'apiserver.crt',
      '-days',
      '2',
      '-extfile',
      'apiserver.ext',
    ],
    dir,
  );
  openssl(['genrsa', '-out', 'sa.key', '2048'], dir);
  openssl(['rsa', '-in', 'sa.key', '-pubout', '-out', 'sa.pub'], dir);
  return {
    ca: join(dir, 'ca.crt'),
    cert: join(dir, 'apiserver.crt'),
    key: join(dir, 'apiserver.key'),
    saKey: join(dir, 'sa.key'),
    saPub: join(dir, 'sa.pub'),
  };
}

export async function startControlPlane(dir: string): Promise<ControlPlane> {
  const peers = requirePeers('etcd', 'kubeApiserver');
  const pki = makePki(join(dir, 'pki'));
  const adminToken = randomBytes(24).toString('hex');
  const tokens = join(dir, 'tokens.csv');
  writeFileSync(tokens, `${adminToken},e2e-admin,e2e-admin-uid,"system:masters"\n`, { mode: 0o600 });
  const etcd: Etcd = await startEtcd(peers.etcd, dir);
  const port = await freePort();
  const url = `https://127.0.0.1:${port}`;
  const apiserverLog = join(dir, 'kube-apiserver.log');
  const ca = readFileSync(pki.ca);
  const args = [
    `--etcd-servers=${etcd.clientUrl}`,
    `--cert-dir=${join(dir, 'cert-dir')}`,
    `--tls-cert-file=${pki.cert}`,
    `--tls-private-key-file=${pki.key}`,
    `--secure-port=${port}`,
    '--bind-address=127.0.0.1',
    '--advertise-address=127.0.0.1',
    // The kubernetes Service endpoint may not be loopback; nothing here needs it (envtest does the same).
    '--endpoint-reconciler-type=none',
    '--authorization-mode=RBAC',
    `--token-auth-file=${tokens}`,
    '--service-cluster-ip-range=10.0.0.0/24',
    `--service-account-issuer=${url}`,
    `--service-account-key-file=${pki.saPub}`,
    `--service-account-signing-key-file=${pki.saKey}`,
    // No controller-manager creates default service accounts or token volumes here.
    '--disable-admission-plugins=ServiceAccount',
    '--allow-privileged=true',
    '--profiling=false',
    '--v=1',
  ];

  let child: ChildProcess | undefined;
  let log: WriteStream | undefined;
  let exited: string | undefined;

  const get = (path: string): Promise<{ status: number; body: unknown }> =>
    new Promise((resolve, reject) => {
      const req = request(
        `${url}${path}`,
        { ca, headers: { authorization: `Bearer ${adminToken}`, accept: 'application/json' }, timeout: 5000 },
        (res) => {
          let raw = '';
          res.on('data', (chunk: Buffer) => (raw += chunk.toString()));
          res.on('end', () => {
            let body: unknown = raw;
            try {
              body = JSON.parse(raw) as unknown;
            } catch {
              // not JSON (e.g. /readyz text)
            }
            resolve({ status: res.statusCode ?? 0, body });
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`GET ${path} timed out`)));
      req.on('error', reject);
      req.end();
    });

  const startApiserver = async (): Promise<void> => {
    exited = undefined;
    log = createWriteStream(apiserverLog, { flags: 'a' });
    const started = spawn(peers.kubeApiserver, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    started.stdout.pipe(log);
    started.stderr.pipe(log);
    started.once('exit', (code, signal) => (exited = `kube-apiserver exited (${code ?? signal ?? '?'})`));
    child = started;
    await until(
      'kube-apiserver /readyz',
      async () => {
        if (exited) throw new Error(exited);
        return (await get('/readyz')).status === 200;
      },
      90_000,
      { intervalMs: 200, retryErrors: true, describe: () => tail(apiserverLog) },
    );
    await until(
      'the default namespace',
      async () => (await get('/api/v1/namespaces/default')).status === 200,
      30_000,
      { intervalMs: 200, retryErrors: true },
    );
  };

  const stopApiserver = async (): Promise<void> => {
    if (child) await stopChild(child, 10_000);
    child = undefined;
    log?.end();
  };

  try {
    await startApiserver();
  } catch (error) {
    await stopApiserver();
    await etcd.stop();
    throw error;
  }

  const writeKubeconfig = (name: string, token: string): string => {
    const path = join(dir, `${name}.kubeconfig`);
    writeFileSync(
      path,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        '- name: e2e',
        '  cluster:',
        `    server: ${url}`,
        `    certificate-authority: ${pki.ca}`,
        'users:',
        `- name: ${name}`,
        '  user:',
        `    token: ${token}`,
        'contexts:',
        `- name: ${name}`,
        '  context:',
        '    cluster: e2e',
        `    user: ${name}`,
        `current-context: ${name}`,
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    return path;
  };
  const adminKubeconfig = writeKubeconfig('admin', adminToken);

  const kubectl: ControlPlane['kubectl'] = (kubectlArgs, options = {}) =>
    run(KUBECTL, ['--kubeconfig', options.kubeconfig ?? adminKubeconfig, ...kubectlArgs], {
      timeoutMs: options.timeoutMs ?? 60_000,
      ...(options.input === undefined ? {} : { input: options.input }),
    });

  return {
    url,
    dir,
    caFile: pki.ca,
    adminKubeconfig,
    apiserverLog,
    kubectl,
    async kubectlOk(kubectlArgs, options = {}) {
      const result = await kubectl(kubectlArgs, options);
      if (result.code !== 0) {
        throw new Error(
          `kubectl ${kubectlArgs.join(' ')} failed (exit ${result.code ?? result.signal}):\n${result.stderr}${result.stdout}`,
        );
      }
      return result.stdout;
    },
    writeKubeconfig,
    get,
    stopApiserver,
    startApiserver,
    async stop() {
      await stopApiserver();
      await etcd.stop();
    },
  };
}
