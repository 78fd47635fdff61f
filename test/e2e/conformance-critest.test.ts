// critest (cri-tools v1.37.0, built by scripts/peers.sh) against the agent: the two "Runtime info"
// conformance specs (Version, and Status with RuntimeReady and NetworkReady both true). Every
// critest spec also opens an image client probed with ImageService.ImageFsInfo, which the agent
// does not serve, so --image-endpoint points at a real containerd.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import { startInProcess } from '../helpers/agent.js';
import { conflist, tempDir } from '../helpers/fs.js';
import { startContainerd } from './harness/containerd.js';
import { describeRun, requirePeers, run } from './harness/peers.js';
import type { RunResult } from './harness/peers.js';

const SPECS = [
  '[k8s.io] Runtime info runtime should support returning runtime info runtime should return version info [Conformance]',
  '[k8s.io] Runtime info runtime should support returning runtime info runtime should return runtime conditions [Conformance]',
];

interface SpecReport {
  ContainerHierarchyTexts: string[] | null;
  LeafNodeText: string;
  State: string;
  Failure?: { Message: string };
}

interface Critest {
  result: RunResult;
  args: string[];
  /** Full name → state ("passed", "failed", …) of every spec that was not skipped. */
  ran: Map<string, SpecReport>;
}

async function critest(t: TestContext, agentSocket: string, imageEndpoint: string): Promise<Critest> {
  const { critest: binary } = requirePeers('critest');
  const dir = tempDir(t, 'critest-');
  const report = join(dir, 'report.json');
  const args = [
    '--config',
    '/dev/null',
    '--runtime-endpoint',
    `unix://${agentSocket}`,
    '--image-endpoint',
    imageEndpoint,
    '--ginkgo.focus=Runtime info',
    '--ginkgo.no-color',
    `--ginkgo.json-report=${report}`,
  ];
  const result = await run(binary, args, { cwd: dir, timeoutMs: 120_000 });
  let suites: { SpecReports: SpecReport[] | null }[];
  try {
    suites = JSON.parse(readFileSync(report, 'utf8')) as { SpecReports: SpecReport[] | null }[];
  } catch (error) {
    throw new Error(
      `critest wrote no JSON report (${String(error)}):\n${describeRun('critest', args, result)}`,
    );
  }
  const ran = new Map<string, SpecReport>();
  for (const spec of suites.flatMap((suite) => suite.SpecReports ?? [])) {
    if (spec.State === 'skipped' || !spec.LeafNodeText) continue;
    ran.set([...(spec.ContainerHierarchyTexts ?? []), spec.LeafNodeText].join(' '), spec);
  }
  return { result, args, ran };
}

async function setup(t: TestContext, files: Record<string, string>) {
  const { cniBinDir } = requirePeers('critest', 'containerd', 'crictl', 'cniBinDir');
  const dir = tempDir(t);
  const confDir = join(dir, 'net.d');
  mkdirSync(confDir);
  for (const [name, content] of Object.entries(files)) writeFileSync(join(confDir, name), content);
  const agent = await startInProcess(t, ['--cni-bin-dir', cniBinDir], confDir);
  // containerd only serves the image endpoint; it gets a conf dir of its own.
  const containerdConf = join(dir, 'containerd-net.d');
  mkdirSync(containerdConf);
  const containerd = await startContainerd(t, { confDir: containerdConf });
  return { agent, containerd };
}

test('critest "Runtime info": both conformance specs run and pass against the agent', async (t) => {
  const { agent, containerd } = await setup(t, { '10-net.conflist': conflist('net', ['bridge', 'portmap']) });
  const { result, args, ran } = await critest(t, agent.socket, containerd.endpoint);
  const output = describeRun('critest', args, result);
  assert.equal(result.code, 0, output);
  assert.match(result.stdout, /Ran 2 of \d+ Specs/, output);
  assert.match(result.stdout, /SUCCESS! -- 2 Passed \| 0 Failed/, output);
  assert.deepEqual([...ran.keys()].sort(), [...SPECS].sort(), 'exactly the two Runtime info specs ran');
  for (const [name, spec] of ran)
    assert.equal(spec.State, 'passed', `${name}: ${spec.Failure?.Message ?? ''}`);
});

test('critest "Runtime info": the runtime-conditions spec fails while NetworkReady is false (critest needs both true)', async (t) => {
  const { agent, containerd } = await setup(t, {});
  const { result, args, ran } = await critest(t, agent.socket, containerd.endpoint);
  const output = describeRun('critest', args, result);
  assert.notEqual(result.code, 0, `critest must fail on a not-ready network:\n${output}`);
  assert.match(result.stdout, /1 Passed \| 1 Failed/, output);
  assert.equal(ran.get(SPECS[0] ?? '')?.State, 'passed', 'version info passes');
  assert.equal(ran.get(SPECS[1] ?? '')?.State, 'failed', 'runtime conditions fails: NetworkReady is false');
});
