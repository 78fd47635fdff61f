// CPU time and RSS of a process, from /proc. utime+stime in /proc/PID/stat cover every thread
// of the process (V8's GC and compiler threads, libuv's pool, Go's Ps), in clock ticks.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

let ticksPerSecond: number | undefined;

export function clockTicks(): number {
  ticksPerSecond ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  return ticksPerSecond;
}

/** utime + stime of `pid`, in seconds. */
export function cpuSeconds(pid: number): number {
  const [utime, stime] = statTicks(pid, [11, 12]);
  return ((utime ?? 0) + (stime ?? 0)) / clockTicks();
}

/**
 * utime + stime of `pid` plus cutime + cstime: the CPU of the children it has waited for (the CNI
 * plugin runs of a server that execs plugins), in seconds.
 */
export function cpuSecondsWithChildren(pid: number): number {
  return statTicks(pid, [11, 12, 13, 14]).reduce((a, b) => a + b, 0) / clockTicks();
}

function statTicks(pid: number, indexes: readonly number[]): number[] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state), so utime (field 14) is fields[11], stime fields[12], cutime
  // fields[13], cstime fields[14].
  const values = indexes.map((i) => Number(fields[i]));
  if (values.some((v) => !Number.isFinite(v))) throw new Error(`cannot parse /proc/${pid}/stat`);
  return values;
}

/** Resident set size of `pid` in bytes (VmRSS). */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (!match?.[1]) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(match[1]) * 1024;
}

export const MiB = 1024 * 1024;
