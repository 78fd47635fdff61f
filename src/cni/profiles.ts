// Selection semantics: which network is the default, and is the network ready. Each profile is
// named after the runtime whose loader it mirrors (docs/conformance.md says which versions, and how
// each was verified); they are pure functions of a scan and, for isulad, the previous decision.
import type { LibcniVersion } from './libcni.js';
import { SEMANTICS, noNetworkConfigFound } from './types.js';
import type { FileVerdict, LoadError, NetworkConfig, Selection, Semantics, SemanticsFlag } from './types.js';

/** The libcni release each profile's runtime vendors, and whether it loads `<dir>/<name>/*.conf`. */
const PROFILE_LIBCNI: Readonly<Record<Semantics, { libcni: LibcniVersion; dirPlugins: boolean }>> = {
  // iSulad's clibcni has no plugin subdirectories; parse as the newest libcni otherwise.
  isulad: { libcni: '1.3.1', dirPlugins: false },
  'containerd-1.7': { libcni: '1.1.2', dirPlugins: false },
  'containerd-2.0': { libcni: '1.2.3', dirPlugins: false },
  'containerd-2.1': { libcni: '1.3.1', dirPlugins: true },
  // CRI-O 1.34 (ocicni) vendors libcni v1.3 and loads lists with ConfListFromFile.
  crio: { libcni: '1.3.1', dirPlugins: true },
};

export function profileLibcni(profile: Semantics): { libcni: LibcniVersion; dirPlugins: boolean } {
  return PROFILE_LIBCNI[profile];
}

/** The deprecated `--semantics containerd`: what it always did, containerd 1.6/1.7's loader. */
export const DEPRECATED_CONTAINERD: Semantics = 'containerd-1.7';

/**
 * The --semantics flag: a profile or `auto`; `containerd` still works as `containerd-1.7`, with a
 * one-line warning naming the versioned profiles.
 */
export function parseSemanticsFlag(raw: string, warn: (line: string) => void): SemanticsFlag {
  if (raw === 'containerd') {
    warn(
      `--semantics containerd is deprecated: it is containerd-1.7 (also right for 1.6); use containerd-2.0 or containerd-2.1 for containerd 2.0 or 2.1 and later`,
    );
    return DEPRECATED_CONTAINERD;
  }
  if (raw === 'auto' || (SEMANTICS as readonly string[]).includes(raw)) return raw as SemanticsFlag;
  throw new Error(`"${raw}" is not one of ${SEMANTICS.join(', ')}, auto`);
}

/** `--semantics auto`: the profile of the runtime --runtime-endpoint answers for, else isulad. */
export function pickAutoSemantics(runtime: { name: string; version: string } | undefined): {
  semantics: Semantics;
  why: string;
} {
  const profile = runtime && profileForRuntime(runtime.name, runtime.version);
  if (profile)
    return { semantics: profile, why: `--runtime-endpoint runs ${runtime.name} ${runtime.version}` };
  const why = runtime
    ? `no profile reproduces ${runtime.name} ${runtime.version}`
    : 'no runtime answered Version on --runtime-endpoint';
  return { semantics: 'isulad', why: `${why}; falling back to isulad` };
}

/**
 * The profile that reproduces a runtime, from its CRI Version (runtime_name, runtime_version):
 * containerd by release (1.x, 2.0, 2.1+), CRI-O, iSulad; undefined for anything else.
 */
export function profileForRuntime(
  name: string | undefined,
  version: string | undefined,
): Semantics | undefined {
  const runtime = name?.toLowerCase() ?? '';
  if (runtime === 'cri-o' || runtime === 'crio') return 'crio';
  if (runtime === 'isulad') return 'isulad';
  if (runtime !== 'containerd') return undefined;
  const match = /(\d+)\.(\d+)/.exec(version ?? '');
  if (!match) return undefined;
  const [major, minor] = [Number(match[1]), Number(match[2])];
  if (major < 2) return 'containerd-1.7';
  return major === 2 && minor === 0 ? 'containerd-2.0' : 'containerd-2.1';
}

export interface Scan {
  confDir: string;
  dirError?: LoadError;
  files: readonly FileVerdict[];
}

export function select(semantics: Semantics, scan: Scan, previous?: Selection): Selection {
  switch (semantics) {
    case 'isulad':
      return selectIsulad(scan, previous);
    case 'containerd-1.7':
    case 'containerd-2.0':
    case 'containerd-2.1':
      return selectContainerd(scan);
    case 'crio':
      return selectCrio(scan);
  }
}

/** The config a file contributes: what it holds now, else its last good content. */
export function inForce(file: FileVerdict): NetworkConfig | undefined {
  return file.current.ok ? file.current.config : file.lastGood;
}

/**
 * iSulad (and dockershim): bad files are skipped, a file that loaded before keeps its last good
 * content, and a refresh that finds nothing usable (empty or unreadable dir) keeps what was in force.
 */
function selectIsulad(scan: Scan, previous: Selection | undefined): Selection {
  const chosen = scan.dirError ? undefined : scan.files.find((file) => inForce(file) !== undefined);
  if (chosen) {
    const network = inForce(chosen);
    return {
      ready: true,
      network,
      file: chosen.file,
      stale: !chosen.current.ok,
      ...(chosen.current.ok ? {} : { reason: `${chosen.path}: ${chosen.current.error.message}` }),
    };
  }
  const why = nothingLoaded(scan);
  if (previous?.network) return { ...previous, ready: true, stale: true, reason: why };
  return { ready: false, stale: false, reason: why };
}

/**
 * containerd (go-cni with max_conf_num = 1): only the first file in sorted order is loaded. If it
 * fails, the whole load fails; files after it are never read, so a bad one there does not matter.
 */
function selectContainerd(scan: Scan): Selection {
  if (scan.dirError) {
    return { ready: false, stale: false, reason: `${scan.dirError.message}: cni plugin not initialized` };
  }
  const first = scan.files[0];
  if (!first) {
    return {
      ready: false,
      stale: false,
      reason: `${noNetworkConfigFound(scan.confDir)}: cni plugin not initialized`,
    };
  }
  if (!first.current.ok) {
    return {
      ready: false,
      stale: false,
      reason: goCniLoadError(first.file, first.path, first.current.error),
    };
  }
  return { ready: true, network: first.current.config, file: first.file, stale: false };
}

/**
 * go-cni's wording for a file that fails to load: `config list file` for a `.conflist`, `config
 * file` for a `.conf`/`.json`, and its own text when converting a loaded `.conf` fails. Our hint,
 * if any, follows go-cni's whole message so the runtime's words stay one greppable string.
 */
function goCniLoadError(file: string, path: string, error: LoadError): string {
  const libcni = error.libcni ?? error.message;
  const hint = error.libcni !== undefined ? error.message.slice(error.libcni.length) : '';
  const what = error.converting
    ? `failed to convert CNI config file ${path} to CNI config list`
    : `failed to load CNI config${file.endsWith('.conflist') ? ' list' : ''} file ${path}`;
  return `${what}: ${libcni}: invalid cni config${hint}`;
}

/** CRI-O (ocicni): the first file that loads and whose plugin binaries all exist; others are skipped. */
function selectCrio(scan: Scan): Selection {
  if (scan.dirError) return { ready: false, stale: false, reason: scan.dirError.message };
  const chosen = scan.files.find((file) => file.current.ok && file.missingBinaries.length === 0);
  if (chosen?.current.ok)
    return { ready: true, network: chosen.current.config, file: chosen.file, stale: false };
  const skipped = scan.files.map(
    (file) =>
      `${file.path}: ${file.current.ok ? `missing plugin binaries ${file.missingBinaries.join(', ')}` : file.current.error.message}`,
  );
  return {
    ready: false,
    stale: false,
    reason: `no CNI configuration file in ${scan.confDir}. Has your network provider started?${skipped.length ? ` (skipped ${skipped.join('; ')})` : ''}`,
  };
}

function nothingLoaded(scan: Scan): string {
  const error = firstError(scan);
  if (!error) return `no valid network config in ${scan.confDir}`;
  if (error.file === undefined) return error.message;
  return `no valid network config in ${scan.confDir}: ${error.file}: ${error.message}`;
}

/** What stops a scan from loading everything: the dir's error, an empty dir, or the first bad file. */
export function firstError(scan: Scan): (LoadError & { file?: string }) | undefined {
  if (scan.dirError) return scan.dirError;
  if (scan.files.length === 0) return { reason: 'no_config', message: noNetworkConfigFound(scan.confDir) };
  const bad = scan.files.find((file) => !file.current.ok);
  if (bad && !bad.current.ok) return { ...bad.current.error, file: bad.path };
  return undefined;
}
