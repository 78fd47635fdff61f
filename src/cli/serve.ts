// `cri-netstatus serve`: the daemon. Wires the one-way flow: conf dir → refresher (state) →
// gRPC Status, metrics and logs (and the Kubernetes view when enabled).
import { resolve } from 'node:path';
import { Refresher } from '../cni/refresher.js';
import { DEFAULT_MAX_FILE_SIZE } from '../cni/files.js';
import { parseSemanticsFlag, pickAutoSemantics, warnFlag } from '../cni/profiles.js';
import { SEMANTICS } from '../cni/types.js';
import { ConfDirWatcher } from '../cni/watcher.js';
import { RUNTIME_READY, networkReadyCondition } from '../cri/conditions.js';
import { CriServer } from '../cri/server.js';
import { createLogger, LOG_LEVELS } from '../log.js';
import type { Logger } from '../log.js';
import { startHttpEndpoint } from '../metrics/http.js';
import { AgentMetrics } from '../metrics/registry.js';
import { startKubeReporter } from '../kube/reporter.js';
import { startUpstreamMirror } from '../upstream/mirror.js';
import type { UpstreamMirror } from '../upstream/mirror.js';
import type { RuntimeCondition } from '../gen/runtime/v1/api.js';
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
  refresher: Refresher;
  metrics: AgentMetrics;
  /** host:port the metrics endpoint is bound to, or "off". */
  metricsAddress: string;
  stop(): Promise<void>;
}

/** Starts every part of the daemon; used by `serve` and by tests that run it in-process. */
export async function startAgent(config: ServeConfig, log: Logger): Promise<Agent> {
  const refresher = new Refresher({
    confDir: config['cni-conf-dir'],
    binDirs: config['cni-bin-dir'],
    semantics: config.semantics === 'auto' ? 'isulad' : config.semantics, // auto: decided below
    maxFileSize: config['max-file-size'],
    onError: (error) => log.error({ err: error }, 'refreshing the network config failed'),
  });
  const staleAfterMs = config['stale-after'] > 0 ? config['stale-after'] : undefined;
  // NetworkReady as Status serves it, for the metric and the Node condition: one rule for all three.
  const networkReady = (): boolean => networkReadyCondition(refresher.state, Date.now(), staleAfterMs).status;
  let upstream: UpstreamMirror | undefined;
  const runtimeCondition = (): RuntimeCondition => upstream?.runtimeCondition() ?? RUNTIME_READY;

  const metrics = new AgentMetrics({
    version: VERSION,
    state: () => refresher.state,
    networkReady,
    runtimeReady: () => runtimeCondition().status,
    lastSuccessAt: () => refresher.stats.lastSuccessAt,
  });
  refresher.onRefresh((report) => {
    metrics.observeRefresh(report);
    for (const change of report.changes) {
      const { severity, message, ...fields } = change;
      if (severity === 'warning') log.warn(fields, message);
      else log.info(fields, message);
    }
  });
  refresher.refresh();

  // Everything started is stopped in reverse order, also when a later part fails to start: a
  // half-started agent must not keep serving (or hold the socket) after `serve` has given up.
  const stops: (() => unknown)[] = [];
  const stopAll = async (): Promise<void> => {
    for (const stop of stops.splice(0).reverse()) {
      try {
        await stop();
      } catch (error) {
        log.error({ err: error }, 'stopping a part of the agent failed');
      }
    }
  };
  try {
    const endpoint = config['runtime-endpoint'];
    if (endpoint) {
      const mirror = startUpstreamMirror({
        socketPath: endpoint,
        log,
        registry: metrics.registry,
        networkReady,
        verdictReady: (semantics) => refresher.state.verdicts[semantics].ready,
        ownSocketPath: config.socket,
        intervalMs: config['runtime-poll-interval'],
        timeoutMs: config['runtime-timeout'],
      });
      upstream = mirror;
      stops.push(() => mirror.stop());
      await mirror.firstPoll; // at most the poll timeout: serve the upstream's answer from the first call
    }
    if (config.semantics === 'auto') {
      const picked = pickAutoSemantics(upstream?.runtime);
      refresher.useSemantics(picked.semantics);
      log.info({ semantics: picked.semantics }, `--semantics auto picked ${picked.semantics}: ${picked.why}`);
    }

    const effective = {
      cniConfDir: config['cni-conf-dir'],
      cniBinDirs: config['cni-bin-dir'],
      socket: config.socket,
      metricsAddress: config['metrics-address']
        ? `${config['metrics-address'].host}:${config['metrics-address'].port}`
        : 'off',
      semantics: refresher.options.semantics,
      staleAfter: staleAfterMs ? `${staleAfterMs / 1000}s` : '0',
      maxFileSize: config['max-file-size'],
      resyncInterval: `${config['resync-interval'] / 1000}s`,
      runtimeEndpoint: config['runtime-endpoint'] ?? null,
      kube: config.kube,
      nodeName: config['node-name'] ?? null,
    };
    const cri = new CriServer({
      socketPath: config.socket,
      socketMode: config['socket-mode'],
      refresher,
      version: VERSION,
      staleAfterMs,
      runtimeCondition,
      infoContext: () => ({
        stats: refresher.stats,
        config: effective,
        version: versionInfo(),
        ...(upstream ? { upstream: upstream.info() } : {}),
      }),
      onCallFinished: (method, code) => {
        if (method === 'Status') metrics.statusServed(code);
      },
      onError: (error) => log.error({ err: error }, 'answering a CRI call failed'),
    });
    await cri.start();
    stops.push(() => cri.stop(config['shutdown-grace']));

    const watcher = new ConfDirWatcher(refresher, {
      resyncIntervalMs: config['resync-interval'],
      onWatchError: (path, error) =>
        log.warn(
          { path, err: error.message },
          'file watch failed; relying on the periodic resync until it can be re-armed',
        ),
    });
    watcher.start();
    stops.push(() => watcher.stop());

    const address = config['metrics-address'];
    const http = address
      ? await startHttpEndpoint({
          address,
          registry: metrics.registry,
          ready: () => (cri.isServing ? { ok: true } : { ok: false, why: 'the CRI socket is not serving' }),
        })
      : undefined;
    if (http) {
      stops.push(() => {
        http.closeAllConnections();
        return new Promise<void>((done) => http.close(() => done()));
      });
    }

    const kube = await startKubeReporter({
      mode: config.kube,
      kubeconfig: config.kubeconfig,
      nodeName: config['node-name'],
      refresher,
      networkReady,
      log,
      registry: metrics.registry,
      env: process.env,
      heartbeatMs: config['kube-heartbeat'],
    });
    if (kube) stops.push(() => kube.stop());

    const bound = http?.address();
    const metricsAddress = bound && typeof bound === 'object' ? `${bound.address}:${bound.port}` : 'off';
    log.info(
      {
        socket: config.socket,
        confDir: config['cni-conf-dir'],
        semantics: refresher.options.semantics,
        metrics: metricsAddress,
        version: VERSION,
        query: `cri-netstatus status --socket ${config.socket}`,
      },
      'serving CRI RuntimeService/Status',
    );
    return { refresher, metrics, metricsAddress, stop: stopAll };
  } catch (error) {
    await stopAll();
    throw error;
  }
}
