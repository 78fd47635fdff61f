// The facts a benchmark figure depends on, printed with every result.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { PYTHON3 } from './client.js';
import { containerdVersion } from './servers.js';
import { REPO_ROOT, fmt, table } from './util.js';

function run(command: string, args: string[]): string {
  try {
    return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return 'unknown';
  }
}

function cpuModel(): string {
  const match = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
  return match?.[1]?.trim() ?? 'unknown';
}

function packageVersion(name: string): string {
  try {
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'node_modules', name, 'package.json'), 'utf8')) as {
      version?: string;
    };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

export function machineFacts(): string {
  const rows: [string, string][] = [
    ['nproc', run('nproc', [])],
    ['CPU', cpuModel()],
    ['memory', `${fmt(totalmem() / 2 ** 30, 1)} GiB`],
    ['kernel', release()],
    ['node', process.version],
    ['@grpc/grpc-js', packageVersion('@grpc/grpc-js')],
    ['containerd', containerdVersion()],
    [
      'client',
      `python ${run(PYTHON3, ['-c', 'import sys; print(sys.version.split()[0])'])}, grpcio ${run(PYTHON3, ['-c', 'import grpc; print(grpc.__version__)'])} (grpc.aio)`,
    ],
    ['agent commit', run('git', ['-C', REPO_ROOT, 'describe', '--always', '--dirty', '--abbrev=12'])],
    ['date', new Date().toISOString()],
  ];
  if (availableParallelism() < 4) rows.push(['note', 'client and server share these cores']);
  return table(['machine', ''], rows);
}
