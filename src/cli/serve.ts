// `cri-netstatus serve`: the daemon. Composes the one-way flow: conf dir → refresher → verdict →
// views (gRPC Status, metrics, logs and, when enabled, the Kubernetes Node condition).
import type { Server } from 'node:http';
import { resolve } from 'node:path';
import { WorkerRefresher } from '../cni/worker-refresher.js';
import { Deadline } from '../util/deadline.js';
import { DEFAULT_MAX_FILE_SIZE } from '../cni/files.js';
import { PLUGIN_STATUS_MODES, PluginProber } from '../cni/plugin-prober.js';
import type { PluginStatusReport } from '../cni/plugin-status.js';
import { parseSemanticsFlag, pickAutoSemantics } from '../cni/profiles.js';
import { SEMANTICS } from '../cni/types.js';
import type { Semantics } from '../cni/types.js';
import { ConfDirWatcher } from '../cni/watcher.js';
import { CriServer } from '../cri/server.js';
import { UsageError } from '../errors.js';
import { StatusAnswers } from '../cri/service.js';
import { createLogger, LOG_LEVELS } from '../log.js';
import type { Logger } from '../log.js';
import { startHttpEndpoint } from '../metrics/http.js';
import { METRICS_AUTH_MODES, metricsFlagsProblem, startMetricsSecurity } from '../metrics/secure.js';
import { AgentMetrics } from '../metrics/registry.js';
import { startKubeReporter } from '../kube/reporter.js';
import { startUpstreamMirror } from '../upstream/mirror.js';
import type { UpstreamMirror } from '../upstream/mirror.js';
import { every, systemClock } from '../util/clock.js';
import type { Clock } from '../util/clock.js';
import { VerdictPublisher } from '../verdict/publisher.js';
import { TransitionLog } from '../verdict/transition-log.js';
import { VERSION, versionInfo } from '../version.js';
import {
  duration,
  fileMode,
  helpText,
  hostPort,
  list,
  nonEmpty,
  oneOf,
  parseFlags,
  size,
  text,
  unixEndpoint,
  helpFlag,
  warnFlag,
} from './flags.js';
import type { FlagValues } from './flags.js';

export const serveFlags = {
  'cni-conf-dir': {
    description: 'CNI network config directory to serve',
    default: '/etc/cni/net.d',
    parse: (raw: string) => resolve(nonEmpty(raw)),
  },
  'cni-bin-dir': {
    description: 'CNI plugin binary directories, comma-separated',
    default: '/opt/cni/bin',
    accepts: 'DIR[,DIR...]',
    parse: (raw: string) => list(raw).map((dir) => resolve(dir)),
  },
  socket: {
    description: 'unix socket to serve CRI RuntimeService on',
    default: '/run/cri-netstatus/cri.sock',
    accepts: 'a path or unix:///path',
    parse: unixEndpoint,
  },
  'socket-mode': {
    description: 'file mode of the socket',
    default: '0660',
    accepts: 'an octal mode such as 0660',
    parse: fileMode,
  },
  'metrics-address': {
    description: 'host:port for /metrics, /healthz and /readyz',
    default: '0.0.0.0:9731',
    accepts: 'host:port, [ipv6]:port, :port or off',
    parse: hostPort,
  },
  'metrics-auth': {
    description:
      'kubernetes: HTTPS, and /metrics only for a bearer token the API server accepts (TokenReview) and allows get on /metrics (SubjectAccessReview)',
    default: 'none',
    accepts: METRICS_AUTH_MODES.join(', '),
    parse: oneOf(METRICS_AUTH_MODES),
  },
  'metrics-tls-cert': {
    description:
      'PEM serving certificate for --metrics-auth kubernetes, reloaded when it changes (default: self-signed)',
    parse: (raw: string) => resolve(nonEmpty(raw)),
  },
  'metrics-tls-key': {
    description: 'PEM private key of --metrics-tls-cert',
    parse: (raw: string) => resolve(nonEmpty(raw)),
  },
  semantics: {
    description: "which runtime's config loading to mirror (auto: the runtime on --runtime-endpoint)",
    default: 'isulad',
    accepts: `${SEMANTICS.join(', ')}, auto, containerd (deprecated: containerd-1.7)`,
    parse: (raw: string) => parseSemanticsFlag(raw, warnFlag),
  },
  'stale-after': {
    description: 'turn NetworkReady false once a last-good config has been served this long',
    default: '0',
    accepts: 'a duration such as 10m, or 0 for never',
    parse: duration,
  },
  'refresh-timeout': {
    description:
      "longest a Status call waits, for its conf dir refresh and then its CNI STATUS probe together (capped by the call's grpc-timeout); a refresh still running past it: the last state with NetworkConfigUpToDate reason RefreshTimeout; a probe still running: the last probe result",
    default: '1s',
    accepts: 'a duration of at least 1ms, such as 1s or 500ms',
    parse: (raw: string) => atLeast(duration(raw), 1, raw),
  },
  'plugin-status': {
    description:
      "run the CNI STATUS verb on the network's plugins: auto does it when the --semantics profile's runtime does (containerd-2.0 and containerd-2.1 on every Status call, crio until the first success), on on every Status call under any profile, off never",
    default: 'auto',
    accepts: PLUGIN_STATUS_MODES.join(', '),
    parse: oneOf(PLUGIN_STATUS_MODES),
  },
  'plugin-status-timeout': {
    description:
      "longest one plugin's STATUS may run before its process group is killed (reported as a timeout); a Status call waits for the probe only as long as --refresh-timeout leaves",
    default: '2s',
    accepts: 'a duration of at least 10ms, such as 2s',
    parse: (raw: string) => atLeast(duration(raw), 10, raw),
  },
  'max-file-size': {
    description: 'reject config files larger than this',
    default: String(DEFAULT_MAX_FILE_SIZE),
    accepts: 'bytes, or 512Ki, 1Mi',
    parse: size,
  },
  'resync-interval': {
    description: 'periodic full refresh, a safety net for lost file events',
    default: '30s',
    accepts: 'a duration of at least 1s',
    parse: (raw: string) => atLeast(duration(raw), 1000, raw),
  },
  'shutdown-grace': {
    description: 'how long in-flight calls may take after SIGTERM',
    default: '5s',
    accepts: 'a duration',
    parse: duration,
  },
  'runtime-endpoint': {
    description: 'upstream CRI socket whose RuntimeReady is mirrored',
    accepts: 'unix:///path',
    parse: unixEndpoint,
  },
  'runtime-poll-interval': {
    description: 'how often the --runtime-endpoint Status is polled while it answers',
    default: '5s',
    accepts: 'a duration of at least 1s',
    parse: (raw: string) => atLeast(duration(raw), 1000, raw),
  },
  'runtime-timeout': {
    description: 'how long one poll of --runtime-endpoint may take',
    default: '2s',
    accepts: 'a duration of at least 100ms',
    parse: (raw: string) => atLeast(duration(raw), 100, raw),
  },
  kube: {
    description: 'write a Node condition and Events (auto: when in a cluster with NODE_NAME set)',
    default: 'auto',
    accepts: 'auto, on, off',
    parse: oneOf(['auto', 'on', 'off'] as const),
  },
  kubeconfig: { description: 'kubeconfig for out-of-cluster runs (default: in-cluster config)', parse: text },
  'kube-heartbeat': {
    description: 'rewrite the Node condition this often when nothing changed (plus up to 10% jitter)',
    default: '10m',
    accepts: 'a duration of at least 1s',
    parse: (raw: string) => atLeast(duration(raw), 1000, raw),
  },
  'node-name': { description: "this node's name", env: 'NODE_NAME', parse: text },
  'log-level': {
    description: 'log level',
    default: 'info',
    accepts: LOG_LEVELS.join(', '),
    parse: oneOf(LOG_LEVELS),
  },
  'log-format': {
    description: 'log format',
    default: 'json',
    accepts: 'json, text',
    parse: oneOf(['json', 'text'] as const),
  },
  help: helpFlag,
} as const;

export type ServeConfig = FlagValues<typeof serveFlags>;

function atLeast(value: number, min: number, raw: string): number {
  if (value < min) throw new Error(`"${raw}" is too short`);
  return value;
}

export const SERVE_SUMMARY =
  "Serve CRI RuntimeService/Status from the node's CNI config on a unix socket, with Prometheus metrics.";

export async function serve(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const config = parseFlags('serve', serveFlags, argv, env);
  if (config.help) {
    process.stdout.write(helpText('serve', SERVE_SUMMARY, serveFlags));
    return 0;
  }
  const problem = metricsFlagsProblem({
    mode: config['metrics-auth'],
    certFile: config['metrics-tls-cert'],
    keyFile: config['metrics-tls-key'],
  });
  if (problem) throw new UsageError(`cri-netstatus serve: ${problem}`);
  const log = createLogger(config['log-level'], config['log-format']);
  // Listen for signals before starting: one that arrives during start-up stops the agent once it is up.
  const stopRequested = new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  const agent = await startAgent(config, log);
  const signal = await stopRequested;
  log.info({ signal }, 'shutting down: draining in-flight calls');
  try {
    await agent.stop();
  } catch (error) {
    log.error({ err: error }, 'shutdown failed');
  }
  log.info('stopped');
  return 0;
}

export interface Agent {
  refresher: WorkerRefresher;
  verdicts: VerdictPublisher;
  metrics: AgentMetrics;
  /** host:port the metrics endpoint is bound to, or "off". */
  metricsAddress: string;
  stop(): Promise<void>;
}

/** What tests replace: the clock every stateful part reads. */
export interface AgentDependencies {
  clock?: Clock;
}

/**
 * Starts every part of the daemon; used by `serve` and by tests that run it in-process. The data
 * flows one way: conf dir → refresher → verdict publisher → views (Status answers, metrics, logs,
 * Node condition); the upstream mirror and the clock are the publisher's other inputs.
 */
export async function startAgent(
  config: ServeConfig,
  log: Logger,
  deps: AgentDependencies = {},
): Promise<Agent> {
  const clock = deps.clock ?? systemClock;
  // The scan runs in a worker thread: a slow or hung disk blocks that thread, never the servers.
  const refresher = new WorkerRefresher({
    confDir: config['cni-conf-dir'],
    binDirs: config['cni-bin-dir'],
    semantics: config.semantics === 'auto' ? 'isulad' : config.semantics, // auto: decided below
    maxFileSize: config['max-file-size'],
    clock,
    onError: logError(log, 'refreshing the network config failed'),
  });
  const staleAfterMs = config['stale-after'] > 0 ? config['stale-after'] : undefined;
  const onError = logError(log, 'a view of the verdict failed');
  const refreshTimeoutMs = config['refresh-timeout'];
  let latestProbe: PluginStatusReport | undefined;
  const prober = new PluginProber({
    mode: config['plugin-status'],
    timeoutMs: config['plugin-status-timeout'],
    clock,
    onReport: (report) => {
      latestProbe = report;
      verdicts.pluginStatusChanged(report);
    },
  });
  const verdicts = new VerdictPublisher({
    source: refresher,
    staleAfterMs,
    refreshTimeoutMs,
    probes: prober,
    clock,
    onError,
  });
  const metrics = new AgentMetrics(VERSION, verdicts);
  for (const view of [metrics, new TransitionLog(log)]) verdicts.register(view);
  const stops = new StopStack(log);
  stops.push(
    () => refresher.stop(),
    () => prober.stop(),
  );
  try {
    // The first scan, bounded like a Status call's: a hung disk at start-up must not keep the socket down.
    await verdicts.fresh(Deadline.after(clock, refreshTimeoutMs));
    const endpoint = config['runtime-endpoint'];
    const mirror = endpoint ? await startMirror(endpoint, config, log, metrics, verdicts, clock) : undefined;
    if (mirror) stops.push(() => mirror.stop());
    if (config.semantics === 'auto') {
      const picked = pickAutoSemantics(mirror?.runtime);
      refresher.useSemantics(picked.semantics);
      await verdicts.fresh(Deadline.after(clock, refreshTimeoutMs)); // bounded, like the first scan
      log.info({ semantics: picked.semantics }, `--semantics auto picked ${picked.semantics}: ${picked.why}`);
    }
    const info = {
      stats: refresher.stats,
      probes: {
        latest: () => latestProbe,
        mode: config['plugin-status'],
        policy: () => prober.policy(verdicts.current.state),
      },
      config: effectiveConfig(config, refresher.options.semantics),
      version: versionInfo(),
      upstream: mirror,
    };
    const answers = new StatusAnswers(info);
    verdicts.register(answers);
    const cri = await startCri(config, verdicts, answers, metrics, log, clock);
    stops.push(() => cri.stop(config['shutdown-grace']));
    const watcher = startWatcher(config, refresher, clock, log);
    // Probes also run at the resync interval, so metrics and the Node condition follow a plugin
    // when nobody calls Status.
    const probeResync = every(
      clock,
      config['resync-interval'],
      () => void verdicts.probe(verdicts.current.state),
    );
    stops.push(
      () => watcher.stop(),
      () => probeResync.cancel(),
      () => verdicts.stop(),
    );

    const address = config['metrics-address'];
    const http = address ? await startMetrics(config, address, metrics, cri, log, stops) : undefined;
    const kube = await startKube(config, verdicts, metrics, log, clock);
    if (kube) stops.push(() => kube.stop());

    const metricsAddress = boundAddress(http);
    logServing(log, config, refresher.options.semantics, metricsAddress);
    return { refresher, verdicts, metrics, metricsAddress, stop: () => stops.stopAll() };
  } catch (error) {
    await stops.stopAll();
    throw error;
  }
}

function logError(log: Logger, what: string): (error: unknown) => void {
  return (error) => log.error({ err: error }, what);
}

async function startCri(
  config: ServeConfig,
  verdicts: VerdictPublisher,
  answers: StatusAnswers,
  metrics: AgentMetrics,
  log: Logger,
  clock: Clock,
): Promise<CriServer> {
  const cri = new CriServer({
    refreshTimeoutMs: config['refresh-timeout'],
    clock,
    socketPath: config.socket,
    socketMode: config['socket-mode'],
    verdicts,
    answers,
    version: VERSION,
    calls: metrics,
    onError: logError(log, 'answering a CRI call failed'),
  });
  await cri.start();
  return cri;
}

function startWatcher(
  config: ServeConfig,
  refresher: WorkerRefresher,
  clock: Clock,
  log: Logger,
): ConfDirWatcher {
  const watcher = new ConfDirWatcher(refresher, {
    resyncIntervalMs: config['resync-interval'],
    clock,
    onWatchError: (path, error) =>
      log.warn(
        { path, err: error.message },
        'file watch failed; relying on the periodic resync until it can be re-armed',
      ),
    onDirReplaced: (confDir) =>
      log.warn(
        { path: confDir },
        'the CNI conf dir was removed or renamed and a new one now stands at its path: watching the new dir and serving from it (containerd 2.x exits here with "cni conf dir is removed, stop watching"; if the node runs it, check that the runtime restarted)',
      ),
  });
  watcher.start();
  return watcher;
}

/** /metrics, /healthz and /readyz; HTTPS with Kubernetes authn/authz for /metrics under --metrics-auth kubernetes. */
async function startMetrics(
  config: ServeConfig,
  address: NonNullable<ServeConfig['metrics-address']>,
  metrics: AgentMetrics,
  cri: CriServer,
  log: Logger,
  stops: StopStack,
): Promise<Server> {
  const security = await startMetricsSecurity({
    mode: config['metrics-auth'],
    certFile: config['metrics-tls-cert'],
    keyFile: config['metrics-tls-key'],
    kubeconfig: config.kubeconfig,
    nodeName: config['node-name'],
    env: process.env,
    log,
    registry: metrics.registry,
  });
  if (security) stops.push(() => security.stop());
  const http = await startHttpEndpoint({
    address,
    registry: metrics.registry,
    ready: () => cri.readiness(),
    ...(security ? { tls: security.tls, guard: security.guard } : {}),
  });
  security?.attach(http);
  stops.push(() => closeServer(http));
  return http;
}

/** The Node condition and Events (--kube), a view registered with the verdict publisher. */
function startKube(
  config: ServeConfig,
  verdicts: VerdictPublisher,
  metrics: AgentMetrics,
  log: Logger,
  clock: Clock,
): ReturnType<typeof startKubeReporter> {
  return startKubeReporter({
    mode: config.kube,
    kubeconfig: config.kubeconfig,
    nodeName: config['node-name'],
    heartbeatMs: config['kube-heartbeat'],
    verdicts,
    log,
    registry: metrics.registry,
    env: process.env,
    clock,
  });
}

function logServing(log: Logger, config: ServeConfig, semantics: Semantics, metricsAddress: string): void {
  log.info(
    {
      socket: config.socket,
      confDir: config['cni-conf-dir'],
      semantics,
      metrics: metricsAddress,
      version: VERSION,
      query: `cri-netstatus status --socket ${config.socket}`,
    },
    'serving CRI RuntimeService/Status',
  );
}

/** Mirrors --runtime-endpoint into the verdict; waits for its first poll (at most the poll timeout). */
async function startMirror(
  endpoint: string,
  config: ServeConfig,
  log: Logger,
  metrics: AgentMetrics,
  verdicts: VerdictPublisher,
  clock: Clock,
): Promise<UpstreamMirror> {
  const mirror = startUpstreamMirror({
    socketPath: endpoint,
    log,
    registry: metrics.registry,
    networkReady: () => verdicts.current.networkReady,
    verdictReady: (semantics) => verdicts.current.state.verdicts[semantics].ready,
    onRuntimeCondition: (condition) => verdicts.runtimeChanged(condition),
    ownSocketPath: config.socket,
    intervalMs: config['runtime-poll-interval'],
    timeoutMs: config['runtime-timeout'],
    clock,
  });
  await mirror.firstPoll; // serve the upstream's answer from the first call
  return mirror;
}

/** The effective flags, as `info.config` shows them. */
function effectiveConfig(config: ServeConfig, semantics: Semantics): Record<string, unknown> {
  const address = config['metrics-address'];
  const staleAfterMs = config['stale-after'];
  return {
    cniConfDir: config['cni-conf-dir'],
    cniBinDirs: config['cni-bin-dir'],
    socket: config.socket,
    metricsAddress: address ? `${address.host}:${address.port}` : 'off',
    metricsAuth: config['metrics-auth'],
    semantics,
    staleAfter: staleAfterMs ? `${staleAfterMs / 1000}s` : '0',
    refreshTimeout: `${config['refresh-timeout'] / 1000}s`,
    pluginStatus: config['plugin-status'],
    pluginStatusTimeout: `${config['plugin-status-timeout'] / 1000}s`,
    maxFileSize: config['max-file-size'],
    resyncInterval: `${config['resync-interval'] / 1000}s`,
    runtimeEndpoint: config['runtime-endpoint'] ?? null,
    kube: config.kube,
    nodeName: config['node-name'] ?? null,
  };
}

/**
 * Everything started is stopped in reverse order, also when a later part fails to start: a
 * half-started agent must not keep serving (or hold the socket) after `serve` has given up.
 */
class StopStack {
  private readonly stops: (() => unknown)[] = [];

  constructor(private readonly log: Logger) {}

  push(...stops: (() => unknown)[]): void {
    this.stops.push(...stops);
  }

  async stopAll(): Promise<void> {
    for (const stop of this.stops.splice(0).reverse()) {
      try {
        await stop();
      } catch (error) {
        this.log.error({ err: error }, 'stopping a part of the agent failed');
      }
    }
  }
}

function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise<void>((done) => server.close(() => done()));
}

function boundAddress(server: Server | undefined): string {
  const bound = server?.address();
  return bound && typeof bound === 'object' ? `${bound.address}:${bound.port}` : 'off';
}
