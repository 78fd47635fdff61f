// Writes the agent's Node condition and Events through the Kubernetes API (--kube). This module
// decides whether the reporter runs and with which identity; node-reporter.ts does the work. The
// API client (and with it @kubernetes/client-node) is loaded only when the reporter runs, so
// `--kube off` costs no memory for it.
import type { Registry } from 'prom-client';
import { KubeConfigError } from '../errors.js';
import { errorText } from '../util/text.js';
import type { Logger } from '../log.js';
import type { Clock } from '../util/clock.js';
import type { VerdictPublisher } from '../verdict/publisher.js';
import type { KubeApi } from './client.js';
import type { ClusterAccess } from './config.js';
import { DEFAULT_HEARTBEAT_MS, NodeReporter } from './node-reporter.js';

export interface KubeReporterOptions {
  mode: 'auto' | 'on' | 'off';
  kubeconfig?: string | undefined;
  nodeName?: string | undefined;
  /** The reporter registers itself here as a view of the verdict. */
  verdicts: Pick<VerdictPublisher, 'current' | 'register'>;
  log: Logger;
  registry: Registry;
  env: NodeJS.ProcessEnv;
  /** Heartbeat period of the Node condition (--kube-heartbeat); 10 min by default. */
  heartbeatMs?: number | undefined;
  clock: Clock;
}

export interface KubeReporter {
  stop(): Promise<void>;
}

/** Whether --kube resolves to on, and with which identity, or why not. */
export type KubeDecision =
  | { on: false; why: string }
  | { on: true; nodeName: string; source: { kubeconfig: string } | { inCluster: true } };

/**
 * `off`: never. `on`: always, failing when the node name or a config is missing. `auto`: only in
 * a Pod (service-account env and token present) that knows its node name (NODE_NAME).
 */
export function decide(
  options: Pick<KubeReporterOptions, 'mode' | 'kubeconfig' | 'nodeName' | 'env'>,
  inCluster: boolean,
): KubeDecision {
  const { mode, kubeconfig, nodeName } = options;
  if (mode === 'off') return { on: false, why: '--kube off' };
  if (mode === 'auto') {
    if (!inCluster) {
      return {
        on: false,
        why: `--kube auto: not running in a Pod with a service-account token${kubeconfig ? ' (--kubeconfig is used only with --kube on)' : ''}`,
      };
    }
    if (!nodeName)
      return { on: false, why: '--kube auto: the node name is unknown (set NODE_NAME from spec.nodeName)' };
    return { on: true, nodeName, source: kubeconfig ? { kubeconfig } : { inCluster: true } };
  }
  if (!nodeName) {
    throw new KubeConfigError(
      '--kube on needs the node name: pass --node-name or set NODE_NAME (in a DaemonSet: env NODE_NAME from fieldRef spec.nodeName)',
    );
  }
  if (kubeconfig) return { on: true, nodeName, source: { kubeconfig } };
  if (!inCluster) {
    throw new KubeConfigError(
      '--kube on needs API access: run in a Pod with a service-account token, or pass --kubeconfig PATH',
    );
  }
  return { on: true, nodeName, source: { inCluster: true } };
}

/** Starts the reporter, or returns undefined when --kube resolves to off. */
export async function startKubeReporter(options: KubeReporterOptions): Promise<KubeReporter | undefined> {
  if (options.mode === 'off') return undefined;
  const config = await import('./config.js');
  const decision = decide(options, config.inClusterAvailable(options.env));
  if (!decision.on) {
    if (options.mode === 'auto') options.log.info(`Kubernetes reporting is off: ${decision.why}`);
    return undefined;
  }
  let access: ClusterAccess;
  try {
    access =
      'kubeconfig' in decision.source
        ? await config.loadKubeconfig(decision.source.kubeconfig)
        : config.loadInCluster(options.env);
  } catch (error) {
    throw new KubeConfigError(`--kube: ${errorText(error)}`);
  }
  const { createKubeApi } = await import('./client.js');
  const api: KubeApi = createKubeApi(access);
  const { verdicts } = options;
  const reporter = new NodeReporter({
    api,
    nodeName: decision.nodeName,
    verdict: verdicts.current,
    log: options.log,
    registry: options.registry,
    heartbeatMs: options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS,
    clock: options.clock,
  });
  verdicts.register(reporter);
  reporter.start();
  options.log.info(
    { node: decision.nodeName, api: access.server, identity: access.source },
    'Kubernetes reporting on: Node condition and Events',
  );
  return { stop: () => reporter.stop() };
}
