// The memory cost of the Kubernetes reporter: RSS of the agent with --kube off and --kube on
// (against a real kube-apiserver, writing its condition and Events), and what importing
// @kubernetes/client-node costs by itself, whole or only the parts the agent uses.
//
//   npm run build && node dist/bench/kube-rss.js [--seconds 180] [--rates 1,50] [--imports-only]
//
// For each rate in `--rates`, each agent serves that many Status calls per second, its conf dir changes every 10 s (a write
// of the condition and Events each time) and its heartbeat is 5 s, for `--seconds`; RSS is read
// from /proc every 5 s. "Steady" is the median after the first 20 s.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { conflist } from '../test/helpers/fs.js';
import { agentMetrics, startBenchAgent, startKubeBench, sumSamples } from './kube-lib.js';
import type { BenchAgent, KubeBench } from './kube-lib.js';
import { runScript } from './lib/cleanup.js';
import { RECOMMENDED_NODE_OPTIONS } from './lib/flags.js';
import { machineFacts } from './lib/machine.js';
import { MiB, rssBytes } from './lib/proc.js';
import { REPO_ROOT, commandLine, fmt, intFlag, isMain, median, sleep, table } from './lib/util.js';

export const KUBE_RSS_TARGET_MIB = 96;
const PACKAGE_INDEX = pathToFileURL(
  join(REPO_ROOT, 'node_modules', '@kubernetes', 'client-node', 'dist', 'index.js'),
).href;

/** RSS of a fresh `node` that imports `modules` and idles 5 s (no forced GC). */
function importCost(modules: readonly string[]): number {
  const script = `${modules.map((m) => `await import(${JSON.stringify(m)});`).join('')}
await new Promise((r) => setTimeout(r, 5000));
process.stdout.write(String(process.memoryUsage().rss));`;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
  });
  return Number(out) / MiB;
}

function importTable(): string {
  const kubeClient = fileURLToPath(new URL('../src/kube/client.js', import.meta.url));
  const kubeConfig = fileURLToPath(new URL('../src/kube/config.js', import.meta.url));
  const kubeReview = fileURLToPath(new URL('../src/kube/review.js', import.meta.url));
  const rows: [string, readonly string[]][] = [
    ['bare node (nothing imported)', []],
    ['src/kube/client.js + config.js (CoreV1 API by path: what --kube on loads)', [kubeClient, kubeConfig]],
    ['src/kube/review.js + config.js (what --metrics-auth kubernetes loads)', [kubeReview, kubeConfig]],
    ['all three (--kube on with --metrics-auth kubernetes)', [kubeClient, kubeConfig, kubeReview]],
    ["'@kubernetes/client-node' (the package index)", ['@kubernetes/client-node']],
  ];
  const measured = rows.map(
    ([label, modules]) => [label, median([0, 1, 2].map(() => importCost(modules)))] as const,
  );
  const bare = measured[0]?.[1] ?? Number.NaN;
  return table(
    ['imported', 'RSS MiB (median of 3)', 'over bare node MiB'],
    measured.map(([label, rss]) => [
      label,
      fmt(rss, 1),
      label.startsWith('bare') ? '—' : `+${fmt(rss - bare, 1)}`,
    ]),
  );
}

interface Variant {
  label: string;
  kube: boolean;
  nodeOptions: string;
}

const VARIANTS: readonly Variant[] = [
  { label: '--kube off', kube: false, nodeOptions: '' },
  { label: '--kube on', kube: true, nodeOptions: '' },
  {
    label: `--kube on, NODE_OPTIONS=${RECOMMENDED_NODE_OPTIONS}`,
    kube: true,
    nodeOptions: RECOMMENDED_NODE_OPTIONS,
  },
  // What the agent would weigh had it imported the package index (as the library's examples do).
  {
    label: '--kube on, the @kubernetes/client-node index preloaded (NODE_OPTIONS=--import)',
    kube: true,
    nodeOptions: `--import ${PACKAGE_INDEX}`,
  },
];

/** Every variant side by side for `seconds` at `rate` Status calls per second; one table row each. */
async function runRate(bench: KubeBench, rate: number, seconds: number, round: number): Promise<string[][]> {
  const agents: { variant: Variant; agent: BenchAgent; confDir: string; rss: number[] }[] = [];
  for (const [i, variant] of VARIANTS.entries()) {
    // Each agent has its own conf dir (so its changes are its own) and, with --kube on, its own Node.
    const confDir = join(bench.dir, `net.d-${round}-${i}`);
    mkdirSync(confDir);
    writeFileSync(join(confDir, '10-bench.conflist'), conflist('bench'));
    const node = `rss-node-${round}-${i}`;
    if (variant.kube) {
      await bench.cp.kubectlOk(['create', '-f', '-'], {
        input: JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name: node } }),
      });
    }
    const kubeArgs = variant.kube
      ? [
          '--kube',
          'on',
          '--kubeconfig',
          bench.cp.adminKubeconfig,
          '--node-name',
          node,
          '--kube-heartbeat',
          '5s',
        ]
      : ['--kube', 'off'];
    const agent = await startBenchAgent(bench, `rss-${round}-${i}`, kubeArgs, variant.nodeOptions, confDir);
    agents.push({ variant, agent, confDir, rss: [] });
  }
  const started = Date.now();
  let lastSample = 0;
  let lastChange = started;
  let changes = 0;
  while (Date.now() - started < seconds * 1000) {
    const tick = Date.now();
    await Promise.all(
      agents.map(async ({ agent }) => {
        for (let i = 0; i < rate; i++) await agent.client.status();
      }),
    );
    if (tick - lastChange >= 10_000) {
      changes++;
      for (const { confDir } of agents)
        writeFileSync(join(confDir, '10-bench.conflist'), conflist(changes % 2 ? 'bench-b' : 'bench'));
      lastChange = tick;
    }
    if (tick - lastSample >= 5000) {
      for (const entry of agents) entry.rss.push(rssBytes(entry.agent.pid) / MiB);
      lastSample = tick;
    }
    await sleep(Math.max(0, 1000 - (Date.now() - tick)));
  }
  const rows: string[][] = [];
  for (const { variant, agent, rss } of agents) {
    const steady = rss.slice(4); // after the first 20 s
    const med = median(steady);
    const writes = sumSamples(await agentMetrics(agent), 'cri_netstatus_kube_writes_total', {
      result: 'success',
    });
    rows.push([
      `${rate}/s`,
      variant.label,
      fmt(rss[0] ?? Number.NaN, 1),
      fmt(med, 1),
      fmt(Math.max(...steady), 1),
      fmt(rss.at(-1) ?? Number.NaN, 1),
      variant.kube ? fmt(writes) : '—',
      med <= KUBE_RSS_TARGET_MIB ? 'met' : 'MISSED',
    ]);
    await agent.stop();
  }
  return rows;
}

export async function kubeRssBenchmark(): Promise<string> {
  const seconds = intFlag('seconds', 180);
  const rates = (process.argv[process.argv.indexOf('--rates') + 1] ?? '').match(/^\d+(,\d+)*$/)
    ? (process.argv[process.argv.indexOf('--rates') + 1] ?? '').split(',').map(Number)
    : [1, 50];
  const imports = importTable();
  if (process.argv.includes('--imports-only')) {
    return [
      '#### What importing @kubernetes/client-node costs by itself',
      '',
      imports,
      '',
      `- command: \`${commandLine('kube-rss')}\``,
    ].join('\n');
  }
  const bench = await startKubeBench([]);
  const rows: string[][] = [];
  for (const [round, rate] of rates.entries()) rows.push(...(await runRate(bench, rate, seconds, round)));
  return [
    `### RSS with the Kubernetes reporter (${seconds} s per Status rate, a conf change every 10 s, heartbeat 5 s, against a real kube-apiserver)`,
    '',
    table(
      [
        'Status calls',
        'agent',
        'RSS at 5 s MiB',
        'steady (median after 20 s) MiB',
        'max after 20 s MiB',
        'final MiB',
        'API writes',
        `target (≤ ${KUBE_RSS_TARGET_MIB} MiB steady)`,
      ],
      rows,
    ),
    '',
    '- kubelet calls Status about every 5 s; 1/s is already above that, 50/s is a stress rate.',
    '',
    '#### What importing @kubernetes/client-node costs by itself',
    '',
    imports,
    '',
    `- command: \`${commandLine('kube-rss')}\``,
  ].join('\n');
}

if (isMain(import.meta.url)) {
  await runScript(async () => `${machineFacts()}\n\n${await kubeRssBenchmark()}`);
}
