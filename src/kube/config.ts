// Where the API server is and who we are: the in-cluster service account (the DaemonSet case) or a
// kubeconfig (--kubeconfig, for tests and out-of-cluster runs). Only what a node agent needs is
// supported: bearer tokens (re-read from their file as the kubelet rotates them) and client
// certificates; exec and auth-provider plugins are refused with a clear error.
import { KubeConfigError } from '../errors.js';
import { errorText } from '../util/text.js';
import { readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** How long a token read from a file is used before the file is read again (client-go: 1 min). */
const TOKEN_REREAD_MS = 60_000;

export interface ClusterAccess {
  /** Base URL of the API server, without a trailing slash. */
  server: string;
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  skipTLSVerify: boolean;
  tlsServerName?: string;
  /** The bearer token to send now, if the identity is a token. */
  token(): string | undefined;
  /** Forces the token file to be read again on the next token() (after a 401). */
  invalidateToken(): void;
  /** Human-readable origin, for logs: "in-cluster service account" or "kubeconfig PATH (context C)". */
  source: string;
}

/** True when this process runs in a Pod with a mounted service-account token. */
export function inClusterAvailable(env: NodeJS.ProcessEnv, dir = SERVICE_ACCOUNT_DIR): boolean {
  if (!env.KUBERNETES_SERVICE_HOST || !env.KUBERNETES_SERVICE_PORT) return false;
  try {
    return statSync(join(dir, 'token')).isFile();
  } catch {
    return false;
  }
}

export function loadInCluster(env: NodeJS.ProcessEnv, dir = SERVICE_ACCOUNT_DIR): ClusterAccess {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port) {
    throw new KubeConfigError(
      'not running in a cluster: KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT are not set; pass --kubeconfig, or --kube off',
    );
  }
  const tokenPath = join(dir, 'token');
  const token = fileToken(tokenPath);
  token.read(); // fail now, with the path, rather than on the first request
  return {
    server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    ca: readFile(join(dir, 'ca.crt'), 'the service-account CA'),
    skipTLSVerify: false,
    token: () => token.current(),
    invalidateToken: () => token.invalidate(),
    source: `in-cluster service account (${dir})`,
  };
}

export async function loadKubeconfig(path: string): Promise<ClusterAccess> {
  const text = readFile(path, 'the kubeconfig').toString('utf8');
  // The YAML loader of @kubernetes/client-node, imported by path and only when needed: the package
  // index would load every API group of the client (docs/kube.md, "Memory").
  const { loadYaml } = await import('@kubernetes/client-node/dist/yaml.js');
  let doc: unknown;
  try {
    doc = loadYaml(text);
  } catch (error) {
    throw new KubeConfigError(`kubeconfig ${path} is not valid YAML: ${errorText(error)}`);
  }
  const config = record(doc, `kubeconfig ${path}`);
  const base = dirname(path);
  const contextName = str(config['current-context']);
  const contexts = entries(config.contexts, 'context');
  const context = contextName
    ? contexts.get(contextName)
    : contexts.size === 1
      ? [...contexts.values()][0]
      : undefined;
  if (!context) {
    throw new KubeConfigError(
      `kubeconfig ${path}: ${contextName ? `context "${contextName}" not found` : 'no current-context set'}`,
    );
  }
  const clusterName = str(context.cluster);
  const userName = str(context.user);
  const cluster = clusterName ? entries(config.clusters, 'cluster').get(clusterName) : undefined;
  if (!cluster) throw new KubeConfigError(`kubeconfig ${path}: cluster "${clusterName ?? ''}" not found`);
  const user = userName ? (entries(config.users, 'user').get(userName) ?? {}) : {};
  const server = str(cluster.server);
  if (!server) throw new KubeConfigError(`kubeconfig ${path}: cluster "${clusterName ?? ''}" has no server`);
  if (user.exec !== undefined || user['auth-provider'] !== undefined) {
    throw new KubeConfigError(
      `kubeconfig ${path}: user "${userName ?? ''}" uses an exec or auth-provider plugin, which cri-netstatus does not run; use a token, token-file or client certificate`,
    );
  }
  const resolvePath = (p: string): string => (isAbsolute(p) ? p : join(base, p));
  const material = (dataKey: string, fileKey: string, what: string, from: Record<string, unknown>) => {
    const data = str(from[dataKey]);
    if (data) return Buffer.from(data, 'base64');
    const file = str(from[fileKey]);
    return file ? readFile(resolvePath(file), what) : undefined;
  };
  const ca = material('certificate-authority-data', 'certificate-authority', 'the cluster CA', cluster);
  const cert = material('client-certificate-data', 'client-certificate', 'the client certificate', user);
  const key = material('client-key-data', 'client-key', 'the client key', user);
  const inline = str(user.token);
  const tokenFile = str(user['token-file']);
  const token = !inline && tokenFile ? fileToken(resolvePath(tokenFile)) : undefined;
  token?.read();
  const tlsServerName = str(cluster['tls-server-name']);
  return {
    server: server.replace(/\/+$/, ''),
    ...(ca ? { ca } : {}),
    ...(cert ? { cert } : {}),
    ...(key ? { key } : {}),
    skipTLSVerify: cluster['insecure-skip-tls-verify'] === true,
    ...(tlsServerName ? { tlsServerName } : {}),
    token: () => inline ?? token?.current(),
    invalidateToken: () => token?.invalidate(),
    source: `kubeconfig ${path} (context ${contextName ?? '(only one)'})`,
  };
}

interface FileToken {
  read(): string;
  current(): string;
  invalidate(): void;
}

function fileToken(path: string): FileToken {
  let value = '';
  let readAt = -Infinity;
  const read = (): string => {
    const token = readFile(path, 'the service-account token').toString('utf8').trim();
    if (!token) throw new KubeConfigError(`the token file ${path} is empty`);
    value = token;
    readAt = Date.now();
    return token;
  };
  return {
    read,
    current() {
      if (Date.now() - readAt < TOKEN_REREAD_MS) return value;
      try {
        return read();
      } catch {
        return value; // keep the last token; the API will say 401 if it really expired
      }
    },
    invalidate() {
      readAt = -Infinity;
    },
  };
}

function readFile(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? String(error);
    throw new KubeConfigError(`cannot read ${what} at ${path} (${code})`);
  }
}

function record(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new KubeConfigError(`${what} is not a mapping`);
  }
  return value as Record<string, unknown>;
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** `clusters:`, `users:`, `contexts:` lists as name → the nested mapping (`cluster:`, `user:`, `context:`). */
function entries(list: unknown, field: string): Map<string, Record<string, unknown>> {
  const map = new Map<string, Record<string, unknown>>();
  if (!Array.isArray(list)) return map;
  for (const item of list as unknown[]) {
    if (typeof item !== 'object' || item === null) continue;
    const entry = item as Record<string, unknown>;
    const name = str(entry.name);
    const nested = entry[field];
    if (name && typeof nested === 'object' && nested !== null)
      map.set(name, nested as Record<string, unknown>);
  }
  return map;
}
