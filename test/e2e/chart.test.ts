// The Helm chart against the real helm binary (built by scripts/peers.sh): lint, schema, and every
// rendered object of the defaults and of each ci/ scenario, parsed and asserted on; deploy/ in sync
// with the chart; and the DaemonSet's configuration applied to the real agent.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, posix } from 'node:path';
import { before, describe, test } from 'node:test';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { envName } from '../../src/cli/flags.js';
import { serveFlags } from '../../src/cli/serve.js';
import { CLI, REPO_ROOT, childEnv, runCli } from '../helpers/agent.js';
import { tempDir } from '../helpers/fs.js';
import { requirePeers, run } from './harness/peers.js';
import type { RunResult } from './harness/peers.js';

const CHART = join(REPO_ROOT, 'charts', 'cri-netstatus');
const CI_DIR = join(CHART, 'ci');
const MONITORING_API = ['--api-versions', 'monitoring.coreos.com/v1'];

// ---- the helm peer -----------------------------------------------------------------------------

let helmBin = '';
before(() => {
  helmBin = requirePeers('helm').helm;
});

function helm(args: string[]): Promise<RunResult> {
  // No cluster: helm must never reach one from here.
  return run(helmBin, args, { env: { KUBECONFIG: '/nonexistent' }, timeoutMs: 120_000 });
}

// ---- rendered objects ----------------------------------------------------------------------------

interface Metadata {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: Metadata;
}
interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string } };
}
interface VolumeMount {
  name: string;
  mountPath: string;
  readOnly?: boolean;
}
interface Volume {
  name: string;
  hostPath?: { path: string; type?: string };
  secret?: { secretName: string };
}
interface Probe {
  httpGet?: { path: string; port: string | number; scheme?: string };
}
interface SecurityContext {
  privileged?: boolean;
  allowPrivilegeEscalation?: boolean;
  readOnlyRootFilesystem?: boolean;
  runAsUser?: number;
  runAsNonRoot?: boolean;
  capabilities?: { drop?: string[]; add?: string[] };
  seccompProfile?: { type: string };
}
interface Container {
  name: string;
  image: string;
  args?: string[];
  command?: string[];
  env?: EnvVar[];
  ports?: { name: string; containerPort: number; hostPort?: number }[];
  volumeMounts?: VolumeMount[];
  securityContext?: SecurityContext;
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
}
interface PodSpec {
  hostNetwork?: boolean;
  hostPID?: boolean;
  hostIPC?: boolean;
  dnsPolicy?: string;
  serviceAccountName?: string;
  automountServiceAccountToken?: boolean;
  priorityClassName?: string;
  securityContext?: SecurityContext & { runAsGroup?: number };
  containers: Container[];
  initContainers?: Container[];
  volumes?: Volume[];
  tolerations?: Record<string, string>[];
}
interface DaemonSet extends K8sObject {
  spec: {
    selector: { matchLabels: Record<string, string> };
    updateStrategy: { type: string; rollingUpdate?: { maxUnavailable: number | string; maxSurge: number } };
    template: {
      metadata: { labels: Record<string, string>; annotations?: Record<string, string> };
      spec: PodSpec;
    };
  };
}
interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  nonResourceURLs?: string[];
}
interface ClusterRole extends K8sObject {
  rules: PolicyRule[];
}
interface ClusterRoleBinding extends K8sObject {
  roleRef: { kind: string; name: string };
  subjects: { kind: string; name: string; namespace: string }[];
}
interface PrometheusRule extends K8sObject {
  spec: {
    groups: { name: string; rules: { alert: string; expr: string; labels: Record<string, string> }[] }[];
  };
}
interface MonitorEndpoint {
  port: string;
  path: string;
  scheme?: string;
  tlsConfig?: Record<string, unknown>;
  bearerTokenFile?: string;
  authorization?: { type: string; credentials: { name: string; key: string } };
}
interface Monitor extends K8sObject {
  spec: {
    jobLabel: string;
    selector: { matchLabels: Record<string, string> };
    podMetricsEndpoints?: MonitorEndpoint[];
    endpoints?: MonitorEndpoint[];
  };
}
interface ConfigMap extends K8sObject {
  data: Record<string, string>;
}

interface Service extends K8sObject {
  spec: { clusterIP: string; selector: Record<string, string> };
}
interface ValidatingAdmissionPolicy extends K8sObject {
  spec: { matchConditions: { expression: string }[] };
}
interface ValidatingAdmissionPolicyBinding extends K8sObject {
  spec: { policyName: string; validationActions: string[] };
}
/** The kinds the chart renders, with the fields the tests read. */
interface Kinds {
  DaemonSet: DaemonSet;
  ServiceAccount: K8sObject & { automountServiceAccountToken?: boolean };
  Secret: K8sObject & { type: string };
  ClusterRole: ClusterRole;
  ClusterRoleBinding: ClusterRoleBinding;
  Role: ClusterRole;
  RoleBinding: ClusterRoleBinding;
  Service: Service;
  PodMonitor: Monitor;
  ServiceMonitor: Monitor;
  PrometheusRule: PrometheusRule;
  ConfigMap: ConfigMap;
  ValidatingAdmissionPolicy: ValidatingAdmissionPolicy;
  ValidatingAdmissionPolicyBinding: ValidatingAdmissionPolicyBinding;
}

/** What `helm template` renders: the release's objects, and its hooks (run by helm, never applied with the rest). */
class Rendered {
  constructor(
    readonly objects: K8sObject[],
    readonly hooks: K8sObject[] = [],
  ) {}
  ofKind<K extends keyof Kinds>(kind: K): Kinds[K][] {
    return this.objects.filter((object) => object.kind === kind) as Kinds[K][];
  }
  one<K extends keyof Kinds>(kind: K): Kinds[K] {
    const found = this.ofKind(kind);
    assert.equal(found.length, 1, `expected exactly one ${kind}, got ${found.length}`);
    return found[0] as Kinds[K];
  }
  kinds(): string[] {
    return this.objects.map((object) => object.kind).sort();
  }
}

async function template(
  args: string[],
  release = 'cri-netstatus',
  namespace = 'kube-system',
): Promise<Rendered> {
  const result = await helm(['template', release, CHART, '--namespace', namespace, ...args]);
  assert.equal(result.code, 0, `helm template ${args.join(' ')} failed:\n${result.stderr}`);
  const objects: K8sObject[] = [];
  for (const doc of parseAllDocuments(result.stdout)) {
    assert.deepEqual(doc.errors, [], `helm rendered invalid YAML:\n${String(doc)}`);
    const object = doc.toJS() as K8sObject | null;
    if (object === null) continue;
    assert.ok(
      object.apiVersion && object.kind && object.metadata.name,
      `incomplete object ${JSON.stringify(object)}`,
    );
    objects.push(object);
  }
  const isHook = (object: K8sObject): boolean => Boolean(object.metadata.annotations?.['helm.sh/hook']);
  return new Rendered(
    objects.filter((object) => !isHook(object)),
    objects.filter(isHook),
  );
}

function ciFiles(): string[] {
  return readdirSync(CI_DIR)
    .filter((name) => name.endsWith('-values.yaml'))
    .sort();
}

interface Values {
  hostPaths: { cniConfDir: string; cniBinDirs: string[]; socketDir: string };
  kube: { mode: string };
  pluginStatus: { mode: string; timeout: string; hostPaths: string[] };
  metrics: { port: number; auth: { mode: string } };
  image: { registry: string; repository: string; digest: string };
}

/** The defaults merged with one ci/ file (maps merge, lists replace, as helm does). */
function valuesOf(ciFile?: string): Values {
  const merge = (base: unknown, over: unknown): unknown => {
    if (over === null || typeof over !== 'object' || Array.isArray(over)) return over;
    const result: Record<string, unknown> = { ...(base as Record<string, unknown>) };
    for (const [key, value] of Object.entries(over as Record<string, unknown>))
      result[key] = merge(result[key], value);
    return result;
  };
  const defaults = parseYaml(readFileSync(join(CHART, 'values.yaml'), 'utf8')) as unknown;
  const over = ciFile ? (parseYaml(readFileSync(join(CI_DIR, ciFile), 'utf8')) as unknown) : {};
  return merge(defaults, over) as Values;
}

const envValue = (container: Container, name: string): string | undefined =>
  container.env?.find((entry) => entry.name === name)?.value;

const STANDARD_LABELS = [
  'app.kubernetes.io/name',
  'app.kubernetes.io/instance',
  'app.kubernetes.io/version',
  'app.kubernetes.io/component',
  'app.kubernetes.io/part-of',
  'app.kubernetes.io/managed-by',
];

const EXPECTED_CLUSTER_RULES: PolicyRule[] = [
  { apiGroups: [''], resources: ['nodes'], verbs: ['get'] },
  { apiGroups: [''], resources: ['nodes/status'], verbs: ['patch'] },
];
/** Node Events live in "default" (src/kube EVENT_NAMESPACE), core/v1 only. */
const EXPECTED_EVENT_RULES: PolicyRule[] = [
  { apiGroups: [''], resources: ['events'], verbs: ['create', 'patch'] },
];
/** metrics.auth.mode=kubernetes adds exactly these (DESIGN's RBAC list), what system:auth-delegator grants. */
const EXPECTED_AUTH_RULES: PolicyRule[] = [
  { apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] },
  { apiGroups: ['authorization.k8s.io'], resources: ['subjectaccessreviews'], verbs: ['create'] },
];

/** Every (group, resource, verb) triple a set of rules grants. */
function grants(rules: PolicyRule[]): string[] {
  return rules
    .flatMap((rule) =>
      rule.nonResourceURLs
        ? rule.nonResourceURLs.flatMap((url) => rule.verbs.map((verb) => `${url}:${verb}`))
        : rule.apiGroups.flatMap((group) =>
            rule.resources.flatMap((resource) => rule.verbs.map((verb) => `${group}/${resource}:${verb}`)),
          ),
    )
    .sort();
}

/** The invariants every scenario must hold. */
function assertInvariants(rendered: Rendered, values: Values, scenario: string): void {
  const ds = rendered.one('DaemonSet');
  const pod = ds.spec.template.spec;
  const where = `[${scenario}]`;

  // Host network, DNS, no other host namespaces.
  assert.equal(pod.hostNetwork, true, `${where} hostNetwork`);
  assert.equal(pod.dnsPolicy, 'ClusterFirstWithHostNet', `${where} dnsPolicy`);
  assert.notEqual(pod.hostPID, true, `${where} hostPID`);
  assert.notEqual(pod.hostIPC, true, `${where} hostIPC`);
  assert.equal(pod.initContainers, undefined, `${where} no init containers`);
  assert.equal(pod.containers.length, 1, `${where} one container`);
  const container = pod.containers[0] as Container;

  // Restricted-profile container fields.
  const sc = container.securityContext ?? {};
  assert.equal(sc.privileged, false, `${where} privileged`);
  assert.equal(sc.allowPrivilegeEscalation, false, `${where} allowPrivilegeEscalation`);
  assert.equal(sc.readOnlyRootFilesystem, true, `${where} readOnlyRootFilesystem`);
  assert.deepEqual(sc.capabilities?.drop, ['ALL'], `${where} capabilities.drop`);
  assert.equal(sc.capabilities?.add, undefined, `${where} no added capabilities`);
  assert.equal(
    (sc.seccompProfile ?? pod.securityContext?.seccompProfile)?.type,
    'RuntimeDefault',
    `${where} seccomp`,
  );

  // Scheduling: every node, every taint, node-critical, no surge.
  assert.ok(
    pod.tolerations?.some((t) => t.operator === 'Exists' && t.key === undefined && t.effect === undefined),
    `${where} tolerates every taint: ${JSON.stringify(pod.tolerations)}`,
  );
  assert.equal(pod.priorityClassName, 'system-node-critical', `${where} priorityClassName`);
  assert.equal(ds.spec.updateStrategy.type, 'RollingUpdate', `${where} updateStrategy`);
  assert.equal(ds.spec.updateStrategy.rollingUpdate?.maxSurge, 0, `${where} maxSurge`);

  // NODE_NAME from the downward API.
  const nodeName = container.env?.find((entry) => entry.name === 'NODE_NAME');
  assert.deepEqual(nodeName?.valueFrom, { fieldRef: { fieldPath: 'spec.nodeName' } }, `${where} NODE_NAME`);

  // Every CRI_NETSTATUS_* variable configures a real `serve` flag.
  const flagEnv = new Set(Object.keys(serveFlags).map(envName));
  for (const entry of container.env ?? []) {
    if (entry.name.startsWith('CRI_NETSTATUS_'))
      assert.ok(flagEnv.has(entry.name), `${where} ${entry.name} is not a serve flag`);
  }
  assert.deepEqual(container.args?.slice(0, 1), ['serve'], `${where} args`);
  assert.equal(container.command, undefined, `${where} the image's entrypoint is kept`);

  // Mounts: every hostPath read-only except the socket dir; the conf dir's PARENT is mounted.
  const volumes = new Map((pod.volumes ?? []).map((volume) => [volume.name, volume]));
  const mounts = container.volumeMounts ?? [];
  const hostMounts = mounts.filter((mount) => volumes.get(mount.name)?.hostPath);
  const writable = hostMounts.filter((mount) => mount.readOnly !== true);
  const socket = envValue(container, 'CRI_NETSTATUS_SOCKET') ?? '';
  assert.deepEqual(
    writable.map((mount) => mount.mountPath),
    [posix.dirname(socket)],
    `${where} the socket dir is the only writable hostPath mount`,
  );
  const socketVolume = volumes.get(writable[0]?.name ?? '');
  assert.equal(
    socketVolume?.hostPath?.path,
    posix.normalize(values.hostPaths.socketDir),
    `${where} socket dir`,
  );
  assert.equal(socketVolume?.hostPath?.type, 'DirectoryOrCreate', `${where} socket dir type`);

  const confDir = posix.normalize(values.hostPaths.cniConfDir).replace(/\/$/, '');
  const inContainer = `/host${confDir}`;
  assert.equal(envValue(container, 'CRI_NETSTATUS_CNI_CONF_DIR'), inContainer, `${where} conf dir flag`);
  const confMount = hostMounts.find(
    (mount) => volumes.get(mount.name)?.hostPath?.path === posix.dirname(confDir),
  );
  assert.ok(confMount, `${where} the conf dir's parent ${posix.dirname(confDir)} is mounted`);
  assert.equal(confMount.mountPath, `/host${posix.dirname(confDir)}`, `${where} parent mount path`);
  assert.equal(confMount.readOnly, true, `${where} conf parent read-only`);
  assert.ok(
    !mounts.some((mount) => mount.mountPath === inContainer),
    `${where} the conf dir itself is not a mount (its inode would be pinned)`,
  );
  const binDirs = values.hostPaths.cniBinDirs.map((dir) => `/host${posix.normalize(dir)}`);
  assert.equal(envValue(container, 'CRI_NETSTATUS_CNI_BIN_DIR'), binDirs.join(','), `${where} bin dirs`);
  for (const dir of binDirs) {
    const mount = mounts.find((m) => m.mountPath === dir);
    assert.equal(mount?.readOnly, true, `${where} bin dir ${dir} mounted read-only`);
  }

  // CNI STATUS: the mode and timeout as flags; each path a plugin needs mounted read-only where
  // the plugin looks for it (its own absolute path), not under /host.
  assert.equal(
    envValue(container, 'CRI_NETSTATUS_PLUGIN_STATUS'),
    values.pluginStatus.mode,
    `${where} plugin status`,
  );
  assert.equal(
    envValue(container, 'CRI_NETSTATUS_PLUGIN_STATUS_TIMEOUT'),
    values.pluginStatus.timeout,
    `${where} plugin status timeout`,
  );
  for (const dir of values.pluginStatus.hostPaths.map((d) => posix.normalize(d))) {
    const mount = hostMounts.find((m) => volumes.get(m.name)?.hostPath?.path === dir);
    assert.equal(mount?.mountPath, dir, `${where} plugin path ${dir} mounted at the same path`);
    assert.equal(mount?.readOnly, true, `${where} plugin path ${dir} read-only`);
  }

  // Metrics port, hostPort and probes.
  const port = values.metrics.port;
  assert.deepEqual(
    container.ports?.map((p) => [p.name, p.containerPort, p.hostPort]),
    [['metrics', port, port]],
    `${where} ports`,
  );
  assert.ok(
    envValue(container, 'CRI_NETSTATUS_METRICS_ADDRESS')?.endsWith(`:${port}`),
    `${where} metrics address`,
  );
  // HTTPS with metrics auth on (same port, no token: the kubelet's probes stay open).
  const scheme = values.metrics.auth.mode === 'kubernetes' ? { scheme: 'HTTPS' } : {};
  assert.deepEqual(
    container.livenessProbe?.httpGet,
    { path: '/healthz', port: 'metrics', ...scheme },
    `${where} liveness`,
  );
  assert.deepEqual(
    container.readinessProbe?.httpGet,
    { path: '/readyz', port: 'metrics', ...scheme },
    `${where} readiness`,
  );
  assert.ok(container.resources?.requests?.cpu && container.resources.requests.memory, `${where} requests`);
  assert.ok(container.resources?.limits?.memory, `${where} memory limit`);

  // Labels: the standard set on every object; no helm.sh/chart on the pod template.
  for (const object of rendered.objects) {
    for (const label of [...STANDARD_LABELS, 'helm.sh/chart'])
      assert.ok(
        object.metadata.labels?.[label],
        `${where} ${object.kind}/${object.metadata.name} lacks ${label}`,
      );
  }
  const podLabels = ds.spec.template.metadata.labels;
  for (const label of STANDARD_LABELS) assert.ok(podLabels[label], `${where} pod template lacks ${label}`);
  assert.equal(
    podLabels['helm.sh/chart'],
    undefined,
    `${where} helm.sh/chart must stay off the pod template`,
  );
  for (const [key, value] of Object.entries(ds.spec.selector.matchLabels))
    assert.equal(podLabels[key], value, `${where} selector label ${key}`);

  // The image.
  const image = values.image;
  assert.ok(
    container.image.startsWith(`${image.registry}/${image.repository}:`),
    `${where} image ${container.image}`,
  );
  if (image.digest) assert.ok(container.image.endsWith(`@${image.digest}`), `${where} image digest`);

  // RBAC: exactly the agent's verbs, or nothing with kube.mode=off (and metrics auth off). The
  // scrapers' reader role (metrics auth on) is checked apart: it is never bound to the agent.
  const subjects = [
    { kind: 'ServiceAccount', name: pod.serviceAccountName, namespace: ds.metadata.namespace },
  ];
  const authOn = values.metrics.auth.mode === 'kubernetes';
  const readerName = `${ds.metadata.name}-metrics-reader`;
  const readers = rendered.ofKind('ClusterRole').filter((role) => role.metadata.name === readerName);
  const readerBindings = rendered.ofKind('ClusterRoleBinding').filter((b) => b.roleRef.name === readerName);
  assert.equal(readers.length, authOn ? 1 : 0, `${where} the scrapers' reader role only with metrics auth`);
  for (const reader of readers)
    assert.deepEqual(grants(reader.rules), ['/metrics:get'], `${where} reader grants get on /metrics only`);
  for (const binding of readerBindings)
    assert.notDeepEqual(binding.subjects, subjects, `${where} the agent is not a scraper of itself`);
  const roles = rendered.ofKind('ClusterRole').filter((role) => role.metadata.name !== readerName);
  const bindings = rendered.ofKind('ClusterRoleBinding').filter((b) => b.roleRef.name !== readerName);
  const eventRoles = rendered.ofKind('Role');
  const eventBindings = rendered.ofKind('RoleBinding');
  if (values.kube.mode === 'off' && !authOn) {
    assert.deepEqual(
      [roles.length, bindings.length, eventRoles.length, eventBindings.length],
      [0, 0, 0, 0],
      `${where} no RBAC with kube.mode=off`,
    );
    assert.equal(pod.automountServiceAccountToken, false, `${where} no token with kube.mode=off`);
  } else {
    const [role] = roles;
    const [binding] = bindings;
    assert.ok(
      role && binding && roles.length === 1 && bindings.length === 1,
      `${where} one ClusterRole and binding`,
    );
    assert.deepEqual(
      grants(role.rules),
      grants([
        ...(values.kube.mode === 'off' ? [] : EXPECTED_CLUSTER_RULES),
        ...(authOn ? EXPECTED_AUTH_RULES : []),
      ]),
      `${where} cluster-wide verbs`,
    );
    assert.deepEqual(
      [binding.roleRef.kind, binding.roleRef.name],
      ['ClusterRole', role.metadata.name],
      `${where} roleRef`,
    );
    assert.deepEqual(binding.subjects, subjects, `${where} subjects`);
    assert.equal(pod.automountServiceAccountToken, true, `${where} token mounted`);
  }
  if (values.kube.mode === 'off') {
    assert.deepEqual(
      [eventRoles.length, eventBindings.length],
      [0, 0],
      `${where} no events Role with kube.mode=off`,
    );
  } else {
    const [eventRole] = eventRoles;
    const [eventBinding] = eventBindings;
    assert.ok(
      eventRole && eventBinding && eventRoles.length === 1 && eventBindings.length === 1,
      `${where} one events Role`,
    );
    assert.equal(eventRole.metadata.namespace, 'default', `${where} Node Events live in default`);
    assert.deepEqual(grants(eventRole.rules), grants(EXPECTED_EVENT_RULES), `${where} event verbs`);
    assert.equal(eventBinding.metadata.namespace, 'default', `${where} RoleBinding namespace`);
    assert.deepEqual(
      [eventBinding.roleRef.kind, eventBinding.roleRef.name],
      ['Role', eventRole.metadata.name],
    );
    assert.deepEqual(eventBinding.subjects, subjects, `${where} event subjects`);
  }
  const account = rendered.ofKind('ServiceAccount').find((sa) => sa.metadata.name === pod.serviceAccountName);
  assert.ok(account, `${where} the agent's ServiceAccount`);
  assert.equal(account.metadata.name, pod.serviceAccountName, `${where} ServiceAccount`);
  assert.equal(
    account.automountServiceAccountToken,
    false,
    `${where} the pod, not the account, opts in to a token`,
  );

  for (const object of rendered.objects) {
    const clusterScoped = [
      'ClusterRole',
      'ClusterRoleBinding',
      'ValidatingAdmissionPolicy',
      'ValidatingAdmissionPolicyBinding',
    ];
    if (!clusterScoped.includes(object.kind))
      assert.ok(object.metadata.namespace, `${where} ${object.kind}/${object.metadata.name} has a namespace`);
  }
}

// ---- tests -----------------------------------------------------------------------------------

test('the helm peer runs', async () => {
  const result = await helm(['version', '--short']);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /^v\d+\.\d+\.\d+/);
});

test('Chart.yaml: apiVersion v2, appVersion equal to package.json version', () => {
  const chart = parseYaml(readFileSync(join(CHART, 'Chart.yaml'), 'utf8')) as {
    apiVersion: string;
    appVersion: string;
  };
  const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
  assert.equal(chart.apiVersion, 'v2');
  assert.equal(chart.appVersion, pkg.version, 'bump the chart appVersion with package.json');
});

describe('helm lint --strict', () => {
  test('defaults', async () => {
    const result = await helm(['lint', '--strict', CHART]);
    assert.equal(result.code, 0, `${result.stdout}${result.stderr}`);
    assert.match(result.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
  });
  for (const file of ciFiles()) {
    test(`ci/${file}`, async () => {
      const result = await helm(['lint', '--strict', CHART, '-f', join(CI_DIR, file)]);
      assert.equal(result.code, 0, `${result.stdout}${result.stderr}`);
    });
  }
  test('fails on a values file the schema rejects', async (t) => {
    const bad = join(tempDir(t), 'bad-values.yaml');
    writeFileSync(bad, 'agent:\n  semantics: cilium\n');
    const result = await helm(['lint', '--strict', CHART, '-f', bad]);
    assert.notEqual(result.code, 0);
    assert.match(`${result.stdout}${result.stderr}`, /\/agent\/semantics/);
  });
});

test('the ci/ scenarios cover the defaults, monitoring, kube off, non-root and custom paths', () => {
  const files = ciFiles();
  for (const needed of [
    'default',
    'monitoring',
    'servicemonitor',
    'kube-off',
    'nonroot',
    'custom-paths',
    'metrics-auth',
  ])
    assert.ok(files.includes(`${needed}-values.yaml`), `ci/${needed}-values.yaml is missing`);
});

describe('helm template: invariants of every scenario', () => {
  const scenarios: [string, string | undefined][] = [
    ['defaults', undefined],
    ...ciFiles().map((file): [string, string] => [`ci/${file}`, file]),
  ];
  for (const [name, file] of scenarios) {
    for (const withOperator of [false, true]) {
      test(`${name}${withOperator ? ' (with monitoring.coreos.com/v1)' : ''}`, async () => {
        const args = [...(file ? ['-f', join(CI_DIR, file)] : []), ...(withOperator ? MONITORING_API : [])];
        assertInvariants(await template(args), valuesOf(file), name);
      });
    }
  }
});

describe('helm template: defaults', () => {
  test('render exactly a ServiceAccount, the RBAC (ClusterRole, events Role, bindings) and a DaemonSet', async () => {
    const rendered = await template([]);
    assert.deepEqual(rendered.kinds(), [
      'ClusterRole',
      'ClusterRoleBinding',
      'DaemonSet',
      'Role',
      'RoleBinding',
      'ServiceAccount',
    ]);
  });

  test('the uninstall hook: a post-delete Job running kube-cleanup with its own least-privilege RBAC', async () => {
    const { hooks } = await template([]);
    assert.deepEqual(hooks.map((object) => object.kind).sort(), [
      'ClusterRole',
      'ClusterRoleBinding',
      'Job',
      'ServiceAccount',
    ]);
    for (const hook of hooks)
      assert.equal(
        hook.metadata.annotations?.['helm.sh/hook'],
        'post-delete',
        `${hook.kind} is a post-delete hook`,
      );
    const role = hooks.find((object) => object.kind === 'ClusterRole') as unknown as {
      rules: { resources: string[]; verbs: string[] }[];
    };
    assert.deepEqual(
      role.rules
        .flatMap((rule) =>
          rule.resources.flatMap((resource) => rule.verbs.map((verb) => `${verb} ${resource}`)),
        )
        .sort(),
      ['list nodes', 'patch nodes/status'],
    );
    const job = hooks.find((object) => object.kind === 'Job') as unknown as {
      spec: { template: { spec: { containers: { args?: string[]; command?: string[] }[] } } };
    };
    const container = job.spec.template.spec.containers[0];
    assert.ok(
      [...(container?.command ?? []), ...(container?.args ?? [])].includes('kube-cleanup'),
      JSON.stringify(container),
    );
    for (const off of [
      ['--set', 'kube.cleanupOnUninstall=false'],
      ['--set', 'kube.mode=off'],
    ]) {
      assert.deepEqual((await template(off)).hooks, [], `no hook with ${off.join(' ')}`);
    }
  });

  test('the DaemonSet: root without capabilities, scrape annotations, configured through env', async () => {
    const ds = (await template([])).one('DaemonSet');
    const pod = ds.spec.template.spec;
    const container = pod.containers[0] as Container;
    assert.equal(ds.metadata.name, 'cri-netstatus');
    assert.equal(ds.metadata.namespace, 'kube-system');
    assert.deepEqual(pod.securityContext, {
      runAsUser: 0,
      runAsGroup: 0,
      runAsNonRoot: false,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    assert.deepEqual(ds.spec.template.metadata.annotations, {
      'prometheus.io/scrape': 'true',
      'prometheus.io/port': '9731',
      'prometheus.io/path': '/metrics',
    });
    assert.deepEqual(pod.tolerations, [{ operator: 'Exists' }]);
    assert.equal(ds.spec.updateStrategy.rollingUpdate?.maxUnavailable, 1);
    const env = Object.fromEntries(
      (container.env ?? []).filter((e) => e.value !== undefined).map((e) => [e.name, e.value]),
    );
    assert.deepEqual(env, {
      CRI_NETSTATUS_CNI_CONF_DIR: '/host/etc/cni/net.d',
      CRI_NETSTATUS_CNI_BIN_DIR: '/host/opt/cni/bin',
      CRI_NETSTATUS_SOCKET: '/run/cri-netstatus/cri.sock',
      CRI_NETSTATUS_SOCKET_MODE: '0660',
      CRI_NETSTATUS_METRICS_ADDRESS: '0.0.0.0:9731',
      CRI_NETSTATUS_SEMANTICS: 'isulad',
      CRI_NETSTATUS_STALE_AFTER: '0',
      CRI_NETSTATUS_REFRESH_TIMEOUT: '1s',
      CRI_NETSTATUS_PLUGIN_STATUS: 'auto',
      CRI_NETSTATUS_PLUGIN_STATUS_TIMEOUT: '2s',
      CRI_NETSTATUS_KUBE: 'auto',
      CRI_NETSTATUS_KUBE_HEARTBEAT: '10m',
      CRI_NETSTATUS_LOG_LEVEL: 'info',
      CRI_NETSTATUS_LOG_FORMAT: 'json',
    });
    assert.deepEqual(
      (pod.volumes ?? []).map((v) => [v.name, v.hostPath?.path, v.hostPath?.type]),
      [
        ['cni-conf-parent', '/etc/cni', 'DirectoryOrCreate'],
        ['cni-bin-0', '/opt/cni/bin', 'DirectoryOrCreate'],
        ['socket-dir', '/run/cri-netstatus', 'DirectoryOrCreate'],
      ],
    );
    assert.deepEqual(
      (container.volumeMounts ?? []).map((m) => [m.name, m.mountPath, m.readOnly ?? false]),
      [
        ['cni-conf-parent', '/host/etc/cni', true],
        ['cni-bin-0', '/host/opt/cni/bin', true],
        ['socket-dir', '/run/cri-netstatus', false],
      ],
    );
  });

  test('the release name and namespace shape every name', async () => {
    const rendered = await template([], 'edge', 'monitoring');
    const ds = rendered.one('DaemonSet');
    assert.equal(ds.metadata.name, 'edge-cri-netstatus');
    assert.equal(ds.metadata.namespace, 'monitoring');
    assert.equal(ds.spec.selector.matchLabels['app.kubernetes.io/instance'], 'edge');
    const binding = rendered.one('ClusterRoleBinding');
    assert.deepEqual(binding.subjects[0], {
      kind: 'ServiceAccount',
      name: 'edge-cri-netstatus',
      namespace: 'monitoring',
    });
  });
});

describe('helm template: metrics.auth.mode=kubernetes', () => {
  const auth = ['-f', join(CI_DIR, 'metrics-auth-values.yaml')];

  test('HTTPS probes and scrape annotation, the agent flag, the Secret mounted as a directory (so it updates)', async () => {
    const rendered = await template(['--set', 'metrics.auth.mode=kubernetes']);
    const ds = rendered.one('DaemonSet');
    const container = ds.spec.template.spec.containers[0] as Container;
    assert.equal(envValue(container, 'CRI_NETSTATUS_METRICS_AUTH'), 'kubernetes');
    assert.equal(container.livenessProbe?.httpGet?.scheme, 'HTTPS');
    assert.equal(container.readinessProbe?.httpGet?.scheme, 'HTTPS');
    assert.equal(container.livenessProbe?.httpGet?.path, '/healthz', 'the probes stay on the open paths');
    assert.equal(ds.spec.template.metadata.annotations?.['prometheus.io/scheme'], 'https');
    assert.equal(envValue(container, 'CRI_NETSTATUS_METRICS_TLS_CERT'), undefined, 'self-signed by default');

    const withSecret = (await template([...auth, ...MONITORING_API])).one('DaemonSet');
    const c = withSecret.spec.template.spec.containers[0] as Container;
    assert.equal(envValue(c, 'CRI_NETSTATUS_METRICS_TLS_CERT'), '/etc/cri-netstatus/metrics-tls/tls.crt');
    assert.equal(envValue(c, 'CRI_NETSTATUS_METRICS_TLS_KEY'), '/etc/cri-netstatus/metrics-tls/tls.key');
    const volume = withSecret.spec.template.spec.volumes?.find((v) => v.name === 'metrics-tls');
    assert.equal(volume?.secret?.secretName, 'cri-netstatus-metrics-tls');
    const mount = c.volumeMounts?.find((m) => m.name === 'metrics-tls');
    assert.deepEqual([mount?.mountPath, mount?.readOnly], ['/etc/cri-netstatus/metrics-tls', true]);
    assert.equal(
      withSecret.spec.template.spec.automountServiceAccountToken,
      true,
      'a token even with kube.mode=off',
    );
  });

  test('defaults: plain HTTP probes, no auth flag, no review verbs, no reader role', async () => {
    const rendered = await template([]);
    const container = rendered.one('DaemonSet').spec.template.spec.containers[0] as Container;
    assert.equal(container.livenessProbe?.httpGet?.scheme, undefined);
    assert.equal(envValue(container, 'CRI_NETSTATUS_METRICS_AUTH'), undefined);
    const verbs = rendered.ofKind('ClusterRole').flatMap((role) => grants(role.rules));
    assert.ok(!verbs.some((v) => /tokenreviews|subjectaccessreviews|\/metrics/.test(v)), verbs.join(' '));
  });

  test('PodMonitor scrapes HTTPS with the chart-made scraper token; ServiceMonitor with Prometheus own token file', async () => {
    const rendered = await template([...auth, ...MONITORING_API]);
    const endpoint = rendered.one('PodMonitor').spec.podMetricsEndpoints?.[0];
    assert.equal(endpoint?.scheme, 'https');
    assert.deepEqual(endpoint?.tlsConfig, { insecureSkipVerify: true });
    assert.deepEqual(endpoint?.authorization, {
      type: 'Bearer',
      credentials: { name: 'cri-netstatus-metrics-scraper-token', key: 'token' },
    });
    const secret = rendered.one('Secret');
    assert.equal(secret.type, 'kubernetes.io/service-account-token');
    assert.equal(
      secret.metadata.annotations?.['kubernetes.io/service-account.name'],
      'cri-netstatus-metrics-scraper',
    );
    const binding = rendered
      .ofKind('ClusterRoleBinding')
      .find((b) => b.roleRef.name === 'cri-netstatus-metrics-reader');
    assert.deepEqual(binding?.subjects, [
      { kind: 'ServiceAccount', name: 'cri-netstatus-metrics-scraper', namespace: 'kube-system' },
    ]);

    const sm = await template([
      '-f',
      join(CI_DIR, 'servicemonitor-values.yaml'),
      '--set',
      'metrics.auth.mode=kubernetes',
      ...MONITORING_API,
    ]);
    const smEndpoint = sm.one('ServiceMonitor').spec.endpoints?.[0];
    assert.equal(smEndpoint?.scheme, 'https');
    assert.equal(smEndpoint?.bearerTokenFile, '/var/run/secrets/kubernetes.io/serviceaccount/token');
    assert.equal(sm.ofKind('Secret').length, 0, 'no scraper token without a PodMonitor');
  });

  test('a TLS Secret without metrics auth is refused, naming the key', async () => {
    const result = await helm(['template', 'x', CHART, '--set', 'metrics.auth.tlsSecretName=tls']);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /metrics.auth.tlsSecretName is used only with metrics.auth.mode=kubernetes/);
    const bad = await helm(['template', 'x', CHART, '--set', 'metrics.auth.mode=basic']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /\/metrics\/auth\/mode/);
  });
});

describe('helm template: Prometheus objects', () => {
  const operatorKinds = ['PodMonitor', 'ServiceMonitor', 'PrometheusRule'] as const;
  const monitoring = ['-f', join(CI_DIR, 'monitoring-values.yaml')];

  test('defaults render none, even when the operator API exists', async () => {
    const rendered = await template(MONITORING_API);
    for (const kind of [...operatorKinds, 'ConfigMap', 'Service'] as const)
      assert.equal(rendered.ofKind(kind).length, 0, kind);
  });

  test('enabled without monitoring.coreos.com/v1: no operator objects, scrape annotations kept', async () => {
    const rendered = await template(monitoring);
    for (const kind of operatorKinds) assert.equal(rendered.ofKind(kind).length, 0, kind);
    const ds = rendered.one('DaemonSet');
    assert.equal(ds.spec.template.metadata.annotations?.['prometheus.io/scrape'], 'true');
    // The dashboard is a plain ConfigMap and needs no CRD.
    assert.equal(rendered.ofKind('ConfigMap').length, 1);
  });

  test('enabled with monitoring.coreos.com/v1: PodMonitor and PrometheusRule, no double scraping', async () => {
    const rendered = await template([...monitoring, ...MONITORING_API]);
    const podMonitor = rendered.one('PodMonitor');
    assert.equal(podMonitor.metadata.labels?.release, 'kube-prometheus-stack');
    assert.equal(podMonitor.spec.jobLabel, 'app.kubernetes.io/name');
    const ds = rendered.one('DaemonSet');
    for (const [key, value] of Object.entries(podMonitor.spec.selector.matchLabels))
      assert.equal(ds.spec.template.metadata.labels[key], value, `PodMonitor selects the pods by ${key}`);
    assert.equal(
      ds.spec.template.metadata.annotations,
      undefined,
      'no prometheus.io annotations beside a PodMonitor',
    );
    assert.equal(rendered.ofKind('ServiceMonitor').length, 0);
    rendered.one('PrometheusRule');
  });

  test('skipCapabilitiesCheck renders them without the API', async () => {
    const rendered = await template([...monitoring, '--set', 'prometheus.skipCapabilitiesCheck=true']);
    rendered.one('PodMonitor');
    rendered.one('PrometheusRule');
  });

  test('ServiceMonitor comes with a headless Service selecting the agents', async () => {
    const rendered = await template(['-f', join(CI_DIR, 'servicemonitor-values.yaml'), ...MONITORING_API]);
    const service = rendered.one('Service');
    assert.equal(service.spec.clusterIP, 'None');
    const monitor = rendered.one('ServiceMonitor');
    for (const [key, value] of Object.entries(monitor.spec.selector.matchLabels))
      assert.equal(service.metadata.labels?.[key], value, `ServiceMonitor selects the Service by ${key}`);
    assert.equal(rendered.ofKind('PodMonitor').length, 0);
  });

  test('PrometheusRule: alerts from files/alerts.yaml, disabled ones dropped, labels added', async () => {
    const rule = (await template([...monitoring, ...MONITORING_API])).one('PrometheusRule');
    const source = parseYaml(
      readFileSync(join(CHART, 'files', 'alerts.yaml'), 'utf8'),
    ) as PrometheusRule['spec'];
    const all = source.groups.flatMap((group) => group.rules.map((rule) => rule.alert));
    const rendered = rule.spec.groups.flatMap((group) => group.rules);
    assert.deepEqual(
      rendered.map((r) => r.alert),
      all.filter((name) => name !== 'CriNetstatusUpstreamDown'),
    );
    for (const alert of rendered) {
      assert.equal(alert.labels.team, 'platform', `${alert.alert} has the ruleLabels`);
      assert.ok(alert.labels.severity, `${alert.alert} keeps its severity`);
    }
  });

  test('PrometheusRule: selectors follow the release, namespace and agentSelector', async () => {
    const rule = (
      await template(
        [
          ...MONITORING_API,
          '--set',
          'prometheus.prometheusRule.enabled=true',
          '--set-string',
          'prometheus.prometheusRule.agentSelector=job="kubernetes-pods"\\,app_kubernetes_io_name="cri-netstatus"',
          '--set',
          'prometheus.prometheusRule.runbookBaseUrl=https://wiki.example.com/runbooks/',
        ],
        'edge',
        'monitoring',
      )
    ).one('PrometheusRule');
    const text = JSON.stringify(rule.spec);
    const expr = (name: string): string =>
      rule.spec.groups.flatMap((g) => g.rules).find((r) => r.alert === name)?.expr ?? '';
    assert.match(expr('CriNetstatusAgentAbsent'), /namespace="monitoring",daemonset="edge-cri-netstatus"/);
    assert.equal(
      expr('CriNetstatusAgentDown'),
      'up{job="kubernetes-pods",app_kubernetes_io_name="cri-netstatus"} == 0',
    );
    assert.doesNotMatch(text, /kube-system|job=\\"cri-netstatus\\"|github\.com/);
    assert.match(text, /https:\/\/wiki\.example\.com\/runbooks#crinetstatusagentdown/);
  });

  test('the Grafana dashboard ConfigMap carries files/dashboard.json and the sidecar label', async () => {
    const map = (await template(['--set', 'grafanaDashboard.enabled=true'])).one('ConfigMap');
    assert.equal(map.metadata.labels?.grafana_dashboard, '1');
    const json = map.data['cri-netstatus.json'] ?? '';
    assert.deepEqual(
      JSON.parse(json),
      JSON.parse(readFileSync(join(CHART, 'files', 'dashboard.json'), 'utf8')),
    );
  });
});

describe('helm template: scenarios', () => {
  test('kube.mode=off: no RBAC objects, no token, the agent told so', async () => {
    const rendered = await template(['-f', join(CI_DIR, 'kube-off-values.yaml')]);
    assert.deepEqual(rendered.kinds(), ['DaemonSet', 'ServiceAccount']);
    const container = rendered.one('DaemonSet').spec.template.spec.containers[0] as Container;
    assert.equal(envValue(container, 'CRI_NETSTATUS_KUBE'), 'off');
  });

  test('non-root: the pod runs as 65532', async () => {
    const pod = (await template(['-f', join(CI_DIR, 'nonroot-values.yaml')])).one('DaemonSet').spec.template
      .spec;
    assert.equal(pod.securityContext?.runAsUser, 65532);
    assert.equal(pod.securityContext?.runAsNonRoot, true);
  });

  test('upstream runtime and admission policy: the runtime dir mounted read-only, a policy per own node', async () => {
    const rendered = await template(['-f', join(CI_DIR, 'upstream-admission-values.yaml')]);
    const ds = rendered.one('DaemonSet');
    const container = ds.spec.template.spec.containers[0] as Container;
    assert.equal(
      envValue(container, 'CRI_NETSTATUS_RUNTIME_ENDPOINT'),
      'unix:///host/run/containerd/containerd.sock',
    );
    const mount = container.volumeMounts?.find((m) => m.mountPath === '/host/run/containerd');
    assert.equal(mount?.readOnly, true);
    const policy = rendered.one('ValidatingAdmissionPolicy');
    assert.equal(
      policy.spec.matchConditions[0]?.expression,
      'request.userInfo.username == "system:serviceaccount:kube-system:cri-netstatus"',
    );
    const binding = rendered.one('ValidatingAdmissionPolicyBinding');
    assert.equal(binding.spec.policyName, policy.metadata.name);
    assert.deepEqual(binding.spec.validationActions, ['Deny']);
  });
});

describe('bad values are rejected with a message naming the key', () => {
  const cases: [string, string[], RegExp][] = [
    [
      'unknown top-level key',
      ['--set', 'hostNetwork=false'],
      /additional properties 'hostNetwork' not allowed/,
    ],
    [
      'unknown semantics',
      ['--set', 'agent.semantics=cilium'],
      /\/agent\/semantics.*one of 'isulad', 'containerd-1\.7', 'containerd-2\.0', 'containerd-2\.1', 'crio', 'auto', 'containerd'/,
    ],
    ['relative conf dir', ['--set', 'hostPaths.cniConfDir=net.d'], /\/hostPaths\/cniConfDir/],
    [
      'conf dir directly under /',
      ['--set', 'hostPaths.cniConfDir=/net.d'],
      /hostPaths.cniConfDir "\/net.d".*parent .* is the host's root/,
    ],
    ['root as socket dir', ['--set', 'hostPaths.socketDir=/'], /\/hostPaths\/socketDir/],
    ['no bin dir', ['--set-json', 'hostPaths.cniBinDirs=[]'], /\/hostPaths\/cniBinDirs/],
    [
      'surge',
      ['--set', 'updateStrategy.rollingUpdate.maxSurge=1'],
      /\/updateStrategy\/rollingUpdate\/maxSurge.*must be 0/,
    ],
    [
      'zero unavailable',
      ['--set', 'updateStrategy.rollingUpdate.maxUnavailable=0'],
      /\/updateStrategy\/rollingUpdate\/maxUnavailable/,
    ],
    [
      'privileged',
      ['--set', 'securityContext.privileged=true'],
      /\/securityContext\/privileged.*must be false/,
    ],
    [
      'privilege escalation',
      ['--set', 'securityContext.allowPrivilegeEscalation=true'],
      /\/securityContext\/allowPrivilegeEscalation/,
    ],
    [
      'loopback metrics',
      ['--set', 'metrics.host=127.0.0.1'],
      /metrics.host "127.0.0.1" is a loopback address/,
    ],
    ['port out of range', ['--set', 'metrics.port=70000'], /\/metrics\/port/],
    ['bad kube mode', ['--set', 'kube.mode=maybe'], /\/kube\/mode/],
    ['bad duration', ['--set', 'agent.staleAfter=ten'], /\/agent\/staleAfter/],
    ['bad refresh timeout', ['--set', 'agent.refreshTimeout=0'], /\/agent\/refreshTimeout/],
    ['bad plugin status mode', ['--set', 'pluginStatus.mode=always'], /\/pluginStatus\/mode/],
    ['bad plugin status timeout', ['--set', 'pluginStatus.timeout=2'], /\/pluginStatus\/timeout/],
    [
      'relative plugin host path',
      ['--set-json', 'pluginStatus.hostPaths=["var/run/cilium"]'],
      /\/pluginStatus\/hostPaths\/0/,
    ],
    ['bad runtime endpoint', ['--set', 'agent.runtimeEndpoint=tcp://1.2.3.4:1'], /\/agent\/runtimeEndpoint/],
    ['bad digest', ['--set', 'image.digest=latest'], /\/image\/digest/],
    ['bad pull policy', ['--set', 'image.pullPolicy=Sometimes'], /\/image\/pullPolicy/],
    [
      'unknown alert',
      ['--set', 'prometheus.prometheusRule.disabledAlerts[0]=NoSuchAlert'],
      /disabledAlerts\/0/,
    ],
    ['bad agent selector', ['--set', 'prometheus.prometheusRule.agentSelector={job}'], /agentSelector/],
    ['extra arg without --', ['--set', 'agent.extraArgs[0]=serve'], /\/agent\/extraArgs\/0/],
    [
      'policy without kube',
      ['--set', 'kube.mode=off', '--set', 'kube.admissionPolicy.enabled=true'],
      /admissionPolicy.enabled needs kube.mode auto or on/,
    ],
    [
      'policy on old cluster',
      ['--set', 'kube.admissionPolicy.enabled=true', '--kube-version', '1.29.0'],
      /needs Kubernetes 1.30/,
    ],
  ];
  for (const [name, args, message] of cases) {
    test(name, async () => {
      const result = await helm(['template', 'cri-netstatus', CHART, ...args]);
      assert.notEqual(result.code, 0, `helm accepted ${args.join(' ')}`);
      assert.match(result.stderr, message);
    });
  }

  test('valid edge values are accepted', async () => {
    for (const args of [
      ['--set', 'updateStrategy.rollingUpdate.maxUnavailable=10%'],
      ['--set', 'metrics.host=::'],
      ['--set', 'hostPaths.cniConfDir=/etc/cni/net.d/'],
      ['--set', 'agent.staleAfter=1m30s'],
      ['--set', 'updateStrategy.type=OnDelete'],
    ]) {
      const result = await helm(['template', 'cri-netstatus', CHART, ...args]);
      assert.equal(result.code, 0, `${args.join(' ')}: ${result.stderr}`);
    }
  });
});

test('NOTES.txt tells how to verify the install and warns about missing operator CRDs', async () => {
  const result = await helm([
    'install',
    'cri-netstatus',
    CHART,
    '--namespace',
    'kube-system',
    '--dry-run=client',
    '--set',
    'prometheus.podMonitor.enabled=true',
  ]);
  assert.equal(result.code, 0, result.stderr);
  const notes = result.stdout.slice(result.stdout.indexOf('NOTES:'));
  for (const needle of [
    'kubectl -n kube-system rollout status daemonset/cri-netstatus',
    'kubectl -n kube-system exec daemonset/cri-netstatus -- cri-netstatus status',
    'kubectl debug node/<node> -it --image=ghcr.io/cri-netstatus/cri-netstatus:0.1.0 -- \\',
    'cri-netstatus status --socket /host/run/cri-netstatus/cri.sock',
    'cri-netstatus check --host-root /host',
    'kubectl events --for node/<node>',
    'WARNING: prometheus.*.enabled asks for a PodMonitor',
  ])
    assert.ok(notes.includes(needle), `NOTES lack: ${needle}\n${notes}`);
});

describe('deploy/ is rendered from the chart', () => {
  const script = join(REPO_ROOT, 'scripts', 'render-deploy.js');
  test('the committed deploy/ equals a fresh render', async () => {
    const result = await run(process.execPath, [script, '--check'], {
      env: { CRI_NETSTATUS_HELM: helmBin },
      timeoutMs: 120_000,
    });
    assert.equal(result.code, 0, `${result.stdout}${result.stderr}`);
  });

  test('the check notices an edited, a missing and a stray file', async (t) => {
    const copy = tempDir(t);
    cpSync(join(REPO_ROOT, 'deploy'), join(copy, 'deploy'), { recursive: true });
    writeFileSync(join(copy, 'deploy', 'cri-netstatus.yaml'), '# edited\n', { flag: 'a' });
    writeFileSync(join(copy, 'deploy', 'stray.yaml'), 'kind: ConfigMap\n');
    rmSync(join(copy, 'deploy', 'prometheus', 'cri-netstatus.rules.yaml'));
    const result = await run(process.execPath, [script, '--check', '--against', copy], {
      env: { CRI_NETSTATUS_HELM: helmBin },
      timeoutMs: 120_000,
    });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /deploy\/cri-netstatus.yaml: differs/);
    assert.match(result.stderr, /deploy\/stray.yaml: not produced by the chart/);
    assert.match(result.stderr, /deploy\/prometheus\/cri-netstatus.rules.yaml: missing/);
  });

  test('deploy/cri-netstatus.yaml holds the default objects and the kustomization lists it', () => {
    const kinds = parseAllDocuments(readFileSync(join(REPO_ROOT, 'deploy', 'cri-netstatus.yaml'), 'utf8'))
      .map((doc) => (doc.toJS() as K8sObject | null)?.kind)
      .filter((kind) => kind !== undefined)
      .sort();
    assert.deepEqual(kinds, [
      'ClusterRole',
      'ClusterRoleBinding',
      'DaemonSet',
      'Role',
      'RoleBinding',
      'ServiceAccount',
    ]);
    const kustomization = parseYaml(
      readFileSync(join(REPO_ROOT, 'deploy', 'kustomization.yaml'), 'utf8'),
    ) as {
      resources: string[];
    };
    for (const resource of kustomization.resources)
      assert.ok(existsSync(join(REPO_ROOT, 'deploy', resource)));
  });
});

test("the DaemonSet's env, given to the real agent, serves; status and check then need no flags", async (t) => {
  // The rendered container configuration, with the node's paths moved under a temp "node root".
  const container = (await template([])).one('DaemonSet').spec.template.spec.containers[0] as Container;
  const node = tempDir(t);
  const env: NodeJS.ProcessEnv = { NODE_NAME: 'node-a' };
  for (const entry of container.env ?? []) {
    if (entry.value === undefined) continue;
    env[entry.name] = entry.value.startsWith('/') ? join(node, entry.value) : entry.value;
  }
  env.CRI_NETSTATUS_METRICS_ADDRESS = '127.0.0.1:0';
  env.CRI_NETSTATUS_LOG_FORMAT = 'text';
  const confDir = env.CRI_NETSTATUS_CNI_CONF_DIR ?? '';
  const socket = env.CRI_NETSTATUS_SOCKET ?? '';
  mkdirSync(dirname(socket), { recursive: true });
  mkdirSync(env.CRI_NETSTATUS_CNI_BIN_DIR ?? '', { recursive: true });
  cpSync(join(REPO_ROOT, 'examples', 'net.d'), confDir, { recursive: true });
  const child = spawn(process.execPath, [CLI, ...(container.args ?? [])], {
    env: childEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const deadline = Date.now() + 15_000;
  while (!existsSync(socket) || !output.includes('serving CRI')) {
    assert.ok(child.exitCode === null, `the agent exited:\n${output}`);
    assert.ok(Date.now() < deadline, `the agent did not serve ${socket} within 15s:\n${output}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  assert.match(output, new RegExp(`confDir=${confDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));

  // As `kubectl exec <pod> -- cri-netstatus status` would run: the container's env, no flags.
  const status = await runCli(['status'], { ...env });
  assert.equal(status.code, 0, `${status.stdout}${status.stderr}`);
  assert.match(status.stdout, /READY: NetworkReady=true/);
  const check = await runCli(['check', '-o', 'json'], { ...env });
  assert.equal(check.code, 0, check.stderr);
  assert.equal((JSON.parse(check.stdout) as { confDir: string }).confDir, confDir);

  child.kill('SIGTERM');
  await new Promise((resolve) => child.once('exit', resolve));
  assert.ok(!existsSync(socket), 'the socket is removed on SIGTERM');
});

test('README.md documents every value of values.yaml', () => {
  const doc = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  // Maps whose keys are free-form (labels, probes, securityContext) are documented as one value.
  const opaque = new Set([
    'resources',
    'livenessProbe',
    'readinessProbe',
    'podSecurityContext',
    'securityContext',
    'nodeSelector',
    'labels',
    'updateStrategy',
  ]);
  const leaves: string[] = [];
  const walk = (node: unknown, path: string): void => {
    for (const [key, value] of Object.entries(node as Record<string, unknown>)) {
      const here = path ? `${path}.${key}` : key;
      if (
        value &&
        typeof value === 'object' &&
        !Array.isArray(value) &&
        Object.keys(value).length &&
        !opaque.has(key)
      )
        walk(value, here);
      else leaves.push(here);
    }
  };
  walk(parseYaml(readFileSync(join(CHART, 'values.yaml'), 'utf8')), '');
  const documented = (leaf: string): boolean => {
    if (doc.includes(`\`${leaf}\``)) return true;
    const parts = leaf.split('.');
    return parts.some((_, i) => i > 0 && doc.includes(`\`${parts.slice(0, i).join('.')}.*\``));
  };
  assert.deepEqual(
    leaves.filter((leaf) => !documented(leaf)),
    [],
    'values missing from the README values table',
  );
});
