// The agent's Node condition, as pure functions of the network state: what it should say, when it
// last transitioned (kept across agent restarts by adopting the Node's own record), and the
// strategic-merge patch that writes it. No I/O here.
import type { PluginStatusReport } from '../cni/plugin-status.js';
import { noNetworkConfigFound } from '../cni/types.js';
import type { NetworkState } from '../cni/types.js';

/** The one Node condition this agent owns. Positive polarity, like `Ready`: True means healthy. */
export const CONDITION_TYPE = 'CNIConfigReady';

/** Every reason the condition can carry (CamelCase, stable: alerts and runbooks key on them). */
export const CONDITION_REASONS = {
  /** True: the default network is loaded from the current content of its file. */
  loaded: 'NetworkConfigLoaded',
  /** True: a refresh failed and the last good config of the file is still in force (see message). */
  lastGood: 'LastGoodConfigServed',
  /** False: a last good config has been served for longer than --stale-after. */
  staleTooLong: 'NetworkConfigStale',
  /** False: the conf dir has no candidate file. */
  noConfig: 'NoNetworkConfig',
  /** False: candidate files exist but none yields a network under the configured semantics. */
  invalid: 'InvalidNetworkConfig',
  /** False: the conf dir itself cannot be listed. */
  dirUnreadable: 'ConfDirUnreadable',
  /** False: every config is valid but the plugin binaries it names are missing (crio semantics). */
  pluginMissing: 'CNIPluginNotFound',
  /** True: a refresh of the conf dir outlived a Status call's --refresh-timeout; the last state is served. */
  refreshTimeout: 'RefreshTimeout',
  /** False: the config loaded, but a plugin's CNI STATUS failed (--plugin-status). */
  pluginNotReady: 'CNIPluginNotReady',
} as const;
export type ConditionReason = (typeof CONDITION_REASONS)[keyof typeof CONDITION_REASONS];

export type ConditionStatus = 'True' | 'False' | 'Unknown';

/** What the condition says, without times. */
export interface ConditionValue {
  status: ConditionStatus;
  reason: ConditionReason;
  message: string;
}

/** The condition as the agent tracks it: the value plus when status or reason last changed. */
export interface TrackedCondition extends ConditionValue {
  /** ms since epoch, whole seconds (the API stores RFC 3339 seconds). */
  lastTransitionTime: number;
  /** True once this process has seen the condition change; an adopted time must not override that. */
  transitioned: boolean;
}

/** A condition as read back from a Node (only the fields this module needs). */
export interface ExistingCondition {
  type: string;
  status: string;
  reason?: string | undefined;
  message?: string | undefined;
  lastTransitionTime?: Date | string | undefined;
}

/** Node condition messages are shown by `kubectl describe node`; keep them readable. */
export const MAX_MESSAGE_LENGTH = 1024;

export function truncate(message: string, max = MAX_MESSAGE_LENGTH): string {
  return message.length <= max ? message : `${message.slice(0, max - 1)}…`;
}

/**
 * What the condition should say for `state`, given NetworkReady exactly as Status serves it
 * (`networkReady` is false while a ready selection has been stale for longer than --stale-after).
 * The message never contains a moving value (an age, a counter): it changes only when the
 * situation does, so it can be compared to decide whether a write is needed.
 */
export function desiredCondition(
  state: NetworkState,
  networkReady: boolean,
  /** Set while a refresh has outlived a Status call's deadline: why the state is stale. */
  refreshTimeout?: string,
  /** The CNI STATUS probe of the network in force when its failure is what makes NetworkReady false. */
  pluginStatus?: PluginStatusReport,
): ConditionValue {
  const { selection } = state;
  const where = selection.file ? `${state.confDir}/${selection.file}` : state.confDir;
  if (selection.ready && selection.network) {
    const { name, cniVersion, plugins } = selection.network;
    const network = `network "${name}" from ${where} (cniVersion ${cniVersion || 'unset'}, plugins ${plugins.map((p) => p.type).join(', ')})`;
    const failed = pluginStatus?.failed;
    if (failed && !networkReady) {
      const code = failed.code === undefined ? '' : `, CNI error code ${failed.code}`;
      return {
        status: 'False',
        reason: CONDITION_REASONS.pluginNotReady,
        message: truncate(
          `plugin "${failed.plugin}" of ${network} failed CNI STATUS (${failed.result}${code}): ${failed.message ?? failed.result}`,
        ),
      };
    }
    if (!selection.stale && refreshTimeout === undefined) {
      return { status: 'True', reason: CONDITION_REASONS.loaded, message: truncate(network) };
    }
    const since = state.staleSince === undefined ? '' : ` since ${isoSeconds(state.staleSince)}`;
    const why = refreshTimeout ?? selection.reason ?? 'refresh failed';
    if (refreshTimeout !== undefined && networkReady) {
      return {
        status: 'True',
        reason: CONDITION_REASONS.refreshTimeout,
        message: truncate(`serving the last refreshed config of ${network}${since}: ${why}`),
      };
    }
    if (!networkReady) {
      return {
        status: 'False',
        reason: CONDITION_REASONS.staleTooLong,
        message: truncate(
          `serving the last good config of ${network}${since}, longer than --stale-after allows: ${why}`,
        ),
      };
    }
    return {
      status: 'True',
      reason: CONDITION_REASONS.lastGood,
      message: truncate(`serving the last good config of ${network}${since}: ${why}`),
    };
  }
  const why = selection.reason ?? noNetworkConfigFound(state.confDir);
  let reason: ConditionReason;
  if (state.dirError) reason = CONDITION_REASONS.dirUnreadable;
  else if (state.files.length === 0) reason = CONDITION_REASONS.noConfig;
  else if (state.files.some((file) => !file.current.ok)) reason = CONDITION_REASONS.invalid;
  else if (state.files.some((file) => file.missingBinaries.length > 0))
    reason = CONDITION_REASONS.pluginMissing;
  else reason = CONDITION_REASONS.invalid;
  return { status: 'False', reason, message: truncate(why) };
}

/**
 * The tracked condition after observing `next` at `now`: lastTransitionTime moves only when the
 * status or the reason changes (a new message alone keeps it).
 */
export function observe(
  previous: TrackedCondition | undefined,
  next: ConditionValue,
  now: number,
): TrackedCondition {
  if (previous === undefined) return { ...next, lastTransitionTime: wholeSeconds(now), transitioned: false };
  if (previous.status !== next.status || previous.reason !== next.reason) {
    return { ...next, lastTransitionTime: wholeSeconds(now), transitioned: true };
  }
  if (previous.message === next.message) return previous;
  return { ...previous, message: next.message };
}

/**
 * Adopts the transition time the Node already records for this condition (written by an earlier
 * run of the agent) when it still has the same status and reason and this process has not seen a
 * transition of its own. This is what keeps lastTransitionTime across restarts and upgrades.
 */
export function adoptExisting(
  tracked: TrackedCondition,
  existing: readonly ExistingCondition[] | undefined,
): TrackedCondition {
  if (tracked.transitioned) return tracked;
  const mine = existing?.find((condition) => condition.type === CONDITION_TYPE);
  if (!mine || mine.status !== tracked.status || (mine.reason ?? '') !== tracked.reason) return tracked;
  const at = parseTime(mine.lastTransitionTime);
  if (at === undefined || at > tracked.lastTransitionTime) return tracked;
  return { ...tracked, lastTransitionTime: at };
}

/** True when writing `tracked` would change what the Node says (heartbeat aside). */
export function differs(tracked: TrackedCondition, written: TrackedCondition | undefined): boolean {
  return (
    written === undefined ||
    written.status !== tracked.status ||
    written.reason !== tracked.reason ||
    written.message !== tracked.message ||
    written.lastTransitionTime !== tracked.lastTransitionTime
  );
}

export interface NodeStatusPatch {
  status: {
    conditions: {
      type: string;
      status: ConditionStatus;
      reason: string;
      message: string;
      lastHeartbeatTime: string;
      lastTransitionTime: string;
    }[];
  };
}

/**
 * The strategic-merge patch of nodes/status that sets this one condition. `conditions` merges by
 * `type`, so the kubelet's conditions and other agents' are left alone (a JSON merge patch would
 * replace the whole list).
 */
export function conditionPatch(tracked: TrackedCondition, heartbeat: number): NodeStatusPatch {
  return {
    status: {
      conditions: [
        {
          type: CONDITION_TYPE,
          status: tracked.status,
          reason: tracked.reason,
          message: tracked.message,
          lastHeartbeatTime: isoSeconds(heartbeat),
          lastTransitionTime: isoSeconds(tracked.lastTransitionTime),
        },
      ],
    },
  };
}

/** The strategic-merge patch that deletes this condition from a Node (uninstall cleanup). */
export function removalPatch(): { status: { conditions: { type: string; $patch: 'delete' }[] } } {
  return { status: { conditions: [{ type: CONDITION_TYPE, $patch: 'delete' }] } };
}

export function wholeSeconds(ms: number): number {
  return Math.floor(ms / 1000) * 1000;
}

/** RFC 3339 in whole seconds, as metav1.Time serializes (`2026-11-27T15:00:00Z`). */
export function isoSeconds(ms: number): string {
  return new Date(wholeSeconds(ms)).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function parseTime(value: Date | string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ms = value instanceof Date ? value.getTime() : Date.parse(value);
  return Number.isFinite(ms) ? wholeSeconds(ms) : undefined;
}
