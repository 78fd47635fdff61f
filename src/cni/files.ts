// Listing and reading a CNI conf dir the way libcni's ConfFiles does (extensions `.conf`,
// `.conflist`, `.json`, case-sensitive, no recursion, byte-order sort), with the guards libcni
// lacks: non-regular targets are refused before any open (a FIFO would block), reads are capped,
// and every error says what is wrong with the file and what to do about it. All I/O here is synchronous on
// purpose: a refresh is a handful of syscalls, cheaper than a trip through the threadpool.
import {
  closeSync,
  constants,
  fstatSync,
  lstatSync,
  openSync,
  readdirSync,
  readlinkSync,
  readSync,
  statSync,
} from 'node:fs';
import type { Stats } from 'node:fs';
import { join, resolve } from 'node:path';
import { errorText, formatBytes, isErrno } from '../util/text.js';
import { goString } from './gojson.js';
import { noNetworkConfigFound } from './types.js';
import type { LoadError } from './types.js';

export const CONFIG_EXTENSIONS = new Set(['.conf', '.conflist', '.json']);
export const DEFAULT_MAX_FILE_SIZE = 1024 * 1024;

export type Listing =
  { ok: true; files: readonly string[]; dirIno: number } | { ok: false; error: LoadError };

/**
 * File timestamps tick at the kernel's coarse clock, so a change within one tick of our read can
 * leave size, mtime and ctime as they were (git's "racily clean" entries). Whatever changed this
 * shortly before we read it is read again, until a read happens safely after its last change.
 */
export const RACY_WINDOW_MS = 50;

/**
 * Lists a conf dir's candidate config files, sorted by their UTF-8 bytes as Go's sort.Strings
 * does. The listing is reused while the dir's own stat is unchanged: creating, deleting or renaming
 * an entry changes the dir's mtime, so only `stat(dir)` is paid on a quiet dir.
 */
export class ConfDirLister {
  /** How many times the dir was actually read (readdir), for tests and benchmarks. */
  readdirs = 0;
  private key = '';
  private names: readonly string[] = [];
  private listedAtMs = 0;

  /** Listed names that are not valid UTF-8: the name shown → the bytes to open. */
  readonly rawNames = new Map<string, Buffer>();

  constructor(readonly dir: string) {}

  private read(): readonly string[] {
    return listCandidates(this.dir, this.rawNames);
  }

  /** `now` must be taken before this call, so a change racing the read counts as racy. */
  list(now: number): Listing {
    let stats: Stats;
    try {
      stats = statSync(this.dir);
      if (!stats.isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
    } catch (error) {
      this.key = '';
      return { ok: false, error: dirError(this.dir, error) };
    }
    const key = `${stats.dev}:${stats.ino}:${stats.mtimeMs}:${stats.ctimeMs}`;
    const racy = this.listedAtMs - Math.max(stats.mtimeMs, stats.ctimeMs) < RACY_WINDOW_MS;
    if (key !== this.key || racy) {
      try {
        this.names = this.read();
        this.readdirs++;
      } catch (error) {
        this.key = '';
        return { ok: false, error: dirError(this.dir, error) };
      }
      this.key = key;
      this.listedAtMs = now;
    }
    return { ok: true, files: this.names, dirIno: stats.ino };
  }
}

/** Go's filepath.Ext: from the last dot on, so `.conflist` alone is a `.conflist` (Node says ''). */
export function goExt(name: string): string {
  const dot = name.lastIndexOf('.');
  return dot < 0 || name.includes('/', dot) ? '' : name.slice(dot);
}

/** Candidate names in Go's order (raw bytes); names that are not UTF-8 are kept, as Go keeps them. */
function listCandidates(dir: string, rawNames: Map<string, Buffer>): string[] {
  rawNames.clear();
  const found: Array<{ name: string; raw: Buffer }> = [];
  for (const entry of readdirSync(dir, { withFileTypes: true, encoding: 'buffer' })) {
    if (entry.isDirectory()) continue;
    const raw = entry.name;
    // The extensions are ASCII, so latin1 finds them whatever the rest of the name holds.
    if (!CONFIG_EXTENSIONS.has(goExt(raw.toString('latin1')))) continue;
    const name = raw.toString('utf8');
    if (Buffer.byteLength(name) === raw.length && Buffer.from(name).equals(raw)) found.push({ name, raw });
    else {
      // Shown as Go's JSON shows it (U+FFFD per bad byte); opened by its real bytes.
      const shown = goString(raw);
      rawNames.set(shown, raw);
      found.push({ name: shown, raw });
    }
  }
  return found.sort((a, b) => Buffer.compare(a.raw, b.raw)).map(({ name }) => name);
}

export function sortByBytes(names: string[]): string[] {
  // For ASCII names UTF-16 order is byte order; only others need their UTF-8 bytes compared.
  if (names.every((name) => !/[^ -~]/.test(name))) return names.sort();
  return names
    .map((name) => ({ name, key: Buffer.from(name) }))
    .sort((a, b) => Buffer.compare(a.key, b.key))
    .map(({ name }) => name);
}

/** Identity of a file's content as `stat` sees it, following symlinks; undefined when it is gone. */
export interface FileStat {
  key: string;
  ctimeMs: number;
  stats: Stats;
}

/** `listed` is the name as the dir listing holds it, when `path` is that name already resolved. */
export function statFile(path: string | Buffer, listed = path): FileStat | undefined | LoadError {
  try {
    const stats = statSync(path, { throwIfNoEntry: false });
    if (stats === undefined) return danglingLink(listed);
    return {
      key: `${stats.dev}:${stats.ino}:${stats.size}:${stats.mtimeMs}:${stats.ctimeMs}`,
      ctimeMs: stats.ctimeMs,
      stats,
    };
  } catch (error) {
    return fileError(error);
  }
}

/** A name readdir listed but stat cannot follow: gone (a delete raced us) or a broken symlink. */
function danglingLink(path: string | Buffer): undefined | LoadError {
  try {
    if (!lstatSync(path).isSymbolicLink()) return undefined;
    return {
      reason: 'read_error',
      message: `a symlink to ${readlinkSync(path)}, which does not exist; fix or remove the link`,
    };
  } catch {
    return undefined;
  }
}

/** Symlinks followed before ELOOP, as Linux does. */
const MAX_SYMLINKS = 40;

/**
 * Where `path` leads when `root` is taken for `/`: every symlink on the way, absolute or
 * relative, is followed inside `root`, and `..` stops at it, as under chroot. Under
 * `kubectl debug node/…` the node's files are at /host, and a link such as
 * /etc/cni/net.d/10-flannel.conflist -> /run/flannel/cni.conf must lead to /host/run/flannel,
 * not into the debug container's own /run. A missing component ends the walk; the rest is kept
 * as written, so the caller's stat reports it missing. A link loop is left for stat to report.
 */
export function resolveUnderRoot(root: string, path: string): string {
  const top = resolve(root);
  const done: string[] = [];
  let pending = path.split('/');
  let links = 0;
  while (pending.length > 0) {
    const part = pending.shift() ?? '';
    if (part === '' || part === '.') continue;
    if (part === '..') {
      done.pop();
      continue;
    }
    const here = join(top, ...done, part);
    let target: string;
    try {
      if (!lstatSync(here).isSymbolicLink()) {
        done.push(part);
        continue;
      }
      target = readlinkSync(here);
    } catch {
      return join(here, ...pending);
    }
    if (++links > MAX_SYMLINKS) return join(here, ...pending);
    if (target.startsWith('/')) done.length = 0;
    pending = [...target.split('/'), ...pending];
  }
  return join(top, ...done);
}

export type ReadResult =
  { ok: true; bytes: Buffer } | { ok: false; error: LoadError } | { ok: false; gone: true };

/** Reads a config file, refusing non-regular files and anything over `maxSize` bytes. */
export function readConfigFile(path: string | Buffer, maxSize: number): ReadResult {
  let fd: number;
  try {
    // O_NONBLOCK: should the file have been swapped for a FIFO since stat, open must not hang.
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (error) {
    if (isErrno(error, 'ENOENT')) return { ok: false, gone: true };
    return { ok: false, error: fileError(error) };
  }
  try {
    const stats = fstatSync(fd);
    const kind = nonRegularKind(stats);
    if (kind) return { ok: false, error: notRegular(kind) };
    if (stats.size > maxSize) return { ok: false, error: tooLarge(stats.size, maxSize) };
    const buffer = Buffer.allocUnsafe(Math.min(stats.size, maxSize) + 1);
    let length = 0;
    for (;;) {
      const n = readSync(fd, buffer, length, buffer.length - length, null);
      if (n === 0) break;
      length += n;
      if (length > maxSize) return { ok: false, error: tooLarge(length, maxSize) };
      if (length === buffer.length) break;
    }
    return { ok: true, bytes: buffer.subarray(0, length) };
  } catch (error) {
    return { ok: false, error: fileError(error) };
  } finally {
    closeSync(fd);
  }
}

export function nonRegularKind(stats: Stats): string | undefined {
  if (stats.isFile()) return undefined;
  if (stats.isDirectory()) return 'a directory';
  if (stats.isFIFO()) return 'a FIFO';
  if (stats.isSocket()) return 'a socket';
  if (stats.isCharacterDevice() || stats.isBlockDevice()) return 'a device';
  return 'not a regular file';
}

/**
 * The text libcni's os.ReadFile gives for a file we refused or could not read, so the runtime's
 * words lead the message (`error reading <path>: open <path>: ...`). FIFOs and devices have none:
 * libcni would block on or read them, where we refuse.
 */
export function asLibcniReadError(path: string, error: LoadError, kind?: string): LoadError {
  const os =
    kind === 'a directory'
      ? `read ${path}: is a directory`
      : kind === 'a socket'
        ? `open ${path}: no such device or address`
        : kind !== undefined
          ? undefined
          : error.message.startsWith('a symlink to')
            ? `open ${path}: no such file or directory`
            : error.message.startsWith('permission denied')
              ? `open ${path}: permission denied`
              : error.message.startsWith('too many levels')
                ? `open ${path}: too many levels of symbolic links`
                : undefined;
  if (os === undefined || error.reason !== 'read_error') return error;
  const libcni = `error reading ${path}: ${os}`;
  return { ...error, libcni, message: `${libcni} (${error.message})` };
}

export function notRegular(kind: string): LoadError {
  return {
    reason: 'read_error',
    message: `${kind}, not a regular file; CNI configs must be regular files (move it away or rename it so it does not end in .conf, .conflist or .json)`,
  };
}

function tooLarge(size: number, maxSize: number): LoadError {
  return {
    reason: 'too_large',
    message: `${formatBytes(size)}, over the ${formatBytes(maxSize)} limit for a CNI config (--max-file-size); a real config is a few KiB, so check what wrote it`,
  };
}

function dirError(dir: string, error: unknown): LoadError {
  if (isErrno(error, 'ENOENT')) {
    return {
      reason: 'no_config',
      message: `${noNetworkConfigFound(dir)}: the directory does not exist`,
    };
  }
  if (isErrno(error, 'ENOTDIR')) {
    return {
      reason: 'read_error',
      message: `cannot read ${dir}: it is not a directory; point --cni-conf-dir at the CNI conf dir`,
    };
  }
  if (isErrno(error, 'EACCES') || isErrno(error, 'EPERM')) {
    return {
      reason: 'read_error',
      message: `cannot read ${dir}: permission denied; the agent needs read access to the CNI conf dir (check the hostPath mount and the container's user)`,
    };
  }
  return { reason: 'read_error', message: `cannot read ${dir}: ${errorText(error)}` };
}

function fileError(error: unknown): LoadError {
  if (isErrno(error, 'EACCES') || isErrno(error, 'EPERM')) {
    return { reason: 'read_error', message: 'permission denied; make the file readable by the agent' };
  }
  if (isErrno(error, 'ELOOP')) {
    return { reason: 'read_error', message: 'too many levels of symbolic links' };
  }
  return { reason: 'read_error', message: `cannot read it: ${errorText(error)}` };
}
