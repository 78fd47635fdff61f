// Gives memory back after an attack. Thousands of streams opened in one burst are promoted to
// V8's old generation before they die, and with the image's capped heap nothing collects them
// until V8's memory reducer runs, 30 s or more later (bench/README.md, "Abusive clients"). One
// full collection once the burst is over returns that memory at once.
//
// A "last resort" collection, not a plain gc(): since V8 12 (Node 22+) a plain full collection
// keeps the pages it empties in V8's page pool, still resident. On Node 24 with the image's flags,
// 30 MiB of garbage freed by gc() left RSS where it was (56.4 → 56.4 MiB anonymous); the last-resort
// flavour returned it (59.2 → 10.5 MiB). On Node 20 both flavours behave alike (no page pool).
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

interface GcOptions {
  type: 'major';
  execution: 'sync';
  flavor: 'last-resort';
}

let gc: ((options: GcOptions) => void) | undefined;

export function collectGarbage(): void {
  if (!gc) {
    setFlagsFromString('--expose-gc');
    gc = runInNewContext('gc') as (options: GcOptions) => void;
  }
  gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
}
