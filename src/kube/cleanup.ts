// Removes the agent's Node condition from every Node: what the chart's uninstall hook runs, so a
// removed agent leaves no stale condition behind (node-problem-detector's most-requested fix,
// NPD #423/#470/#1011). Needs `list nodes` and `patch nodes/status`, nothing else.
import { errorText } from '../util/text.js';
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
        const message = errorText(error);
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
