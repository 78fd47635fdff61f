// The CRI conditions served by Status, as pure functions the verdict (src/verdict) is made of.
// Required: RuntimeReady and NetworkReady (kubelet fails Status with fewer than two conditions);
// optional: NetworkConfigUpToDate, which says when a last-good config is being served.
import type { PluginStatus } from '../cni/plugin-status.js';
import { noNetworkConfigFound } from '../cni/types.js';
import type { NetworkState, Semantics } from '../cni/types.js';
import type { RuntimeCondition } from '../gen/runtime/v1/api.js';
import { formatDuration } from '../util/text.js';

export const NETWORK_NOT_READY_REASON = 'NetworkPluginNotReady';
export const NETWORK_NOT_READY_PREFIX = 'Network plugin returns error: ';
export const REFRESH_FAILED_REASON = 'RefreshFailed';
export const REFRESH_TIMEOUT_REASON = 'RefreshTimeout';
/** Why a state is stale when its refresh hangs (NetworkReady's and the Node condition's wording). */
export const REFRESH_TIMEOUT_WHY = 'the network config refresh did not finish in time (a slow or hung disk?)';

export const RUNTIME_READY: RuntimeCondition = {
  type: 'RuntimeReady',
  status: true,
  reason: '',
  message: '',
};

export function networkReadyCondition(
  state: NetworkState,
  now: number,
  staleAfterMs: number | undefined,
  /** Why the state is stale when the selection does not say (a refresh timeout). */
  staleWhy?: string,
  /** A plugin's failed CNI STATUS, in the profile's wording (pluginFailureText). */
  pluginFailure?: string,
): RuntimeCondition {
  const { selection } = state;
  if (!selection.ready) {
    return {
      type: 'NetworkReady',
      status: false,
      reason: NETWORK_NOT_READY_REASON,
      message: NETWORK_NOT_READY_PREFIX + (selection.reason ?? noNetworkConfigFound(state.confDir)),
    };
  }
  if (isStaleTooLong(state, now, staleAfterMs)) {
    return {
      type: 'NetworkReady',
      status: false,
      reason: NETWORK_NOT_READY_REASON,
      // A fixed timestamp, not a growing age: the message changes only when the situation does.
      message: `${NETWORK_NOT_READY_PREFIX}network config stale since ${new Date(state.staleSince ?? now).toISOString()}, longer than --stale-after ${formatDuration(staleAfterMs ?? 0)}: ${staleWhy ?? selection.reason ?? 'refresh failed'}`,
    };
  }
  if (pluginFailure !== undefined) {
    return {
      type: 'NetworkReady',
      status: false,
      reason: NETWORK_NOT_READY_REASON,
      message: NETWORK_NOT_READY_PREFIX + pluginFailure,
    };
  }
  return { type: 'NetworkReady', status: true, reason: '', message: '' };
}

/**
 * A failed CNI STATUS after NetworkReady's prefix. Under the profile of a runtime that probes
 * (containerd 2.x, CRI-O) it is libcni's error text as that runtime serves it (`<msg>` or
 * `<msg>; <details>`; our own words only where the runtime has none: exec failures, timeouts);
 * elsewhere the plugin and its CNI error code come first.
 */
export function pluginFailureText(semantics: Semantics, failed: PluginStatus): string {
  const message = failed.message ?? failed.result;
  if (semantics !== 'isulad') return message;
  const code = failed.code === undefined ? '' : ` (CNI error code ${failed.code})`;
  return `plugin "${failed.plugin}" failed CNI STATUS${code}: ${message}`;
}

export function configUpToDate(state: NetworkState): RuntimeCondition {
  const { selection } = state;
  if (!selection.stale) return { type: 'NetworkConfigUpToDate', status: true, reason: '', message: '' };
  const since = state.staleSince === undefined ? '' : ` since ${new Date(state.staleSince).toISOString()}`;
  return {
    type: 'NetworkConfigUpToDate',
    status: false,
    reason: REFRESH_FAILED_REASON,
    message: `serving the last good config of ${selection.file ?? 'the network'} (network "${selection.network?.name ?? ''}")${since}: ${selection.reason ?? 'refresh failed'}`,
  };
}

/**
 * NetworkConfigUpToDate while a refresh has outlived a Status call's deadline: the newest fact, so it
 * wins over RefreshFailed until a refresh completes. The timestamp is fixed for the whole episode.
 */
export function refreshTimeoutCondition(
  state: NetworkState,
  timeout: { lastRefreshedAt: number | undefined; timeoutMs: number },
): RuntimeCondition {
  const last =
    timeout.lastRefreshedAt === undefined
      ? 'state before the first refresh'
      : `state last refreshed at ${new Date(timeout.lastRefreshedAt).toISOString()}`;
  return {
    type: 'NetworkConfigUpToDate',
    status: false,
    reason: REFRESH_TIMEOUT_REASON,
    message: `reading ${state.confDir} took longer than --refresh-timeout ${formatDuration(timeout.timeoutMs)} (a slow or hung disk?); answering from the ${last}`,
  };
}

export function isStaleTooLong(state: NetworkState, now: number, staleAfterMs: number | undefined): boolean {
  return (
    staleAfterMs !== undefined && state.staleSince !== undefined && now - state.staleSince > staleAfterMs
  );
}
