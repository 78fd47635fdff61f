// `cri-netstatus check`: an offline lint of a conf dir with the daemon's own loader, reporting the
// verdict under every selection profile, so an operator can see what the node's runtime will do.
import { resolve } from 'node:path';
import { Refresher } from '../cni/refresher.js';
import { DEFAULT_MAX_FILE_SIZE } from '../cni/files.js';
import { PluginProber } from '../cni/plugin-prober.js';
import type { PluginStatusReport } from '../cni/plugin-status.js';
import { parseSemanticsFlag, profileLibcni } from '../cni/profiles.js';
import { fileReport, verdictReport } from '../cni/report.js';
import type { FileReport, VerdictReport } from '../cni/report.js';
import { SEMANTICS } from '../cni/types.js';
import type { NetworkState, Semantics } from '../cni/types.js';
import { systemClock } from '../util/clock.js';
import {
  duration,
  helpText,
  list,
  nonEmpty,
  oneOf,
  parseFlags,
  size,
  text,
  helpFlag,
  warnFlag,
} from './flags.js';
import { printable } from './printable.js';

export const checkFlags = {
  'cni-conf-dir': {
    description: 'CNI network config directory to check',
    default: '/etc/cni/net.d',
    parse: nonEmpty,
  },
  'cni-bin-dir': {
    description: 'CNI plugin binary directories, comma-separated',
    default: '/opt/cni/bin',
    accepts: 'DIR[,DIR...]',
    parse: list,
  },
  'host-root': {
    description: "where the node's root filesystem is mounted (e.g. /host under kubectl debug node/...)",
    parse: text,
  },
  semantics: {
    description: 'the profile whose verdict sets the exit code and whose decoding `files` shows',
    default: 'isulad',
    accepts: `${SEMANTICS.join(', ')}, containerd (deprecated: containerd-1.7)`,
    parse: (raw: string): Semantics => {
      const flag = parseSemanticsFlag(raw, warnFlag);
      if (flag === 'auto')
        throw new Error('"auto" needs a running runtime; name the profile (check is offline)');
      return flag;
    },
  },
  'max-file-size': {
    description: 'reject config files larger than this',
    default: String(DEFAULT_MAX_FILE_SIZE),
    accepts: 'bytes, or 512Ki, 1Mi',
    parse: size,
  },
  probe: {
    description:
      "also run the CNI STATUS verb once on the plugins of the --semantics profile's network (executes them, as the runtime does); a failure exits 1",
    boolean: true,
    env: false,
    default: 'false',
    parse: (raw: string): boolean => raw === 'true',
  },
  'plugin-status-timeout': {
    description: "with --probe: longest one plugin's STATUS may run before it is killed",
    default: '2s',
    accepts: 'a duration such as 2s',
    parse: duration,
  },
  output: {
    description: 'output format',
    short: 'o',
    default: 'text',
    accepts: 'json, text',
    env: false,
    parse: oneOf(['json', 'text'] as const),
  },
  help: helpFlag,
} as const;

export interface CheckReport {
  confDir: string;
  hostRoot?: string;
  binDirs: string[];
  dirError: string | null;
  /** The files as the --semantics profile's libcni decodes them. */
  files: FileReport[];
  verdicts: Record<Semantics, VerdictReport>;
  /** Per profile: its libcni release, each file's accept/reject and error as that release decides, and its verdict. */
  profiles: Record<Semantics, ProfileReport>;
  /** With --probe: the CNI STATUS of the --semantics profile's network. */
  pluginStatus?: PluginStatusReport | null;
}

export interface ProfileReport {
  libcni: string;
  files: Array<{ file: string; status: FileReport['status']; error: string | null }>;
  verdict: VerdictReport;
}

export const CHECK_SUMMARY =
  'Lint a CNI conf dir offline and show which network containerd, CRI-O and iSulad semantics would pick. Exit 0 when --semantics yields a network, 1 when not.';

/** `check --probe`: one STATUS run over the network `state` selects (null: no network to probe). */
export async function probeOnce(state: NetworkState, timeoutMs: number): Promise<PluginStatusReport | null> {
  let report: PluginStatusReport | null = null;
  const prober = new PluginProber({
    mode: 'on',
    timeoutMs,
    clock: systemClock,
    onReport: (r) => (report = r),
  });
  await prober.probe(state);
  return report;
}

export function runCheck(options: {
  confDir: string;
  binDirs: string[];
  hostRoot?: string | undefined;
  maxFileSize: number;
  semantics?: Semantics;
}): CheckReport & { state: NetworkState } {
  // Under a host root the paths are the node's own (relative ones from its /), and symlinks are
  // followed as the node would follow them, not into this container's filesystem.
  const root = options.hostRoot ? resolve(options.hostRoot) : undefined;
  const onHost = (path: string): string => (root ? resolve('/', path) : resolve(path));
  // Each profile decodes with its runtime's libcni release: one scan per profile (a lint, not a hot path).
  const states = Object.fromEntries(
    SEMANTICS.map((profile) => {
      const refresher = new Refresher({
        confDir: onHost(options.confDir),
        binDirs: options.binDirs.map(onHost),
        semantics: profile,
        maxFileSize: options.maxFileSize,
        ...(root ? { root } : {}),
      });
      return [profile, refresher.refresh()];
    }),
  ) as Record<Semantics, NetworkState>;
  const state = states[options.semantics ?? 'isulad'];
  const profiles = Object.fromEntries(
    SEMANTICS.map((profile): [Semantics, ProfileReport] => [
      profile,
      {
        libcni: `v${profileLibcni(profile).libcni}`,
        files: states[profile].files.map((file) => {
          const report = fileReport(file);
          return { file: report.file, status: report.status, error: report.error };
        }),
        verdict: verdictReport(states[profile].verdicts[profile]),
      },
    ]),
  ) as Record<Semantics, ProfileReport>;
  return {
    confDir: state.confDir,
    ...(root ? { hostRoot: root } : {}),
    binDirs: [...state.binDirs],
    dirError: state.dirError?.message ?? null,
    files: state.files.map(fileReport),
    verdicts: Object.fromEntries(SEMANTICS.map((p) => [p, profiles[p].verdict])) as Record<
      Semantics,
      VerdictReport
    >,
    profiles,
    state,
  };
}

export async function check(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const flags = parseFlags('check', checkFlags, argv, env);
  if (flags.help) {
    process.stdout.write(helpText('check', CHECK_SUMMARY, checkFlags));
    return 0;
  }
  const { state, ...report } = runCheck({
    confDir: flags['cni-conf-dir'],
    binDirs: flags['cni-bin-dir'],
    hostRoot: flags['host-root'],
    maxFileSize: flags['max-file-size'],
    semantics: flags.semantics,
  });
  if (flags.probe) report.pluginStatus = await probeOnce(state, flags['plugin-status-timeout']);
  process.stdout.write(
    flags.output === 'json' ? `${JSON.stringify(report, null, 2)}\n` : formatCheck(report, flags.semantics),
  );
  return report.verdicts[flags.semantics].ready && !report.pluginStatus?.failed ? 0 : 1;
}

export function formatCheck(report: CheckReport, semantics: Semantics): string {
  return formatLines(report, semantics).map(printable).join('\n') + '\n';
}

function formatLines(report: CheckReport, semantics: Semantics): string[] {
  const chosen = report.verdicts[semantics];
  const where = report.hostRoot ? `${report.confDir} (under ${report.hostRoot})` : report.confDir;
  const lines = [
    `${where}: ${chosen.ready ? `READY: network "${chosen.network ?? ''}" from ${chosen.file ?? '?'}` : `NOT READY: ${chosen.reason ?? ''}`} (${semantics} semantics)`,
  ];
  if (report.dirError) lines.push(`  directory: ${report.dirError}`);
  if (report.files.length === 0 && !report.dirError) lines.push('  no .conf, .conflist or .json files');
  const width = Math.max(0, ...report.files.map((file) => printable(file.file).length));
  for (const file of report.files) {
    const detail =
      file.status === 'accepted'
        ? `network "${file.network ?? ''}" cniVersion ${file.cniVersion || 'unset'}, plugins ${file.plugins.join(', ')}`
        : (file.error ?? '');
    // Padded as it will print: escapes are wider than the characters they stand for.
    lines.push(
      `  ${file.status.padEnd(8)} ${file.file.padEnd(width - printable(file.file).length + file.file.length)}  ${detail}`,
    );
    if (file.missingBinaries.length)
      lines.push(
        `  ${''.padEnd(8)} ${''.padEnd(width)}  missing plugin binaries in ${report.binDirs.join(', ')}: ${file.missingBinaries.join(', ')}`,
      );
    for (const warning of file.warnings)
      lines.push(`  ${''.padEnd(8)} ${''.padEnd(width)}  warning: ${warning}`);
  }
  if (report.pluginStatus !== undefined) lines.push(...probeLines(report.pluginStatus));
  lines.push('verdicts:');
  for (const profile of SEMANTICS) {
    const verdict = report.verdicts[profile];
    lines.push(
      `  ${profile.padEnd(14)} ${verdict.ready ? `ready      network "${verdict.network ?? ''}" from ${verdict.file ?? '?'}` : `NOT READY  ${verdict.reason ?? ''}`}`,
    );
  }
  return lines;
}

function probeLines(report: PluginStatusReport | null): string[] {
  if (report === null) return ['CNI STATUS: no network to probe'];
  const head = report.skipped
    ? `CNI STATUS: not run: ${report.skipped}`
    : report.failed
      ? `CNI STATUS: FAILED: plugin "${report.failed.plugin}" (${report.failed.result})`
      : `CNI STATUS: ok (network "${report.network}")`;
  const width = Math.max(0, ...report.plugins.map((p) => p.plugin.length));
  const lines = report.skipped
    ? []
    : report.plugins.map(
        (p) =>
          `  ${p.result.padEnd(13)} ${p.plugin.padEnd(width)}  ${Math.round(p.durationMs)}ms${p.code === undefined ? '' : `  code ${p.code}`}${p.message ? `  ${p.message}` : ''}`,
      );
  return [head, ...lines];
}
