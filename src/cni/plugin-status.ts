// What a CNI STATUS probe found, as plain values that cross into the verdict: one result per
// plugin of the selected network, in list order. Produced by plugin-prober.ts; read by every view
// through the verdict. No I/O here.
import type { NetworkState } from './types.js';

/**
 * How one plugin's STATUS ended (also the metric's `result` label). `code_50`/`code_51` are the
 * spec's "plugin not available" codes, told apart (containerd hides the code); `error` is any other
 * code; `bad_output` a failure whose stdout is not a CNI error; `could_not_run` a missing binary or
 * an exec failure; `timeout` killed at --plugin-status-timeout; `skipped` not run.
 */
export const PLUGIN_RESULTS = [
  'ok',
  'code_50',
  'code_51',
  'error',
  'bad_output',
  'could_not_run',
  'timeout',
  'skipped',
] as const;
export type PluginResult = (typeof PLUGIN_RESULTS)[number];

export interface PluginStatus {
  /** The plugin's `type`. */
  plugin: string;
  /** The binary that ran (or would have), when found. */
  path?: string;
  result: PluginResult;
  /** The CNI error code, when the plugin printed one. */
  code?: number;
  /**
   * What went wrong, for operators: libcni's error text word for word where the runtime has one
   * that says what happened (a plugin's msg and details, unparsable output, a missing binary), our
   * own words where it would hide it (exec failures, timeouts), plus a hint for a plugin too old
   * for STATUS. Undefined for `ok`.
   */
  message?: string;
  durationMs: number;
  /** When the probe of this plugin started (clock ms). */
  at: number;
}

/** One probe run over the selected network (or a decision not to run one). */
export interface PluginStatusReport {
  /** Which network (and which content of it) this is about: see networkKey(). */
  key: string;
  network: string;
  file?: string;
  cniVersion: string;
  /** When the run started (clock ms). */
  at: number;
  plugins: readonly PluginStatus[];
  /** The first failure: NetworkReady false because of it. */
  failed?: PluginStatus;
  /** Why nothing ran: the list's cniVersion is below 1.1.0, or the crio profile already succeeded once. */
  skipped?: string;
}

/** The selected network, identified by everything a probe depends on (file, name, version, plugin configs). */
export function networkKey(state: NetworkState): string | undefined {
  const { network, file } = state.selection;
  if (!network) return undefined;
  return [
    file ?? '',
    network.name,
    network.cniVersion,
    ...network.plugins.map((p) => `${p.type}\u0000${p.conf}`),
  ].join('\u0001');
}

/** The report that applies to `state`: the one about its selected network, else none. */
export function reportFor(
  state: NetworkState,
  report: PluginStatusReport | undefined,
): PluginStatusReport | undefined {
  return report !== undefined && state.selection.ready && report.key === networkKey(state)
    ? report
    : undefined;
}
