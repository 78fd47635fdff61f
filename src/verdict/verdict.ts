// The node's network verdict: one immutable value, computed by one pure function from every input
// the agent has (the refreshed network state, RuntimeReady as served or mirrored, and the time
// against --stale-after). Every view reads it (the CRI Status answer, the metrics, the logs, the
// Node condition and its Events) and none re-derives a reason. A new verdict, with the next
// generation, exists only when an input changes or the --stale-after deadline passes, so a view
// may cache on the generation alone.
import { describeChanges } from '../cni/changes.js';
import type { Change } from '../cni/changes.js';
import { reportFor } from '../cni/plugin-status.js';
import type { PluginStatusReport } from '../cni/plugin-status.js';
import type { NetworkState } from '../cni/types.js';
import {
  REFRESH_TIMEOUT_WHY,
  pluginFailureText,
  configUpToDate,
  isStaleTooLong,
  networkReadyCondition,
  refreshTimeoutCondition,
} from '../cri/conditions.js';
import type { RuntimeCondition } from '../gen/runtime/v1/api.js';
import { desiredCondition } from '../kube/condition.js';
import type { ConditionValue } from '../kube/condition.js';

export interface VerdictInputs {
  readonly state: NetworkState;
  /** RuntimeReady: true while serving, or mirrored from the node's runtime (--runtime-endpoint). */
  readonly runtime: RuntimeCondition;
  /** --stale-after: serving a last good config longer than this turns NetworkReady false. */
  readonly staleAfterMs: number | undefined;
  /** Set while the newest fact is a Status call that gave up waiting for its refresh; cleared by the next completed refresh. */
  readonly refreshTimeout?: RefreshTimeout | undefined;
  /** The newest CNI STATUS probe whose results differ from the one before (--plugin-status). */
  readonly pluginStatus?: PluginStatusReport | undefined;
}

/** A refresh that did not finish within a Status call's deadline (--refresh-timeout). */
export interface RefreshTimeout {
  /** When the state stopped being current: the hung refresh was asked for (the --stale-after clock starts here). */
  readonly since: number;
  /** When the last refresh completed (undefined: none yet); fixed for the whole episode. */
  readonly lastRefreshedAt: number | undefined;
  /** --refresh-timeout as configured, for the message. */
  readonly timeoutMs: number;
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
  /** The STATUS probe of the network in force, when one has run for it (not for an older network). */
  readonly pluginStatus: PluginStatusReport | undefined;
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
  const { state, runtime, staleAfterMs, refreshTimeout } = inputs;
  const pluginStatus = reportFor(state, inputs.pluginStatus);
  // A timed-out refresh makes the state stale as a failed one does: --stale-after runs from the older of the two.
  const staleSince =
    refreshTimeout === undefined
      ? state.staleSince
      : Math.min(state.staleSince ?? Infinity, refreshTimeout.since);
  const judged = staleSince === state.staleSince ? state : { ...state, staleSince };
  const staleTooLong = isStaleTooLong(judged, now, staleAfterMs);
  if (
    previous !== undefined &&
    previous.state === state &&
    previous.inputs.refreshTimeout === refreshTimeout &&
    previous.pluginStatus === pluginStatus &&
    previous.staleTooLong === staleTooLong &&
    previous.inputs.staleAfterMs === staleAfterMs &&
    sameCondition(previous.inputs.runtime, runtime)
  ) {
    return previous;
  }
  const pluginFailure = pluginStatus?.failed && pluginFailureText(state.semantics, pluginStatus.failed);
  const network = networkReadyCondition(
    judged,
    now,
    staleAfterMs,
    refreshTimeout && REFRESH_TIMEOUT_WHY,
    pluginFailure,
  );
  const expiresAt =
    !staleTooLong && staleAfterMs !== undefined && staleSince !== undefined
      ? staleSince + staleAfterMs + 1
      : undefined;
  return {
    generation: (previous?.generation ?? -1) + 1,
    inputs,
    state,
    conditions: [
      runtime,
      network,
      refreshTimeout ? refreshTimeoutCondition(state, refreshTimeout) : configUpToDate(state),
    ],
    runtimeReady: runtime.status,
    networkReady: network.status,
    staleTooLong,
    nodeCondition: desiredCondition(
      judged,
      network.status,
      refreshTimeout && REFRESH_TIMEOUT_WHY,
      staleTooLong ? undefined : pluginStatus,
    ),
    pluginStatus,
    changes: previous === undefined || previous.state === state ? [] : describeChanges(previous.state, state),
    expiresAt,
  };
}

function sameCondition(a: RuntimeCondition, b: RuntimeCondition): boolean {
  return a === b || (a.status === b.status && a.reason === b.reason && a.message === b.message);
}
