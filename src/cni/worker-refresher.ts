// The refresher as the agent runs it: the scan happens in a worker thread (refresh-worker.ts), and
// this class is its face on the main thread, with the same contract as Refresher (read-your-writes:
// `fresh()` resolves with a scan that started after the call). At most one scan is in flight and at
// most one is queued behind it: callers that arrive while a scan runs share the next one, and a hung
// scan is never started a second time, so a hung disk costs one blocked thread and no growing queue.
import { Worker } from 'node:worker_threads';
import { Debounced, systemClock } from '../util/clock.js';
import type { Clock } from '../util/clock.js';
import { initialState } from './refresher.js';
import type { RefreshReport, RefreshStats, RefresherOptions } from './refresher.js';
import type { FailureReason, NetworkState, Semantics } from './types.js';

/** main → worker */
export interface RefreshRequest {
  id: number;
  full: boolean;
  /** The main thread's clock, so the worker's timestamps follow it. */
  now: number;
  /** Switch profile first (`--semantics auto`, once the runtime is known). */
  semantics?: Semantics;
}

/** worker → main */
export interface RefreshReply {
  id: number;
  /** Present only when the state changed. */
  state?: NetworkState;
  report?: { at: number; durationSeconds: number; newFailure?: FailureReason };
  /** The refresh threw (a bug, not a config problem). */
  error?: string;
  stats: RefreshStats;
  confDirIno: number | undefined;
  pluginDirs: readonly string[];
}

interface Waiters {
  promise: Promise<NetworkState>;
  resolve: (state: NetworkState) => void;
  reject: (error: Error) => void;
  full: boolean;
  /** When the first caller asked (clock time): how old the state is if this scan never ends. */
  askedAt: number;
}

export type WorkerRefresherOptions = Omit<RefresherOptions, 'clock' | 'root'> & { clock?: Clock };

export class WorkerRefresher {
  readonly stats: RefreshStats = { attempts: 0, failures: 0, filesRead: 0 };
  private current: NetworkState;
  private dirIno: number | undefined;
  private inUsePluginDirs: readonly string[] = [];
  /** A profile switch not yet sent to the worker: it rides on the next request. */
  private switchTo: Semantics | undefined;
  private readonly clock: Clock;
  private readonly listeners: ((report: RefreshReport) => void)[] = [];
  private worker: Worker;
  private running: (Waiters & { id: number }) | undefined;
  private queued: Waiters | undefined;
  private nextId = 1;
  private readonly soon: Debounced;
  private stopped = false;

  constructor(readonly options: WorkerRefresherOptions) {
    this.clock = options.clock ?? systemClock;
    this.soon = new Debounced(this.clock, () => this.refreshInBackground());
    this.current = initialState(options);
    this.worker = this.spawn();
  }

  get state(): NetworkState {
    return this.current;
  }

  get confDirIno(): number | undefined {
    return this.dirIno;
  }

  /** libcni v1.3 plugin subdirs that lists read, as of the last refresh; the watcher watches them. */
  get pluginDirs(): readonly string[] {
    return this.inUsePluginDirs;
  }

  /**
   * Switches profile (`--semantics auto` once the runtime is known): the next scan decodes every
   * file again; `fresh()` waits for it (a caller bounds that wait like any other).
   */
  useSemantics(semantics: Semantics): void {
    this.options.semantics = semantics;
    this.switchTo = semantics;
    this.current = { ...this.current, semantics };
    this.refreshInBackground();
  }

  /** When the scan in flight was asked for, if one is; the state is at least this old while it runs. */
  get inFlightSince(): number | undefined {
    return this.running?.askedAt;
  }

  onRefresh(listener: (report: RefreshReport) => void): void {
    this.listeners.push(listener);
  }

  /** A state that reflects every change completed before this call (a scan that starts after it). */
  fresh(): Promise<NetworkState> {
    return this.request(false);
  }

  /** Debounced refresh for watcher events: a burst of writes costs one scan. */
  refreshSoon(delayMs = 25): void {
    this.soon.soon(delayMs);
  }

  /** A full refresh (bin dirs too) for a timer or a file event; joins the queued scan, never stacks. */
  refreshInBackground(): void {
    this.request(true).catch((error: unknown) => this.options.onError?.(error));
  }

  /** Ends the worker. A thread blocked in a hung syscall cannot be interrupted; it is not waited for. */
  stop(): void {
    this.stopped = true;
    this.soon.cancel();
    void this.worker.terminate();
    const error = new Error('the refresher stopped');
    this.running?.reject(error);
    this.queued?.reject(error);
    this.running = undefined;
    this.queued = undefined;
  }

  private request(full: boolean): Promise<NetworkState> {
    if (this.stopped) return Promise.resolve(this.current);
    if (this.queued) {
      this.queued.full ||= full;
      return this.queued.promise;
    }
    let resolve!: (state: NetworkState) => void;
    let reject!: (error: Error) => void;
    const promise = new Promise<NetworkState>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    this.queued = { promise, resolve, reject, full, askedAt: this.clock.now() };
    // Callers arriving in the same I/O phase share the scan, as Refresher.fresh() does.
    if (!this.running) setImmediate(() => this.startQueued());
    return promise;
  }

  private startQueued(): void {
    const next = this.queued;
    if (!next || this.running || this.stopped) return;
    this.queued = undefined;
    const id = this.nextId++;
    this.running = { ...next, id };
    const request: RefreshRequest = {
      id,
      full: next.full,
      now: this.clock.now(),
      ...(this.switchTo ? { semantics: this.switchTo } : {}),
    };
    this.switchTo = undefined;
    this.worker.postMessage(request);
  }

  private spawn(): Worker {
    const { confDir, binDirs, semantics, maxFileSize, libcni, dirPlugins } = this.options;
    const data = {
      confDir,
      binDirs,
      semantics,
      maxFileSize,
      ...(libcni ? { libcni } : {}),
      ...(dirPlugins !== undefined ? { dirPlugins } : {}),
    };
    const worker = new Worker(new URL('./refresh-worker.js', import.meta.url), { workerData: data });
    worker.unref(); // the servers keep the process alive, never a (possibly hung) scan
    worker.on('message', (reply: RefreshReply) => this.onReply(reply));
    worker.on('error', (error) => this.options.onError?.(error));
    worker.on('exit', () => {
      if (this.stopped) return;
      // A crashed worker is a bug: fail the waiters, start a fresh worker (it re-reads every file).
      const running = this.running;
      this.running = undefined;
      running?.reject(new Error('the refresh worker exited'));
      this.worker = this.spawn();
      this.startQueued();
    });
    return worker;
  }

  private onReply(reply: RefreshReply): void {
    const running = this.running;
    if (!running || running.id !== reply.id) return;
    this.running = undefined;
    Object.assign(this.stats, reply.stats);
    this.dirIno = reply.confDirIno;
    this.inUsePluginDirs = reply.pluginDirs;
    if (reply.error !== undefined) {
      running.reject(new Error(reply.error));
    } else {
      const previous = this.current;
      if (reply.state) this.current = reply.state;
      const report: RefreshReport = {
        at: reply.report?.at ?? this.clock.now(),
        durationSeconds: reply.report?.durationSeconds ?? 0,
        state: this.current,
        previous,
        ...(reply.report?.newFailure ? { newFailure: reply.report.newFailure } : {}),
      };
      for (const listener of this.listeners) {
        try {
          listener(report);
        } catch (error) {
          this.options.onError?.(error);
        }
      }
      running.resolve(this.current);
    }
    this.startQueued();
  }
}
