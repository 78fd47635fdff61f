// What the CNI STATUS probe costs a Status call: the agent under --semantics containerd-2.1 with
// --plugin-status off, and on (every call runs the plugin, as containerd 2.x does) with the test
// plugin answering at once and after 50 ms. Interleaved rounds, medians. CPU per call is the
// agent's own (utime+stime) and with its reaped plugin processes (cutime+cstime) added.
// (containerd 2.x side by side on the same dir: part B of issue 10.)
//
//   node dist/bench/plugin-status.js [--rounds 3] [--calls 400]
import { readFileSync } from 'node:fs';
import { statusPluginNode } from '../test/helpers/status-plugin.js';
import { runScript, tempDir } from './lib/cleanup.js';
import { LoadClient } from './lib/client.js';
import type { LoadResult } from './lib/client.js';
import { progress } from './lib/fleet.js';
import { machineFacts } from './lib/machine.js';
import { clockTicks, cpuSeconds } from './lib/proc.js';
import { startAgent } from './lib/servers.js';
import type { BenchServer } from './lib/servers.js';
import { commandLine, fmt, intFlag, isMain, median, table } from './lib/util.js';

const CONCURRENCY = [1, 16] as const;

interface Variant {
  label: string;
  mode: 'off' | 'on';
  plugin: Record<string, unknown>;
}

const VARIANTS: readonly Variant[] = [
  { label: 'probing off', mode: 'off', plugin: { statusMode: 'ok', callLog: '' } },
  { label: 'probing on, plugin answers at once', mode: 'on', plugin: { statusMode: 'ok', callLog: '' } },
  {
    label: 'probing on, plugin takes 50 ms',
    mode: 'on',
    plugin: { statusMode: 'slow', delayMs: 50, callLog: '' },
  },
];

/** utime+stime of the reaped children of `pid` (its plugin processes), in seconds. */
function childCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[13]) + Number(fields[14])) / clockTicks();
}

interface Member {
  variant: Variant;
  server: BenchServer;
  client: LoadClient;
}

async function start(variant: Variant, index: number): Promise<Member> {
  const dir = tempDir();
  const { confDir, binDir } = statusPluginNode(dir, variant.plugin);
  const server = await startAgent(dir, confDir, `agent-${index}`, {
    binDir,
    env: {
      CRI_NETSTATUS_SEMANTICS: 'containerd-2.1',
      CRI_NETSTATUS_PLUGIN_STATUS: variant.mode,
      // The whole run is measured: never let a budget cut a call short.
      CRI_NETSTATUS_REFRESH_TIMEOUT: '10s',
    },
  });
  return { variant, server, client: await LoadClient.open(server.socket) };
}

interface Sample extends LoadResult {
  cpuUsPerCall: number;
  withPluginsUsPerCall: number;
}

async function sample(member: Member, calls: number, concurrency: number): Promise<Sample> {
  const pid = member.server.pid;
  const [cpu, children] = [cpuSeconds(pid), childCpuSeconds(pid)];
  const result = await member.client.run(calls, concurrency);
  const own = cpuSeconds(pid) - cpu;
  const plugins = childCpuSeconds(pid) - children;
  return {
    ...result,
    cpuUsPerCall: (own * 1e6) / result.calls,
    withPluginsUsPerCall: ((own + plugins) * 1e6) / result.calls,
  };
}

export async function pluginStatusBenchmark(): Promise<string> {
  const rounds = intFlag('rounds', 3);
  const calls = intFlag('calls', 400);
  const members: Member[] = [];
  for (const [i, variant] of VARIANTS.entries()) members.push(await start(variant, i));
  for (const member of members) await member.client.run(50, 4); // warm-up
  const samples = new Map<string, Sample[]>();
  for (let round = 0; round < rounds; round++) {
    for (const concurrency of CONCURRENCY) {
      for (let i = 0; i < members.length; i++) {
        const member = members[(round + i) % members.length];
        if (!member) continue;
        const s = await sample(member, calls, concurrency);
        const key = `${concurrency}\t${member.variant.label}`;
        samples.set(key, [...(samples.get(key) ?? []), s]);
        progress(
          `plugin-status round ${round + 1}/${rounds} c=${concurrency} ${member.variant.label}: ${fmt(s.throughput)} calls/s, p50 ${fmt(s.p50_us)} µs, p99 ${fmt(s.p99_us)} µs, ${fmt(s.withPluginsUsPerCall)} µs CPU/call`,
        );
      }
    }
  }
  for (const member of members) {
    await member.client.close();
    await member.server.stop();
  }
  const rows = [...samples]
    .sort(([a], [b]) => Number(a.split('\t')[0]) - Number(b.split('\t')[0]))
    .map(([key, list]) => {
      const [concurrency = '', label = ''] = key.split('\t');
      return [
        concurrency,
        label,
        fmt(median(list.map((s) => s.throughput))),
        fmt(median(list.map((s) => s.p50_us))),
        fmt(median(list.map((s) => s.p99_us))),
        fmt(median(list.map((s) => s.cpuUsPerCall)), 1),
        fmt(median(list.map((s) => s.withPluginsUsPerCall)), 1),
      ];
    });
  return [
    `### CNI STATUS probing: cost per Status call (${fmt(calls)} calls per run, ${rounds} interleaved rounds, medians)`,
    '',
    table(
      [
        'concurrency',
        'agent (containerd-2.1)',
        'calls/s',
        'p50 µs',
        'p99 µs',
        'agent CPU µs/call',
        'with plugin processes µs/call',
      ],
      rows,
    ),
    '',
    '- the plugin is test/fixtures/plugins/cni-status-test (a POSIX shell script: a real plugin in Go costs less to start)',
    `- command: \`${commandLine('plugin-status')}\``,
  ].join('\n');
}

if (isMain(import.meta.url)) {
  await runScript(async () => `${machineFacts()}\n\n${await pluginStatusBenchmark()}`);
}
