// Runs one CNI plugin's STATUS verb as libcni's invoke package does (pkg/invoke/raw_exec.go), but
// bounded: spawned without a shell in its own process group, the config on stdin, the runtime's
// environment (CNI_COMMAND=STATUS, CNI_PATH, the other CNI_* empty), stdout and stderr captured up
// to a cap, and the whole group killed at the timeout (a grandchild holding stdout open included).
// The result is classified as libcni classifies it, then told apart more finely than containerd.
import { spawn } from 'node:child_process';
import { open, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { checkValid, goQuote, parseValid } from './gojson.js';
import type { GoValue } from './gojson.js';
import type { PluginStatus } from './plugin-status.js';
import type { Clock } from '../util/clock.js';
import { formatDuration } from '../util/text.js';

/** Output kept per stream: a CNI error is a few hundred bytes; a runaway plugin must not cost memory. */
export const OUTPUT_CAP = 64 * 1024;

export interface ExecRequest {
  path: string;
  command: 'STATUS' | 'VERSION';
  stdin: string;
  binDirs: readonly string[];
  timeoutMs: number;
  clock: Clock;
  /** Aborted when the agent stops: the plugin's group is killed at once. */
  signal?: AbortSignal;
}

export interface ExecOutcome {
  stdout: Buffer;
  stderr: Buffer;
  /** Exit code, or undefined when killed by a signal or never started. */
  exitCode?: number;
  signal?: NodeJS.Signals;
  /** The exec itself failed (errno code, e.g. EACCES). */
  spawnError?: NodeJS.ErrnoException;
  timedOut: boolean;
  durationMs: number;
}

/** The environment libcni's Args.AsEnv builds: ours, then the CNI_* variables (STATUS has no container). */
function pluginEnv(command: string, binDirs: readonly string[]): NodeJS.ProcessEnv {
  return {
    ...process.env,
    CNI_COMMAND: command,
    CNI_CONTAINERID: '',
    CNI_NETNS: '',
    CNI_ARGS: '',
    CNI_IFNAME: '',
    CNI_PATH: binDirs.join(':'),
  };
}

/** Spawns the plugin and collects what it says; resolves at exit, or at the timeout after killing its group. */
export function execPlugin(request: ExecRequest): Promise<ExecOutcome> {
  const { clock } = request;
  const started = clock.now();
  return new Promise((resolve) => {
    const stdout = new Capped();
    const stderr = new Capped();
    let settled = false;
    const child = spawn(request.path, [], {
      detached: true, // its own process group, so a timeout kills its children too
      env: pluginEnv(request.command, request.binDirs),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const finish = (outcome: Omit<ExecOutcome, 'stdout' | 'stderr' | 'durationMs'>): void => {
      if (settled) return;
      settled = true;
      timer.cancel();
      resolve({
        ...outcome,
        stdout: stdout.bytes(),
        stderr: stderr.bytes(),
        durationMs: clock.now() - started,
      });
    };
    const kill = (): void => {
      killGroup(child.pid);
      // Do not wait for the pipes: a child that left the group could hold them open forever.
      child.stdout.destroy();
      child.stderr.destroy();
      finish({ timedOut: true });
    };
    const timer = clock.setTimeout(kill, request.timeoutMs);
    request.signal?.addEventListener('abort', kill, { once: true });
    child.stdout.on('data', (chunk: Buffer) => stdout.add(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.add(chunk));
    // A plugin that exits without reading its stdin makes our write fail with EPIPE: not an error.
    child.stdin.on('error', () => undefined);
    child.stdin.end(request.stdin);
    child.on('error', (error: NodeJS.ErrnoException) => finish({ spawnError: error, timedOut: false }));
    // 'close': the process exited and its pipes reached EOF, as Go's cmd.Wait waits for both.
    child.on('close', (code, signal) => {
      const exit = code === null ? {} : { exitCode: code };
      finish({ ...exit, ...(signal ? { signal } : {}), timedOut: false });
    });
  });
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}

class Capped {
  private readonly chunks: Buffer[] = [];
  private size = 0;

  add(chunk: Buffer): void {
    if (this.size >= OUTPUT_CAP) return;
    const kept = chunk.subarray(0, OUTPUT_CAP - this.size);
    this.chunks.push(kept);
    this.size += kept.length;
  }

  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

/** ELF e_machine of the architectures Node runs on, for the ENOEXEC check below. */
const ELF_MACHINES: Partial<Record<string, number>> = {
  x64: 62,
  arm64: 183,
  ia32: 3,
  arm: 40,
  ppc64: 21,
  s390x: 22,
  riscv64: 243,
  loong64: 258,
};

/**
 * Whether execve(2) would refuse the file with ENOEXEC. libuv's spawn goes through execvp, which
 * then runs the file with /bin/sh; Go's exec, and so the runtime, does not. So a file that is
 * neither a #! script nor an ELF binary for this machine is reported as the runtime would see it.
 */
export async function wouldNotExec(path: string): Promise<boolean> {
  let head: Buffer;
  try {
    const file = await open(path, 'r');
    try {
      const { buffer, bytesRead } = await file.read(Buffer.alloc(20), 0, 20, 0);
      head = buffer.subarray(0, bytesRead);
    } finally {
      await file.close();
    }
  } catch {
    return false; // unreadable: let the exec say why
  }
  if (head[0] === 0x23 && head[1] === 0x21) return false; // #!
  const elf = head.length === 20 && head.readUInt32BE(0) === 0x7f454c46;
  const machine = ELF_MACHINES[process.arch];
  return (
    !elf || (machine !== undefined && head.readUInt16LE(18) !== machine && head.readUInt16BE(18) !== machine)
  );
}

/** libcni's FindInPath: the first regular file named `type` in the bin dirs, with its exact errors. */
export async function findInPath(
  type: string,
  binDirs: readonly string[],
): Promise<{ path: string } | { error: string }> {
  if (type === '') return { error: 'no plugin name provided' };
  if (type.includes('/')) return { error: `invalid plugin name: ${type}` };
  if (binDirs.length === 0) return { error: 'no paths provided' };
  for (const dir of binDirs) {
    const path = join(dir, type);
    try {
      if ((await stat(path)).isFile()) return { path };
    } catch {
      // Not here: try the next dir, as libcni does.
    }
  }
  return { error: `failed to find plugin ${goQuote(type)} in path [${binDirs.join(' ')}]` };
}

/** Go's ExitError text ("exit status 1", "signal: killed"), which libcni puts in its messages. */
function exitText(outcome: ExecOutcome): string {
  if (outcome.signal) return `signal: ${GO_SIGNAL_NAMES[outcome.signal] ?? outcome.signal}`;
  return `exit status ${outcome.exitCode ?? -1}`;
}

const GO_SIGNAL_NAMES: Partial<Record<NodeJS.Signals, string>> = {
  SIGKILL: 'killed',
  SIGTERM: 'terminated',
  SIGSEGV: 'segmentation fault',
  SIGABRT: 'aborted',
  SIGINT: 'interrupt',
  SIGHUP: 'hangup',
  SIGPIPE: 'broken pipe',
  SIGBUS: 'bus error',
  SIGILL: 'illegal instruction',
  SIGQUIT: 'quit',
};

/** Why exec(2) failed, in words an operator can act on. */
function spawnErrorText(path: string, error: NodeJS.ErrnoException): string {
  const code = error.code ?? 'unknown error';
  const why: Record<string, string> = {
    EACCES:
      'permission denied: the file is not executable by the agent, or the CNI bin dir is mounted noexec in its container',
    ENOEXEC: 'exec format error: not a binary for this machine, or a script without a #! line',
    ENOENT: 'no such file: it vanished after it was found, or its #! interpreter is missing',
    ETXTBSY: 'text file busy: it is being written (an installer updating it?)',
  };
  return `could not run plugin ${path}: ${why[code] ?? `${code}: ${error.message}`}`;
}

/** The plugin's own outcome, classified as libcni's pluginErr reads it. */
export function classify(
  plugin: string,
  path: string,
  outcome: ExecOutcome,
  at: number,
  timeoutMs: number,
): PluginStatus {
  const base = { plugin, path, durationMs: outcome.durationMs, at };
  if (outcome.timedOut) {
    return {
      ...base,
      result: 'timeout',
      message: `plugin ${path} did not answer STATUS within --plugin-status-timeout ${formatDuration(timeoutMs)}; it was killed`,
    };
  }
  if (outcome.spawnError) {
    return { ...base, result: 'could_not_run', message: spawnErrorText(path, outcome.spawnError) };
  }
  // Success is the exit status alone: an error JSON with exit 0 passes, as it does in libcni.
  if (outcome.exitCode === 0) return { ...base, result: 'ok' };
  const { stdout, stderr } = outcome;
  if (stdout.length === 0) {
    const message =
      stderr.length === 0
        ? `netplugin failed with no error message: ${exitText(outcome)}`
        : `netplugin failed: ${goQuote(stderr.toString('utf8'))}: ${exitText(outcome)}`;
    return { ...base, result: 'bad_output', message };
  }
  const parsed = parseCniError(stdout);
  if ('problem' in parsed) {
    return {
      ...base,
      result: 'bad_output',
      message: `netplugin failed but error parsing its diagnostic message ${goQuote(stdout.toString('utf8'))}: ${parsed.problem}`,
    };
  }
  const message = parsed.details ? `${parsed.msg}; ${parsed.details}` : parsed.msg;
  const result = parsed.code === 50 ? 'code_50' : parsed.code === 51 ? 'code_51' : 'error';
  return { ...base, result, code: parsed.code, message };
}

/** json.Unmarshal of stdout into types.Error (code uint, msg, details; keys matched case-insensitively). */
function parseCniError(stdout: Buffer): { code: number; msg: string; details: string } | { problem: string } {
  const syntax = checkValid(stdout);
  if (syntax) return { problem: syntax.message };
  const value = parseValid(stdout);
  if (value.kind === 'null') return { code: 0, msg: '', details: '' };
  if (value.kind !== 'object') {
    return { problem: `json: cannot unmarshal ${value.kind} into Go value of type types.Error` };
  }
  const out = { code: 0, msg: '', details: '' };
  for (const [key, item] of value.entries) {
    const field = (['code', 'msg', 'details'] as const).find((name) => name === key.toLowerCase());
    if (!field || item.kind === 'null') continue;
    if (field === 'code') {
      const code = uintOf(item);
      if (code === undefined)
        return {
          problem: `json: cannot unmarshal ${describe(item)} into Go struct field Error.code of type uint`,
        };
      out.code = code;
    } else if (item.kind === 'string') out[field] = item.value;
    else
      return {
        problem: `json: cannot unmarshal ${describe(item)} into Go struct field Error.${field} of type string`,
      };
  }
  return out;
}

function uintOf(value: GoValue): number | undefined {
  if (value.kind !== 'number' || !/^\d+$/.test(value.literal)) return undefined;
  const n = Number(value.literal);
  return Number.isSafeInteger(n) ? n : undefined;
}

function describe(value: GoValue): string {
  return value.kind === 'number' ? `number ${value.literal}` : value.kind;
}

/** The spec versions a plugin's VERSION answer lists, or undefined when it gave none. */
export function supportedVersions(outcome: ExecOutcome): string[] | undefined {
  if (outcome.exitCode !== 0 || checkValid(outcome.stdout)) return undefined;
  const value = parseValid(outcome.stdout);
  if (value.kind !== 'object') return undefined;
  const versions = value.entries.find(([key]) => key === 'supportedVersions')?.[1];
  if (versions?.kind !== 'array') return undefined;
  return versions.items.flatMap((item) => (item.kind === 'string' ? [item.value] : []));
}
