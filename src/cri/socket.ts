// The unix socket's life cycle: a socket file left by a dead agent is replaced, a live one (another
// process answering on it) is never stolen, and anything that is not a socket is never deleted.
import { lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { SocketInUseError } from '../errors.js';
import { isErrno } from '../util/text.js';

/** Makes `path` free for bind(2): creates its dir, removes a stale socket, refuses a live one. */
export async function claimSocketPath(path: string): Promise<void> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o750 });
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
