// The refresher turns the conf dir into a NetworkState. It keeps, per file, the last content that
// loaded, so a failed refresh never replaces what is in force; it decides from readdir + stat
// whether anything changed and re-reads only changed files; and it lets concurrent callers share
// one refresh that starts after all of them arrived (read-your-writes at the cost of one scan).
import { performance } from 'node:perf_hooks';
import { join } from 'node:path';
import { Debounced, systemClock } from '../util/clock.js';
import type { Clock } from '../util/clock.js';
import { BinaryLocator } from './binaries.js';
import {
  ConfDirLister,
  fileError,
  RACY_WINDOW_MS,
  nonRegularKind,
  notRegular,
  asLibcniReadError,
  readConfigFile,
  resolveUnderRoot,
  statFile,
} from './files.js';
import { readDirPlugins } from './dirplugins.js';
import type { DirPlugins } from './dirplugins.js';
import type { LibcniVersion } from './libcni.js';
import { parseConfig } from './parse.js';
import { firstError, inForce, profileLibcni, select } from './profiles.js';
import { SEMANTICS } from './types.js';
import type {
  FailureReason,
  FileVerdict,
  LoadError,
  LoadResult,
  NetworkConfig,
  NetworkState,
  Selection,
  Semantics,
} from './types.js';

export interface RefresherOptions {
  confDir: string;
  binDirs: readonly string[];
  semantics: Semantics;
  maxFileSize: number;
  /**
   * Read the dirs as if this were `/` (`check --host-root`): confDir and binDirs are the node's
   * paths, and every symlink on the way is followed under the root.
   */
  root?: string;
  /** The libcni release files are decoded as (default: the profile's, see profiles.ts). */
  libcni?: LibcniVersion;
  /** Load libcni v1.3's `<conf dir>/<network>/*.conf` plugins (default: the profile's). */
  dirPlugins?: boolean;
  /** Errors of background refreshes and of listeners (bugs, never config problems): logged, not thrown. */
  onError?: (error: unknown) => void;
  clock?: Clock;
}

/** What one refresh did, for metrics. What changed is on the verdict (src/verdict). */
export interface RefreshReport {
  /** When the refresh ran (ms since epoch). */
  at: number;
  durationSeconds: number;
  /** The state after the refresh (the same object as before when nothing changed). */
  state: NetworkState;
  previous: NetworkState;
  /** Set when this refresh saw a failure that the previous one did not (counted once per change on disk). */
  newFailure?: FailureReason;
}

export interface RefreshStats {
  attempts: number;
  failures: number;
  /** Config files read from disk; stays put while nothing changes (stat decides). */
  filesRead: number;
  lastAttemptAt?: number;
  lastSuccessAt?: number;
  lastFailureAt?: number;
}

/** Bin dirs are re-checked at most this often on the Status path (always on watcher and resync refreshes). */
const BIN_DIR_CHECK_MS = 1000;

interface FileRecord {
  statKey: string;
  /** For a list whose plugins include `<dir>/<network>/*.conf`: that network and the subdir's stamp. */
  dirPlugins?: { network: string; stamp: string };
  ctimeMs: number;
  readAtMs: number;
  bytes?: Buffer;
  verdict: FileVerdict;
}

type Listener<T> = (value: T) => void;

export class Refresher {
  readonly stats: RefreshStats = { attempts: 0, failures: 0, filesRead: 0 };
  private readonly records = new Map<string, FileRecord>();
  private readonly binaries: BinaryLocator;
  private readonly listeners: Listener<RefreshReport>[] = [];
  private pending: Promise<NetworkState> | undefined;
  private readonly soon: Debounced;
  private readonly lister: ConfDirLister;
  private binCheckedAt = -Infinity;
  private current: NetworkState;
  private dirIno: number | undefined;
  private inUsePluginDirs: readonly string[] = [];
  private readonly onDisk: (path: string) => string;
  private readonly clock: Clock;
  /**
   * Wall time of the current refresh, for the racily-clean checks: they compare it with file
   * timestamps, which the kernel writes in wall time, whatever clock the agent runs on.
   */
  private readAt = 0;

  constructor(readonly options: RefresherOptions) {
    this.clock = options.clock ?? systemClock;
    this.soon = new Debounced(this.clock, () => this.refreshInBackground());
    const { root } = options;
    this.onDisk = root === undefined ? (path) => path : (path) => resolveUnderRoot(root, path);
    this.binaries = new BinaryLocator(options.binDirs, this.onDisk);
    this.lister = listerFor(options.confDir, this.onDisk);
    this.current = initialState(options);
  }

  /** libcni v1.3 plugin subdirs (`<dir>/<network>`) that lists read, as of the last refresh; watched too. */
  get pluginDirs(): readonly string[] {
    return this.inUsePluginDirs;
  }

  /** Switches profile (`--semantics auto` once the runtime is known): every file is decoded again. */
  useSemantics(semantics: Semantics): NetworkState {
    this.options.semantics = semantics;
    this.records.clear();
    this.current = { ...this.current, semantics };
    return this.refresh();
  }

  get state(): NetworkState {
    return this.current;
  }

  /** The conf dir's inode as of the last refresh; the watcher re-arms when it changes. */
  get confDirIno(): number | undefined {
    return this.dirIno;
  }

  onRefresh(listener: Listener<RefreshReport>): void {
    this.listeners.push(listener);
  }

  /**
   * A state that reflects every change completed before this call. Callers that arrive before the
   * scheduled scan starts share it; the scan runs once the current I/O phase has been drained.
   */
  fresh(): Promise<NetworkState> {
    this.pending ??= new Promise((resolve, reject) => {
      setImmediate(() => {
        this.pending = undefined;
        try {
          resolve(this.refresh());
        } catch (error) {
          reject(error instanceof Error ? error : new Error(String(error)));
        }
      });
    });
    return this.pending;
  }

  /** Debounced refresh for watcher events: a burst of writes costs one scan. */
  refreshSoon(delayMs = 25): void {
    this.soon.soon(delayMs);
  }

  /** A full refresh from a timer or a file event: a failure is reported, never thrown into the event loop. */
  refreshInBackground(): void {
    try {
      this.refresh(true);
    } catch (error) {
      this.options.onError?.(error);
    }
  }

  /**
   * Scans now, synchronously, and returns the resulting state. `full` also re-checks the plugin
   * bin dirs, which the Status path does at most once a second (read-your-writes covers the conf dir).
   */
  refresh(full = false): NetworkState {
    const started = performance.now();
    const now = this.clock.now();
    this.readAt = Date.now();
    const previous = this.current;
    let scanned: ReturnType<Refresher['scan']>;
    try {
      scanned = this.scan(now, full);
    } catch (error) {
      // A scan that throws may have updated some records but not the state: forget them all, so the
      // next refresh re-reads every file instead of taking the half-done records for "unchanged".
      this.records.clear();
      throw error;
    }
    const { changed, dirError, files, newFailure } = scanned;
    if (changed) this.current = this.nextState(previous, dirError, files, now);
    const state = this.current;

    this.stats.attempts++;
    this.stats.lastAttemptAt = now;
    if (state.lastError === undefined) this.stats.lastSuccessAt = now;
    if (newFailure) {
      this.stats.failures++;
      this.stats.lastFailureAt = now;
    }
    const report: RefreshReport = {
      at: now,
      durationSeconds: (performance.now() - started) / 1000,
      state,
      previous,
      ...(newFailure ? { newFailure } : {}),
    };
    for (const listener of this.listeners) {
      try {
        listener(report);
      } catch (error) {
        this.options.onError?.(error);
      }
    }
    return state;
  }

  private scan(
    now: number,
    full: boolean,
  ): {
    changed: boolean;
    dirError?: LoadError;
    files: FileVerdict[];
    newFailure?: FailureReason;
  } {
    const { confDir, maxFileSize } = this.options;
    const previous = this.current;
    let changed = false;
    if (full || now - this.binCheckedAt >= BIN_DIR_CHECK_MS) {
      this.binCheckedAt = now;
      changed = this.binaries.revalidate();
    }
    const listing = this.lister.list(this.readAt);
    if (!listing.ok) {
      // Records are kept: when the dir comes back with the same files, their last good content still counts.
      const same = previous.dirError?.message === listing.error.message;
      return {
        changed: changed || !same || previous.files.length > 0,
        dirError: listing.error,
        files: [],
        ...(same ? {} : { newFailure: listing.error.reason }),
      };
    }
    if (listing.dirIno !== this.dirIno) {
      this.dirIno = listing.dirIno;
      changed = true;
    }
    if (previous.dirError) changed = true;

    let newFailure: FailureReason | undefined;
    const files: FileVerdict[] = [];
    const seen = new Set<string>();
    const pluginDirs: string[] = [];
    for (const name of listing.files) {
      const path = join(confDir, name);
      const before = this.records.get(name);
      const record = this.examine(name, path, before, now, maxFileSize);
      if (record === undefined) continue; // deleted between readdir and stat
      seen.add(name);
      this.records.set(name, record);
      if (record.dirPlugins && record.dirPlugins.stamp !== 'none') {
        pluginDirs.push(join(this.lister.dir, record.dirPlugins.network));
      }
      if (record.verdict !== before?.verdict) {
        changed = true;
        const error = record.verdict.current.ok ? undefined : record.verdict.current.error;
        const was = before?.verdict.current.ok === false ? before.verdict.current.error : undefined;
        if (error && error.message !== was?.message) newFailure ??= error.reason;
      }
      const verdict = this.withBinaries(record.verdict);
      if (verdict !== record.verdict) {
        record.verdict = verdict;
        changed = true;
      }
      files.push(record.verdict);
    }
    for (const name of this.records.keys()) {
      if (!seen.has(name)) {
        this.records.delete(name);
        changed = true;
      }
    }
    this.inUsePluginDirs = pluginDirs;
    if (files.length === 0 && (previous.files.length > 0 || previous.generation === 0))
      newFailure ??= 'no_config';
    return {
      changed: changed || files.length !== previous.files.length,
      files,
      ...(newFailure ? { newFailure } : {}),
    };
  }

  /** The record for one file: reused when stat says nothing changed, else re-read and re-parsed. */
  private examine(
    name: string,
    path: string,
    before: FileRecord | undefined,
    now: number,
    maxFileSize: number,
  ): FileRecord | undefined {
    const raw = this.options.root === undefined ? this.lister.rawNames.get(name) : undefined;
    let target: string | Buffer;
    try {
      // A name that is not UTF-8 is opened by its bytes (Go lists and reads it too).
      target = raw ? Buffer.concat([Buffer.from(`${this.lister.dir}/`), raw]) : this.onDisk(path);
    } catch (error) {
      return this.withResult(name, path, before, { ok: false, error: fileError(error) }, now); // ELOOP under a root
    }
    // A dangling link is reported by the name the listing holds (under a root, not `target`).
    const stat = statFile(target, target === path ? path : join(this.lister.dir, name));
    if (stat === undefined) return undefined;
    if (!('key' in stat)) {
      return this.withResult(name, path, before, { ok: false, error: asLibcniReadError(path, stat) }, now);
    }
    const racy = before !== undefined && before.readAtMs - before.ctimeMs < RACY_WINDOW_MS;
    if (before && before.statKey === stat.key && !racy && this.sameDirPlugins(before)) return before;

    const kind = nonRegularKind(stat.stats);
    if (kind) {
      const error = asLibcniReadError(path, notRegular(kind), kind);
      return this.withResult(name, path, before, { ok: false, error }, now, stat);
    }
    const read = readConfigFile(target, maxFileSize);
    this.stats.filesRead++;
    if (!read.ok && 'gone' in read) return undefined;
    if (read.ok && before?.bytes?.equals(read.bytes) && this.sameDirPlugins(before)) {
      return { ...before, statKey: stat.key, ctimeMs: stat.ctimeMs, readAtMs: this.readAt };
    }
    let dirPlugins: FileRecord['dirPlugins'];
    const loadDirPlugins =
      (this.options.dirPlugins ?? profileLibcni(this.options.semantics).dirPlugins)
        ? (network: string): DirPlugins => {
            const found = readDirPlugins(this.onDisk(this.options.confDir), network, this.libcni);
            dirPlugins = { network, stamp: found.stamp };
            return found;
          }
        : undefined;
    const result: LoadResult = read.ok
      ? parseConfig(name, read.bytes, this.libcni, loadDirPlugins)
      : { ok: false, error: asLibcniReadError(path, read.error) };
    const record = this.withResult(name, path, before, result, now, stat, read.ok ? read.bytes : undefined);
    return dirPlugins ? { ...record, dirPlugins } : record;
  }

  private get libcni(): LibcniVersion {
    return this.options.libcni ?? profileLibcni(this.options.semantics).libcni;
  }

  /** Whether a list's plugin subdirectory is as it was when the list was last parsed. */
  private sameDirPlugins(record: FileRecord): boolean {
    const { dirPlugins } = record;
    if (!dirPlugins) return true;
    const now = readDirPlugins(this.onDisk(this.options.confDir), dirPlugins.network, this.libcni);
    return now.stamp === dirPlugins.stamp;
  }

  private withResult(
    name: string,
    path: string,
    before: FileRecord | undefined,
    current: LoadResult,
    now: number,
    stat?: { key: string; ctimeMs: number },
    bytes?: Buffer,
  ): FileRecord {
    const prior = before?.verdict;
    const sameError =
      prior && !prior.current.ok && !current.ok && prior.current.error.message === current.error.message;
    const lastGood: NetworkConfig | undefined = current.ok ? current.config : prior?.lastGood;
    const lastGoodAt = current.ok ? now : prior?.lastGoodAt;
    const verdict: FileVerdict = sameError
      ? prior
      : {
          file: name,
          path,
          current,
          ...(lastGood ? { lastGood } : {}),
          ...(lastGoodAt !== undefined ? { lastGoodAt } : {}),
          missingBinaries: [],
        };
    return {
      statKey: stat?.key ?? '',
      ctimeMs: stat?.ctimeMs ?? 0,
      readAtMs: this.readAt,
      ...(bytes ? { bytes } : {}),
      verdict,
    };
  }

  private withBinaries(verdict: FileVerdict): FileVerdict {
    const config = inForce(verdict);
    const missing = config ? this.binaries.missing(config.plugins.map((plugin) => plugin.type)) : [];
    const same =
      missing.length === verdict.missingBinaries.length &&
      missing.every((type, i) => type === verdict.missingBinaries[i]);
    return same ? verdict : { ...verdict, missingBinaries: missing };
  }

  private nextState(
    previous: NetworkState,
    dirError: LoadError | undefined,
    files: FileVerdict[],
    now: number,
  ): NetworkState {
    const { confDir, semantics } = this.options;
    const scan = { confDir, files, ...(dirError ? { dirError } : {}) };
    const verdicts = Object.fromEntries(
      SEMANTICS.map((profile) => [profile, select(profile, scan, previous.verdicts[profile])]),
    ) as Record<Semantics, Selection>;
    const selection = verdicts[semantics];
    const lastError = firstError(scan);
    const staleSince = selection.stale ? (previous.selection.stale ? previous.staleSince : now) : undefined;
    return {
      generation: previous.generation + 1,
      confDir,
      binDirs: this.options.binDirs,
      semantics,
      ...(dirError ? { dirError } : {}),
      files,
      selection,
      verdicts,
      ...(lastError ? { lastError } : {}),
      ...(staleSince !== undefined ? { staleSince } : {}),
    };
  }
}

/** The state before the first refresh (generation 0): nothing loaded under any profile. */
export function initialState(of: Pick<NetworkState, 'confDir' | 'binDirs' | 'semantics'>): NetworkState {
  const nothing: Selection = { ready: false, stale: false, reason: 'network config not loaded yet' };
  return {
    generation: 0,
    confDir: of.confDir,
    binDirs: of.binDirs,
    semantics: of.semantics,
    files: [],
    selection: nothing,
    verdicts: Object.fromEntries(SEMANTICS.map((profile) => [profile, nothing])) as Record<
      Semantics,
      Selection
    >,
  };
}

/** The conf dir's lister, reading where `onDisk` leads (or reporting why it leads nowhere). */
function listerFor(confDir: string, onDisk: (path: string) => string): ConfDirLister {
  try {
    return new ConfDirLister(onDisk(confDir));
  } catch (error) {
    return new ConfDirLister(confDir, error);
  }
}
