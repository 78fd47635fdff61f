// Keeps the state current between Status calls: inotify (fs.watch) on the conf dir triggers a
// debounced refresh on any event, whatever the file name (a ConfigMap `..data` swap renames a
// dir, not a .conf file). The watch dies with the dir, so the parent dir is watched too and the
// watch is re-armed whenever the conf dir's inode changes; a periodic resync covers lost events
// (inotify queue overflow, a watch that could not be armed).
import { watch } from 'node:fs';
import type { FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import { isErrno } from './files.js';
import type { Refresher } from './refresher.js';

export interface WatcherOptions {
  resyncIntervalMs: number;
  debounceMs?: number;
  onWatchError?: (path: string, error: Error) => void;
}

export class ConfDirWatcher {
  private dirWatch: FSWatcher | undefined;
  private parentWatch: FSWatcher | undefined;
  private armedIno: number | undefined;
  private resync: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly refresher: Refresher,
    private readonly options: WatcherOptions,
  ) {}

  start(): void {
    const { confDir } = this.refresher.options;
    this.refresher.onRefresh(({ state }) => {
      if (!this.stopped && (this.refresher.confDirIno !== this.armedIno || state.dirError)) this.arm();
    });
    this.parentWatch = this.watchPath(dirname(confDir), (name) => {
      if (name !== null && name !== basename(confDir)) return;
      // The conf dir itself was created, removed or renamed: a recreated dir may even reuse the inode.
      this.armedIno = undefined;
      this.refresher.refreshSoon(this.options.debounceMs);
    });
    this.arm();
    this.resync = setInterval(() => this.refresher.refreshInBackground(), this.options.resyncIntervalMs);
    this.resync.unref();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.resync);
    this.dirWatch?.close();
    this.parentWatch?.close();
  }

  /** Whether the conf dir itself is being watched now (false while it is missing). */
  get watching(): boolean {
    return this.dirWatch !== undefined;
  }

  private arm(): void {
    const ino = this.refresher.confDirIno;
    if (this.dirWatch && ino === this.armedIno && !this.refresher.state.dirError) return;
    this.dirWatch?.close();
    this.dirWatch = undefined;
    this.armedIno = undefined;
    if (this.refresher.state.dirError && this.refresher.state.generation > 0) return;
    this.dirWatch = this.watchPath(this.refresher.options.confDir, () =>
      this.refresher.refreshSoon(this.options.debounceMs),
    );
    if (this.dirWatch) this.armedIno = ino;
  }

  private watchPath(path: string, onEvent: (name: string | null) => void): FSWatcher | undefined {
    try {
      const watcher = watch(path, { persistent: false }, (_event, name) => onEvent(name));
      watcher.on('error', (error) => {
        watcher.close();
        if (this.dirWatch === watcher) this.dirWatch = undefined;
        if (this.parentWatch === watcher) this.parentWatch = undefined;
        this.options.onWatchError?.(path, error);
        this.refresher.refreshSoon(this.options.debounceMs);
      });
      return watcher;
    } catch (error) {
      if (!isErrno(error, 'ENOENT')) {
        this.options.onWatchError?.(path, error instanceof Error ? error : new Error(String(error)));
      }
      return undefined;
    }
  }
}
