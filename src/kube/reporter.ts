// Writes the agent's Node condition and Events through the Kubernetes API (--kube).
// Owned by the Kubernetes API work (issue 4); this first version only declares the interface.
import type { Registry } from 'prom-client';
import type { Refresher } from '../cni/refresher.js';
import type { Logger } from '../log.js';

export interface KubeReporterOptions {
  mode: 'auto' | 'on' | 'off';
  kubeconfig?: string | undefined;
  nodeName?: string | undefined;
  refresher: Refresher;
  /** NetworkReady exactly as Status serves it now (includes --stale-after). */
  networkReady: () => boolean;
  log: Logger;
  registry: Registry;
  env: NodeJS.ProcessEnv;
}

export interface KubeReporter {
  stop(): Promise<void>;
}

/** Starts the reporter, or returns undefined when --kube resolves to off. */
export function startKubeReporter(options: KubeReporterOptions): Promise<KubeReporter | undefined> {
  if (options.mode === 'on') {
    return Promise.reject(new Error('--kube on: the Kubernetes reporter is not available in this build'));
  }
  return Promise.resolve(undefined);
}
