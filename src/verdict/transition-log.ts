// The log view of the verdict: one line per change in the conf dir (a file accepted, rejected or
// kept last-good; the network changed), at warning level for what an operator must act on; and one
// when a refresh starts to outlive Status calls' --refresh-timeout, and one when that ends.
import type { Logger } from '../log.js';
import type { VerdictExporter } from './publisher.js';
import type { Verdict } from './verdict.js';

export class TransitionLog implements VerdictExporter {
  constructor(private readonly log: Logger) {}

  onVerdict(verdict: Verdict, previous: Verdict): void {
    for (const change of verdict.changes) {
      const { severity, message, ...fields } = change;
      if (severity === 'warning') this.log.warn(fields, message);
      else this.log.info(fields, message);
    }
    this.pluginStatus(verdict, previous);
    const timedOut = verdict.inputs.refreshTimeout !== undefined;
    if (timedOut === (previous.inputs.refreshTimeout !== undefined)) return;
    const fields = { kind: 'RefreshTimeout', confDir: verdict.state.confDir };
    if (timedOut) this.log.warn(fields, verdict.conditions[2].message);
    else this.log.info(fields, 'the network config refresh completed again: answers are up to date');
  }

  /** One line when a CNI STATUS probe's outcome changes (the publisher keeps equal outcomes as they were). */
  private pluginStatus(verdict: Verdict, previous: Verdict): void {
    const report = verdict.pluginStatus;
    if (report === undefined || report === previous.pluginStatus) return;
    const failed = report.failed;
    const fields = { kind: 'PluginStatus', network: report.network, file: report.file };
    if (failed) {
      this.log.warn(
        { ...fields, plugin: failed.plugin, result: failed.result, code: failed.code },
        `plugin "${failed.plugin}" failed CNI STATUS (${failed.result}): ${failed.message ?? ''}`,
      );
    } else if (report.skipped === undefined) {
      this.log.info(fields, `CNI STATUS ok for every plugin of network "${report.network}"`);
    } else if (previous.pluginStatus?.skipped !== report.skipped) {
      this.log.info(fields, `CNI STATUS not run for network "${report.network}": ${report.skipped}`);
    }
  }
}
