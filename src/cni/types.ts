// The value that flows out of src/cni: what the conf dir holds and which network is in force.
// Everything downstream (CRI, metrics, kube, the CLI) is a view of these types.

/** Selection profiles, each named after the runtime releases whose loader it reproduces. */
export const SEMANTICS = ['isulad', 'containerd-1.7', 'containerd-2.0', 'containerd-2.1', 'crio'] as const;
export type Semantics = (typeof SEMANTICS)[number];
/** What --semantics resolves to: a profile, or `auto` (from --runtime-endpoint); `containerd` is an alias. */
export type SemanticsFlag = Semantics | 'auto';

/** Why a file or the directory could not be loaded; also the metric label set. */
export const FAILURE_REASONS = [
  'read_error',
  'parse_error',
  'invalid_config',
  'no_config',
  'too_large',
] as const;
export type FailureReason = (typeof FAILURE_REASONS)[number];

export interface LoadError {
  reason: FailureReason;
  /** Operator-facing text: what is wrong and, where we can tell, what to do. */
  message: string;
  /** libcni's own text for a rejected file, word for word (`message` starts with it). */
  libcni?: string;
  /** go-cni failed converting a loaded `.conf` into a list (ConfListFromConf), not loading it. */
  converting?: boolean;
}

export interface PluginConfig {
  type: string;
  /** Its config as libcni passes it on stdin (the list's name and cniVersion injected), for STATUS. */
  conf: string;
}

/** A parsed network configuration list (a `.conf` is up-converted to one, as libcni does). */
export interface NetworkConfig {
  name: string;
  cniVersion: string;
  plugins: PluginConfig[];
  /** The file's bytes as read; kept so `info` can show what is in force. */
  source: string;
  /** Non-fatal findings (libcni loads these files; they fail later at pod creation). */
  warnings: string[];
}

/** The one wording of "nothing to load", which operators grep for (containerd and kubelet say it too). */
export function noNetworkConfigFound(confDir: string): string {
  return `no network config found in ${confDir}`;
}

export type LoadResult = { ok: true; config: NetworkConfig } | { ok: false; error: LoadError };

/** One candidate file as the refresher last saw it. */
export interface FileVerdict {
  /** Base name, e.g. `10-calico.conflist`. */
  file: string;
  path: string;
  /** The result of reading the file as it is on disk now. */
  current: LoadResult;
  /** The last content of this file that loaded, if any; in force while `current` fails. */
  lastGood?: NetworkConfig;
  /** When `lastGood` was read (ms since epoch). */
  lastGoodAt?: number;
  /** Plugin types of the config in force whose binary is in none of the bin dirs. */
  missingBinaries: string[];
}

/** What one selection profile decides from a scan. */
export interface Selection {
  ready: boolean;
  /** The default network in force, when there is one. */
  network?: NetworkConfig;
  file?: string;
  /** Why the network is not ready, or why a kept-last-good state is served. */
  reason?: string;
  /** True when the network in force is not the current content of the dir (a last-good is served). */
  stale: boolean;
}

export interface NetworkState {
  /** Increments whenever anything a view can observe changes; views cache on it. */
  generation: number;
  confDir: string;
  binDirs: readonly string[];
  semantics: Semantics;
  /** Set when the conf dir itself could not be listed. */
  dirError?: LoadError;
  files: readonly FileVerdict[];
  /** The decision of the configured semantics. */
  selection: Selection;
  /** The decision under every profile, so operators can compare with their runtime. */
  verdicts: Readonly<Record<Semantics, Selection>>;
  /** The first error of the last refresh (dir or file), or undefined when everything loaded. */
  lastError?: LoadError & { file?: string };
  /** When the served config first became stale (ms since epoch). */
  staleSince?: number;
}
