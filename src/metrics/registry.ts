// Prometheus metrics: a view of the verdict and of refresh reports. Gauges that describe the
// present read the last verdict at scrape time; counters follow refreshes, whoever triggered them.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { PluginStatusReport } from '../cni/plugin-status.js';
import type { RefreshReport } from '../cni/refresher.js';
import { fileStatus } from '../cni/report.js';
import { FAILURE_REASONS } from '../cni/types.js';
import type { CallObserver } from '../cri/server.js';
import type { VerdictExporter, VerdictSource } from '../verdict/publisher.js';
import type { Verdict } from '../verdict/verdict.js';

export class AgentMetrics implements VerdictExporter, CallObserver {
  readonly registry = new Registry();
  private readonly refreshes: Counter;
  private readonly failures: Counter<'reason'>;
  private readonly duration: Histogram;
  private readonly info: Gauge<'network' | 'cni_version' | 'file'>;
  private readonly statusRequests: Counter<'code'>;
  private readonly statusOk: Counter.Internal;
  private readonly lastSuccess: Gauge;
  private readonly timeouts: Counter;
  private readonly probeDuration: Histogram<'plugin'>;

  /** `verdicts` is read at scrape time, so a gauge never shows a verdict past its deadline. */
  constructor(version: string, verdicts: Pick<VerdictSource, 'current'>) {
    const verdict = (): Verdict => verdicts.current;
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    // These three are gauges named like counters, which `promtool check metrics` rejects; the same
    // figures stay available as nodejs_active_handles, nodejs_active_requests, nodejs_active_resources.
    for (const name of [
      'nodejs_active_handles_total',
      'nodejs_active_requests_total',
      'nodejs_active_resources_total',
    ]) {
      this.registry.removeSingleMetric(name);
    }
    new Gauge({
      name: 'cri_netstatus_build_info',
      help: 'Build information; always 1.',
      labelNames: ['version'],
      registers,
    }).set({ version }, 1);
    new Gauge({
      name: 'cri_netstatus_network_ready',
      help: 'NetworkReady as served by Status (1 ready, 0 not).',
      registers,
      collect() {
        this.set(verdict().networkReady ? 1 : 0);
      },
    });
    new Gauge({
      name: 'cri_netstatus_runtime_ready',
      help: 'RuntimeReady as served by Status (1 ready, 0 not).',
      registers,
      collect() {
        this.set(verdict().runtimeReady ? 1 : 0);
      },
    });
    new Gauge({
      name: 'cri_netstatus_config_stale',
      help: 'Whether a last good network config is being served after failed refreshes (1) or not (0).',
      registers,
      collect() {
        this.set(verdict().state.selection.stale ? 1 : 0);
      },
    });
    this.lastSuccess = new Gauge({
      name: 'cri_netstatus_config_last_success_timestamp_seconds',
      help: 'Unix time of the last refresh in which every config file loaded.',
      registers,
    });
    new Gauge({
      name: 'cri_netstatus_config_files',
      help: 'Config files in the CNI conf dir by load status (accepted, stale: last good kept, rejected: never loaded).',
      labelNames: ['status'],
      registers,
      collect() {
        const counts = { accepted: 0, stale: 0, rejected: 0 };
        for (const file of verdict().state.files) {
          counts[fileStatus(file)]++;
        }
        for (const [status, count] of Object.entries(counts)) this.set({ status }, count);
      },
    });
    this.info = new Gauge({
      name: 'cri_netstatus_config_info',
      help: 'The default network in force; always 1.',
      labelNames: ['network', 'cni_version', 'file'],
      registers,
    });
    this.refreshes = new Counter({
      name: 'cri_netstatus_config_refreshes_total',
      help: 'Refreshes of the network config attempted (on Status calls, file events and the periodic resync).',
      registers,
    });
    this.failures = new Counter({
      name: 'cri_netstatus_config_refresh_failures_total',
      help: 'Refreshes that found a new load failure, by reason; a failure is counted once per change on disk.',
      labelNames: ['reason'],
      registers,
    });
    for (const reason of FAILURE_REASONS) this.failures.inc({ reason }, 0);
    this.duration = new Histogram({
      name: 'cri_netstatus_config_refresh_duration_seconds',
      help: 'Time one refresh of the network config took.',
      buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25],
      registers,
    });
    this.timeouts = new Counter({
      name: 'cri_netstatus_config_refresh_timeouts_total',
      help: 'Status calls that stopped waiting for their refresh at --refresh-timeout (or their grpc-timeout) and answered from the last state.',
      registers,
    });
    this.statusRequests = new Counter({
      name: 'cri_netstatus_status_requests_total',
      help: 'CRI Status calls served, by gRPC status code.',
      labelNames: ['code'],
      registers,
    });
    this.statusOk = this.statusRequests.labels('OK');
    new Gauge({
      name: 'cri_netstatus_plugin_status',
      help: "The CNI STATUS result of each plugin of the network in force (--plugin-status); 1 for the plugin's current result.",
      labelNames: ['network', 'plugin', 'result'],
      registers,
      collect() {
        // Rebuilt from the verdict at each scrape, so a network or plugin that went away leaves no series.
        this.reset();
        const report = verdict().pluginStatus;
        for (const p of report?.plugins ?? [])
          this.set({ network: report?.network ?? '', plugin: p.plugin, result: p.result }, 1);
      },
    });
    this.probeDuration = new Histogram({
      name: 'cri_netstatus_plugin_status_duration_seconds',
      help: "Time one plugin's CNI STATUS took (a timed-out one counts up to --plugin-status-timeout).",
      labelNames: ['plugin'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
  }

  onPluginStatus(report: PluginStatusReport): void {
    for (const p of report.plugins) {
      if (p.result !== 'skipped') this.probeDuration.observe({ plugin: p.plugin }, p.durationMs / 1000);
    }
  }

  onRefresh(report: RefreshReport): void {
    this.refreshes.inc();
    this.duration.observe(report.durationSeconds);
    if (report.newFailure) this.failures.inc({ reason: report.newFailure });
    if (report.state.lastError === undefined) this.lastSuccess.set(report.at / 1000);
  }

  onRefreshTimeout(): void {
    this.timeouts.inc();
  }

  onVerdict(verdict: Verdict, previous: Verdict): void {
    if (verdict.state === previous.state) return;
    this.info.reset();
    const { network, file } = verdict.state.selection;
    if (network)
      this.info.set({ network: network.name, cni_version: network.cniVersion, file: file ?? '' }, 1);
  }

  callFinished(method: string, code: string): void {
    if (method !== 'Status') return;
    if (code === 'OK') this.statusOk.inc();
    else this.statusRequests.inc({ code });
  }
}
