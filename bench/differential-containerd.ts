// The differential table: containerd 1.6 (Debian, from scripts/peers.sh) and two agents
// (--semantics containerd, and the default isulad) watch one conf dir while CONF_DIR_SEQUENCE
// (test/e2e/harness/containerd.ts) changes it; after each step, NetworkReady from `crictl info` on
// each side, once containerd's asynchronous reload has settled. Prints a Markdown table (the one in
// docs/conformance.md) and exits 1 if an observation differs from the expectation the e2e test
// asserts. Needs root and the peers.
//
//   npm run build && node dist/bench/differential-containerd.js
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseFlags } from '../src/cli/flags.js';
import { serveFlags, startAgent } from '../src/cli/serve.js';
import { createLogger } from '../src/log.js';
import {
  CONF_DIR_SEQUENCE,
  PROFILES,
  expectedAgentReady,
  observeSequence,
  settledNetworkView,
  startContainerd,
} from '../test/e2e/harness/containerd.js';
import type { NetworkView, StepObservation } from '../test/e2e/harness/containerd.js';
import { peerPaths, requirePeers, run } from '../test/e2e/harness/peers.js';
import { harnessCleanup, onCleanup, runScript, tempDir } from './lib/cleanup.js';

async function startBenchAgent(confDir: string, cniBinDir: string, semantics: string): Promise<string> {
  const dir = tempDir('cnb-agent-');
  const socket = join(dir, 'cri.sock');
  const config = parseFlags(
    'serve',
    serveFlags,
    [
      ...['--cni-conf-dir', confDir, '--cni-bin-dir', cniBinDir, '--socket', socket],
      ...['--metrics-address', 'off', '--kube', 'off', '--semantics', semantics],
    ],
    {},
  );
  const agent = await startAgent(config, createLogger('silent', 'json'));
  onCleanup(() => agent.stop());
  return `unix://${socket}`;
}

function cell(view: NetworkView, against?: NetworkView): string {
  const differs = against !== undefined && against.ready !== view.ready;
  const text = `${view.ready ? 'true' : '**false**'}${view.ready && view.network ? ` (${view.network})` : ''}`;
  return differs ? `${text} ≠` : text;
}

function markdown(observations: readonly StepObservation[]): string {
  const lines = [
    '| # | step | what the step does | containerd 1.6.20 | agent `--semantics containerd` | agent (default `isulad`) | why they differ |',
    '|---|---|---|---|---|---|---|',
  ];
  observations.forEach((o, i) => {
    const why = PROFILES.flatMap((profile) => {
      const known = o.step.differs?.[profile];
      return known ? [`${profile}: ${known.why}`] : [];
    });
    lines.push(
      `| ${i + 1} | \`${o.step.name}\` | ${o.step.does} | ${cell(o.containerd)} | ${cell(o.agents.containerd, o.containerd)} | ${cell(o.agents.isulad, o.containerd)} | ${why.join('<br>') || '—'} |`,
    );
  });
  return lines.join('\n');
}

async function main(): Promise<string> {
  const { cniBinDir, crictl, containerd: containerdBin } = requirePeers('containerd', 'crictl', 'cniBinDir');
  const root = tempDir('cnb-differential-');
  const confDir = join(root, 'net.d');
  mkdirSync(confDir);
  const containerd = await startContainerd(harnessCleanup, { confDir, cniBinDir });
  const agentEndpoints = {
    containerd: await startBenchAgent(confDir, cniBinDir, 'containerd'),
    isulad: await startBenchAgent(confDir, cniBinDir, 'isulad'),
  };
  await settledNetworkView(containerd.endpoint);
  const observations = await observeSequence({
    confDir,
    containerd,
    agentEndpoints,
    onStep: (o) =>
      process.stderr.write(`${o.step.name}: containerd=${o.containerd.ready} settled +${o.settleMs}ms\n`),
  });
  const versions = await run(containerdBin, ['--version']);
  const crictlVersion = await run(crictl, ['--version']);
  const table = `${markdown(observations)}\n\ncontainerd: ${versions.stdout.trim()}; ${crictlVersion.stdout.trim()}; peers from ${peerPaths().peersDir}; ${new Date().toISOString()}`;
  let unexpected = 0;
  for (const o of observations) {
    if (o.containerd.ready !== o.step.containerd) {
      unexpected++;
      process.stderr.write(`UNEXPECTED: containerd at ${o.step.name}: ${o.containerd.ready}\n`);
    }
    for (const profile of PROFILES) {
      if (o.agents[profile].ready !== expectedAgentReady(o.step, profile)) {
        const bug = o.step.differs?.[profile]?.agentBug ? ' (known agent bug)' : '';
        if (!bug) unexpected++;
        process.stderr.write(
          `${bug ? 'KNOWN' : 'UNEXPECTED'}: agent ${profile} at ${o.step.name}: ${o.agents[profile].ready}${bug}\n`,
        );
      }
    }
  }
  if (CONF_DIR_SEQUENCE.length !== observations.length) unexpected++;
  if (unexpected > 0) process.exitCode = 1;
  return table;
}

await runScript(main);
