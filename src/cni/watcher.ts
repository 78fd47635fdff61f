// Keeps the state current between Status calls: inotify (fs.watch) on the conf dir triggers a
// debounced refresh on any event, whatever the file name (a ConfigMap `..data` swap renames a
// dir, not a .conf file). The watch dies with the dir, so the parent dir is watched too and the
// watch is re-armed whenever the conf dir's inode changes; while the parent itself is gone, its
// nearest existing ancestor is watched instead. A periodic resync covers lost events (inotify
// queue overflow, a watch that could not be armed).
import { statSync, watch } from 'node:fs';
import type { FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import { every, systemClock } from '../util/clock.js';
import type { Clock, Timer } from '../util/clock.js';
import { isErrno } from '../util/text.js';
import type { Refresher } from './refresher.js';

/** What the watcher drives: the refresher, in this thread or in its worker (worker-refresher.ts). */
type Refreshing = Pick<
  Refresher,
  'state' | 'confDirIno' | 'pluginDirs' | 'onRefresh' | 'refreshSoon' | 'refreshInBackground'
> & {
  readonly options: Pick<Refresher['options'], 'confDir'>;
};

export interface WatcherOptions {
  resyncIntervalMs: number;
  onWatchError?: (path: string, error: Error) => void;
  /**
   * The conf dir was removed or renamed away and a new dir now stands at its path (a new inode),
   * which the watch follows. containerd 2.x exits here; an operator should still hear of it.
   */
  onDirReplaced?: (confDir: string) => void;
  /** fs.watch, replaceable so tests can make it fail as a node out of inotify watches does. */
  watch?: typeof watch;
  clock?: Clock;
}

export class ConfDirWatcher {
  private dirWatch: FSWatcher | undefined;
  private parentWatch: FSWatcher | undefined;
  /** The dir parentWatch is on: the conf dir's parent, or its nearest existing ancestor. */
  private parentPath: string | undefined;
  private armedIno: number | undefined;
  /** The inode of the last conf dir watched: a different one later means the dir was replaced. */
  private watchedIno: number | undefined;
  /** The watched conf dir was seen gone (or renamed at its parent); the next dir watched replaces it. */
  private dirGone = false;
  /** After a failed watch, no new attempt before this time (the next resync), never one per Status call. */
  private retryAt = 0;
  private resync: Timer | undefined;
  private stopped = false;
  private readonly clock: Clock;
  /** Watches on libcni v1.3 plugin subdirs, and when a failed one may be tried again. */
  private readonly pluginWatches = new Map<string, FSWatcher>();
  private readonly pluginRetryAt = new Map<string, number>();

  constructor(
    private readonly refresher: Refreshing,
    private readonly options: WatcherOptions,
  ) {
    this.clock = options.clock ?? systemClock;
  }

  start(): void {
    this.refresher.onRefresh(() => {
      if (!this.stopped) this.arm();
    });
    this.arm();
    this.resync = every(this.clock, this.options.resyncIntervalMs, () =>
      this.refresher.refreshInBackground(),
    );
  }

  stop(): void {
    this.stopped = true;
    this.resync?.cancel();
    this.dirWatch?.close();
    this.parentWatch?.close();
    for (const watcher of this.pluginWatches.values()) watcher.close();
  }

  /** Whether the conf dir itself is being watched now (false while it is missing). */
  get watching(): boolean {
    return this.dirWatch !== undefined;
  }

  /**
   * The one place that decides what to watch, after every refresh: the parent dir, and the conf
   * dir itself as long as it is the same inode. Cheap when both are armed.
   */
  private arm(): void {
    this.armPluginDirs();
    const { state, confDirIno: ino } = this.refresher;
    const { confDir } = this.refresher.options;
    const dirArmed = this.dirWatch !== undefined && ino === this.armedIno && !state.dirError;
    if (dirArmed && this.parentWatch && this.parentPath === dirname(confDir)) return;
    if (this.clock.now() < this.retryAt) return;
    this.armParent(confDir);
    if (dirArmed) return;
    this.dirWatch?.close();
    this.dirWatch = undefined;
    this.armedIno = undefined;
    if (state.dirError && state.generation > 0) {
      this.dirGone ||= this.watchedIno !== undefined;
      return;
    }
    this.dirWatch = this.watchPath(confDir, () => this.refresher.refreshSoon());
    if (!this.dirWatch) return;
    this.armedIno = ino;
    if (ino === undefined) return;
    // A dir removed and made again at once often gets the same inode number back: the gone flag
    // (its removal seen at the parent or by a refresh) catches that, the inode catches a swap.
    const replaced = this.watchedIno !== undefined && (this.dirGone || this.watchedIno !== ino);
    this.watchedIno = ino;
    this.dirGone = false;
    if (replaced) this.options.onDirReplaced?.(confDir);
  }

  /**
   * A change inside `<dir>/<network>/` does not touch the conf dir, so each plugin subdir a list
   * reads is watched as well (its creation does touch the conf dir, whose watch then re-arms this).
   */
  private armPluginDirs(): void {
    const wanted = new Set(this.refresher.pluginDirs);
    for (const [path, watcher] of this.pluginWatches) {
      if (wanted.has(path)) continue;
      watcher.close();
      this.pluginWatches.delete(path);
    }
    for (const path of wanted) {
      if (this.pluginWatches.has(path) || this.clock.now() < (this.pluginRetryAt.get(path) ?? 0)) continue;
      try {
        const watcher = (this.options.watch ?? watch)(path, { persistent: false }, () =>
          this.refresher.refreshSoon(),
        );
        watcher.on('error', () => {
          watcher.close();
          this.pluginWatches.delete(path);
          this.refresher.refreshSoon();
        });
        this.pluginWatches.set(path, watcher);
        this.pluginRetryAt.delete(path);
      } catch (error) {
        // Not retried before the next resync, never once per Status call; the resync covers it.
        this.pluginRetryAt.set(path, this.clock.now() + this.options.resyncIntervalMs);
        if (!isErrno(error, 'ENOENT'))
          this.options.onWatchError?.(path, error instanceof Error ? error : new Error(String(error)));
      }
    }
  }

  /** Watches the conf dir's parent, or while it is missing the nearest ancestor that exists. */
  private armParent(confDir: string): void {
    let dir = dirname(confDir);
    let next = basename(confDir);
    while (!isDir(dir) && dirname(dir) !== dir) {
      next = basename(dir);
      dir = dirname(dir);
    }
    if (this.parentWatch && this.parentPath === dir) return;
    const moved = this.parentPath !== undefined;
    this.parentWatch?.close();
    this.parentPath = dir;
    const self = basename(dir);
    const watcher = this.watchPath(dir, (event, name) => {
      if (name !== null && name !== next && name !== self) return;
      if (event === 'rename') this.dirGone ||= this.watchedIno !== undefined;
      // `self`: the watched dir itself went away, and its inotify watch with it: watch again from higher up.
      if (name !== next && this.parentWatch === watcher) {
        watcher?.close();
        this.parentWatch = undefined;
      }
      // The conf dir (or a dir on its way) was created, removed or renamed: a recreated dir may even reuse the inode.
      this.armedIno = undefined;
      this.retryAt = 0;
      this.refresher.refreshSoon();
    });
    this.parentWatch = watcher;
    // What happened on the way before this watch was armed has been seen by no watch: look once.
    if (moved) this.refresher.refreshSoon();
  }

  private watchPath(
    path: string,
    onEvent: (event: string, name: string | null) => void,
  ): FSWatcher | undefined {
    try {
      const watcher = (this.options.watch ?? watch)(path, { persistent: false }, (event, name) =>
        onEvent(event, name),
      );
      watcher.on('error', (error) => {
        watcher.close();
        if (this.dirWatch === watcher) this.dirWatch = undefined;
        if (this.parentWatch === watcher) this.parentWatch = undefined;
        this.failed(path, error);
        this.refresher.refreshSoon();
      });
      return watcher;
    } catch (error) {
      // A missing dir is retried like any failure, but not reported: the parent's watch sees it come back.
      this.retryAt = this.clock.now() + this.options.resyncIntervalMs;
      if (!isErrno(error, 'ENOENT'))
        this.failed(path, error instanceof Error ? error : new Error(String(error)));
      return undefined;
    }
  }

  private failed(path: string, error: Error): void {
    this.retryAt = this.clock.now() + this.options.resyncIntervalMs;
    this.options.onWatchError?.(path, error);
  }
}

function isDir(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
