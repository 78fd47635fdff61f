// --metrics-auth kubernetes, assembled: the serving certificate (files, reloaded; or self-signed),
// the TokenReview + SubjectAccessReview authorizer, and what an operator sees of a refused scrape
// (the status and a line saying why, cri_netstatus_metrics_auth_denied_total{reason}, and a log
// line at most once a minute per reason). @kubernetes/client-node is loaded only in this mode.
import type { IncomingMessage, Server } from 'node:http';
import { hostname } from 'node:os';
import { Server as HttpsServer } from 'node:https';
import type { SecureContextOptions } from 'node:tls';
import { Counter } from 'prom-client';
import type { Registry } from 'prom-client';
import { KubeConfigError, UsageError } from '../errors.js';
import type { Logger } from '../log.js';
import { DENY_REASONS, MetricsAuthorizer } from './auth.js';
import type { AuthOutcome, DenyReason } from './auth.js';
import type { Denial } from './http.js';
import { generateSelfSigned } from './self-signed.js';
import { loadKeyPair, watchKeyPair } from './tls.js';
import type { KeyPairWatch } from './tls.js';

export const METRICS_AUTH_MODES = ['none', 'kubernetes'] as const;
export type MetricsAuthMode = (typeof METRICS_AUTH_MODES)[number];

export interface MetricsSecurityOptions {
  mode: MetricsAuthMode;
  certFile?: string | undefined;
  keyFile?: string | undefined;
  kubeconfig?: string | undefined;
  nodeName?: string | undefined;
  env: NodeJS.ProcessEnv;
  log: Logger;
  registry: Registry;
  /** How often the certificate files are checked for a change. */
  reloadIntervalMs?: number;
}

export interface MetricsSecurity {
  tls: SecureContextOptions;
  guard: (request: IncomingMessage) => Promise<Denial | undefined>;
  /** Starts reloading the certificate files into the listening server. */
  attach(server: Server): void;
  stop(): void;
}

/** One log line per reason per minute; the lines in between are counted into the next one. */
const DENIAL_LOG_INTERVAL_MS = 60_000;
export const DEFAULT_CERT_RELOAD_MS = 10_000;

/** What is wrong with the combination of metrics flags, or undefined; `serve` exits 2 on it. */
export function metricsFlagsProblem(
  options: Pick<MetricsSecurityOptions, 'mode' | 'certFile' | 'keyFile'>,
): string | undefined {
  const { mode, certFile, keyFile } = options;
  if (mode === 'none' && (certFile || keyFile)) {
    return '--metrics-tls-cert and --metrics-tls-key are used only with --metrics-auth kubernetes (the endpoint serves plain HTTP otherwise)';
  }
  if (Boolean(certFile) !== Boolean(keyFile)) {
    return '--metrics-tls-cert and --metrics-tls-key go together: give both, or neither for a self-signed certificate';
  }
  return undefined;
}

/** Undefined when --metrics-auth is none; throws an error naming the flag or file otherwise. */
export async function startMetricsSecurity(
  options: MetricsSecurityOptions,
): Promise<MetricsSecurity | undefined> {
  const { mode, certFile, keyFile, log } = options;
  const problem = metricsFlagsProblem(options);
  if (problem) throw new UsageError(problem);
  if (mode === 'none') return undefined;
  const access = await clusterAccess(options);

  let tls: SecureContextOptions;
  let watch: KeyPairWatch | undefined;
  let files: { cert: string; key: string } | undefined;
  if (certFile && keyFile) {
    const pair = loadKeyPair(certFile, keyFile);
    tls = { cert: pair.cert, key: pair.key };
    files = { cert: certFile, key: keyFile };
    log.info(
      {
        cert: certFile,
        fingerprint256: pair.fingerprint256,
        validTo: pair.validTo,
        apiServer: access.server,
      },
      'metrics endpoint: HTTPS, /metrics needs a bearer token the API server accepts (TokenReview) and allows (SubjectAccessReview)',
    );
  } else {
    const hosts = [...new Set([hostname(), options.nodeName, 'localhost', '127.0.0.1', '::1'].filter(isSet))];
    const generated = generateSelfSigned({ commonName: options.nodeName ?? hostname(), hosts });
    tls = { cert: generated.cert, key: generated.key };
    log.info(
      {
        cert: 'self-signed',
        fingerprint256: generated.fingerprint256,
        validTo: generated.validTo.toISOString(),
        hosts,
        apiServer: access.server,
      },
      'metrics endpoint: HTTPS with a self-signed certificate (pass --metrics-tls-cert/--metrics-tls-key to use your own), /metrics needs a bearer token the API server accepts (TokenReview) and allows (SubjectAccessReview)',
    );
  }

  // After the certificate: a bad file fails the start before any API client exists.
  const { createKubeReviewer } = await import('../kube/review.js');
  const reviewer = createKubeReviewer(access);
  const authorizer = new MetricsAuthorizer({ reviewer });
  const denied = new Counter({
    name: 'cri_netstatus_metrics_auth_denied_total',
    help: 'Requests for /metrics refused: no_token and unauthenticated (401), forbidden (403), unavailable (503: the API server could not decide).',
    labelNames: ['reason'],
    registers: [options.registry],
  });
  for (const reason of DENY_REASONS) denied.inc({ reason }, 0);
  const denialLog = new DenialLog(log);

  return {
    tls,
    async guard(request): Promise<Denial | undefined> {
      const outcome = await authorizer.authorize(request.headers.authorization);
      if (outcome.allowed) return undefined;
      denied.inc({ reason: outcome.reason });
      denialLog.record(outcome, request.socket.remoteAddress);
      const headers: Record<string, string> = {};
      if (outcome.status === 401) headers['www-authenticate'] = 'Bearer realm="cri-netstatus"';
      if (outcome.status === 503) headers['retry-after'] = '5';
      return { status: outcome.status, message: outcome.message, headers };
    },
    attach(server) {
      if (!files || watch || !(server instanceof HttpsServer)) return;
      const { cert, key } = files;
      watch = watchKeyPair(cert, key, {
        intervalMs: options.reloadIntervalMs ?? DEFAULT_CERT_RELOAD_MS,
        onReload: (pair) => {
          server.setSecureContext({ cert: pair.cert, key: pair.key });
          log.info(
            { cert, fingerprint256: pair.fingerprint256, validTo: pair.validTo },
            'metrics endpoint: serving certificate reloaded',
          );
        },
        onError: (error) =>
          log.error(
            { err: error.message },
            'metrics endpoint: the changed certificate does not load; still serving the previous one',
          ),
      });
    },
    stop() {
      watch?.stop();
      reviewer.close();
    },
  };
}

async function clusterAccess(options: MetricsSecurityOptions) {
  const config = await import('../kube/config.js');
  if (options.kubeconfig) return config.loadKubeconfig(options.kubeconfig);
  if (config.inClusterAvailable(options.env)) return config.loadInCluster(options.env);
  throw new KubeConfigError(
    '--metrics-auth kubernetes needs the API server for TokenReview and SubjectAccessReview: run in a Pod with a service-account token, or pass --kubeconfig PATH',
  );
}

class DenialLog {
  private readonly last = new Map<DenyReason, { at: number; suppressed: number }>();

  constructor(
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  record(outcome: Extract<AuthOutcome, { allowed: false }>, remote: string | undefined): void {
    const now = this.now();
    const entry = this.last.get(outcome.reason);
    if (entry && now - entry.at < DENIAL_LOG_INTERVAL_MS) {
      entry.suppressed++;
      return;
    }
    this.last.set(outcome.reason, { at: now, suppressed: 0 });
    const fields = {
      reason: outcome.reason,
      status: outcome.status,
      remote,
      ...(outcome.user ? { user: outcome.user } : {}),
      ...(entry?.suppressed ? { alsoRefusedSinceLastLine: entry.suppressed } : {}),
      why: outcome.message,
    };
    if (outcome.reason === 'unavailable')
      this.log.error(fields, 'metrics scrape refused: the API server could not check the token');
    else this.log.warn(fields, 'metrics scrape refused');
  }
}

function isSet(value: string | undefined): value is string {
  return Boolean(value);
}
