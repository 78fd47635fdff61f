// The node's network verdict: one immutable value, computed by one pure function from every input
// the agent has (the refreshed network state, RuntimeReady as served or mirrored, and the time
// against --stale-after). Every view reads it (the CRI Status answer, the metrics, the logs, the
// Node condition and its Events) and none re-derives a reason. A new verdict, with the next
// generation, exists only when an input changes or the --stale-after deadline passes, so a view
// may cache on the generation alone.
import { describeChanges } from '../cni/changes.js';
import type { Change } from '../cni/changes.js';
import type { NetworkState } from '../cni/types.js';
import { configUpToDate, isStaleTooLong, networkReadyCondition } from '../cri/conditions.js';
import type { RuntimeCondition } from '../gen/runtime/v1/api.js';
import { desiredCondition } from '../kube/condition.js';
import type { ConditionValue } from '../kube/condition.js';

export interface VerdictInputs {
  readonly state: NetworkState;
  /** RuntimeReady: true while serving, or mirrored from the node's runtime (--runtime-endpoint). */
  readonly runtime: RuntimeCondition;
  /** --stale-after: serving a last good config longer than this turns NetworkReady false. */
  readonly staleAfterMs: number | undefined;
}

export interface Verdict {
  /** Increments with every new verdict; 0 before the first refresh. */
  readonly generation: number;
  readonly inputs: VerdictInputs;
  /** `inputs.state`, the network state every view describes. */
  readonly state: NetworkState;
  /** RuntimeReady, NetworkReady and NetworkConfigUpToDate, in the order Status serves them. */
  readonly conditions: readonly [RuntimeCondition, RuntimeCondition, RuntimeCondition];
  readonly runtimeReady: boolean;
  readonly networkReady: boolean;
  /** A last good config has been served for longer than --stale-after. */
  readonly staleTooLong: boolean;
  /** What the agent's Node condition says (without its times). */
  readonly nodeCondition: ConditionValue;
  /** What changed in the conf dir since the previous verdict; empty when only the runtime or the time moved. */
  readonly changes: readonly Change[];
  /** When this verdict gives way to another with no new input (the --stale-after deadline). */
  readonly expiresAt: number | undefined;
}

/**
 * The verdict for `inputs` at `now`. Returns `previous` itself when nothing it says would change,
 * so the generation moves only with what views can observe.
 */
export function decideVerdict(inputs: VerdictInputs, now: number, previous: Verdict | undefined): Verdict {
  const { state, runtime, staleAfterMs } = inputs;
  const staleTooLong = isStaleTooLong(state, now, staleAfterMs);
  if (
    previous !== undefined &&
    previous.state === state &&
    previous.staleTooLong === staleTooLong &&
    previous.inputs.staleAfterMs === staleAfterMs &&
    sameCondition(previous.inputs.runtime, runtime)
  ) {
    return previous;
  }
  const network = networkReadyCondition(state, now, staleAfterMs);
  const expiresAt =
    !staleTooLong && staleAfterMs !== undefined && state.staleSince !== undefined
      ? state.staleSince + staleAfterMs + 1
      : undefined;
  return {
    generation: (previous?.generation ?? -1) + 1,
    inputs,
    state,
    conditions: [runtime, network, configUpToDate(state)],
    runtimeReady: runtime.status,
    networkReady: network.status,
    staleTooLong,
    nodeCondition: desiredCondition(state, network.status),
    changes: previous === undefined || previous.state === state ? [] : describeChanges(previous.state, state),
    expiresAt,
  };
}

function sameCondition(a: RuntimeCondition, b: RuntimeCondition): boolean {
  return a === b || (a.status === b.status && a.reason === b.reason && a.message === b.message);
}
