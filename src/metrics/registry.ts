// Prometheus metrics: a view of the network state and of refresh reports. Gauges that describe
// the present are read at scrape time; counters follow refreshes, whoever triggered them.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { RefreshReport } from '../cni/refresher.js';
import { fileStatus } from '../cni/report.js';
import { FAILURE_REASONS } from '../cni/types.js';
import type { NetworkState } from '../cni/types.js';

export interface MetricsSources {
  version: string;
  state: () => NetworkState;
  /** NetworkReady and RuntimeReady exactly as Status serves them now. */
  networkReady: () => boolean;
  runtimeReady: () => boolean;
  lastSuccessAt: () => number | undefined;
}

export class AgentMetrics {
  readonly registry = new Registry();
  private readonly refreshes: Counter;
  private readonly failures: Counter<'reason'>;
  private readonly duration: Histogram;
  private readonly info: Gauge<'network' | 'cni_version' | 'file'>;
  private readonly statusRequests: Counter<'code'>;
  private readonly statusOk: Counter.Internal;
  private infoGeneration = -1;

  constructor(sources: MetricsSources) {
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
    }).set({ version: sources.version }, 1);
    new Gauge({
      name: 'cri_netstatus_network_ready',
      help: 'NetworkReady as served by Status (1 ready, 0 not).',
      registers,
      collect() {
        this.set(sources.networkReady() ? 1 : 0);
      },
    });
    new Gauge({
      name: 'cri_netstatus_runtime_ready',
      help: 'RuntimeReady as served by Status (1 ready, 0 not).',
      registers,
      collect() {
        this.set(sources.runtimeReady() ? 1 : 0);
      },
    });
    new Gauge({
      name: 'cri_netstatus_config_stale',
      help: 'Whether a last good network config is being served after failed refreshes (1) or not (0).',
      registers,
      collect() {
        this.set(sources.state().selection.stale ? 1 : 0);
      },
    });
    new Gauge({
      name: 'cri_netstatus_config_last_success_timestamp_seconds',
      help: 'Unix time of the last refresh in which every config file loaded.',
      registers,
      collect() {
        const at = sources.lastSuccessAt();
        if (at !== undefined) this.set(at / 1000);
      },
    });
    new Gauge({
      name: 'cri_netstatus_config_files',
      help: 'Config files in the CNI conf dir by load status (accepted, stale: last good kept, rejected: never loaded).',
      labelNames: ['status'],
      registers,
      collect() {
        const counts = { accepted: 0, stale: 0, rejected: 0 };
        for (const file of sources.state().files) {
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
    this.statusRequests = new Counter({
      name: 'cri_netstatus_status_requests_total',
      help: 'CRI Status calls served, by gRPC status code.',
      labelNames: ['code'],
      registers,
    });
    this.statusOk = this.statusRequests.labels('OK');
  }

  observeRefresh(report: RefreshReport): void {
    this.refreshes.inc();
    this.duration.observe(report.durationSeconds);
    if (report.newFailure) this.failures.inc({ reason: report.newFailure });
    const { state } = report;
    if (state.generation !== this.infoGeneration) {
      this.infoGeneration = state.generation;
      this.info.reset();
      const { network, file } = state.selection;
      if (network)
        this.info.set({ network: network.name, cni_version: network.cniVersion, file: file ?? '' }, 1);
    }
  }

  statusServed(code: string): void {
    if (code === 'OK') this.statusOk.inc();
    else this.statusRequests.inc({ code });
  }
}
