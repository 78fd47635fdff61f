// Benchmark 5: read-your-writes. Each round atomically creates a new first-sorting conflist with a
// fresh network name (write a temp name, rename), then immediately asks both the agent and
// containerd for Status(verbose) and checks the network in force; then deletes it and asks again.
// A "miss" is a first Status after a completed write that does not reflect it. Between rounds the
// driver waits (bounded) until both servers show the base network again, so rounds are independent,
// and it records how long containerd took to catch up when it missed.
// Correctness, not CPU, is measured, so the driver is Node (test/helpers/cri.ts's criClient).
//
//   node dist/bench/ryw.js [--rounds 1000]
import { unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { criClient } from '../test/helpers/cri.js';
import type { CriClient } from '../test/helpers/cri.js';
import type { StatusResponse } from '../src/gen/runtime/v1/api.js';
import { runScript } from './lib/cleanup.js';
import { conflist, writeAtomic } from './lib/conf.js';
import { progress, startFleet } from './lib/fleet.js';
import { machineFacts } from './lib/machine.js';
import { commandLine, fmt, intFlag, isMain, percentile, sleep, table } from './lib/util.js';

const BASE_NETWORK = 'bench-net';
const FILE = '00-ryw.conflist';
const CATCH_UP_MS = 2000;

interface CniConfigInfo {
  network?: { name?: string } | null;
  Networks?: { Config?: { Name?: string }; IFName?: string }[];
}

/** The network in force: the agent's `cniconfig.network.name`, else containerd's first non-loopback `Networks[]`. */
export function networkInForce(response: StatusResponse): string | undefined {
  const raw = response.info.cniconfig;
  if (raw === undefined) return undefined;
  const info = JSON.parse(raw) as CniConfigInfo;
  if (info.network !== undefined) return info.network?.name;
  return info.Networks?.find((n) => n.IFName !== 'lo' && n.Config?.Name !== 'cni-loopback')?.Config?.Name;
}

interface Tally {
  label: string;
  client: CriClient;
  createMisses: number;
  deleteMisses: number;
  neverCaughtUp: number;
  catchUpMs: number[];
}

async function observe(tally: Tally): Promise<string | undefined> {
  return networkInForce(await tally.client.status(true));
}

/** Polls until `tally` shows `expected` (bounded); returns the wait in ms, or undefined if it never did. */
async function catchUp(tally: Tally, expected: string): Promise<number | undefined> {
  const started = performance.now();
  while (performance.now() - started < CATCH_UP_MS) {
    if ((await observe(tally)) === expected) return performance.now() - started;
    await sleep(1);
  }
  return undefined;
}

export async function rywBenchmark(): Promise<string> {
  const rounds = intFlag('rounds', 1000);
  const fleet = await startFleet([
    { kind: 'agent', label: 'cri-netstatus' },
    { kind: 'containerd', label: 'containerd' },
  ]);
  const tallies: Tally[] = fleet.members.map((m) => ({
    label: m.label,
    client: criClient(m.server.socket),
    createMisses: 0,
    deleteMisses: 0,
    neverCaughtUp: 0,
    catchUpMs: [],
  }));
  for (const member of fleet.members) await member.client.close(); // the Python load clients are not needed here
  try {
    for (const tally of tallies) {
      if ((await catchUp(tally, BASE_NETWORK)) === undefined)
        throw new Error(`${tally.label} never showed ${BASE_NETWORK}`);
    }
    for (let round = 0; round < rounds; round++) {
      const network = `ryw-${round}`;
      for (const [change, expected] of [
        ['create', network],
        ['delete', BASE_NETWORK],
      ] as const) {
        if (change === 'create') writeAtomic(fleet.confDir, FILE, conflist(network));
        else unlinkSync(join(fleet.confDir, FILE));
        // The write has completed: ask everyone at once, so nobody gets extra time.
        const seen = await Promise.all(tallies.map(observe));
        for (const [i, tally] of tallies.entries()) {
          if (seen[i] === expected) continue;
          if (change === 'create') tally.createMisses++;
          else tally.deleteMisses++;
          const waited = await catchUp(tally, expected);
          if (waited === undefined) tally.neverCaughtUp++;
          else tally.catchUpMs.push(waited);
        }
      }
      if ((round + 1) % 200 === 0) {
        progress(
          `ryw ${round + 1}/${rounds}: ${tallies.map((t) => `${t.label} ${t.createMisses + t.deleteMisses} misses`).join(', ')}`,
        );
      }
    }
  } finally {
    for (const tally of tallies) tally.client.close();
    for (const member of fleet.members) await member.server.stop();
  }
  const share = (misses: number): string =>
    `${fmt(misses)} / ${fmt(rounds)} (${fmt((100 * misses) / rounds, 1)}%)`;
  const rows = tallies.map((t) => {
    const sorted = [...t.catchUpMs].sort((a, b) => a - b);
    return [
      t.label,
      share(t.createMisses),
      share(t.deleteMisses),
      sorted.length ? `${fmt(percentile(sorted, 0.5), 1)} / ${fmt(percentile(sorted, 0.99), 1)}` : '—',
      fmt(t.neverCaughtUp),
    ];
  });
  const ours = tallies.find((t) => t.label === 'cri-netstatus');
  const oursMisses = (ours?.createMisses ?? 0) + (ours?.deleteMisses ?? 0);
  return [
    `### Read-your-writes (${fmt(rounds)} rounds: atomic create of a new first-sorting conflist, then delete; first Status(verbose) after each)`,
    '',
    table(
      [
        'server',
        'missed the create',
        'missed the delete',
        'catch-up after a miss p50 / p99 ms',
        `never caught up (${CATCH_UP_MS} ms)`,
      ],
      rows,
    ),
    '',
    `- agent: ${fmt(oursMisses)} misses (target 0: ${oursMisses === 0 ? 'met' : 'MISSED'})`,
    ...(fleet.skipped ? [`- containerd skipped: ${fleet.skipped}`] : []),
    `- command: \`${commandLine('ryw')}\``,
  ].join('\n');
}

if (isMain(import.meta.url)) {
  await runScript(async () => `${machineFacts()}\n\n${await rywBenchmark()}`);
}
