// The unix socket's life cycle: a socket file left by a dead agent is replaced, a live one (another
// process answering on it) is never stolen, and anything that is not a socket is never deleted.
import { lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { ConfigError, SocketInUseError } from '../errors.js';
import { isErrno } from '../util/text.js';

/** sun_path holds 108 bytes on Linux, the last a NUL: longer paths fail bind(2) with a misleading error. */
export const MAX_SOCKET_PATH_BYTES = 107;

/** Makes `path` free for bind(2): creates its dir, removes a stale socket, refuses a live one. */
export async function claimSocketPath(path: string): Promise<void> {
  const bytes = Buffer.byteLength(path);
  if (bytes > MAX_SOCKET_PATH_BYTES) {
    throw new ConfigError(
      `--socket ${path} is ${bytes} bytes long; a unix socket path can be at most ${MAX_SOCKET_PATH_BYTES} bytes: choose a shorter path`,
    );
  }
  try {
    makeDirs(dirname(path));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? String(error);
    throw new ConfigError(
      `cannot create ${dirname(path)}, the directory of --socket ${path} (${code}): mount a writable directory there (a hostPath in the chart) or choose another --socket`,
    );
  }
  const stats = lstatSync(path, { throwIfNoEntry: false });
  if (!stats) return;
  if (!stats.isSocket()) {
    throw new SocketInUseError(
      `refusing to replace ${path}: it exists and is not a socket; remove it or choose another --socket`,
    );
  }
  if (await isAnswering(path)) {
    throw new SocketInUseError(
      `another process is serving on ${path}; stop it (or its pod) first, or choose another --socket`,
    );
  }
  try {
    unlinkSync(path);
  } catch (error) {
    if (!isErrno(error, 'ENOENT')) throw error;
  }
}

/**
 * mkdir -p, one level at a time: Node's recursive mkdir never returns where the kernel answers
 * ENOENT for a parent that exists (/proc, some read-only mounts): it retries forever.
 */
function makeDirs(dir: string): void {
  if (lstatSync(dir, { throwIfNoEntry: false })) return;
  const parent = dirname(dir);
  if (parent !== dir) makeDirs(parent);
  try {
    mkdirSync(dir, { mode: 0o750 });
  } catch (error) {
    if (!isErrno(error, 'EEXIST')) throw error; // made meanwhile by someone else: fine
  }
}

function isAnswering(path: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    const done = (answer: boolean): void => {
      socket.destroy();
      resolve(answer);
    };
    socket.setTimeout(timeoutMs, () => done(true)); // accepted into a backlog that nobody drains: still owned
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** The socket file's inode, to remove only our own socket at shutdown. */
export function socketIno(path: string): number | undefined {
  return lstatSync(path, { throwIfNoEntry: false })?.ino;
}

export function removeSocketIfOurs(path: string, ino: number | undefined): void {
  if (ino === undefined || socketIno(path) !== ino) return;
  try {
    unlinkSync(path);
  } catch (error) {
    if (!isErrno(error, 'ENOENT')) throw error;
  }
}
