// Benchmark 6: what the CNI STATUS verb costs a Status call. The agent under --semantics
// containerd-2.1 (--plugin-status auto: it execs every plugin of the network on every Status, as
// containerd 2.x does, bounded and shared by concurrent calls), the same agent with
// --plugin-status off (files only, for reference) and containerd 2.4.2 (scripts/peers.sh
// containerd2) serve one conf dir whose cniVersion 1.1.0 list runs the real test plugin
// (test/fixtures/plugins/cni-status-test), in the same interleaved rounds:
//   1. server CPU per Status with the plugin answering ok: the server process alone, and with the
//      plugin runs it waited for (cutime + cstime), and the plugin runs per call (its callLog);
//   2. Status latency p50/p99 with a plugin that takes 50 ms (statusMode slow, delayMs 50).
// Both at concurrency 1 (kubelet's sequential calls) and 16. Medians over rounds. The agents run
// with --refresh-timeout 10s: every call waits for its probe, as every containerd call does
// (the default 1 s budget would answer a call from the last result instead, on a loaded machine).
//
//   node dist/bench/plugin-status.js [--rounds 3] [--calls 400] [--slow-calls 100]
import { symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { statusPluginNode } from '../test/helpers/status-plugin.js';
import type { PluginNode } from '../test/helpers/status-plugin.js';
import { runScript, tempDir } from './lib/cleanup.js';
import { CNI_BIN_DIR } from './lib/conf.js';
import { interleave, progress, startFleet } from './lib/fleet.js';
import type { Member, ServerKind } from './lib/fleet.js';
import { machineFacts } from './lib/machine.js';
import { cpuSeconds, cpuSecondsWithChildren } from './lib/proc.js';
import { containerdVersion } from './lib/servers.js';
import { commandLine, fmt, intFlag, isMain, median, table } from './lib/util.js';

const CONCURRENCY = [1, 16] as const;
const PROBING = 'cri-netstatus --semantics containerd-2.1 (--plugin-status auto: probing)';
const FILES_ONLY = 'cri-netstatus --semantics containerd-2.1 --plugin-status off';
const CONTAINERD2 = 'containerd 2.4.2';

interface Measured {
  cpuUs: number;
  cpuWithPluginsUs: number;
  runsPerCall: number;
  throughput: number;
  p50Us: number;
  p99Us: number;
}

const statusRuns = (node: PluginNode): number =>
  node.calls().filter((line) => line.startsWith('STATUS ')).length;

async function measure(
  member: Member,
  calls: number,
  concurrency: number,
  node: PluginNode,
): Promise<Measured> {
  const pid = member.server.pid;
  const cpu0 = cpuSeconds(pid);
  const all0 = cpuSecondsWithChildren(pid);
  const runs0 = statusRuns(node);
  const result = await member.client.run(calls, concurrency, false, 300);
  const runs = statusRuns(node) - runs0;
  return {
    cpuUs: ((cpuSeconds(pid) - cpu0) * 1e6) / result.calls,
    cpuWithPluginsUs: ((cpuSecondsWithChildren(pid) - all0) * 1e6) / result.calls,
    runsPerCall: runs / result.calls,
    throughput: result.throughput,
    p50Us: result.p50_us,
    p99Us: result.p99_us,
  };
}

export async function pluginStatusBenchmark(): Promise<string> {
  const rounds = intFlag('rounds', 3);
  const calls = intFlag('calls', 400);
  const slowCalls = intFlag('slow-calls', 100);
  // The test plugin's node (part A's helper), plus loopback: containerd loads its loopback
  // network from the bin dirs too.
  const node = statusPluginNode(tempDir('cnb-ps-'), { delayMs: 50 });
  symlinkSync(join(CNI_BIN_DIR, 'loopback'), join(node.binDir, 'loopback'));
  const agent = ['--semantics', 'containerd-2.1', '--refresh-timeout', '10s', '--plugin-status'];
  const kinds: ServerKind[] = [
    { kind: 'agent', label: PROBING, args: [...agent, 'auto'] },
    { kind: 'agent', label: FILES_ONLY, args: [...agent, 'off'] },
    { kind: 'containerd', label: CONTAINERD2, peer: 'containerd2' },
  ];
  const fleet = await startFleet(kinds, { confDir: node.confDir, cniBinDir: node.binDir });

  const results = new Map<string, Measured[]>();
  const record = (key: string, m: Measured): void => {
    results.set(key, [...(results.get(key) ?? []), m]);
  };
  node.setMode('ok');
  for (const member of fleet.members) await member.client.run(Math.min(calls, 200), 16); // warm-up
  for (const [phase, mode, n] of [
    ['cpu', 'ok', calls],
    ['slow', 'slow', slowCalls],
  ] as const) {
    node.setMode(mode);
    for (const concurrency of CONCURRENCY) {
      await interleave(fleet.members, rounds, async (member, round) => {
        const m = await measure(member, n, concurrency, node);
        record(`${phase}\t${concurrency}\t${member.label}`, m);
        progress(
          `plugin-status ${phase} round ${round + 1}/${rounds} c=${concurrency} ${member.label}: ${fmt(m.cpuUs, 1)} µs/call (+plugins ${fmt(m.cpuWithPluginsUs, 1)}), ${fmt(m.runsPerCall, 2)} runs/call, p50 ${fmt(m.p50Us / 1000, 1)} ms, p99 ${fmt(m.p99Us / 1000, 1)} ms`,
        );
      });
    }
  }
  for (const member of fleet.members) await member.server.stop();

  const med = (list: readonly Measured[], pick: (m: Measured) => number): number => median(list.map(pick));
  const rowsFor = (phase: string, cells: (list: readonly Measured[]) => string[]): string[][] =>
    [...results]
      .filter(([key]) => key.startsWith(`${phase}\t`))
      .map(([key, list]) => {
        const [, concurrency = '', label = ''] = key.split('\t');
        return [concurrency, label, ...cells(list)];
      });
  const cpuRows = rowsFor('cpu', (list) => [
    fmt(
      med(list, (m) => m.cpuUs),
      1,
    ),
    fmt(
      med(list, (m) => m.cpuWithPluginsUs),
      1,
    ),
    fmt(
      med(list, (m) => m.runsPerCall),
      2,
    ),
    fmt(med(list, (m) => m.throughput)),
  ]);
  const slowRows = rowsFor('slow', (list) => [
    fmt(med(list, (m) => m.p50Us) / 1000, 1),
    fmt(med(list, (m) => m.p99Us) / 1000, 1),
    fmt(
      med(list, (m) => m.runsPerCall),
      2,
    ),
    fmt(med(list, (m) => m.throughput)),
  ]);
  const ratio = (phase: string, concurrency: number, pick: (m: Measured) => number): string => {
    const of = (label: string): number => med(results.get(`${phase}\t${concurrency}\t${label}`) ?? [], pick);
    const value = of(PROBING) / of(CONTAINERD2);
    return Number.isFinite(value) ? `${fmt(value, 2)}×` : 'n/a';
  };
  const ratios = CONCURRENCY.map(
    (c) =>
      `- concurrency ${c}, agent (probing) / containerd 2.4.2: CPU with plugin runs ${ratio('cpu', c, (m) => m.cpuWithPluginsUs)}, server alone ${ratio('cpu', c, (m) => m.cpuUs)}, p50 with the 50 ms plugin ${ratio('slow', c, (m) => m.p50Us)}, p99 ${ratio('slow', c, (m) => m.p99Us)}`,
  );
  return [
    `### CNI STATUS probing: server CPU per Status, plugin ok (${fmt(calls)} calls × ${rounds} interleaved rounds, medians)`,
    '',
    table(
      [
        'concurrency',
        'server',
        'CPU µs/call (server)',
        'CPU µs/call with plugin runs',
        'plugin runs/call',
        'calls/s',
      ],
      cpuRows,
    ),
    '',
    `### Status latency with a plugin that takes 50 ms (statusMode slow; ${fmt(slowCalls)} calls × ${rounds} rounds, medians)`,
    '',
    table(['concurrency', 'server', 'p50 ms', 'p99 ms', 'plugin runs/call', 'calls/s'], slowRows),
    '',
    ...ratios,
    `- plugin: test/fixtures/plugins/cni-status-test (a /bin/sh script) under cniVersion 1.1.0; containerd ${containerdVersion('containerd2')}`,
    ...(fleet.skipped ? [`- skipped: ${fleet.skipped}`] : []),
    `- command: \`${commandLine('plugin-status')}\``,
  ].join('\n');
}

if (isMain(import.meta.url)) {
  await runScript(async () => `${machineFacts()}\n\n${await pluginStatusBenchmark()}`);
}
