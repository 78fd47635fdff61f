// A throwaway single-member etcd on loopback for the e2e control plane (the flags envtest uses,
// test-peers.md §4). The binary comes from scripts/peers.sh; a missing one fails the test.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { until } from '../../helpers/wait.js';

export interface Etcd {
  clientUrl: string;
  logFile: string;
  stop(): Promise<void>;
}

const handedOut = new Set<number>();

/** A port that was free a moment ago (the kernel picks it; the caller binds it soon after). */
export async function freePort(): Promise<number> {
  // The port is free when probed and bound later by a child: never hand the same one out twice
  // (etcd's client and peer ports are asked for back to back, and the kernel may repeat itself).
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = createServer();
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const { port } = server.address() as AddressInfo;
        server.close(() => resolve(port));
      });
    });
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    return port;
  }
}

export function tail(path: string, lines = 40): string {
  try {
    return readFileSync(path, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return `(no log at ${path})`;
  }
}

/** Stops a child with SIGTERM, then SIGKILL after `graceMs`; resolves when it has exited. */
export function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

export async function startEtcd(binary: string, dir: string): Promise<Etcd> {
  const clientPort = await freePort();
  const peerPort = await freePort();
  const clientUrl = `http://127.0.0.1:${clientPort}`;
  const logFile = join(dir, 'etcd.log');
  const log = createWriteStream(logFile);
  const child = spawn(
    binary,
    [
      '--name=e2e',
      `--data-dir=${join(dir, 'etcd-data')}`,
      `--listen-client-urls=${clientUrl}`,
      `--advertise-client-urls=${clientUrl}`,
      `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-cluster=e2e=http://127.0.0.1:${peerPort}`,
      '--unsafe-no-fsync=true',
      '--log-level=warn',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  let exited: string | undefined;
  child.once('exit', (code, signal) => (exited = `etcd exited (${code ?? signal ?? '?'})`));
  const stop = async () => {
    await stopChild(child);
    log.end();
  };
  try {
    await until(
      'etcd',
      async () => {
        if (exited) throw new Error(exited);
        const response = await fetch(`${clientUrl}/health`);
        return response.ok;
      },
      30_000,
      { intervalMs: 200, retryErrors: true, describe: () => tail(logFile) },
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return { clientUrl, logFile, stop };
}
