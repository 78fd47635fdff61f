// `cri-netstatus status`: a CRI client of the agent's socket (or any CRI runtime's), like
// `crictl info`. Exit 0 when RuntimeReady and NetworkReady are true, 1 when not, 2 when the
// socket does not answer.
import { errorText } from '../util/text.js';
import type { StatusResponse, VersionResponse } from '../gen/runtime/v1/api.js';
import { UpstreamClient } from '../upstream/client.js';
import { duration, helpText, oneOf, parseFlags, unixEndpoint, helpFlag } from './flags.js';
import { printable } from './printable.js';

export const statusFlags = {
  socket: {
    description: 'CRI socket to ask',
    default: '/run/cri-netstatus/cri.sock',
    accepts: 'a path or unix:///path',
    parse: unixEndpoint,
  },
  verbose: {
    description: 'include the info map (files, verdicts, refresh counters)',
    boolean: true,
    short: 'v',
    env: false,
    default: 'false',
    parse: (raw: string) => raw === 'true',
  },
  output: {
    description: 'output format',
    short: 'o',
    default: 'table',
    accepts: 'json, table',
    env: false,
    parse: oneOf(['json', 'table'] as const),
  },
  timeout: { description: 'give up after this long', default: '5s', accepts: 'a duration', parse: duration },
  help: helpFlag,
} as const;

export const STATUS_SUMMARY =
  'Ask a CRI socket for Version and Status, like crictl info. Exit 0 ready, 1 not ready, 2 unreachable.';

export interface StatusResult {
  version: VersionResponse;
  status: StatusResponse;
}

/** Version, then Status, from one connection: the same client the upstream mirror uses. */
export async function queryStatus(
  socket: string,
  verbose: boolean,
  timeoutMs: number,
): Promise<StatusResult> {
  const client = new UpstreamClient(socket);
  try {
    const version = await client.version(timeoutMs);
    const status = await client.status(verbose, timeoutMs);
    return { version, status };
  } finally {
    client.close();
  }
}

export async function status(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const flags = parseFlags('status', statusFlags, argv, env);
  if (flags.help) {
    process.stdout.write(helpText('status', STATUS_SUMMARY, statusFlags));
    return 0;
  }
  let result: StatusResult;
  try {
    result = await queryStatus(flags.socket, flags.verbose || flags.output === 'json', flags.timeout);
  } catch (error) {
    const why = errorText(error);
    process.stderr.write(`cri-netstatus status: cannot reach ${flags.socket}: ${why}\n`);
    return 2;
  }
  const conditions = result.status.status?.conditions ?? [];
  const ready = ['RuntimeReady', 'NetworkReady'].every((type) =>
    conditions.some((c) => c.type === type && c.status),
  );
  process.stdout.write(
    flags.output === 'json'
      ? `${JSON.stringify(toJson(result), null, 2)}\n`
      : formatTable(result, flags.verbose),
  );
  return ready ? 0 : 1;
}

/** crictl info's shape: status with lowerCamel condition fields, then each info key parsed from JSON. */
export function toJson({ status, version }: StatusResult): Record<string, unknown> {
  const out: Record<string, unknown> = {
    status: {
      conditions: (status.status?.conditions ?? []).map((c) => ({
        type: c.type,
        status: c.status,
        reason: c.reason,
        message: c.message,
      })),
    },
    runtime: {
      name: version.runtimeName,
      version: version.runtimeVersion,
      apiVersion: version.runtimeApiVersion,
    },
  };
  for (const key of Object.keys(status.info).sort()) {
    const raw = status.info[key] ?? '';
    try {
      out[key] = JSON.parse(raw) as unknown;
    } catch {
      out[key] = raw;
    }
  }
  return out;
}

function formatTable({ status, version }: StatusResult, verbose: boolean): string {
  const conditions = status.status?.conditions ?? [];
  const network = conditions.find((c) => c.type === 'NetworkReady');
  const lines: string[] = [];
  lines.push(
    network?.status
      ? `READY: NetworkReady=true (${version.runtimeName} ${version.runtimeVersion})`
      : `NOT READY: ${network ? `NetworkReady=false reason:${network.reason} message:${network.message}` : 'no NetworkReady condition'}`,
  );
  lines.push('', `${'CONDITION'.padEnd(24)}${'STATUS'.padEnd(8)}${'REASON'.padEnd(24)}MESSAGE`);
  for (const c of conditions)
    lines.push(
      `${c.type.padEnd(24)}${String(c.status).padEnd(8)}${(c.reason || '-').padEnd(24)}${c.message || '-'}`,
    );
  const cni = parseInfo(status.info.cniconfig);
  if (cni) {
    const net = cni.network as { name?: string; file?: string; stale?: boolean } | null;
    lines.push(
      '',
      `network: ${net ? `"${net.name ?? ''}" from ${net.file ?? '?'}${net.stale ? ' (last good, stale)' : ''}` : 'none'}`,
    );
    const files = (cni.files ?? []) as { file: string; status: string; error: string | null }[];
    for (const file of files)
      lines.push(`  ${file.status.padEnd(9)}${file.file}${file.error ? `  ${file.error}` : ''}`);
  }
  const loadStatus = status.info.lastCNILoadStatus;
  if (verbose && loadStatus) lines.push(`lastCNILoadStatus: ${loadStatus.replace(/^"|"$/g, '')}`);
  if (verbose) lines.push(...pluginStatusLines(parseInfo(status.info.pluginStatus)));
  return `${lines.map(printable).join('\n')}\n`;
}

interface ProbeInfo {
  at: string;
  skipped: string | null;
  plugins: {
    plugin: string;
    result: string;
    code: number | null;
    message: string | null;
    durationMs: number;
  }[];
}

/** The last CNI STATUS run, one line per plugin (info.pluginStatus, --plugin-status). */
function pluginStatusLines(info: Record<string, unknown> | undefined): string[] {
  const probe = info?.lastProbe as ProbeInfo | null | undefined;
  if (!probe) return [];
  if (probe.skipped) return [`CNI STATUS: not run: ${probe.skipped}`];
  return [
    `CNI STATUS (${probe.at}):`,
    ...probe.plugins.map(
      (p) =>
        `  ${p.result.padEnd(14)}${p.plugin}  ${Math.round(p.durationMs)}ms${p.code === null ? '' : `  code ${p.code}`}${p.message ? `  ${p.message}` : ''}`,
    ),
  ];
}

function parseInfo(raw: string | undefined): Record<string, unknown> | undefined {
  if (raw === undefined) return undefined;
  try {
    return JSON.parse(raw) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}
