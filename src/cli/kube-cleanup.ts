// `cri-netstatus kube-cleanup`: what the chart's uninstall hook runs. Exit 0 when every removal
// succeeded, 1 otherwise (the hook Job then fails visibly instead of leaving conditions behind).
import { CONDITION_TYPE } from '../kube/condition.js';
import { removeConditionEverywhere } from '../kube/cleanup.js';
import { helpFlag, helpText, parseFlags, text } from './flags.js';

export const kubeCleanupFlags = {
  kubeconfig: {
    description: 'kubeconfig to use instead of the in-cluster service account',
    accepts: 'a path',
    parse: text,
  },
  settle: {
    description:
      'after the first pass, wait this long and remove the condition again where a terminating agent wrote it back',
    default: '0',
    accepts: 'a number of seconds',
    parse: seconds,
  },
  help: helpFlag,
} as const;

export const KUBE_CLEANUP_SUMMARY = `Remove the ${CONDITION_TYPE} condition from every Node (run by the chart on uninstall).`;

export async function kubeCleanup(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const flags = parseFlags('kube-cleanup', kubeCleanupFlags, argv, env);
  if (flags.help) {
    process.stdout.write(helpText('kube-cleanup', KUBE_CLEANUP_SUMMARY, kubeCleanupFlags));
    return 0;
  }
  const config = await import('../kube/config.js');
  const access = flags.kubeconfig ? await config.loadKubeconfig(flags.kubeconfig) : config.loadInCluster(env);
  const { createKubeApi } = await import('../kube/client.js');
  const api = createKubeApi(access);
  try {
    const result = await removeConditionEverywhere(api, {
      settleMs: flags.settle * 1000,
      log: (line) => process.stdout.write(`${line}\n`),
    });
    process.stdout.write(`kube-cleanup: removed ${result.removed.length}, failed ${result.failed.length}\n`);
    return result.failed.length === 0 ? 0 : 1;
  } finally {
    api.close();
  }
}

function seconds(raw: string): number {
  const value = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(value) || value < 0)
    throw new Error(`"${raw}" is not a number of seconds`);
  return value;
}
