// The CNI STATUS differential test: containerd 2.4.2 (scripts/peers.sh containerd2), which runs
// STATUS on every plugin of its network on every Status, and two agents (`--semantics
// containerd-2.1` probing as containerd does, and the default isulad with `--plugin-status off`)
// watch one conf dir through STATUS_SEQUENCE (test/e2e/harness/plugin-status.ts): the real test
// plugin succeeding, failing with code 50 and 51, printing non-JSON, a missing binary, a plugin too
// old for STATUS, an empty dir, a hang (containerd never answers; the agent does) and the dir
// recreated (containerd exits; the agent keeps serving). After each step, NetworkReady and the
// message where containerd's is the plugin's own are compared; the disagreements must be exactly
// the listed ones, so a new divergence fails. Plugin runs are counted per runner.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { startServeProcess } from '../helpers/agent.js';
import type { ServeProcess } from '../helpers/agent.js';
import { tempDir } from '../helpers/fs.js';
import { settledNetworkView, startContainerd } from './harness/containerd.js';
import {
  COUNTED_CALLS,
  STATUS_AGENTS,
  STATUS_NETWORK,
  STATUS_SEQUENCE,
  expectedStatusReady,
  makeStatusRig,
  observeStatusSequence,
  statusTable,
} from './harness/plugin-status.js';
import type { StatusAgent, StatusRig } from './harness/plugin-status.js';
import { requirePeers, skipWithoutPeers } from './harness/peers.js';

const skip = skipWithoutPeers('containerd2', 'crictl', 'cniBinDir');

const AGENT_ARGS: Record<StatusAgent, string[]> = {
  'containerd-2.1': ['--semantics', 'containerd-2.1', '--plugin-status', 'auto'],
  isulad: ['--plugin-status', 'off'],
};

test(
  'differential: containerd 2.4.2 and the agent through the CNI STATUS sequence',
  skip ? { skip } : {},
  async (t) => {
    const { cniBinDir } = requirePeers('containerd2', 'crictl', 'cniBinDir');
    // Whatever happens, no hung plugin outlives the test (containerd's would be orphaned). Hooks
    // run in the order they are registered: this one before the temp dir and its run logs go.
    const made: { rig?: StatusRig } = {};
    t.after(() => {
      for (const runner of ['containerd', ...STATUS_AGENTS] as const) made.rig?.killLive(runner);
    });
    // Short: the agents' sockets live here (a unix socket path must stay under 108 bytes).
    const rig = makeStatusRig(tempDir(t, 'cnst-'), cniBinDir);
    made.rig = rig;
    const containerd = await startContainerd(t, {
      peer: 'containerd2',
      confDir: rig.confDir,
      cniBinDir: rig.binDirs.containerd,
    });
    const agents = {} as Record<StatusAgent, ServeProcess & { endpoint: string }>;
    for (const name of STATUS_AGENTS) {
      const socket = join(rig.root, `${name}.sock`);
      const agent = await startServeProcess(socket, [
        ...['--cni-conf-dir', rig.confDir, '--cni-bin-dir', rig.binDirs[name], '--kube', 'off'],
        ...AGENT_ARGS[name],
      ]);
      t.after(() => agent.stop());
      agents[name] = Object.assign(agent, { endpoint: `unix://${socket}` });
    }

    const initial = await settledNetworkView(containerd.endpoint);
    assert.equal(initial.view.ready, false, 'containerd starts with an empty conf dir: NetworkReady false');

    const observations = await observeStatusSequence({
      rig,
      containerd,
      agents,
      onStep: (o) =>
        t.diagnostic(
          `${o.step.name}: containerd ${o.containerd.answered ? `${o.containerd.view.ready} "${o.containerd.view.message}"` : o.containerd.what} | containerd-2.1 ${o.agents['containerd-2.1'].ready} "${o.agents['containerd-2.1'].message}" | isulad ${o.agents.isulad.ready} | runs ${JSON.stringify(o.runs)}${o.maxInFlight === undefined ? '' : ` | max in flight ${o.maxInFlight}`}${o.recovered ? ` | containerd ${o.recovered}` : ''}`,
        ),
    });
    for (const line of statusTable(observations).split('\n')) t.diagnostic(line);

    for (const o of observations) {
      await t.test(o.step.name, () => {
        const expected = o.step.containerd;
        // containerd itself, as runtimes-2x.md observed it
        if ('hangs' in expected) {
          assert.ok(
            !o.containerd.answered && o.containerd.hung,
            `containerd: ${o.step.does} → expected no answer within crictl's 2 s, got ${JSON.stringify(o.containerd)}`,
          );
          assert.match(o.containerd.what, /DeadlineExceeded|deadline exceeded/i);
        } else if ('exits' in expected) {
          assert.ok(
            !o.containerd.answered && o.containerd.exited,
            `containerd: ${o.step.does} → expected it to exit, got ${JSON.stringify(o.containerd)}`,
          );
          assert.match(o.containerd.what, expected.exits);
        } else {
          assert.ok(o.containerd.answered, `containerd did not answer: ${JSON.stringify(o.containerd)}`);
          const view = o.containerd.view;
          assert.equal(
            view.ready,
            expected.ready,
            `containerd: ${o.step.does} → NetworkReady ${view.ready} (${view.message})`,
          );
          if (!expected.ready) {
            if (typeof expected.message === 'string') assert.equal(view.message, expected.message);
            else assert.match(view.message, expected.message);
          }
        }

        for (const agent of STATUS_AGENTS) {
          const seen = o.agents[agent];
          const want = expectedStatusReady(o.step, agent);
          const why = o.step.differs?.[agent]?.why;
          assert.equal(
            seen.ready,
            want,
            `agent ${agent}: ${o.step.does} → NetworkReady ${seen.ready} (${seen.message}), expected ${want}${why ? ` (${why})` : ' (as containerd)'}`,
          );
          if (seen.ready) {
            assert.equal(seen.network, STATUS_NETWORK, `agent ${agent}: the network in force`);
            continue;
          }
          assert.match(seen.message, /^Network plugin returns error: /, "containerd's message shape");
          const says = o.step.agentsSay?.[agent]?.message;
          if (says) assert.match(seen.message, says, `agent ${agent}: what it says at ${o.step.name}`);
          if (agent !== 'containerd-2.1' || !o.containerd.answered || o.containerd.view.ready) continue;
          if (o.step.ownMessage) {
            assert.match(seen.message, o.step.ownMessage.agent, `containerd-2.1: ${o.step.ownMessage.why}`);
          } else {
            assert.equal(
              rig.withoutBinDirs(seen.message),
              rig.withoutBinDirs(o.containerd.view.message),
              "containerd-2.1: containerd's message, word for word",
            );
          }
        }
        if (o.step.name === 'ok') {
          assert.equal(o.containerd.answered && o.containerd.view.network, STATUS_NETWORK);
        }

        // Plugin runs: containerd runs STATUS once per Status call (uncached); the agent probes per
        // call too but may share a probe (never more than one per call, plus a resync); the
        // isulad agent, probing off, runs nothing.
        if (!('hangs' in expected) && !('exits' in expected)) {
          assert.equal(
            o.runs.containerd,
            COUNTED_CALLS * o.step.probes,
            'containerd: STATUS runs per Status',
          );
          const agentRuns = o.runs['containerd-2.1'];
          if (o.step.probes === 0) assert.equal(agentRuns, 0, 'containerd-2.1: no STATUS run');
          else
            assert.ok(
              agentRuns >= 1 && agentRuns <= COUNTED_CALLS + 1,
              `containerd-2.1: ${agentRuns} STATUS runs for ${COUNTED_CALLS} calls`,
            );
        }
        if (o.maxInFlight !== undefined) {
          assert.ok(o.maxInFlight <= 1, `containerd-2.1: ${o.maxInFlight} plugin runs in flight at once`);
          assert.ok(o.runs['containerd-2.1'] >= 1, 'containerd-2.1 ran the hanging plugin');
        }
        assert.equal(o.runs.isulad, 0, 'isulad (--plugin-status off): no plugin run');
      });
    }

    await t.test(
      'runs: never ADD, DEL, CHECK or GC; containerd never VERSION; every run went through a runner',
      () => {
        const all = rig.allRuns();
        const commands = new Set(all.map((r) => r.command));
        for (const forbidden of ['ADD', 'DEL', 'CHECK', 'GC']) {
          assert.ok(!commands.has(forbidden), `nobody ran ${forbidden}: ${[...commands].join(', ')}`);
        }
        assert.ok(
          rig.runs('containerd').every((r) => r.command === 'STATUS'),
          'containerd: STATUS only, never VERSION (runtimes-2x.md)',
        );
        assert.ok(
          rig.runs('containerd-2.1').every((r) => r.command === 'STATUS' || r.command === 'VERSION'),
          'containerd-2.1: STATUS (and VERSION to explain a failure) only',
        );
        // Every run the plugin logged came through one runner's wrapper (same pid: the wrapper
        // execs it). Not the other way round: a run killed or just starting may not have logged.
        const viaRunner = new Set(
          (['containerd', ...STATUS_AGENTS] as const).flatMap((runner) => rig.runs(runner).map((r) => r.pid)),
        );
        assert.deepEqual(
          all.filter((r) => !viaRunner.has(r.pid)),
          [],
          'plugin runs that no runner started',
        );
      },
    );

    // Where containerd 2.x exits, the agent says what happened to the dir and keeps serving.
    await t.test('dir-recreated: the agent logs that the conf dir was removed and recreated', () => {
      const lines = agents['containerd-2.1'].output().split('\n');
      assert.ok(
        lines.some((line) => line.includes(rig.confDir) && /removed|recreated|re-armed/.test(line)),
        'a log line about the removed conf dir',
      );
    });

    // The exact disagreement sets: a new divergence (or one that went away) fails here.
    for (const agent of STATUS_AGENTS) {
      const observed = observations
        .filter((o) => !o.containerd.answered || o.agents[agent].ready !== o.containerd.view.ready)
        .map((o) => o.step.name);
      const expected = STATUS_SEQUENCE.filter((s) => s.differs?.[agent]).map((s) => s.name);
      assert.deepEqual(
        observed,
        expected,
        `agent ${agent}: the steps where it and containerd 2.4.2 disagree`,
      );
    }
  },
);
