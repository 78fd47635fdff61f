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
