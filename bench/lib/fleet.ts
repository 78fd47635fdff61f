// A set of servers sharing one CNI conf dir, each with its own warm load client, measured in
// interleaved rounds: round r visits every server, starting at a different one each round.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './cleanup.js';
import { LoadClient } from './client.js';
import type { LoadResult } from './client.js';
import type { ContainerdPeer } from '../../test/e2e/harness/containerd.js';
import { CNI_BIN_DIR, conflist, writeAtomic } from './conf.js';
import { cpuSeconds } from './proc.js';
import { containerdUnavailable, startAgent, startConstant, startContainerd, startHttp2 } from './servers.js';
import type { BenchServer } from './servers.js';

export type ServerKind =
  | { kind: 'agent'; label: string; nodeOptions?: string; cli?: string; args?: readonly string[] }
  | { kind: 'constant'; label: string; defer?: boolean; nodeOptions?: string }
  | { kind: 'http2'; label: string }
  | { kind: 'containerd'; label: string; peer?: ContainerdPeer };

/** A conf dir made beforehand for the fleet to share, and the bin dir its plugins are in. */
export interface FleetDir {
  confDir: string;
  cniBinDir: string;
}

export interface Member {
  label: string;
  server: BenchServer;
  client: LoadClient;
}

export interface Sample extends LoadResult {
  cpuUsPerCall: number;
}

export interface Fleet {
  confDir: string;
  members: Member[];
  /** Why a containerd is not in the fleet, when it is not. */
  skipped?: string;
}

/**
 * Starts the servers on one conf dir: `shared`, or a new one holding one valid conflist (bridge,
 * host-local, portmap from CNI_BIN_DIR). containerd is skipped (with the reason) when it cannot run.
 */
export async function startFleet(kinds: readonly ServerKind[], shared?: FleetDir): Promise<Fleet> {
  const dir = tempDir();
  const confDir = shared?.confDir ?? join(dir, 'net.d');
  const cniBinDir = shared?.cniBinDir ?? CNI_BIN_DIR;
  if (!shared) {
    mkdirSync(confDir);
    writeAtomic(confDir, '10-bench.conflist', conflist('bench-net'));
  }
  const members: Member[] = [];
  let skipped: string | undefined;
  for (const kind of kinds) {
    let server: BenchServer;
    if (kind.kind === 'agent') {
      server = await startAgent(dir, confDir, kind.label.replace(/\W+/g, '-'), {
        nodeOptions: kind.nodeOptions ?? '',
        binDir: cniBinDir,
        ...(kind.cli ? { cli: kind.cli } : {}),
        ...(kind.args ? { args: kind.args } : {}),
      });
    } else if (kind.kind === 'constant') {
      server = await startConstant(dir, kind.label.replace(/\W+/g, '-'), {
        defer: kind.defer ?? false,
        nodeOptions: kind.nodeOptions ?? '',
      });
    } else if (kind.kind === 'http2') {
      server = await startHttp2(dir);
    } else {
      const peer = kind.peer ?? 'containerd';
      const unavailable = containerdUnavailable(peer);
      if (unavailable) {
        skipped = skipped ? `${skipped}; ${kind.label}: ${unavailable}` : unavailable;
        continue;
      }
      const state = join(dir, peer === 'containerd' ? 'ctd' : 'ctd2');
      mkdirSync(state);
      server = await startContainerd(state, confDir, peer, cniBinDir);
    }
    members.push({ label: kind.label, server, client: await LoadClient.open(server.socket) });
  }
  return { confDir, members, ...(skipped ? { skipped } : {}) };
}

/** One measured run: the server's CPU time (utime+stime) divided by the calls served. */
export async function sample(member: Member, calls: number, concurrency: number): Promise<Sample> {
  const before = cpuSeconds(member.server.pid);
  const result = await member.client.run(calls, concurrency);
  const after = cpuSeconds(member.server.pid);
  return { ...result, cpuUsPerCall: ((after - before) * 1e6) / result.calls };
}

/** Rounds × members, rotated, calling `visit` for each; returns the samples per member label. */
export async function interleave(
  members: readonly Member[],
  rounds: number,
  visit: (member: Member, round: number) => Promise<void>,
): Promise<void> {
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < members.length; i++) {
      const member = members[(round + i) % members.length];
      if (member) await visit(member, round);
    }
  }
}

export function progress(text: string): void {
  process.stderr.write(`${text}\n`);
}
