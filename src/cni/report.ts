// Plain-JSON descriptions of files and decisions, shared by `check -o json` and Status `info`.
import { inForce } from './profiles.js';
import { SEMANTICS } from './types.js';
import type { FileVerdict, NetworkState, Selection, Semantics } from './types.js';

export interface FileReport {
  file: string;
  /** accepted: loads now; stale: fails now, last good content in force; rejected: never loaded. */
  status: 'accepted' | 'stale' | 'rejected';
  network: string | null;
  cniVersion: string | null;
  plugins: string[];
  missingBinaries: string[];
  error: string | null;
  reason: string | null;
  warnings: string[];
  lastGoodAt?: string;
}

export interface VerdictReport {
  ready: boolean;
  network: string | null;
  file: string | null;
  reason: string | null;
  stale: boolean;
}

/** accepted, stale or rejected: the `status` of a file's report and the label of its metric. */
export function fileStatus(verdict: FileVerdict): FileReport['status'] {
  return verdict.current.ok ? 'accepted' : inForce(verdict) ? 'stale' : 'rejected';
}

export function fileReport(verdict: FileVerdict): FileReport {
  const config = inForce(verdict);
  const { current } = verdict;
  return {
    file: verdict.file,
    status: fileStatus(verdict),
    network: config?.name ?? null,
    cniVersion: config?.cniVersion ?? null,
    plugins: config?.plugins.map((plugin) => plugin.type) ?? [],
    missingBinaries: verdict.missingBinaries,
    error: current.ok ? null : current.error.message,
    reason: current.ok ? null : current.error.reason,
    warnings: config?.warnings ?? [],
    ...(!current.ok && verdict.lastGoodAt !== undefined
      ? { lastGoodAt: new Date(verdict.lastGoodAt).toISOString() }
      : {}),
  };
}

export function verdictReport(selection: Selection): VerdictReport {
  return {
    ready: selection.ready,
    network: selection.network?.name ?? null,
    file: selection.file ?? null,
    reason: selection.reason ?? null,
    stale: selection.stale,
  };
}

/** Every profile's verdict on a state, by profile name. */
export function verdictReports(state: NetworkState): Record<Semantics, VerdictReport> {
  return Object.fromEntries(
    SEMANTICS.map((profile) => [profile, verdictReport(state.verdicts[profile])]),
  ) as Record<Semantics, VerdictReport>;
}
