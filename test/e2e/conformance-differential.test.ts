// The differential test: ONE scripted sequence of conf-dir changes applied to a dir that a real
// containerd (Debian's 1.6) and two agents (--semantics containerd, and the default isulad) all
// watch. After each step containerd's NetworkReady (crictl info, polled until it settles: its reload
// is asynchronous) is compared with each agent's (crictl info too). The disagreements must be
// exactly the expected ones in CONF_DIR_SEQUENCE (containerd's known bugs, and the documented
// isulad differences), so a new divergence, in either direction, fails. The same sequence runs
// against containerd 2.4.2 (scripts/peers.sh containerd2) beside the agent under containerd-2.1;
// its lists say cniVersion 1.0.0, so no CNI STATUS runs (conformance-plugin-status.test.ts has that).
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import { startInProcess } from '../helpers/agent.js';
import { tempDir } from '../helpers/fs.js';
import {
  CONF_DIR_SEQUENCE,
  PROFILES,
  differentialTable,
  expectedAgentReady,
  expectedContainerdReady,
  observeSequence,
  settledNetworkView,
  startContainerd,
} from './harness/containerd.js';
import type { ContainerdPeer } from './harness/containerd.js';
import { requirePeers, skipWithoutPeers } from './harness/peers.js';

test('differential: containerd 1.6 and the agent watch one conf dir through one scripted sequence', (t) =>
  differential(t, 'containerd', 'containerd'));

const skip2 = skipWithoutPeers('containerd2', 'crictl', 'cniBinDir');
test(
  'differential: containerd 2.4.2 and the agent (--semantics containerd-2.1) through the same sequence',
  skip2 ? { skip: skip2 } : {},
  (t) => differential(t, 'containerd2', 'containerd-2.1'),
);

/** The sequence against `peer`, beside the agent under `semantics` (its "containerd" column) and isulad. */
async function differential(t: TestContext, peer: ContainerdPeer, semantics: string): Promise<void> {
  const { cniBinDir } = requirePeers(peer, 'crictl', 'cniBinDir');
  const confDir = join(tempDir(t), 'net.d');
  mkdirSync(confDir);
  const containerd = await startContainerd(t, { confDir, cniBinDir, peer });
  const agentContainerd = await startInProcess(
    t,
    ['--semantics', semantics, '--cni-bin-dir', cniBinDir],
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
  const columns = {
    containerd: peer === 'containerd' ? 'containerd 1.6' : 'containerd 2.4.2',
    agent: `agent --semantics ${semantics}`,
  };
  for (const line of differentialTable(observations, columns).split('\n')) t.diagnostic(line);

  for (const o of observations) {
    const bug = o.step.differs?.containerd?.agentBug ? o.step.differs.containerd.why : undefined;
    await t.test(o.step.name, bug ? { todo: bug } : {}, () => {
      const containerdReady = expectedContainerdReady(o.step, peer);
      assert.equal(
        o.containerd.ready,
        containerdReady,
        `containerd itself: ${o.step.does} → NetworkReady ${o.containerd.ready}, expected ${containerdReady} (lastCNILoadStatus: ${o.containerd.lastCNILoadStatus})`,
      );
      if (peer === 'containerd2' && o.step.containerd2?.exits) {
        assert.match(o.containerd.message, /^containerd exited: .*cni conf dir is removed, stop watching/);
      }
      for (const profile of PROFILES) {
        const agent = o.agents[profile];
        const expected = expectedAgentReady(o.step, profile, peer);
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
      `--semantics ${profile === 'containerd' ? semantics : profile}: the steps where the agent and ${peer} disagree`,
    );
  }
}
