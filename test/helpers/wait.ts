// Waiting in tests: poll until a probe says yes, or fail naming what was awaited. One helper for
// every tier, so each test says only what it waits for and how long.

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export interface UntilOptions {
  /** Pause between probes (default 25 ms; e2e tests that ask a server poll slower). */
  intervalMs?: number;
  /** A probe that throws is retried (a server still starting), and its last error told on timeout. */
  retryErrors?: boolean;
  /** More to tell on timeout, e.g. the tail of a peer's log. */
  describe?: () => string;
}

/**
 * Polls `probe` until it returns something other than undefined or false, and returns that. Throws
 * naming `what` after `timeoutMs`; a probe that throws fails the wait at once unless `retryErrors`.
 */
export async function until<T>(
  what: string,
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 5000,
  { intervalMs = 25, retryErrors = false, describe }: UntilOptions = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError = '';
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      if (!retryErrors) throw error;
      lastError = error instanceof Error ? error.message : String(error);
    }
    if (Date.now() > deadline) {
      const more = describe?.() ?? '';
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${lastError}` : ''}${more ? `\n${more}` : ''}`,
      );
    }
    await sleep(intervalMs);
  }
}
