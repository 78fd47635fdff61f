// The CNI STATUS probe's pure parts and its scheduling: the stdin libcni builds (against output
// captured from libcni v1.3.1 itself), the cniVersion gate, how each outcome is classified, which
// profile probes when, and the coalescing of runs on a ManualClock. Real plugin processes are in
// test/integration/plugin-status.test.ts.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { versionAtLeast } from '../../src/cni/libcni.js';
import { parseConfig } from '../../src/cni/parse.js';
import { PluginProber, probePolicy } from '../../src/cni/plugin-prober.js';
import type { PluginStatusReport } from '../../src/cni/plugin-status.js';
import { Refresher } from '../../src/cni/refresher.js';
import { classify } from '../../src/cni/status-probe.js';
import type { ExecOutcome, ExecRequest } from '../../src/cni/status-probe.js';
import type { NetworkState } from '../../src/cni/types.js';
import { pluginFailureText } from '../../src/cri/conditions.js';
import { Deadline } from '../../src/util/deadline.js';
import { VerdictPublisher } from '../../src/verdict/publisher.js';
import { ManualClock } from '../helpers/clock.js';
import { cniDirs, tempDir } from '../helpers/fs.js';

function confs(file: string, text: string): string[] {
  const result = parseConfig(file, Buffer.from(text));
  assert.ok(result.ok, result.ok ? '' : result.error.message);
  return result.config.plugins.map((p) => p.conf);
}

// Expected values printed by libcni v1.3.1 (ConfListFromBytes / ConfListFromConf, then InjectConf
// with the list's name and cniVersion, as GetStatusNetworkList does), from a small Go program.
test('the STATUS stdin is what libcni v1.3.1 builds: name and cniVersion injected, keys deduplicated and sorted, Go numbers and escapes', () => {
  assert.deepEqual(
    confs(
      'a.conflist',
      '{"cniVersion":"1.1.0","name":"n","plugins":[{"type":"a","z":1,"b":[1.5,1e21,1e-7,0.000001,123456789012345678901234,-0,2e2],"name":"x","cniVersion":"0.1.0"}]}',
    ),
    [
      '{"b":[1.5,1e+21,1e-7,0.000001,1.2345678901234569e+23,-0,200],"cniVersion":"1.1.0","name":"n","type":"a","z":1}',
    ],
  );
  assert.deepEqual(
    confs(
      'a.conflist',
      '{"cniVersion":"1.1.0","name":"n<&>","plugins":[{"type":"a","s":"<tag> & \\u2028 \\u0001 \\b\\f\\n\\t\\"\\\\ é 😀 \\u007f"}]}',
    ),
    [
      '{"cniVersion":"1.1.0","name":"n\\u003c\\u0026\\u003e","s":"\\u003ctag\\u003e \\u0026 \\u2028 \\u0001 \\b\\f\\n\\t\\"\\\\ é 😀 \u007f","type":"a"}',
    ],
  );
  assert.deepEqual(
    confs(
      'a.conflist',
      '{"cniVersion":"1.1.0","name":"n","plugins":[{"type":"a","k":1,"k":2,"K":3,"nested":{"b":1,"a":{"d":null,"c":true}}}]}',
    ),
    ['{"K":3,"cniVersion":"1.1.0","k":2,"name":"n","nested":{"a":{"c":true,"d":null},"b":1},"type":"a"}'],
  );
  assert.deepEqual(
    confs(
      'a.conflist',
      '{"cniVersions":["1.0.0","1.1.0"],"name":"n","plugins":[{"type":"a"},{"type":"b","ipam":{"type":"host-local"}}]}',
    ),
    [
      '{"cniVersion":"1.1.0","name":"n","type":"a"}',
      '{"cniVersion":"1.1.0","ipam":{"type":"host-local"},"name":"n","type":"b"}',
    ],
  );
  assert.deepEqual(
    confs('a.conf', '{"cniVersion":"1.1.0","NAME":"net","Type":"bridge","x":{"é":1,"e":2,"Z":3}}'),
    ['{"NAME":"net","Type":"bridge","cniVersion":"1.1.0","name":"net","x":{"Z":3,"e":2,"é":1}}'],
  );
});

test("the cniVersion gate compares as libcni's GreaterThanOrEqualTo: unparsable means no", () => {
  for (const yes of ['1.1.0', '1.1', '1.2.0', '2.0.0', '1.1.1'])
    assert.equal(versionAtLeast(yes, '1.1.0'), true, yes);
  for (const no of ['1.0.0', '0.4.0', '', '1.0.9', 'x', '1.1.0.0', '1.a.0'])
    assert.equal(versionAtLeast(no, '1.1.0'), false, no);
});

function outcome(partial: Partial<ExecOutcome>): ExecOutcome {
  return { stdout: Buffer.alloc(0), stderr: Buffer.alloc(0), timedOut: false, durationMs: 3, ...partial };
}

test('each outcome is classified as libcni reads it, and told apart more finely than containerd', () => {
  const c = (o: Partial<ExecOutcome>) => classify('p', '/bin/p', outcome(o), 0, 2000);
  assert.deepEqual(
    [c({ exitCode: 0 }).result, c({ exitCode: 0, stdout: Buffer.from('{"code":50,"msg":"x"}') }).result],
    ['ok', 'ok'],
    'exit 0 passes whatever stdout says, as in libcni',
  );
  const fifty = c({
    exitCode: 1,
    stdout: Buffer.from('{"cniVersion":"1.1.0","code":50,"msg":"plugin not ready: agent down"}'),
  });
  assert.deepEqual(
    [fifty.result, fifty.code, fifty.message],
    ['code_50', 50, 'plugin not ready: agent down'],
  );
  const fiftyOne = c({
    exitCode: 1,
    stdout: Buffer.from(
      '{"code":51,"msg":"plugin not ready: existing pods degraded","details":"agent lost"}',
    ),
  });
  assert.deepEqual(
    [fiftyOne.result, fiftyOne.code, fiftyOne.message],
    ['code_51', 51, 'plugin not ready: existing pods degraded; agent lost'],
  );
  const other = c({ exitCode: 1, stdout: Buffer.from('{"CODE":3,"Msg":"missing containerID"}') });
  assert.deepEqual([other.result, other.code, other.message], ['error', 3, 'missing containerID']);
  assert.deepEqual(c({ exitCode: 1, stdout: Buffer.from('oops not json\n') }), {
    plugin: 'p',
    path: '/bin/p',
    durationMs: 3,
    at: 0,
    result: 'bad_output',
    message: `netplugin failed but error parsing its diagnostic message "oops not json\\n": invalid character 'o' looking for beginning of value`,
  });
  assert.equal(
    c({ exitCode: 1, stderr: Buffer.from('boom on stderr\n') }).message,
    'netplugin failed: "boom on stderr\\n": exit status 1',
  );
  assert.equal(c({ exitCode: 2 }).message, 'netplugin failed with no error message: exit status 2');
  assert.equal(
    c({ signal: 'SIGSEGV' }).message,
    'netplugin failed with no error message: signal: segmentation fault',
  );
  assert.equal(
    c({ exitCode: 1, stdout: Buffer.from('{"code":"50"}') }).message,
    'netplugin failed but error parsing its diagnostic message "{\\"code\\":\\"50\\"}": json: cannot unmarshal string into Go struct field Error.code of type uint',
  );
  const timeout = c({ timedOut: true });
  assert.equal(timeout.result, 'timeout');
  assert.match(
    timeout.message ?? '',
    /did not answer STATUS within --plugin-status-timeout 2s; it was killed/,
  );
  const denied = Object.assign(new Error('spawn /bin/p EACCES'), { code: 'EACCES' });
  const couldNot = c({ spawnError: denied });
  assert.equal(couldNot.result, 'could_not_run');
  assert.match(couldNot.message ?? '', /^could not run plugin \/bin\/p: permission denied: .*noexec/);
});

test('the failure wording: the runtime profiles keep libcni words; isulad names the plugin and its code', () => {
  const failed = {
    plugin: 'cilium-cni',
    result: 'code_50' as const,
    code: 50,
    message: 'agent down',
    durationMs: 1,
    at: 0,
  };
  assert.equal(pluginFailureText('containerd-2.1', failed), 'agent down');
  assert.equal(pluginFailureText('crio', failed), 'agent down');
  assert.equal(
    pluginFailureText('isulad', failed),
    'plugin "cilium-cni" failed CNI STATUS (CNI error code 50): agent down',
  );
});

test('--plugin-status auto probes where the runtime does: containerd 2.x always, CRI-O until success, never 1.x or iSulad', () => {
  assert.equal(probePolicy('auto', 'containerd-2.0'), 'every');
  assert.equal(probePolicy('auto', 'containerd-2.1'), 'every');
  assert.equal(probePolicy('auto', 'crio'), 'until-success');
  assert.equal(probePolicy('auto', 'containerd-1.7'), 'never');
  assert.equal(probePolicy('auto', 'isulad'), 'never');
  for (const profile of ['isulad', 'containerd-1.7', 'crio'] as const)
    assert.equal(probePolicy('on', profile), 'every');
  assert.equal(probePolicy('off', 'containerd-2.1'), 'never');
});

/** A conf dir with one network of the given plugins, and its state under `semantics`. */
function networkState(
  t: import('node:test').TestContext,
  plugins: string[],
  cniVersion = '1.1.0',
  semantics: NetworkState['semantics'] = 'containerd-2.1',
): { state: () => NetworkState; refresher: Refresher; write: (mode: string) => void } {
  const { confDir, binDir } = cniDirs(tempDir(t), plugins);
  const write = (mode: string): void =>
    writeFileSync(
      join(confDir, '10-n.conflist'),
      JSON.stringify({ cniVersion, name: 'n', plugins: plugins.map((type) => ({ type, mode })) }),
    );
  write('a');
  const refresher = new Refresher({ confDir, binDirs: [binDir], semantics, maxFileSize: 1 << 20 });
  return { state: () => refresher.refresh(), refresher, write };
}

/** A fake exec (unit tests only: the real one spawns processes): each call waits until the test settles it. */
function fakeExec() {
  const calls: Array<{ request: ExecRequest; settle: (o: Partial<ExecOutcome>) => void }> = [];
  const exec = (request: ExecRequest): Promise<ExecOutcome> =>
    new Promise((resolve) => calls.push({ request, settle: (o) => resolve(outcome(o)) }));
  return { calls, exec };
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Until the fake exec has been called `n` times (the real lookup of the binary stats real files first). */
async function calledTimes(calls: readonly unknown[], n: number): Promise<void> {
  for (let i = 0; i < 2000 && calls.length < n; i++) await new Promise((resolve) => setTimeout(resolve, 1));
  assert.equal(calls.length, n);
}

test('coalescing with a fake exec: one run in flight, one queued that callers share, and the queued one probes the newest network', async (t) => {
  const clock = new ManualClock();
  const { state, write } = networkState(t, ['a', 'b']);
  const reports: PluginStatusReport[] = [];
  const { calls, exec } = fakeExec();
  const prober = new PluginProber({
    mode: 'auto',
    timeoutMs: 2000,
    clock,
    onReport: (r) => reports.push(r),
    exec,
  });
  const first = prober.probe(state());
  await calledTimes(calls, 1); // the first caller starts a run
  const second = prober.probe(state());
  write('b'); // the network changes while the run is in flight
  const third = prober.probe(state());
  assert.ok(second && third && second === third, 'callers during a run share the one queued run');
  let secondDone = false;
  void second.then(() => (secondDone = true));
  calls[0]?.settle({ exitCode: 0 });
  await calledTimes(calls, 2); // plugin b of the first run
  assert.equal(calls[1]?.request.stdin, '{"cniVersion":"1.1.0","mode":"a","name":"n","type":"b"}');
  calls[1]?.settle({ exitCode: 0 });
  await first;
  assert.equal(reports.length, 1);
  await tick();
  assert.equal(secondDone, false, 'a queued caller waits for the run that started after it');
  await calledTimes(calls, 3); // the queued run starts when the first ends
  assert.equal(
    calls[2]?.request.stdin,
    '{"cniVersion":"1.1.0","mode":"b","name":"n","type":"a"}',
    'with the newest network',
  );
  calls[2]?.settle({ exitCode: 1, stdout: Buffer.from('{"code":50,"msg":"down"}') });
  await calledTimes(calls, 4);
  // A failure stops the run (b is not executed) and VERSION runs once to see whether a is too old.
  const version = calls[3];
  assert.equal(version?.request.command, 'VERSION');
  version?.settle({ exitCode: 0, stdout: Buffer.from('{"supportedVersions":["1.0.0","1.1.0"]}') });
  await second;
  assert.equal(calls.length, 4, 'plugin b is not run after a failed');
  assert.deepEqual(
    reports[1]?.plugins.map((p) => [p.plugin, p.result]),
    [
      ['a', 'code_50'],
      ['b', 'skipped'],
    ],
  );
  assert.equal(reports[1]?.failed?.message, 'down', 'no too-old hint for a plugin that supports 1.1.0');
});

test('a list below cniVersion 1.1.0 is skipped without running anything, and crio stops after its first success', async (t) => {
  const clock = new ManualClock();
  const old = networkState(t, ['a'], '1.0.0');
  const reports: PluginStatusReport[] = [];
  const { calls, exec } = fakeExec();
  const prober = new PluginProber({
    mode: 'on',
    timeoutMs: 2000,
    clock,
    onReport: (r) => reports.push(r),
    exec,
  });
  assert.equal(prober.probe(old.state()), undefined);
  assert.equal(calls.length, 0);
  assert.match(reports[0]?.skipped ?? '', /cniVersion 1\.0\.0 is below 1\.1\.0/);
  assert.equal(prober.probe(old.state()), undefined);
  assert.equal(reports.length, 1, 'the same skipped network is reported once');

  const crio = networkState(t, ['a'], '1.1.0', 'crio');
  const crioReports: PluginStatusReport[] = [];
  const crioExec = fakeExec();
  const once = new PluginProber({
    mode: 'auto',
    timeoutMs: 2000,
    clock,
    onReport: (r) => crioReports.push(r),
    exec: crioExec.exec,
  });
  const failing = once.probe(crio.state());
  await calledTimes(crioExec.calls, 1);
  crioExec.calls[0]?.settle({ exitCode: 1, stdout: Buffer.from('{"code":50,"msg":"down"}') });
  await calledTimes(crioExec.calls, 2);
  crioExec.calls[1]?.settle({ exitCode: 0, stdout: Buffer.from('{"supportedVersions":["1.1.0"]}') });
  await failing;
  const ok = once.probe(crio.state());
  await calledTimes(crioExec.calls, 3);
  crioExec.calls[2]?.settle({ exitCode: 0 });
  await ok;
  assert.deepEqual(
    crioReports.map((r) => r.failed?.result ?? 'ok'),
    ['code_50', 'ok'],
  );
  crio.write('b');
  assert.equal(once.probe(crio.state()), undefined, 'after the first success crio never probes again');
  assert.equal(crioExec.calls.length, 3);
  assert.match(crioReports[2]?.skipped ?? '', /only until the first success/);
});

test("a Status call's one budget with a fake exec: the probe waits only for what the refresh left, and its late result lands for later calls", async (t) => {
  const clock = new ManualClock();
  const net = networkState(t, ['a']);
  const { calls, exec } = fakeExec();
  const sink: { verdicts?: VerdictPublisher } = {};
  const prober = new PluginProber({
    mode: 'auto',
    timeoutMs: 2000,
    clock,
    onReport: (r) => sink.verdicts?.pluginStatusChanged(r),
    exec,
  });
  const verdicts = new VerdictPublisher({
    source: net.refresher,
    staleAfterMs: undefined,
    probes: prober,
    clock,
    onError: (e) => assert.fail(String(e)),
  });
  sink.verdicts = verdicts;
  let answered = false;
  const call = verdicts.fresh(Deadline.after(clock, 1000)).then((v) => {
    answered = true;
    return v;
  });
  await tick();
  await clock.advance(999);
  assert.equal(answered, false, 'within the budget the call waits for its probe');
  await clock.advance(1);
  const verdict = await call;
  assert.equal(verdict.networkReady, true, 'no result yet: answered from the files, within the budget');
  assert.equal(calls.length, 1, 'the probe is still running');
  calls[0]?.settle({ exitCode: 1, stdout: Buffer.from('{"code":50,"msg":"agent down"}') });
  await calledTimes(calls, 2); // VERSION, once per binary, after a failure
  calls[1]?.settle({ exitCode: 0, stdout: Buffer.from('{"supportedVersions":["1.1.0"]}') });
  // The call's own probe was queued behind the one the new network started: it runs now.
  await calledTimes(calls, 3);
  assert.equal(verdicts.current.networkReady, false, 'the late result lands in the verdict');
  assert.equal(verdicts.current.conditions[1].message, 'Network plugin returns error: agent down');
  assert.equal(verdicts.current.nodeCondition.reason, 'CNIPluginNotReady');
  const generation = verdicts.current.generation;
  calls[2]?.settle({ exitCode: 1, stdout: Buffer.from('{"code":50,"msg":"agent down"}') });
  await tick();
  // The same failure again keeps the verdict (and its cached answer) as it was.
  const again = verdicts.fresh(Deadline.after(clock, 1000));
  await calledTimes(calls, 4);
  calls[3]?.settle({ exitCode: 1, stdout: Buffer.from('{"code":50,"msg":"agent down"}') });
  assert.equal((await again).generation, generation);
  // A changed network: the old network's failure no longer applies to it.
  net.write('b');
  const changed = verdicts.fresh(Deadline.after(clock, 0));
  await clock.advance(0);
  assert.equal((await changed).networkReady, true);
  await calledTimes(calls, 5);
  calls[4]?.settle({ exitCode: 0 });
});
