// Small helpers shared by the benchmark scripts: paths, statistics, formatting, markdown.
import { realpathSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** The repository root (this file runs from dist/bench/lib/). */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
/** The agent under test; CRI_NETSTATUS_BENCH_CLI points the benchmarks at another build (A/B runs). */
export const CLI = process.env.CRI_NETSTATUS_BENCH_CLI ?? join(REPO_ROOT, 'bin', 'cri-netstatus.js');
export const CONSTANT_SERVER = join(REPO_ROOT, 'dist', 'bench', 'constant-server.js');
export const HTTP2_SERVER = join(REPO_ROOT, 'dist', 'bench', 'http2-server.js');
export const CLIENT_PY = join(REPO_ROOT, 'bench', 'client.py');

/** True when the module at `url` is the script node was started with. */
export function isMain(url: string): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return pathToFileURL(realpathSync(script)).href === url;
  } catch {
    return false;
  }
}

export { sleep } from '../../test/helpers/wait.js';

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? (sorted[mid] ?? Number.NaN) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

/** Nearest-rank percentile of already sorted values, q in [0, 1]. */
export function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[index] ?? Number.NaN;
}

export function fmt(value: number, digits = 0): string {
  if (!Number.isFinite(value)) return 'n/a';
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (cells: readonly string[]): string => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

/** A flag like `--rounds 5` from argv, as a positive integer. */
export function intFlag(name: string, fallback: number): number {
  const argv = process.argv;
  const at = argv.indexOf(`--${name}`);
  const raw = at >= 0 ? argv[at + 1] : undefined;
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0)
    throw new Error(`--${name} needs a positive integer, got ${raw}`);
  return value;
}

export function hasFlag(name: string): boolean {
  return process.argv.includes(`--${name}`);
}

/** `node dist/bench/X.js` plus the flags it was run with: the command that reproduces a figure. */
export function commandLine(script: string): string {
  const args = process.argv.slice(2).map((arg) => (/^[\w./=:,-]+$/.test(arg) ? arg : `'${arg}'`));
  return ['node', `dist/bench/${script}.js`, ...args].join(' ');
}
