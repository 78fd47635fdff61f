// The differential test: ONE scripted sequence of conf-dir changes applied to a dir that a real
// containerd (Debian's 1.6) and two agents (--semantics containerd, and the default isulad) all
// watch. After each step containerd's NetworkReady (crictl info, polled until it settles: its reload
// is asynchronous) is compared with each agent's (crictl info too). The disagreements must be
// exactly the expected ones in CONF_DIR_SEQUENCE (containerd's known bugs, and the documented
// isulad differences), so a new divergence, in either direction, fails.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { startInProcess } from '../helpers/agent.js';
import { tempDir } from '../helpers/fs.js';
import {
  CONF_DIR_SEQUENCE,
  PROFILES,
  differentialTable,
  expectedAgentReady,
  observeSequence,
  settledNetworkView,
  startContainerd,
} from './harness/containerd.js';
import { requirePeers } from './harness/peers.js';

test('differential: containerd 1.6 and the agent watch one conf dir through one scripted sequence', async (t) => {
  const { cniBinDir } = requirePeers('containerd', 'crictl', 'cniBinDir');
  const confDir = join(tempDir(t), 'net.d');
  mkdirSync(confDir);
  const containerd = await startContainerd(t, { confDir, cniBinDir });
  const agentContainerd = await startInProcess(
    t,
    ['--semantics', 'containerd', '--cni-bin-dir', cniBinDir],
    confDir,
  );
  const agentIsulad = await startInProcess(t, ['--cni-bin-dir', cniBinDir], confDir);

  const initial = await settledNetworkView(containerd.endpoint);
  assert.equal(initial.view.ready, false, 'containerd starts with an empty conf dir: NetworkReady false');

  const observations = await observeSequence({
    confDir,
    containerd,
    agentEndpoints: {
      containerd: `unix://${agentContainerd.socket}`,
      isulad: `unix://${agentIsulad.socket}`,
    },
    onStep: (o) =>
      t.diagnostic(
        `${o.step.name}: containerd=${o.containerd.ready} (lastCNILoadStatus: ${o.containerd.lastCNILoadStatus ?? ''}) agent[containerd]=${o.agents.containerd.ready} agent[isulad]=${o.agents.isulad.ready}`,
      ),
  });
  for (const line of differentialTable(observations).split('\n')) t.diagnostic(line);

  for (const o of observations) {
    const bug = o.step.differs?.containerd?.agentBug ? o.step.differs.containerd.why : undefined;
    await t.test(o.step.name, bug ? { todo: bug } : {}, () => {
      assert.equal(
        o.containerd.ready,
        o.step.containerd,
        `containerd itself: ${o.step.does} → NetworkReady ${o.containerd.ready}, expected ${o.step.containerd} (lastCNILoadStatus: ${o.containerd.lastCNILoadStatus})`,
      );
      for (const profile of PROFILES) {
        const agent = o.agents[profile];
        const expected = expectedAgentReady(o.step, profile);
        const why = o.step.differs?.[profile]?.why;
        assert.equal(
          agent.ready,
          expected,
          `agent --semantics ${profile}: ${o.step.does} → NetworkReady ${agent.ready} (${agent.message}), expected ${expected}${why ? ` (${why})` : ' (the same as containerd)'}`,
        );
        if (agent.ready && o.containerd.ready) {
          assert.equal(
            agent.network,
            o.containerd.network,
            `${profile}: the same default network as containerd`,
          );
        }
        if (!agent.ready && !o.containerd.ready) {
          assert.match(agent.message, /^Network plugin returns error: /, "containerd's message shape");
        }
      }
    });
  }

  // The exact disagreement sets: a new divergence (or a fixed containerd bug) fails here.
  for (const profile of PROFILES) {
    const observed = observations
      .filter((o) => !o.step.differs?.[profile]?.agentBug)
      .filter((o) => o.agents[profile].ready !== o.containerd.ready)
      .map((o) => o.step.name);
    const expected = CONF_DIR_SEQUENCE.filter(
      (s) => s.differs?.[profile] && !s.differs[profile].agentBug,
    ).map((s) => s.name);
    assert.deepEqual(
      observed,
      expected,
      `--semantics ${profile}: the steps where the agent and containerd disagree`,
    );
  }
});
