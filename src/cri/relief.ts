// Gives memory back after an attack. Thousands of streams opened in one burst are promoted to
// V8's old generation before they die, and with the image's capped heap nothing collects them
// until V8's memory reducer runs, 30 s or more later (bench/README.md, "Abusive clients"). One
// full collection once the burst is over returns that memory at once.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let gc: (() => void) | undefined;

export function collectGarbage(): void {
  if (!gc) {
    setFlagsFromString('--expose-gc');
    gc = runInNewContext('gc') as () => void;
  }
  gc();
}
