// The verbose `info` map of StatusResponse. Every value is JSON (crictl parses values that start
// with `{`), and `cniconfig` carries containerd's keys (PluginDirs, PluginConfDir, Networks) so
// scripts written against `crictl info` on containerd keep working, next to our own.
import { networkKey } from '../cni/plugin-status.js';
import type { PluginStatusReport } from '../cni/plugin-status.js';
import { fileReport, verdictReports } from '../cni/report.js';
import type { RefreshStats } from '../cni/refresher.js';
import type { NetworkState } from '../cni/types.js';

export interface InfoContext {
  /** The refresher's running counts (read at each verbose call). */
  stats: RefreshStats;
  /** The effective flags. */
  config: Record<string, unknown>;
  version: Record<string, string>;
  /** What the upstream runtime said, when --runtime-endpoint is set. */
  upstream?: { info(): unknown } | undefined;
  /** The CNI STATUS probes (--plugin-status): the mode, what it means now, and the newest run. */
  probes?: { mode: string; policy(): string; latest(): PluginStatusReport | undefined } | undefined;
}

/** The `cniconfig` value: it grows with the files (about 1.3 MB for 5,000) and changes only with the state. */
export function cniconfigInfo(state: NetworkState): string {
  return JSON.stringify(cniConfig(state));
}

/** Every `info` value but `cniconfig`: small, and changing with every refresh (its counters). */
export function contextInfo(state: NetworkState, context: InfoContext): Record<string, string> {
  const info: Record<string, string> = {
    lastCNILoadStatus: JSON.stringify(loadStatus(state)),
    refresh: JSON.stringify(refreshInfo(state, context.stats)),
    config: JSON.stringify(context.config),
    version: JSON.stringify(context.version),
  };
  if (context.upstream !== undefined) info.upstream = JSON.stringify(context.upstream.info());
  if (context.probes !== undefined)
    info.pluginStatus = JSON.stringify(pluginStatusInfo(state, context.probes));
  return info;
}

/** The newest STATUS probe, per plugin: result, CNI code, message, duration and when. */
function pluginStatusInfo(
  state: NetworkState,
  probes: NonNullable<InfoContext['probes']>,
): Record<string, unknown> {
  const report = probes.latest();
  const iso = (ms: number): string => new Date(ms).toISOString();
  return {
    mode: probes.mode,
    policy: probes.policy(),
    lastProbe: report
      ? {
          network: report.network,
          file: report.file ?? null,
          cniVersion: report.cniVersion,
          at: iso(report.at),
          // False once the network in force has changed and not been probed yet.
          current: report.key === networkKey(state),
          skipped: report.skipped ?? null,
          plugins: report.plugins.map((p) => ({
            plugin: p.plugin,
            path: p.path ?? null,
            result: p.result,
            code: p.code ?? null,
            message: p.message ?? null,
            durationMs: Math.round(p.durationMs * 1000) / 1000,
            at: iso(p.at),
          })),
        }
      : null,
  };
}

/** containerd's lastCNILoadStatus: "OK", or the error of the last load (here: the first one, with its file). */
export function loadStatus(state: NetworkState): string {
  const error = state.lastError;
  if (!error) return 'OK';
  return error.file ? `${error.file}: ${error.message}` : error.message;
}

function cniConfig(state: NetworkState): Record<string, unknown> {
  const { selection } = state;
  const network = selection.network;
  return {
    PluginDirs: state.binDirs,
    PluginConfDir: state.confDir,
    PluginMaxConfNum: 1,
    Prefix: 'eth',
    Networks: network
      ? [
          {
            Config: {
              Name: network.name,
              CNIVersion: network.cniVersion,
              Plugins: network.plugins.map((plugin) => ({ Network: { type: plugin.type } })),
              Source: network.source,
            },
            IFName: 'eth0',
          },
        ]
      : [],
    semantics: state.semantics,
    network: network
      ? {
          name: network.name,
          file: selection.file ?? null,
          cniVersion: network.cniVersion,
          plugins: network.plugins.map((plugin) => plugin.type),
          stale: selection.stale,
        }
      : null,
    dirError: state.dirError?.message ?? null,
    files: state.files.map(fileReport),
    verdicts: verdictReports(state),
  };
}

function refreshInfo(state: NetworkState, stats: RefreshStats): Record<string, unknown> {
  const iso = (ms: number | undefined): string | null =>
    ms === undefined ? null : new Date(ms).toISOString();
  return {
    attempts: stats.attempts,
    failures: stats.failures,
    filesRead: stats.filesRead,
    lastAttempt: iso(stats.lastAttemptAt),
    lastSuccess: iso(stats.lastSuccessAt),
    lastFailure: iso(stats.lastFailureAt),
    staleSince: iso(state.staleSince),
    generation: state.generation,
  };
}
