// Removes the agent's Node condition from every Node: what the chart's uninstall hook runs, so a
// removed agent leaves no stale condition behind (node-problem-detector's most-requested fix,
// NPD #423/#470/#1011). Needs `list nodes` and `patch nodes/status`, nothing else.
import { parseArgs } from 'node:util';
import { CONDITION_TYPE, removalPatch } from './condition.js';
import type { KubeApi } from './client.js';

export interface CleanupOptions {
  /**
   * After the first pass, wait this long and remove the condition again from Nodes where it came
   * back: agents still inside their termination grace period may write once more.
   */
  settleMs?: number;
  log?: (line: string) => void;
}

export interface CleanupResult {
  /** Node names the condition was removed from (a Node twice when it came back). */
  removed: string[];
  /** Node names where the removal failed, with the error. */
  failed: { node: string; error: string }[];
}

/** Removes CONDITION_TYPE from every Node that carries it. */
export async function removeConditionEverywhere(
  api: KubeApi,
  options: CleanupOptions = {},
): Promise<CleanupResult> {
  const log = options.log ?? (() => undefined);
  const result: CleanupResult = { removed: [], failed: [] };
  const pass = async (): Promise<void> => {
    for (const node of await api.listNodes()) {
      const name = node.metadata?.name;
      if (!name || !node.status?.conditions?.some((condition) => condition.type === CONDITION_TYPE)) continue;
      try {
        await api.patchNodeStatus(name, removalPatch());
        result.removed.push(name);
        log(`removed the ${CONDITION_TYPE} condition from node ${name}`);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        result.failed.push({ node: name, error: message });
        log(`cannot remove the ${CONDITION_TYPE} condition from node ${name}: ${message}`);
      }
    }
  };
  await pass();
  if (options.settleMs) {
    await new Promise((resolve) => setTimeout(resolve, options.settleMs));
    await pass();
  }
  return result;
}

export const KUBE_CLEANUP_SUMMARY = `Remove the ${CONDITION_TYPE} condition from every Node (run by the chart on uninstall).`;

/**
 * `cri-netstatus kube-cleanup [--kubeconfig PATH] [--settle SECONDS]`: exit 0 when every removal
 * succeeded, 1 otherwise (the hook Job then fails visibly instead of leaving conditions behind).
 */
export async function kubeCleanup(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      kubeconfig: { type: 'string' },
      settle: { type: 'string', default: '0' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(
      `Usage: cri-netstatus kube-cleanup [--kubeconfig PATH] [--settle SECONDS]\n\n${KUBE_CLEANUP_SUMMARY}\nWithout --kubeconfig the in-cluster service account is used.\n`,
    );
    return 0;
  }
  const settle = Number(values.settle);
  if (!Number.isFinite(settle) || settle < 0)
    throw new Error(`--settle "${values.settle}" is not a number of seconds`);
  const config = await import('./config.js');
  const kubeconfig = values.kubeconfig ?? env.CRI_NETSTATUS_KUBECONFIG;
  const access = kubeconfig ? await config.loadKubeconfig(kubeconfig) : config.loadInCluster(env);
  const { createKubeApi } = await import('./client.js');
  const api = createKubeApi(access);
  try {
    const result = await removeConditionEverywhere(api, {
      settleMs: settle * 1000,
      log: (line) => process.stdout.write(`${line}\n`),
    });
    process.stdout.write(`kube-cleanup: removed ${result.removed.length}, failed ${result.failed.length}\n`);
    return result.failed.length === 0 ? 0 : 1;
  } finally {
    api.close();
  }
}
