// A conf dir on a REAL stalled filesystem: a FUSE mount (test/e2e/harness/stallfs.py, Debian's
// python3-fusepy from scripts/peers.sh debs; root) whose readdir, stat, open and read block on
// demand. While it blocks, with the agent's scan and five more operations hung on it, Status answers
// RefreshTimeout within --refresh-timeout plus slack, /metrics and /healthz answer, and the Node
// condition write (a real kube-apiserver addressed as `localhost`, so every request needs dns.lookup
// on libuv's thread pool) completes. When it unblocks, the next call reflects the files.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CONDITION_TYPE } from '../../src/kube/condition.js';
import { REPO_ROOT, scrape, startServeProcess } from '../helpers/agent.js';
import type { ServeProcess } from '../helpers/agent.js';
import { condition, parsedInfo } from '../helpers/cri.js';
import { conflist } from '../helpers/fs.js';
import { sleep, until } from '../helpers/wait.js';
import { startControlPlane } from './harness/apiserver.js';
import type { ControlPlane } from './harness/apiserver.js';
import { requirePeers } from './harness/peers.js';

const PYTHON = '/usr/bin/python3';
const STALLFS = join(REPO_ROOT, 'test', 'e2e', 'harness', 'stallfs.py');
const REFRESH_TIMEOUT_MS = 1000;
/** The slack every timed assertion here allows: 2-core CI machines are noisy. */
const SLACK_MS = 1000;

describe('a conf dir on a stalled FUSE filesystem', { concurrency: false }, () => {
  let root: string;
  let backing: string;
  let mount: string;
  let control: string;
  let fuse: ChildProcess | undefined;
  let fuseOutput = '';
  let cp: ControlPlane | undefined;
  let agent: ServeProcess | undefined;
  const hung: ChildProcess[] = [];

  const block = () => writeFileSync(join(control, 'block'), '');
  const unblock = () => rmSync(join(control, 'block'), { force: true });
  const blocked = () => Number(readFileSync(join(control, 'blocked'), 'utf8') || '0');

  before(async () => {
    requirePeers('etcd', 'kubeApiserver');
    assert.equal(process.getuid?.(), 0, 'this test mounts a FUSE filesystem: run `npm run test:e2e` as root');
    const probe = spawnSync(PYTHON, ['-c', 'import fusepy'], { encoding: 'utf8' });
    assert.equal(
      probe.status,
      0,
      `python3-fusepy is missing; run \`bash scripts/peers.sh debs\`: ${probe.stderr}`,
    );

    root = mkdtempSync(join(tmpdir(), 'cri-netstatus-stallfs-'));
    [backing, mount, control] = ['backing', 'net.d', 'control'].map((name) => join(root, name)) as [
      string,
      string,
      string,
    ];
    for (const dir of [backing, mount, control]) mkdirSync(dir);
    writeFileSync(join(backing, '10-net.conflist'), conflist('before'));
    fuse = spawn(PYTHON, [STALLFS, backing, mount, control], { stdio: ['ignore', 'pipe', 'pipe'] });
    fuse.stdout?.on('data', (chunk: Buffer) => (fuseOutput += chunk.toString()));
    fuse.stderr?.on('data', (chunk: Buffer) => (fuseOutput += chunk.toString()));
    await until(
      'the FUSE mount to serve the conf dir',
      () => existsSync(join(mount, '10-net.conflist')),
      20_000,
      {
        describe: () => fuseOutput,
      },
    );

    cp = await startControlPlane(join(root, 'cp'));
    await cp.kubectlOk(['create', '-f', '-'], {
      input: JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-a' } }),
    });
    // `localhost`, not 127.0.0.1: every request to the API server then needs a dns.lookup.
    const kubeconfig = join(root, 'localhost.kubeconfig');
    writeFileSync(
      kubeconfig,
      readFileSync(cp.adminKubeconfig, 'utf8').replace('https://127.0.0.1:', 'https://localhost:'),
      { mode: 0o600 },
    );
    agent = await startServeProcess(join(root, 'cri.sock'), [
      '--cni-conf-dir',
      mount,
      '--cni-bin-dir',
      join(root, 'bin'),
      '--refresh-timeout',
      `${REFRESH_TIMEOUT_MS}ms`,
      '--resync-interval',
      '1s',
      '--kube',
      'on',
      '--kubeconfig',
      kubeconfig,
      '--node-name',
      'node-a',
      '--kube-heartbeat',
      '2s',
    ]);
    await nodeCondition('NetworkConfigLoaded');
  });

  after(async () => {
    // Unblock first: a thread in a hung FUSE call cannot exit, and neither can umount.
    if (control) unblock();
    for (const child of hung) child.kill('SIGKILL');
    await agent?.stop();
    if (mount && existsSync(mount)) {
      const umount = spawnSync('umount', [mount], { encoding: 'utf8' });
      if (umount.status !== 0) spawnSync('umount', ['-l', mount]);
    }
    if (fuse && fuse.exitCode === null) {
      const exited = new Promise((resolve) => fuse?.once('exit', resolve));
      fuse.kill('SIGTERM');
      await Promise.race([exited, sleep(5000).then(() => fuse?.kill('SIGKILL'))]);
    }
    await cp?.stop();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  async function nodeCondition(
    reason: string,
    timeoutMs = 30_000,
  ): Promise<{ reason: string; message: string }> {
    return until(
      `node-a's ${CONDITION_TYPE} to say ${reason}`,
      async () => {
        const { body } = await (cp as ControlPlane).get('/api/v1/nodes/node-a');
        const conditions = (
          body as { status?: { conditions?: { type: string; reason: string; message: string }[] } }
        ).status?.conditions;
        const mine = conditions?.find((c) => c.type === CONDITION_TYPE);
        return mine?.reason === reason ? mine : undefined;
      },
      timeoutMs,
      { intervalMs: 200, retryErrors: true, describe: () => agent?.output() ?? '' },
    );
  }

  test('while the disk hangs: Status answers RefreshTimeout in time, /metrics, /healthz and the Node write go on; then the files show', async () => {
    const client = (agent as ServeProcess).client;
    const metricsUrl = (agent as ServeProcess).metricsUrl;
    block();
    // Five hung operations from other processes, besides the agent's own scan (at most one: a hung
    // scan is never started twice).
    for (let i = 0; i < 5; i++) {
      hung.push(spawn('stat', [join(mount, '10-net.conflist')], { stdio: 'ignore' }));
    }
    await until(
      'six operations to hang on the mount (five stat, the agent scan)',
      () => blocked() >= 6,
      20_000,
      {
        describe: () => `blocked: ${blocked()}\n${fuseOutput}`,
      },
    );
    // Written while blocked, to the disk under the mount: invisible until the scan gets through.
    writeFileSync(join(backing, '10-net.conflist'), conflist('after'));

    const calls = Array.from({ length: 100 }, async () => {
      const started = performance.now();
      const response = await client.status();
      return { ms: performance.now() - started, upToDate: condition(response, 'NetworkConfigUpToDate') };
    });
    const answers = await Promise.all(calls);
    const slowest = Math.max(...answers.map((a) => a.ms));
    assert.ok(
      answers.every((a) => a.upToDate.reason === 'RefreshTimeout' && !a.upToDate.status),
      `every answer says RefreshTimeout: ${JSON.stringify(answers.find((a) => a.upToDate.reason !== 'RefreshTimeout'))}`,
    );
    assert.match(answers[0]?.upToDate.message ?? '', /last refreshed at \d{4}-\d\d-\d\dT/);
    assert.equal(
      new Set(answers.map((a) => a.upToDate.message)).size,
      1,
      'one fixed message, no growing age',
    );
    assert.ok(
      slowest <= REFRESH_TIMEOUT_MS + SLACK_MS,
      `the slowest of 100 answered in ${Math.round(slowest)} ms, past --refresh-timeout + 1 s`,
    );

    const timeouts = await scrape(metricsUrl, 'cri_netstatus_config_refresh_timeouts_total');
    assert.ok(timeouts !== undefined && timeouts >= 100, `refresh timeouts counted: ${timeouts}`);
    const health = await fetch(metricsUrl.replace('/metrics', '/healthz'));
    assert.equal(health.status, 200);

    // The Node condition moves to RefreshTimeout: a write to `localhost` completed while the disk hangs.
    const written = await nodeCondition('RefreshTimeout');
    assert.match(written.message, /did not finish in time/);
    assert.ok(blocked() >= 6, `still hung while all that was answered: ${blocked()} operations`);

    unblock();
    await until('the hung operations to finish', () => blocked() === 0, 20_000);
    const response = await client.status(true);
    assert.equal(condition(response, 'NetworkConfigUpToDate').status, true);
    const info = parsedInfo(response) as { cniconfig?: { network?: { name?: string } } };
    assert.equal(info.cniconfig?.network?.name, 'after', 'the next call reflects the files');
    await nodeCondition('NetworkConfigLoaded');
  });
});
