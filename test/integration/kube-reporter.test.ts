// The agent with --kube on against a FAKE API server: a recording HTTP server in this process,
// because `npm test` must run without a kube-apiserver. It checks the wire (paths, Content-Type,
// bodies) and the failure handling that a real server is awkward to provoke (hangs, 5xx, 403);
// test/e2e/kube.test.ts proves the same against a real kube-apiserver with real RBAC.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import { Registry } from 'prom-client';
import { Refresher } from '../../src/cni/refresher.js';
import type { KubeApi } from '../../src/kube/client.js';
import { CONDITION_REASONS, CONDITION_TYPE } from '../../src/kube/condition.js';
import { NodeReporter } from '../../src/kube/node-reporter.js';
import { createLogger } from '../../src/log.js';
import { VerdictPublisher } from '../../src/verdict/publisher.js';
import { scrape, startInProcess } from '../helpers/agent.js';
import { condition } from '../helpers/cri.js';
import { cniDirs, conflist, tempDir, writeAtomic } from '../helpers/fs.js';
import { statusPluginNode } from '../helpers/status-plugin.js';
import { ManualClock, advanceInSteps, untilAdvancing } from '../helpers/clock.js';
import { until as waitUntil } from '../helpers/wait.js';

interface Recorded {
  method: string;
  path: string;
  contentType: string | undefined;
  authorization: string | undefined;
  body: unknown;
}

interface NodeCondition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
  lastHeartbeatTime?: string;
  lastTransitionTime?: string;
}

type Mode = 'ok' | 'hang' | 'unavailable' | 'forbidden';

/** A fake API server that knows one Node and stores Events; strategic merge of conditions by type. */
async function fakeApiServer(t: TestContext, nodeName: string, existing: NodeCondition[] = []) {
  const requests: Recorded[] = [];
  const conditions: NodeCondition[] = [
    { type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'kubelet is posting ready status' },
    ...existing,
  ];
  const events = new Map<string, Record<string, unknown>>();
  let mode: Mode = 'ok';
  const hanging: ServerResponse[] = [];
  const send = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let raw = '';
    req.on('data', (chunk: Buffer) => (raw += chunk.toString()));
    req.on('end', () => {
      const body: unknown = raw ? JSON.parse(raw) : undefined;
      const path = req.url ?? '';
      requests.push({
        method: req.method ?? '',
        path,
        contentType: req.headers['content-type'],
        authorization: req.headers.authorization,
        body,
      });
      if (mode === 'hang') {
        hanging.push(res);
        return;
      }
      if (mode === 'unavailable') {
        send(res, 503, { kind: 'Status', message: 'the server is currently unable to handle the request' });
        return;
      }
      if (mode === 'forbidden') {
        send(res, 403, {
          kind: 'Status',
          message: `nodes "${nodeName}" is forbidden: User "system:serviceaccount:kube-system:cri-netstatus" cannot patch resource "nodes/status"`,
        });
        return;
      }
      const node = () => ({
        apiVersion: 'v1',
        kind: 'Node',
        metadata: { name: nodeName, uid: 'uid-1' },
        status: { conditions },
      });
      if (req.method === 'GET' && path === `/api/v1/nodes/${nodeName}`) return send(res, 200, node());
      if (req.method === 'PATCH' && path.startsWith(`/api/v1/nodes/${nodeName}/status`)) {
        const patch = body as { status: { conditions: NodeCondition[] } };
        for (const c of patch.status.conditions) {
          const at = conditions.findIndex((x) => x.type === c.type);
          if (at >= 0) conditions[at] = { ...conditions[at], ...c };
          else conditions.push(c);
        }
        return send(res, 200, node());
      }
      const eventPath = /^\/api\/v1\/namespaces\/default\/events(?:\/([^?]+))?/.exec(path);
      if (eventPath && req.method === 'POST') {
        const event = body as Record<string, unknown> & { metadata: { name: string } };
        events.set(event.metadata.name, event);
        return send(res, 201, event);
      }
      if (eventPath?.[1] && req.method === 'PATCH') {
        const event = events.get(eventPath[1]);
        if (!event) return send(res, 404, { kind: 'Status', message: 'not found' });
        Object.assign(event, body);
        return send(res, 200, event);
      }
      send(res, 404, { kind: 'Status', message: `no route ${req.method ?? ''} ${path}` });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    for (const res of hanging) res.destroy();
    server.closeAllConnections();
    server.close();
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    conditions,
    events,
    setMode(next: Mode) {
      mode = next;
      if (next !== 'hang') for (const res of hanging.splice(0)) res.destroy();
    },
    mine: () => conditions.find((c) => c.type === CONDITION_TYPE),
  };
}

function kubeconfig(t: TestContext, server: string): string {
  const path = join(tempDir(t), 'kubeconfig');
  writeFileSync(
    path,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      'current-context': 'fake',
      clusters: [{ name: 'fake', cluster: { server } }],
      users: [{ name: 'agent', user: { token: 'agent-token' } }],
      contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'agent' } }],
    }),
  );
  return path;
}

/** The shared wait, with this file's longer default (writes go through a retrying reporter). */
const until = <T>(what: string, probe: () => T | undefined | false, timeoutMs = 8000): Promise<T> =>
  waitUntil(what, probe, timeoutMs);

async function agentWithKube(t: TestContext, server: string, extra: string[] = [], clock?: ManualClock) {
  const dir = tempDir(t);
  const { confDir, binDir } = cniDirs(dir);
  writeAtomic(join(confDir, '10-a.conflist'), conflist('a'));
  const args = [
    '--cni-bin-dir',
    binDir,
    '--kube',
    'on',
    '--kubeconfig',
    kubeconfig(t, server),
    '--node-name',
    'node-a',
  ];
  return { ...(await startInProcess(t, [...args, ...extra], confDir, clock ? { clock } : {})), args };
}

test('fake API server: the condition is a strategic-merge PATCH of nodes/status with the token, and Events name the Node', async (t) => {
  const api = await fakeApiServer(t, 'node-a');
  const { confDir } = await agentWithKube(t, api.url);
  const mine = await until('the condition', () => api.mine());
  assert.equal(mine.status, 'True');
  assert.equal(mine.reason, CONDITION_REASONS.loaded);
  assert.match(mine.message ?? '', new RegExp(`network "a" from ${confDir}/10-a\\.conflist`));
  assert.match(mine.lastTransitionTime ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  assert.equal(
    api.conditions.find((c) => c.type === 'Ready')?.reason,
    'KubeletReady',
    'the kubelet’s condition is untouched',
  );

  const [get, patch] = api.requests;
  assert.equal(get?.method, 'GET', 'the Node is read before the first write');
  assert.equal(patch?.method, 'PATCH');
  assert.equal(patch.contentType, 'application/strategic-merge-patch+json');
  assert.equal(patch.authorization, 'Bearer agent-token');
  assert.match(patch.path, /^\/api\/v1\/nodes\/node-a\/status\?fieldManager=cri-netstatus$/);
  assert.deepEqual(
    Object.keys((patch.body as { status: { conditions: object[] } }).status.conditions[0] ?? {}).sort(),
    ['lastHeartbeatTime', 'lastTransitionTime', 'message', 'reason', 'status', 'type'],
  );

  const created = await until('the startup events', () =>
    api.events.size >= 2 ? [...api.events.values()] : undefined,
  );
  const reasons = created.map((e) => e.reason).sort();
  assert.deepEqual(reasons, ['NetworkChanged', 'NetworkReady']);
  for (const event of created) {
    assert.deepEqual(event.involvedObject, { apiVersion: 'v1', kind: 'Node', name: 'node-a', uid: 'node-a' });
    assert.deepEqual(event.source, { component: 'cri-netstatus', host: 'node-a' });
    assert.equal(event.type, 'Normal');
    assert.equal(event.count, 1);
  }
});

test('fake API server: a restart keeps lastTransitionTime and announces nothing when the Node already says the same', async (t) => {
  const api = await fakeApiServer(t, 'node-a');
  const clock = new ManualClock();
  const first = await agentWithKube(t, api.url, [], clock);
  const written = await untilAdvancing(clock, 'the condition', () => api.mine());
  await untilAdvancing(clock, 'the startup events', () => api.events.size >= 2);
  await first.agent.stop();
  await clock.advance(1100); // a later second, so a reset would show
  api.requests.length = 0;
  const eventsBefore = api.events.size;
  await startInProcess(t, first.args, first.confDir, { clock });
  await untilAdvancing(clock, 'a new write', () => api.requests.some((r) => r.method === 'PATCH'));
  const again = api.mine();
  assert.equal(again?.lastTransitionTime, written.lastTransitionTime);
  assert.notEqual(again?.lastHeartbeatTime, written.lastHeartbeatTime);
  await advanceInSteps(clock, 5000); // time for startup Events to be written, were any owed
  assert.equal(api.events.size, eventsBefore, 'no startup Events for an unchanged condition');
});

test('fake API server: a heartbeat rewrites only lastHeartbeatTime', async (t) => {
  const api = await fakeApiServer(t, 'node-a');
  await agentWithKube(t, api.url, ['--kube-heartbeat', '1s']);
  const first = { ...(await until('the condition', () => api.mine())) };
  const beat = await until(
    'a heartbeat',
    () => {
      const now = api.mine();
      return now && now.lastHeartbeatTime !== first.lastHeartbeatTime ? { ...now } : undefined;
    },
    4000,
  );
  assert.deepEqual({ ...beat, lastHeartbeatTime: '' }, { ...first, lastHeartbeatTime: '' });
  const patches = api.requests.filter((r) => r.method === 'PATCH' && r.path.includes('/status')).length;
  assert.ok(patches >= 2 && patches <= 3, `${patches} writes in about a second`);
});

test('fake API server: a hanging API server never slows Status, and the condition converges when it answers', async (t) => {
  const api = await fakeApiServer(t, 'node-a');
  api.setMode('hang');
  const { client, confDir, metricsUrl } = await agentWithKube(t, api.url);
  await until('a request to hang', () => api.requests.length > 0);
  await client.status(); // the client's connection set up outside the timing
  let slowest = 0;
  for (let i = 0; i < 50; i++) {
    if (i % 10 === 0) writeAtomic(join(confDir, '10-a.conflist'), i % 20 ? conflist('a') : '{broken');
    const started = performance.now();
    await client.status();
    slowest = Math.max(slowest, performance.now() - started);
  }
  // A Status call that waited on the hung API server would take the client's 10 s timeout.
  assert.ok(slowest < 1000, `slowest Status call took ${slowest.toFixed(0)} ms while the API server hangs`);
  assert.equal(await scrape(metricsUrl, 'cri_netstatus_kube_condition_synced'), 0);
  // The API server answers again (hung connections are reset): the backoff (1 s base) retries.
  api.setMode('ok');
  writeAtomic(join(confDir, '10-a.conflist'), conflist('b'));
  const converged = await until(
    'the condition to converge',
    () => {
      const mine = api.mine();
      return mine?.message?.includes('network "b"') ? mine : undefined;
    },
    20_000,
  );
  assert.equal(converged.status, 'True');
  const status = await client.status();
  assert.equal(condition(status, 'NetworkReady').status, true);
});

test('fake API server: 5xx is retried with backoff and counted by result', async (t) => {
  const api = await fakeApiServer(t, 'node-a');
  api.setMode('unavailable');
  const { metricsUrl } = await agentWithKube(t, api.url);
  await until('two attempts', () => api.requests.length >= 2, 5000);
  api.setMode('ok');
  await until('the condition', () => api.mine(), 10_000);
  assert.equal(
    await scrape(metricsUrl, 'cri_netstatus_kube_writes_total{kind="condition",result="success"}'),
    1,
  );
  assert.equal(await scrape(metricsUrl, 'cri_netstatus_kube_condition_synced'), 1);
  // The first GET failed too (503), so only failed condition writes after a successful GET count:
  // the number of attempts is bounded by the backoff, not by a busy loop.
  assert.ok(api.requests.length < 10, `${api.requests.length} requests`);
});

test('fake API server: 403 (missing RBAC) is retried slowly, not in a loop', async (t) => {
  const api = await fakeApiServer(t, 'node-a');
  api.setMode('forbidden');
  const clock = new ManualClock();
  const { metricsUrl } = await agentWithKube(t, api.url, [], clock);
  await untilAdvancing(clock, 'the first attempt', () => api.requests.length >= 1);
  await advanceInSteps(clock, 1500);
  // GET node 403 → the agent writes without seeding; PATCH 403 → permanent backoff (5 s base).
  assert.ok(api.requests.length <= 3, `${api.requests.length} requests in 1.5 s`);
  const forbidden = () =>
    scrape(metricsUrl, 'cri_netstatus_kube_writes_total{kind="condition",result="forbidden"}');
  assert.equal(await forbidden(), 1);
  await advanceInSteps(clock, 60_000, 1000);
  // The backoff doubles from 5 s with equal jitter (each delay in [d/2, d]): the first write and
  // 3 to 4 retries in a minute, where a loop would make hundreds.
  const patches = api.requests.filter((r) => r.method === 'PATCH' && r.path.includes('/status')).length;
  assert.ok(patches >= 4 && patches <= 5, `${patches} condition writes in 61.5 s`);
  assert.equal(await forbidden(), patches);
});

test('fake in-memory KubeApi: a flapping conf dir is coalesced into a bounded number of condition writes, ending in the latest state', async (t) => {
  const { confDir, binDir } = cniDirs(tempDir(t));
  const path = join(confDir, '10-a.conflist');
  writeAtomic(path, conflist('a'));
  const clock = new ManualClock();
  const refresher = new Refresher({
    confDir,
    binDirs: [binDir],
    semantics: 'containerd-1.7',
    maxFileSize: 1 << 20,
    clock,
  });
  const verdicts = new VerdictPublisher({
    source: refresher,
    staleAfterMs: undefined,
    clock,
    onError: (error) => assert.fail(String(error)),
  });
  refresher.refresh();
  const patches: NodeCondition[] = [];
  const api: KubeApi = {
    readNode: () => Promise.resolve({ status: { conditions: [] } }),
    listNodes: () => Promise.resolve([]),
    patchNodeStatus: (_name, patch) => {
      const [written] = (patch as { status: { conditions: NodeCondition[] } }).status.conditions;
      if (written) patches.push(written);
      return Promise.resolve({});
    },
    createEvent: () => Promise.resolve({}),
    patchEvent: () => Promise.resolve({}),
    close: () => undefined,
  };
  const reporter = new NodeReporter({
    api,
    nodeName: 'node-a',
    verdict: verdicts.current,
    log: createLogger('silent', 'json'),
    registry: new Registry(),
    conditionBurst: 2,
    conditionRefillMs: 500,
    clock,
  });
  verdicts.register(reporter);
  reporter.start();
  t.after(() => reporter.stop());
  await untilAdvancing(clock, 'the first write', () => patches.length >= 1, { stepMs: 1 });
  const started = clock.now();
  for (let i = 0; i < 40; i++) {
    writeFileSync(path, i % 2 ? conflist('a') : '{broken');
    refresher.refresh();
    await clock.advance(40);
  }
  // A final error unlike the flapping one, so a last write is always owed: the same error again
  // within the second of the condition last written would rightly need none.
  writeFileSync(path, '{"cniVersion": "1.0.0", "name": "a", "plugins": []}');
  refresher.refresh();
  const flapMs = clock.now() - started;
  const last = await untilAdvancing(clock, 'the final state', () => {
    const latest = patches.at(-1);
    return latest?.status === 'False' && reporter.snapshot().written === reporter.snapshot().tracked
      ? latest
      : undefined;
  });
  assert.equal(last.reason, CONDITION_REASONS.invalid);
  // 1 initial + a burst of 2 + one per 500 ms of flapping (+1 for the final state).
  const bound = 1 + 2 + Math.ceil(flapMs / 500) + 1;
  assert.ok(
    patches.length <= bound,
    `${patches.length} writes for 41 changes in ${flapMs} ms (bound ${bound})`,
  );
  assert.ok(patches.length >= 3, `${patches.length} writes`);
});

test('fake API server: a plugin whose CNI STATUS fails turns the condition to CNIPluginNotReady and writes a NetworkNotReady Warning Event with its words', async (t) => {
  const api = await fakeApiServer(t, 'node-a');
  const node = statusPluginNode(tempDir(t));
  await startInProcess(
    t,
    [
      ...['--cni-bin-dir', node.binDir, '--semantics', 'containerd-2.1', '--resync-interval', '1s'],
      ...['--kube', 'on', '--kubeconfig', kubeconfig(t, api.url), '--node-name', 'node-a'],
    ],
    node.confDir,
  );
  await until('the ready condition', () => api.mine()?.status === 'True');
  node.setMode('fail50');
  // No Status call: the resync's probe alone must carry the plugin's failure to the Node.
  const mine = await until(
    'the plugin failure on the Node',
    () => (api.mine()?.reason === 'CNIPluginNotReady' ? api.mine() : undefined),
    15_000,
  );
  assert.equal(mine.status, 'False');
  assert.match(mine.message ?? '', /plugin not ready: agent down/);
  const warning = await until('a Warning Event', () =>
    [...api.events.values()].find((e) => e.type === 'Warning' && e.reason === 'NetworkNotReady'),
  );
  assert.match(String(warning.message), /plugin not ready: agent down/);
  const readyEvents = (): string =>
    JSON.stringify([...api.events.values()].filter((e) => e.reason === 'NetworkReady').map((e) => e.count));
  const before = readyEvents(); // the start-up one is there already: a recovery adds or counts one more
  node.setMode('ok');
  await until('the recovery Event', () => readyEvents() !== before, 15_000);
  await until('the condition back to True', () => api.mine()?.status === 'True', 15_000);
});
