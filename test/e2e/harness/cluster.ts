// A real single-node Kubernetes cluster for the e2e tier: etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler, kubelet and containerd 1.6 + runc, all built or installed
// by scripts/peers.sh, with the locally built pause image and the agent's image imported
// (real-node.md has the facts this rests on).
//
// Isolation, so that nothing reaches the machine's own network and nothing is left behind:
// - Network: every cluster process runs in a network namespace made here (`ip netns add`). The
//   node IP sits on a bridge with no ports inside it; the CNI bridge, the pods and the iptables
//   DNAT rules that stand in for kube-proxy (the `kubernetes` ClusterIP) live there too, and go
//   with it. Nothing is sent to an address of the machine's own namespace.
// - Files: every cluster process also runs in one private mount namespace, where the node's
//   well-known paths (/etc/cni/net.d, /opt/cni/bin, /run/containerd, /var/lib/kubelet, …) are bind
//   mounts of dirs under CLUSTER_DIR. So the chart and the runbook use their default paths, the
//   machine's own /etc/cni/net.d is never touched, and every mount the kubelet and containerd make
//   dies with the namespace.
// - cgroups: the kubelet's cgroupRoot is /CGROUP_ROOT in every hierarchy, removed at the end.
// Names are fixed (one cluster per machine at a time), so a run that was SIGKILLed is swept by the
// next start: `sweepCluster()` kills what is left in the namespaces or cgroups, removes the
// cgroups, the netns, CLUSTER_DIR and the mount points it had to create.
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  createWriteStream,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  rmdirSync,
  writeFileSync,
} from 'node:fs';
import type { WriteStream } from 'node:fs';
import { dirname, join } from 'node:path';
import { REPO_ROOT } from '../../helpers/agent.js';
import { sleep, until } from '../../helpers/wait.js';
import { stopChild, tail } from './etcd.js';
import { describeRun, peerPaths, requirePeers, run } from './peers.js';
import type { RunResult } from './peers.js';

/** Set to 1 to skip the whole cluster tier while iterating locally. CI never sets it. */
export const SKIP_CLUSTER_VARIABLE = 'CRI_NETSTATUS_SKIP_CLUSTER';

export const CLUSTER_DIR = '/tmp/crins-cluster';
export const NETNS = 'crins-e2e';
export const CGROUP_ROOT = 'crins-e2e';
export const NODE_NAME = 'crins-node';
export const NODE_IP = '192.168.231.2';
const NODE_BRIDGE = 'crins-node0';
const POD_CIDR = '10.244.0.0/24';
const SERVICE_CIDR = '10.96.0.0/24';
const KUBERNETES_SERVICE_IP = '10.96.0.1';
const APISERVER_PORT = 6443;
const ETCD_URL = 'http://127.0.0.1:2379';
const CREATED_FILE = join(CLUSTER_DIR, 'created-mountpoints.json');
const NETNS_PATH = `/run/netns/${NETNS}`;

/** The node's paths as the cluster sees them, and where each really lives (under CLUSTER_DIR). */
const NODE_MOUNTS: readonly { node: string; host: string; file?: boolean }[] = [
  // /etc/cni itself: on this machine it is 0700, and a node's is 0755 (the runbook's debug pod,
  // which runs as the image's non-root user, must traverse it).
  { node: '/etc/cni', host: 'node/etc-cni' },
  { node: '/opt/cni/bin', host: 'node/opt-cni-bin' },
  { node: '/run/containerd', host: 'node/run-containerd' },
  { node: '/run/cri-netstatus', host: 'node/run-cri-netstatus' },
  { node: '/var/lib/kubelet', host: 'node/var-lib-kubelet' },
  { node: '/var/lib/cni', host: 'node/var-lib-cni' },
  { node: '/var/log/pods', host: 'node/var-log-pods' },
  { node: '/var/log/containers', host: 'node/var-log-containers' },
  { node: '/var/lib/rancher/k3s/agent/etc/cni/net.d', host: 'node/k3s-net.d' },
  { node: '/var/lib/rancher/k3s/data/current/bin', host: 'node/k3s-bin' },
  // The runbook runs `chroot /host crictl ...`: crictl on the node's PATH.
  { node: '/usr/local/bin/crictl', host: 'node/crictl', file: true },
];

/** Where a node path really lives, for the test to read and write (e.g. the node's conf dir). */
export function nodePath(path: string): string {
  const mount = NODE_MOUNTS.find((m) => path === m.node || path.startsWith(`${m.node}/`));
  if (!mount) throw new Error(`${path} is not one of the cluster node's private paths`);
  return join(CLUSTER_DIR, mount.host, path.slice(mount.node.length));
}

export function clusterSkipReason(): string | undefined {
  return process.env[SKIP_CLUSTER_VARIABLE] === '1'
    ? `${SKIP_CLUSTER_VARIABLE}=1 (local iteration only; CI runs the cluster tier)`
    : undefined;
}

export interface ClusterOptions {
  /** The agent's image archive; default: $CRI_NETSTATUS_IMAGE_ARCHIVE, else `scripts/image.sh --base local`'s output. */
  imageArchive?: string;
  /** The reference the archive holds; default localhost/cri-netstatus:<package.json version>. */
  imageRef?: string;
  /** Progress lines (stage times). */
  log?: (line: string) => void;
}

export interface Cluster {
  nodeName: string;
  nodeIp: string;
  /** The agent image's reference, as containerd knows it. */
  imageRef: string;
  /** The CNI config the node starts with (10-bridge.conflist). */
  bridgeConflist: string;
  /** Runs a command on the node: in the cluster's network and mount namespaces, as root. */
  onNode(
    command: string,
    args: readonly string[],
    options?: { timeoutMs?: number; input?: string; env?: NodeJS.ProcessEnv },
  ): Promise<RunResult>;
  /** Starts a long-running process on the node (stop it with stopChild); its output goes to logFile. */
  spawnOnNode(command: string, args: readonly string[], logFile: string): ChildProcess;
  /** Like onNode, throwing with the output unless it exits 0; returns stdout. */
  onNodeOk(
    command: string,
    args: readonly string[],
    options?: { timeoutMs?: number; input?: string },
  ): Promise<string>;
  /** A shell command line on the node with KUBECONFIG (admin), PATH (kubectl, helm, crictl) set. */
  sh(script: string, options?: { timeoutMs?: number }): Promise<RunResult>;
  kubectl(args: readonly string[], options?: { timeoutMs?: number; input?: string }): Promise<RunResult>;
  kubectlOk(args: readonly string[], options?: { timeoutMs?: number; input?: string }): Promise<string>;
  helm(args: readonly string[], options?: { timeoutMs?: number }): Promise<RunResult>;
  /** GET the API as the admin through kubectl; parsed JSON. */
  getJson<T>(path: string): Promise<T>;
  /** Stops containerd (SIGTERM) and starts it again with the same config. */
  stopContainerd(): Promise<void>;
  startContainerd(): Promise<void>;
  /** Every process's log tail, for a failure message. */
  logs(lines?: number): string;
  stop(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Teardown and the stale-state sweep
// ---------------------------------------------------------------------------------------------

function nsInode(path: string): string | undefined {
  try {
    return readlinkSync(path);
  } catch {
    return undefined;
  }
}

/** Pids in the cluster: in its network or mount namespace, or in its cgroup tree. */
function clusterPids(mountNs: string | undefined): number[] {
  const netNs = existsSync(NETNS_PATH) ? netnsId() : undefined;
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      const net = nsInode(`/proc/${pid}/ns/net`);
      const mnt = nsInode(`/proc/${pid}/ns/mnt`);
      const cgroup = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
      if (
        (netNs && net === netNs) ||
        (mountNs && mnt === mountNs) ||
        cgroup.split('\n').some((line) => line.split(':')[2]?.startsWith(`/${CGROUP_ROOT}`))
      ) {
        pids.push(pid);
      }
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/** net:[inode] of the cluster's netns file (nsfs), as /proc/PID/ns/net shows it. */
function netnsId(): string | undefined {
  try {
    const out = execFileSync('stat', ['-L', '-c', '%i', NETNS_PATH], { encoding: 'utf8' }).trim();
    return `net:[${out}]`;
  } catch {
    return undefined;
  }
}

function mountNsOfHolder(): string | undefined {
  try {
    const pid = Number(readFileSync(join(CLUSTER_DIR, 'holder.pid'), 'utf8'));
    const mnt = nsInode(`/proc/${pid}/ns/mnt`);
    return mnt && mnt !== nsInode('/proc/self/ns/mnt') ? mnt : undefined;
  } catch {
    return undefined;
  }
}

async function killClusterProcesses(mountNs: string | undefined): Promise<void> {
  for (let round = 0; round < 50; round++) {
    const pids = clusterPids(mountNs);
    if (pids.length === 0) return;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await sleep(100);
  }
  throw new Error(`processes of the cluster survive SIGKILL: ${clusterPids(mountNs).join(' ')}`);
}

function cgroupHierarchies(): string[] {
  try {
    return readdirSync('/sys/fs/cgroup').map((name) => join('/sys/fs/cgroup', name));
  } catch {
    return [];
  }
}

/** rmdir the cgroup tree depth-first (a cgroup dir holds only pseudo files, removed with it). */
function removeCgroupTree(dir: string): void {
  let entries: string[];
  try {
    entries = readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name);
  } catch {
    return;
  }
  for (const child of entries) removeCgroupTree(join(dir, child));
  try {
    rmdirSync(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}

async function removeCgroups(): Promise<void> {
  for (const hierarchy of cgroupHierarchies()) {
    const root = join(hierarchy, CGROUP_ROOT);
    if (!existsSync(root)) continue;
    // A cgroup whose last task just died can be busy for a moment.
    await until(
      `cgroup ${root} removed`,
      () => {
        removeCgroupTree(root);
        return true;
      },
      10_000,
      { intervalMs: 200, retryErrors: true },
    );
  }
}

function removeCreatedMountpoints(): void {
  let created: string[] = [];
  try {
    created = JSON.parse(readFileSync(CREATED_FILE, 'utf8')) as string[];
  } catch {
    return;
  }
  // Deepest first; each was created empty here (the content lived in the private mount namespace).
  for (const path of [...created].sort((a, b) => b.length - a.length)) {
    rmSync(path, { recursive: true, force: true });
  }
}

/**
 * Removes everything a cluster (this run's or an interrupted earlier one's) left: processes,
 * cgroups, the netns (and with it its links, routes and iptables rules), the mount points created on
 * the host, and CLUSTER_DIR. The private mount namespace and every mount in it end with its last
 * process.
 */
export async function sweepCluster(): Promise<void> {
  const mountNs = mountNsOfHolder();
  await killClusterProcesses(mountNs);
  await removeCgroups();
  if (existsSync(NETNS_PATH)) execFileSync('ip', ['netns', 'delete', NETNS], { stdio: 'pipe' });
  removeCreatedMountpoints();
  rmSync(CLUSTER_DIR, { recursive: true, force: true });
}

/** The node paths that exist on the machine itself (before a start: what was there already). */
export function nodePathsOnHost(): string[] {
  return NODE_MOUNTS.map((m) => m.node).filter((path) => existsSync(path));
}

/**
 * What a sweep would still find: a non-empty list means something was left behind. `before` is
 * nodePathsOnHost() from before the start (mount points the harness had to create must be gone).
 */
export function clusterLeftovers(before: readonly string[]): string[] {
  const found: string[] = [];
  const pids = clusterPids(undefined);
  if (pids.length) found.push(`processes ${pids.join(' ')}`);
  for (const hierarchy of cgroupHierarchies()) {
    if (existsSync(join(hierarchy, CGROUP_ROOT))) found.push(`cgroup ${join(hierarchy, CGROUP_ROOT)}`);
  }
  if (existsSync(NETNS_PATH)) found.push(`netns ${NETNS}`);
  if (existsSync(CLUSTER_DIR)) found.push(CLUSTER_DIR);
  for (const path of nodePathsOnHost()) {
    if (!before.includes(path)) found.push(`host path ${path}`);
  }
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((line) => line.includes(CLUSTER_DIR) || line.includes('/var/lib/kubelet'));
  found.push(...mounts.map((line) => `mount ${line}`));
  return found;
}

// ---------------------------------------------------------------------------------------------
// Start
// ---------------------------------------------------------------------------------------------

function sh(command: string, args: readonly string[]): string {
  try {
    return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? '';
    throw new Error(`${command} ${args.join(' ')} failed: ${stderr || String(error)}`);
  }
}

/** Certificates for the control plane and the kubelet, made with openssl (EC P-256: fast). */
function makePki(dir: string): void {
  mkdirSync(dir, { recursive: true });
  const ssl = (args: string[]) =>
    sh(
      'openssl',
      args.map((a) => a.replaceAll('@', dir)),
    );
  ssl([
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    '@/ca.key',
    '-out',
    '@/ca.crt',
    '-days',
    '2',
    '-subj',
    '/CN=crins-e2e-ca',
  ]);
  ssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-out', '@/sa.key']);
  ssl(['pkey', '-in', '@/sa.key', '-pubout', '-out', '@/sa.pub']);
  const cert = (name: string, subject: string, ext: string) => {
    writeFileSync(
      join(dir, `${name}.ext`),
      `${ext}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n`,
    );
    ssl([
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      `@/${name}.key`,
      '-out',
      `@/${name}.csr`,
      '-subj',
      subject,
    ]);
    ssl([
      'x509',
      '-req',
      '-in',
      `@/${name}.csr`,
      '-CA',
      '@/ca.crt',
      '-CAkey',
      '@/ca.key',
      '-CAcreateserial',
      '-out',
      `@/${name}.crt`,
      '-days',
      '2',
      '-extfile',
      `@/${name}.ext`,
    ]);
  };
  cert(
    'apiserver',
    '/CN=kube-apiserver',
    `subjectAltName=IP:${NODE_IP},IP:127.0.0.1,IP:${KUBERNETES_SERVICE_IP},DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\nextendedKeyUsage=serverAuth`,
  );
  cert(
    'kubelet-serving',
    `/CN=${NODE_NAME}`,
    `subjectAltName=IP:${NODE_IP},DNS:${NODE_NAME}\nextendedKeyUsage=serverAuth`,
  );
  for (const [name, subject] of [
    ['admin', '/O=system:masters/CN=crins-admin'],
    ['apiserver-kubelet-client', '/O=system:masters/CN=kube-apiserver-kubelet-client'],
    ['kubelet', `/O=system:nodes/CN=system:node:${NODE_NAME}`],
    ['controller-manager', '/CN=system:kube-controller-manager'],
    ['scheduler', '/CN=system:kube-scheduler'],
  ] as const) {
    cert(name, subject, 'extendedKeyUsage=clientAuth');
  }
}

function kubeconfig(dir: string, name: string, server: string): string {
  const path = join(dir, `${name}.kubeconfig`);
  writeFileSync(
    path,
    [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '- name: crins',
      '  cluster:',
      `    server: ${server}`,
      `    certificate-authority: ${join(dir, 'pki', 'ca.crt')}`,
      'users:',
      `- name: ${name}`,
      '  user:',
      `    client-certificate: ${join(dir, 'pki', `${name}.crt`)}`,
      `    client-key: ${join(dir, 'pki', `${name}.key`)}`,
      'contexts:',
      `- name: ${name}`,
      '  context: {cluster: crins, user: ' + name + '}',
      `current-context: ${name}`,
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  return path;
}

export const BRIDGE_CONFLIST = `${JSON.stringify(
  {
    cniVersion: '1.0.0',
    name: 'crins-bridge',
    plugins: [
      {
        type: 'bridge',
        bridge: 'cni0',
        isGateway: true,
        ipMasq: false,
        hairpinMode: true,
        ipam: { type: 'host-local', ranges: [[{ subnet: POD_CIDR }]], routes: [{ dst: '0.0.0.0/0' }] },
      },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  },
  null,
  2,
)}\n`;

function containerdConfig(dir: string, pauseTag: string): string {
  return `version = 2
root = "${dir}/containerd/root"
state = "${dir}/containerd/state"
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
]
[grpc]
  address = "/run/containerd/containerd.sock"
[ttrpc]
  address = "/run/containerd/containerd.sock.ttrpc"
[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "${dir}/containerd/opt"
  [plugins."io.containerd.grpc.v1.cri"]
    disable_tcp_service = true
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    sandbox_image = "${pauseTag}"
    # root here lacks CAP_SYS_RESOURCE: runc cannot lower oom_score_adj (real-node.md)
    restrict_oom_score_adj = true
    netns_mounts_under_state_dir = true
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          SystemdCgroup = false
          Root = "${dir}/containerd/runc"
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/opt/cni/bin"
      conf_dir = "/etc/cni/net.d"
      max_conf_num = 1
`;
}

function kubeletConfig(dir: string): string {
  const pki = join(dir, 'pki');
  return `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# cgroup v1 here (real-node.md): kubelet 1.37 refuses it unless told
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /${CGROUP_ROOT}
failSwapOn: false
readOnlyPort: 0
address: ${NODE_IP}
healthzBindAddress: 127.0.0.1
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: ${pki}/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: ${pki}/kubelet-serving.crt
tlsPrivateKeyFile: ${pki}/kubelet-serving.key
rotateCertificates: false
serverTLSBootstrap: false
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
imageServiceEndpoint: unix:///run/containerd/containerd.sock
resolvConf: ${dir}/resolv.conf
# small shared disks: never evict or collect images because of them
evictionHard: {memory.available: 1Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
nodeStatusUpdateFrequency: 5s
syncFrequency: 10s
`;
}

interface Proc {
  name: string;
  child: ChildProcess;
  logFile: string;
  log: WriteStream;
  exited?: string;
}

export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const say = options.log ?? ((line: string) => process.stderr.write(`cluster: ${line}\n`));
  if (process.getuid?.() !== 0)
    throw new Error('the cluster tier must run as root (namespaces, mounts, cgroups)');
  const peers = requirePeers(
    'etcd',
    'kubeApiserver',
    'kubeControllerManager',
    'kubeScheduler',
    'kubelet',
    'kubectl',
    'helm',
    'crictl',
    'containerd',
    'runc',
    'cniBinDir',
  );
  const images = requirePeers('pauseArchive', 'busyboxArchive');
  const pauseTag = peerPaths().pauseTag;
  const t0 = Date.now();
  const stage = (what: string) => say(`${what} (+${((Date.now() - t0) / 1000).toFixed(1)} s)`);

  await sweepCluster();
  stage('swept stale state');
  const dir = CLUSTER_DIR;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const procs: Proc[] = [];
  let holder: ChildProcess | undefined;
  let stopped = false;

  const stopAll = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    // Graceful where it matters: the kubelet first (no restarts), then the pods through the
    // runtime (runc cleans up its containers), then the rest; then a SIGKILL sweep.
    const byName = (name: string) => procs.find((p) => p.name === name && !p.exited);
    const kubelet = byName('kubelet');
    if (kubelet) await stopChild(kubelet.child, 10_000);
    if (byName('containerd') && holder?.pid) {
      await run(
        'nsenter',
        [
          `--net=${NETNS_PATH}`,
          `--mount=/proc/${holder.pid}/ns/mnt`,
          '--',
          peers.crictl,
          '--runtime-endpoint',
          'unix:///run/containerd/containerd.sock',
          'rmp',
          '-fa',
        ],
        { timeoutMs: 30_000 },
      ).catch(() => undefined);
    }
    for (const name of [
      'containerd',
      'kube-scheduler',
      'kube-controller-manager',
      'kube-apiserver',
      'etcd',
    ]) {
      const proc = byName(name);
      if (proc) await stopChild(proc.child, 10_000);
    }
    for (const proc of procs) proc.log.end();
    await sweepCluster();
  };

  // Interrupted (Ctrl-C, a CI timeout's SIGTERM): tear down, then die of the same signal.
  const onSignal = (signal: NodeJS.Signals) => {
    say(`${signal}: tearing the cluster down`);
    void stopAll().finally(() => {
      process.removeListener('SIGINT', onSignal);
      process.removeListener('SIGTERM', onSignal);
      process.kill(process.pid, signal);
    });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const detach = () => {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  };

  try {
    // ---- namespaces and the node's private paths ----------------------------------------
    sh('ip', ['netns', 'add', NETNS]);
    const inNs = (args: string[]) => sh('ip', ['netns', 'exec', NETNS, ...args]);
    inNs(['ip', 'link', 'set', 'lo', 'up']);
    inNs(['ip', 'link', 'add', NODE_BRIDGE, 'type', 'bridge']);
    inNs(['ip', 'addr', 'add', `${NODE_IP}/24`, 'dev', NODE_BRIDGE]);
    inNs(['ip', 'link', 'set', NODE_BRIDGE, 'up']);
    // A route for the ClusterIP (DNAT happens after the route lookup); the bridge has no ports,
    // so nothing can leave the namespace by it.
    inNs(['ip', 'route', 'add', 'default', 'dev', NODE_BRIDGE]);
    for (const chain of ['OUTPUT', 'PREROUTING']) {
      inNs([
        'iptables',
        '-t',
        'nat',
        '-A',
        chain,
        '-d',
        `${KUBERNETES_SERVICE_IP}/32`,
        '-p',
        'tcp',
        '--dport',
        '443',
        '-j',
        'DNAT',
        '--to-destination',
        `${NODE_IP}:${APISERVER_PORT}`,
      ]);
    }
    stage('netns ready');

    const created: string[] = [];
    for (const mount of NODE_MOUNTS) {
      const host = join(dir, mount.host);
      if (mount.file) {
        mkdirSync(dirname(host), { recursive: true });
        copyFileSync(peers.crictl, host);
        chmodSync(host, 0o755);
      } else {
        mkdirSync(host, { recursive: true });
      }
      // The mount point must exist on the host; create what is missing, remember it for removal.
      let top: string | undefined;
      for (let p = mount.node; !existsSync(p); p = dirname(p)) top = p;
      if (top) {
        created.push(top);
        writeFileSync(CREATED_FILE, JSON.stringify(created));
        if (mount.file) {
          mkdirSync(dirname(mount.node), { recursive: true });
          writeFileSync(mount.node, '');
        } else {
          mkdirSync(mount.node, { recursive: true });
        }
      }
    }
    mkdirSync(nodePath('/etc/cni/net.d'), { recursive: true });
    for (const plugin of ['bridge', 'host-local', 'loopback', 'portmap']) {
      copyFileSync(join(peers.cniBinDir, plugin), join(nodePath('/opt/cni/bin'), plugin));
    }
    chmodSync(nodePath('/etc/cni'), 0o755);
    chmodSync(nodePath('/etc/cni/net.d'), 0o755);
    writeFileSync(join(nodePath('/etc/cni/net.d'), '10-bridge.conflist'), BRIDGE_CONFLIST);
    writeFileSync(join(dir, 'resolv.conf'), 'nameserver 127.0.0.1\n');

    holder = spawn('unshare', ['--mount', '--propagation', 'private', '--', 'sleep', 'infinity'], {
      stdio: 'ignore',
    });
    const holderPid = holder.pid;
    if (!holderPid) throw new Error('cannot start the mount namespace holder (unshare)');
    writeFileSync(join(dir, 'holder.pid'), String(holderPid));
    const selfMnt = nsInode('/proc/self/ns/mnt');
    await until('the private mount namespace', () => nsInode(`/proc/${holderPid}/ns/mnt`) !== selfMnt, 5000);
    const enter = [`--net=${NETNS_PATH}`, `--mount=/proc/${holderPid}/ns/mnt`, '--'];
    const script = [
      'set -e',
      ...NODE_MOUNTS.map((m) => `mount --bind '${join(dir, m.host)}' '${m.node}'`),
      // Pod netns pins and anything else under /run/netns stay private to the cluster.
      'mount -t tmpfs tmpfs /run/netns',
    ].join('\n');
    sh('nsenter', [`--mount=/proc/${holderPid}/ns/mnt`, '--', 'sh', '-c', script]);
    for (const hierarchy of cgroupHierarchies()) {
      if (existsSync(join(hierarchy, 'cgroup.procs')))
        mkdirSync(join(hierarchy, CGROUP_ROOT), { recursive: true });
    }
    stage('mounts and cgroups ready');

    // ---- processes ----------------------------------------------------------------------
    const startProc = (name: string, binary: string, args: string[]): Proc => {
      const logFile = join(dir, `${name}.log`);
      const log = createWriteStream(logFile, { flags: 'a' });
      const child = spawn('nsenter', [...enter, binary, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      child.stdout?.pipe(log, { end: false });
      child.stderr?.pipe(log, { end: false });
      const proc: Proc = { name, child, logFile, log };
      child.once('exit', (code, signal) => (proc.exited = `${name} exited (${code ?? signal ?? '?'})`));
      procs.push(proc);
      return proc;
    };
    const alive = (proc: Proc) => {
      if (proc.exited) throw new Error(`${proc.exited}\n${tail(proc.logFile)}`);
    };
    const onNode: Cluster['onNode'] = (command, args, opts = {}) =>
      run('nsenter', [...enter, command, ...args], opts);

    makePki(join(dir, 'pki'));
    const pki = join(dir, 'pki');
    const apiserverUrl = `https://${NODE_IP}:${APISERVER_PORT}`;
    const admin = kubeconfig(dir, 'admin', apiserverUrl);
    const kubeletKc = kubeconfig(dir, 'kubelet', apiserverUrl);
    const cmKc = kubeconfig(dir, 'controller-manager', apiserverUrl);
    const schedKc = kubeconfig(dir, 'scheduler', apiserverUrl);

    const etcd = startProc('etcd', peers.etcd, [
      '--name=crins',
      `--data-dir=${join(dir, 'etcd')}`,
      `--listen-client-urls=${ETCD_URL}`,
      `--advertise-client-urls=${ETCD_URL}`,
      '--listen-peer-urls=http://127.0.0.1:2380',
      '--initial-advertise-peer-urls=http://127.0.0.1:2380',
      '--initial-cluster=crins=http://127.0.0.1:2380',
      '--unsafe-no-fsync=true',
      '--log-level=warn',
    ]);
    const containerdToml = join(dir, 'containerd.toml');
    writeFileSync(containerdToml, containerdConfig(dir, pauseTag));
    let containerd = startProc('containerd', peers.containerd, ['--config', containerdToml]);
    const crictl = (args: string[], timeoutMs = 30_000) =>
      onNode(peers.crictl, ['--runtime-endpoint', 'unix:///run/containerd/containerd.sock', ...args], {
        timeoutMs,
      });
    const containerdUp = async () =>
      until(
        'containerd answers crictl version',
        async () => {
          alive(containerd);
          return (await crictl(['version'], 5000)).code === 0;
        },
        60_000,
        { intervalMs: 300, describe: () => tail(containerd.logFile) },
      );
    await until(
      'etcd /health',
      async () => {
        alive(etcd);
        return (await onNode('curl', ['-sf', `${ETCD_URL}/health`], { timeoutMs: 5000 })).code === 0;
      },
      30_000,
      { intervalMs: 300, describe: () => tail(etcd.logFile) },
    );
    stage('etcd ready');

    const apiserver = startProc('kube-apiserver', peers.kubeApiserver, [
      `--etcd-servers=${ETCD_URL}`,
      `--cert-dir=${join(dir, 'apiserver-certs')}`,
      `--tls-cert-file=${pki}/apiserver.crt`,
      `--tls-private-key-file=${pki}/apiserver.key`,
      `--client-ca-file=${pki}/ca.crt`,
      `--kubelet-client-certificate=${pki}/apiserver-kubelet-client.crt`,
      `--kubelet-client-key=${pki}/apiserver-kubelet-client.key`,
      '--kubelet-preferred-address-types=InternalIP',
      `--secure-port=${APISERVER_PORT}`,
      '--bind-address=0.0.0.0',
      `--advertise-address=${NODE_IP}`,
      '--authorization-mode=Node,RBAC',
      '--enable-admission-plugins=NodeRestriction',
      `--service-cluster-ip-range=${SERVICE_CIDR}`,
      '--service-account-issuer=https://kubernetes.default.svc',
      `--service-account-key-file=${pki}/sa.pub`,
      `--service-account-signing-key-file=${pki}/sa.key`,
      '--allow-privileged=true',
      '--profiling=false',
      '--v=1',
    ]);
    const kubectl: Cluster['kubectl'] = (args, opts = {}) =>
      onNode(peers.kubectl, ['--kubeconfig', admin, ...args], {
        timeoutMs: opts.timeoutMs ?? 60_000,
        ...(opts.input === undefined ? {} : { input: opts.input }),
      });
    const kubectlOk: Cluster['kubectlOk'] = async (args, opts = {}) => {
      const result = await kubectl(args, opts);
      if (result.code !== 0) throw new Error(describeRun('kubectl', args, result));
      return result.stdout;
    };
    await containerdUp();
    stage('containerd ready');
    await until(
      'kube-apiserver /readyz',
      async () => {
        alive(apiserver);
        return (await kubectl(['get', '--raw', '/readyz'], { timeoutMs: 10_000 })).code === 0;
      },
      120_000,
      { intervalMs: 500, describe: () => tail(apiserver.logFile) },
    );
    stage('kube-apiserver ready');

    // Images: the sandbox, busybox (the runbook) and the agent.
    const imageArchive = options.imageArchive ?? (await agentImageArchive());
    const imageRef = options.imageRef ?? `localhost/cri-netstatus:${packageVersion()}`;
    const ctr = (args: string[]) =>
      onNode('ctr', ['--address', '/run/containerd/containerd.sock', '-n', 'k8s.io', ...args], {
        timeoutMs: 300_000,
      });
    for (const archive of [images.pauseArchive, images.busyboxArchive, imageArchive]) {
      const result = await ctr(['images', 'import', '--snapshotter', 'overlayfs', archive]);
      if (result.code !== 0)
        throw new Error(
          `importing ${archive} failed:\n${describeRun('ctr', ['images', 'import', archive], result)}`,
        );
    }
    const listed = (await crictl(['images', '-o', 'json'])).stdout;
    for (const ref of [pauseTag, imageRef, 'docker.io/library/busybox:latest']) {
      if (!listed.includes(`"${ref}"`)) {
        throw new Error(
          `containerd has no image ${ref} after importing the archives; crictl images says:\n${listed}`,
        );
      }
    }
    stage('images imported');

    const cm = startProc('kube-controller-manager', peers.kubeControllerManager, [
      `--kubeconfig=${cmKc}`,
      `--authentication-kubeconfig=${cmKc}`,
      `--authorization-kubeconfig=${cmKc}`,
      '--leader-elect=false',
      '--bind-address=127.0.0.1',
      `--service-account-private-key-file=${pki}/sa.key`,
      `--root-ca-file=${pki}/ca.crt`,
      '--use-service-account-credentials=true',
      `--service-cluster-ip-range=${SERVICE_CIDR}`,
      '--v=1',
    ]);
    const scheduler = startProc('kube-scheduler', peers.kubeScheduler, [
      `--kubeconfig=${schedKc}`,
      `--authentication-kubeconfig=${schedKc}`,
      `--authorization-kubeconfig=${schedKc}`,
      '--leader-elect=false',
      '--bind-address=127.0.0.1',
      '--v=1',
    ]);
    const kubeletYaml = join(dir, 'kubelet.yaml');
    writeFileSync(kubeletYaml, kubeletConfig(dir));
    const kubelet = startProc('kubelet', peers.kubelet, [
      `--config=${kubeletYaml}`,
      `--kubeconfig=${kubeletKc}`,
      `--hostname-override=${NODE_NAME}`,
      `--node-ip=${NODE_IP}`,
      '--v=1',
    ]);
    await until(
      `node ${NODE_NAME} Ready`,
      async () => {
        for (const proc of [cm, scheduler, kubelet]) alive(proc);
        const result = await kubectl(
          ['get', 'node', NODE_NAME, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}'],
          { timeoutMs: 10_000 },
        );
        return result.stdout.trim() === 'True';
      },
      180_000,
      { intervalMs: 1000, describe: () => tail(kubelet.logFile) },
    );
    // The default ServiceAccount exists before anything asks for a pod.
    await until(
      'the kube-system default ServiceAccount',
      async () => (await kubectl(['-n', 'kube-system', 'get', 'sa', 'default'])).code === 0,
      60_000,
      { intervalMs: 1000 },
    );
    stage('node Ready');

    const toolPath = [
      dirname(peers.kubectl),
      dirname(peers.helm),
      dirname(peers.crictl),
      process.env.PATH ?? '/usr/bin:/bin',
    ].join(':');
    const cluster: Cluster = {
      nodeName: NODE_NAME,
      nodeIp: NODE_IP,
      imageRef,
      bridgeConflist: BRIDGE_CONFLIST,
      onNode,
      spawnOnNode(command, args, logFile) {
        const log = createWriteStream(logFile);
        const child = spawn('nsenter', [...enter, command, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
        child.stdout?.pipe(log);
        child.stderr?.pipe(log);
        return child;
      },
      async onNodeOk(command, args, opts = {}) {
        const result = await onNode(command, args, opts);
        if (result.code !== 0) throw new Error(describeRun(command, args, result));
        return result.stdout;
      },
      sh: (line, opts = {}) =>
        onNode('bash', ['-c', line], {
          timeoutMs: opts.timeoutMs ?? 120_000,
          env: { KUBECONFIG: admin, PATH: toolPath },
        }),
      kubectl,
      kubectlOk,
      helm: (args, opts = {}) =>
        onNode(peers.helm, ['--kubeconfig', admin, ...args], {
          timeoutMs: opts.timeoutMs ?? 180_000,
          env: {
            HELM_CACHE_HOME: join(dir, 'helm', 'cache'),
            HELM_CONFIG_HOME: join(dir, 'helm', 'config'),
            HELM_DATA_HOME: join(dir, 'helm', 'data'),
          },
        }),
      async getJson<T>(path: string) {
        return JSON.parse(await kubectlOk(['get', '--raw', path])) as T;
      },
      async stopContainerd() {
        await stopChild(containerd.child, 10_000);
      },
      async startContainerd() {
        containerd = startProc('containerd', peers.containerd, ['--config', containerdToml]);
        await containerdUp();
      },
      logs(lines = 30) {
        return procs
          .map((p) => `--- ${p.name}${p.exited ? ` (${p.exited})` : ''}\n${tail(p.logFile, lines)}`)
          .join('\n');
      },
      async stop() {
        const started = Date.now();
        try {
          await stopAll();
        } finally {
          detach();
        }
        say(`stopped and swept in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      },
    };
    return cluster;
  } catch (error) {
    const logs = procs
      .map((p) => `--- ${p.name}${p.exited ? ` (${p.exited})` : ''}\n${tail(p.logFile, 15)}`)
      .join('\n');
    await stopAll().catch((sweepError: unknown) =>
      say(`teardown after a failed start also failed: ${String(sweepError)}`),
    );
    detach();
    throw new Error(`${error instanceof Error ? error.message : String(error)}\n${logs}`);
  }
}

function packageVersion(): string {
  return (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
}

/**
 * The agent's image archive: $CRI_NETSTATUS_IMAGE_ARCHIVE when set, else the path
 * `scripts/image.sh --base local` prints on stdout (it builds the image, or finds it cached by
 * content, outside the repo).
 */
async function agentImageArchive(): Promise<string> {
  const fromEnv = process.env.CRI_NETSTATUS_IMAGE_ARCHIVE;
  if (fromEnv) {
    if (!existsSync(fromEnv)) throw new Error(`CRI_NETSTATUS_IMAGE_ARCHIVE=${fromEnv} does not exist`);
    return fromEnv;
  }
  const script = join(REPO_ROOT, 'scripts', 'image.sh');
  if (!existsSync(script)) {
    throw new Error(
      'no agent image: set CRI_NETSTATUS_IMAGE_ARCHIVE to an image archive (docker- or oci-archive), or add scripts/image.sh',
    );
  }
  const result = await run('bash', [script, '--base', 'local'], { timeoutMs: 1_800_000 });
  const path = result.stdout.trim().split('\n').pop() ?? '';
  if (result.code !== 0 || !path || !existsSync(path)) {
    throw new Error(
      `bash scripts/image.sh --base local did not print an image archive:\n${describeRun('bash', [script], result)}`,
    );
  }
  return path;
}
