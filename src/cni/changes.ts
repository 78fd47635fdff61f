// What changed between two states, as data: one entry per file or network transition. Logs and
// Kubernetes Events are views of this list, so both say the same thing once per change.
import { fileReport } from './report.js';
import type { FileReport } from './report.js';
import type { NetworkState } from './types.js';

export type ChangeKind =
  | 'FileAccepted'
  | 'FileRejected'
  | 'FileStale'
  | 'FileRemoved'
  | 'NetworkChanged'
  | 'NetworkReady'
  | 'NetworkNotReady'
  | 'ConfigStale'
  | 'ConfigUpToDate'
  | 'ConfDirUnreadable';

export interface Change {
  kind: ChangeKind;
  severity: 'info' | 'warning';
  message: string;
  file?: string;
  network?: string;
  reason?: string;
}

export function describeChanges(previous: NetworkState, state: NetworkState): Change[] {
  if (previous.generation === state.generation) return [];
  const changes: Change[] = [];
  if (state.dirError && state.dirError.message !== previous.dirError?.message) {
    changes.push({
      kind: 'ConfDirUnreadable',
      severity: 'warning',
      message: state.dirError.message,
      reason: state.dirError.reason,
    });
  }
  const before = new Map(previous.files.map((file) => [file.file, fileReport(file)]));
  const seen = new Set<string>();
  for (const verdict of state.files) {
    const now = fileReport(verdict);
    const was = before.get(verdict.file);
    seen.add(verdict.file);
    const change = fileChange(verdict.path, was, now);
    if (change) changes.push(change);
  }
  if (!state.dirError) {
    for (const [name, was] of before) {
      if (!seen.has(name)) {
        changes.push({
          kind: 'FileRemoved',
          severity: 'info',
          message: `${name} was removed`,
          file: name,
          ...(was.network ? { network: was.network } : {}),
        });
      }
    }
  }
  const a = previous.selection;
  const b = state.selection;
  if (b.network && (a.network?.name !== b.network.name || a.file !== b.file)) {
    changes.push({
      kind: 'NetworkChanged',
      severity: 'info',
      message: `default network is now "${b.network.name}" from ${b.file ?? '?'} (cniVersion ${b.network.cniVersion || 'unset'}, plugins ${b.network.plugins.map((p) => p.type).join(', ')})`,
      network: b.network.name,
      ...(b.file ? { file: b.file } : {}),
    });
  }
  if (a.ready !== b.ready || previous.generation === 0) {
    changes.push(
      b.ready
        ? {
            kind: 'NetworkReady',
            severity: 'info',
            message: 'network is ready',
            ...(b.network ? { network: b.network.name } : {}),
          }
        : {
            kind: 'NetworkNotReady',
            severity: 'warning',
            message: `network is not ready: ${b.reason ?? 'unknown'}`,
            ...(b.reason ? { reason: b.reason } : {}),
          },
    );
  }
  if (a.stale !== b.stale) {
    changes.push(
      b.stale
        ? {
            kind: 'ConfigStale',
            severity: 'warning',
            message: `serving the last good config of ${b.file ?? 'the network'}: ${b.reason ?? 'refresh failed'}`,
            ...(b.file ? { file: b.file } : {}),
          }
        : { kind: 'ConfigUpToDate', severity: 'info', message: 'network config is up to date again' },
    );
  }
  return changes;
}

function fileChange(path: string, was: FileReport | undefined, now: FileReport): Change | undefined {
  if (
    was &&
    was.status === now.status &&
    was.error === now.error &&
    was.network === now.network &&
    was.cniVersion === now.cniVersion &&
    was.plugins.join() === now.plugins.join() &&
    was.missingBinaries.join() === now.missingBinaries.join()
  ) {
    return undefined;
  }
  const base = { file: now.file, ...(now.network ? { network: now.network } : {}) };
  switch (now.status) {
    case 'accepted': {
      const missing = now.missingBinaries.length
        ? `; plugin binaries not found: ${now.missingBinaries.join(', ')}`
        : '';
      return {
        kind: 'FileAccepted',
        severity: missing ? 'warning' : 'info',
        message: `${path} loaded: network "${now.network ?? ''}"${missing}`,
        ...base,
      };
    }
    case 'stale':
      return {
        kind: 'FileStale',
        severity: 'warning',
        message: `${path} failed to load, keeping its last good content: ${now.error ?? ''}`,
        reason: now.reason ?? '',
        ...base,
      };
    case 'rejected':
      return {
        kind: 'FileRejected',
        severity: 'warning',
        message: `${path} rejected: ${now.error ?? ''}`,
        reason: now.reason ?? '',
        ...base,
      };
  }
}
