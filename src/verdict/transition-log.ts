// The log view of the verdict: one line per change in the conf dir (a file accepted, rejected or
// kept last-good; the network changed), at warning level for what an operator must act on.
import type { Logger } from '../log.js';
import type { VerdictExporter } from './publisher.js';
import type { Verdict } from './verdict.js';

export class TransitionLog implements VerdictExporter {
  constructor(private readonly log: Logger) {}

  onVerdict(verdict: Verdict): void {
    for (const change of verdict.changes) {
      const { severity, message, ...fields } = change;
      if (severity === 'warning') this.log.warn(fields, message);
      else this.log.info(fields, message);
    }
  }
}
