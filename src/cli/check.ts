// `cri-netstatus check`: an offline lint of a conf dir with the daemon's own loader, reporting the
// verdict under every selection profile, so an operator can see what the node's runtime will do.
import { resolve } from 'node:path';
import { Refresher } from '../cni/refresher.js';
import { DEFAULT_MAX_FILE_SIZE } from '../cni/files.js';
import { parseSemanticsFlag, profileLibcni } from '../cni/profiles.js';
import { fileReport, verdictReport } from '../cni/report.js';
import type { FileReport, VerdictReport } from '../cni/report.js';
import { SEMANTICS } from '../cni/types.js';
import type { NetworkState, Semantics } from '../cni/types.js';
import { helpText, list, nonEmpty, oneOf, parseFlags, size, text, helpFlag, warnFlag } from './flags.js';

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
}

export interface ProfileReport {
  libcni: string;
  files: Array<{ file: string; status: FileReport['status']; error: string | null }>;
  verdict: VerdictReport;
}

export const CHECK_SUMMARY =
  'Lint a CNI conf dir offline and show which network containerd, CRI-O and iSulad semantics would pick. Exit 0 when --semantics yields a network, 1 when not.';

export function runCheck(options: {
  confDir: string;
  binDirs: string[];
  hostRoot?: string | undefined;
  maxFileSize: number;
  semantics?: Semantics;
}): CheckReport {
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
  };
}

export function check(argv: string[], env: NodeJS.ProcessEnv): number {
  const flags = parseFlags('check', checkFlags, argv, env);
  if (flags.help) {
    process.stdout.write(helpText('check', CHECK_SUMMARY, checkFlags));
    return 0;
  }
  const report = runCheck({
    confDir: flags['cni-conf-dir'],
    binDirs: flags['cni-bin-dir'],
    hostRoot: flags['host-root'],
    maxFileSize: flags['max-file-size'],
    semantics: flags.semantics,
  });
  process.stdout.write(
    flags.output === 'json' ? `${JSON.stringify(report, null, 2)}\n` : formatCheck(report, flags.semantics),
  );
  return report.verdicts[flags.semantics].ready ? 0 : 1;
}

export function formatCheck(report: CheckReport, semantics: Semantics): string {
  const chosen = report.verdicts[semantics];
  const where = report.hostRoot ? `${report.confDir} (under ${report.hostRoot})` : report.confDir;
  const lines = [
    `${where}: ${chosen.ready ? `READY: network "${chosen.network ?? ''}" from ${chosen.file ?? '?'}` : `NOT READY: ${chosen.reason ?? ''}`} (${semantics} semantics)`,
  ];
  if (report.dirError) lines.push(`  directory: ${report.dirError}`);
  if (report.files.length === 0 && !report.dirError) lines.push('  no .conf, .conflist or .json files');
  const width = Math.max(0, ...report.files.map((file) => file.file.length));
  for (const file of report.files) {
    const detail =
      file.status === 'accepted'
        ? `network "${file.network ?? ''}" cniVersion ${file.cniVersion || 'unset'}, plugins ${file.plugins.join(', ')}`
        : (file.error ?? '');
    lines.push(`  ${file.status.padEnd(8)} ${file.file.padEnd(width)}  ${detail}`);
    if (file.missingBinaries.length)
      lines.push(
        `  ${''.padEnd(8)} ${''.padEnd(width)}  missing plugin binaries in ${report.binDirs.join(', ')}: ${file.missingBinaries.join(', ')}`,
      );
    for (const warning of file.warnings)
      lines.push(`  ${''.padEnd(8)} ${''.padEnd(width)}  warning: ${warning}`);
  }
  lines.push('verdicts:');
  for (const profile of SEMANTICS) {
    const verdict = report.verdicts[profile];
    lines.push(
      `  ${profile.padEnd(14)} ${verdict.ready ? `ready      network "${verdict.network ?? ''}" from ${verdict.file ?? '?'}` : `NOT READY  ${verdict.reason ?? ''}`}`,
    );
  }
  return `${lines.join('\n')}\n`;
}
