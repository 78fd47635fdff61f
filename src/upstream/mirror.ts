// Mirrors the node's real CRI runtime (--runtime-endpoint): RuntimeReady follows the upstream's.
// Owned by the conformance work (issue 5); this first version only declares the interface.
import type { Registry } from 'prom-client';
import type { RuntimeCondition } from '../gen/runtime/v1/api.js';
import type { Logger } from '../log.js';

export interface UpstreamMirrorOptions {
  /** Absolute path of the upstream runtime's unix socket. */
  socketPath: string;
  log: Logger;
  registry: Registry;
  /** NetworkReady as this agent serves it, for the divergence signal. */
  networkReady: () => boolean;
}

export interface UpstreamMirror {
  /** RuntimeReady to serve: the upstream's, or false with a reason while it is unreachable. */
  runtimeCondition(): RuntimeCondition;
  /** What `info.upstream` shows (JSON-serialisable). */
  info(): unknown;
  stop(): void;
}

export function startUpstreamMirror(options: UpstreamMirrorOptions): UpstreamMirror {
  throw new Error(
    `--runtime-endpoint ${options.socketPath}: upstream mirroring is not available in this build`,
  );
}
