// A clock that tests drive: time stands still until `advance` moves it, and the timers that fall
// due run in time order. Real I/O (sockets, HTTP, files) still runs on the real event loop, so
// `advance` lets pending I/O settle between timers.
import type { Clock, Timer } from '../../src/util/clock.js';

interface Pending {
  at: number;
  seq: number;
  callback: () => void;
  cancelled: boolean;
}

export class ManualClock implements Clock {
  private time: number;
  private seq = 0;
  private pending: Pending[] = [];

  constructor(start = Date.now()) {
    this.time = start;
  }

  now(): number {
    return this.time;
  }

  setTimeout(callback: () => void, ms: number): Timer {
    const entry: Pending = { at: this.time + Math.max(0, ms), seq: this.seq++, callback, cancelled: false };
    this.pending.push(entry);
    return {
      cancel: () => {
        entry.cancelled = true;
      },
    };
  }

  /** Timers armed and not yet run or cancelled. */
  get timers(): number {
    return this.pending.filter((entry) => !entry.cancelled).length;
  }

  /**
   * Moves time forward by `ms`, running every timer that falls due in order (each at its own
   * time), and lets real I/O settle after each so that work a timer starts can finish.
   */
  async advance(ms: number): Promise<void> {
    const end = this.time + ms;
    for (;;) {
      await settle();
      const due = this.pending
        .filter((entry) => !entry.cancelled && entry.at <= end)
        .sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!due) break;
      due.cancelled = true;
      this.pending = this.pending.filter((entry) => !entry.cancelled);
      this.time = Math.max(this.time, due.at);
      due.callback();
    }
    this.time = end;
    await settle();
  }
}

/** Lets queued promise callbacks and one round of I/O run. */
function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Waits for `probe` to return a value while driving `clock`: each round moves it `stepMs` forward
 * (running the timers that fall due) and gives real I/O a few milliseconds. For work that timers
 * on the clock start and real sockets finish, such as the Kubernetes writers against a test server.
 */
export async function untilAdvancing<T>(
  clock: ManualClock,
  what: string,
  probe: () => T | undefined | false,
  { stepMs = 50, realTimeoutMs = 10_000 } = {},
): Promise<T> {
  const deadline = Date.now() + realTimeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await clock.advance(stepMs);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Moves `clock` forward `ms` in `stepMs` steps, giving real I/O a moment after each. */
export async function advanceInSteps(clock: ManualClock, ms: number, stepMs = 50): Promise<void> {
  for (let moved = 0; moved < ms; moved += stepMs) {
    await clock.advance(Math.min(stepMs, ms - moved));
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
