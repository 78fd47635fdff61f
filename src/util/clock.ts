// Time as a dependency. Every stateful class takes a Clock instead of reading Date.now() or arming
// global timers, so tests drive time (test/helpers/clock.ts) instead of sleeping through it.

/** A pending callback; cancelling one that already ran is a no-op. */
export interface Timer {
  cancel(): void;
}

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Runs `callback` once after `ms`. The timer never keeps the process alive: the servers do. */
  setTimeout(callback: () => void, ms: number): Timer;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout(callback, ms) {
    const handle = setTimeout(callback, ms);
    handle.unref();
    return { cancel: () => clearTimeout(handle) };
  },
};

/** Runs `callback` every `ms` on `clock` until cancelled. */
export function every(clock: Clock, ms: number, callback: () => void): Timer {
  let timer: Timer;
  let cancelled = false;
  const tick = (): void => {
    if (cancelled) return;
    timer = clock.setTimeout(tick, ms);
    callback();
  };
  timer = clock.setTimeout(tick, ms);
  return {
    cancel() {
      cancelled = true;
      timer.cancel();
    },
  };
}

/** Runs `callback` once, `delayMs` after the first of a burst of `soon()` calls: a burst costs one run. */
export class Debounced {
  private timer: Timer | undefined;

  constructor(
    private readonly clock: Clock,
    private readonly callback: () => void,
  ) {}

  soon(delayMs: number): void {
    if (this.timer) return;
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      this.callback();
    }, delayMs);
  }

  cancel(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }
}
