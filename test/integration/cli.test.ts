import assert from 'node:assert/strict';
import { readFileSync, readdirSync, mkdirSync, writeFileSync, cpSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { REPO_ROOT, runCli, spawnServe } from '../helpers/agent.js';
import { conflist, tempDir } from '../helpers/fs.js';

const FIXTURES = join(REPO_ROOT, 'test', 'fixtures', 'check');
const BIN = join(FIXTURES, 'bin');

interface ExpectedFile {
  file: string;
  status: string;
  network: string | null;
  cniVersion?: string;
  plugins: string[];
  missingBinaries: string[];
  error?: string;
}
interface ExpectedVerdict {
  ready: boolean;
  network: string | null;
  file: string | null;
  reason?: string;
}
interface Expected {
  files: ExpectedFile[];
  verdicts: Record<string, ExpectedVerdict>;
}
interface CheckJson {
  confDir: string;
  files: (ExpectedFile & { error: string | null })[];
  verdicts: Record<string, ExpectedVerdict & { reason: string | null }>;
}

for (const fixture of readdirSync(FIXTURES).filter((name) => name !== 'bin')) {
  test(`check -o json on fixture "${fixture}" matches the expected verdicts file by file`, async () => {
    const expected = JSON.parse(readFileSync(join(FIXTURES, fixture, 'expected.json'), 'utf8')) as Expected;
    const { code, stdout } = await runCli([
      'check',
      '--cni-conf-dir',
      join(FIXTURES, fixture, 'net.d'),
      '--cni-bin-dir',
      BIN,
      '-o',
      'json',
    ]);
    const report = JSON.parse(stdout) as CheckJson;
    assert.equal(report.confDir, join(FIXTURES, fixture, 'net.d'));
    assert.deepEqual(
      report.files.map((f) => f.file),
      expected.files.map((f) => f.file),
    );
    for (const [i, want] of expected.files.entries()) {
      const got = report.files[i];
      assert.ok(got);
      const { error, ...rest } = want;
      for (const [key, value] of Object.entries(rest))
        assert.deepEqual(got[key as keyof typeof got], value, `${fixture}/${want.file}.${key}`);
      if (error)
        assert.ok(
          got.error?.includes(error),
          `${fixture}/${want.file}: "${got.error ?? ''}" should include "${error}"`,
        );
      else assert.equal(got.error, null);
    }
    for (const [profile, want] of Object.entries(expected.verdicts)) {
      const got = report.verdicts[profile];
      assert.ok(got, profile);
      assert.equal(got.ready, want.ready, `${fixture} ${profile}.ready`);
      assert.equal(got.network, want.network, `${fixture} ${profile}.network`);
      assert.equal(got.file, want.file, `${fixture} ${profile}.file`);
      if (want.reason)
        assert.ok(
          got.reason?.includes(want.reason),
          `${fixture} ${profile}: "${got.reason ?? ''}" should include "${want.reason}"`,
        );
    }
    assert.equal(code, expected.verdicts.isulad?.ready ? 0 : 1);
  });
}

test('check exit codes follow --semantics, and the text output gives a one-line verdict', async () => {
  const dir = join(FIXTURES, 'bad-first', 'net.d');
  const isulad = await runCli(['check', '--cni-conf-dir', dir, '--cni-bin-dir', BIN]);
  assert.equal(isulad.code, 0);
  assert.match(
    isulad.stdout.split('\n')[0] ?? '',
    /: READY: network "cbr0" from 10-flannel\.conflist \(isulad semantics\)$/,
  );
  assert.match(
    isulad.stdout,
    /rejected 00-multus\.conf\s+error parsing configuration: invalid character 'M' looking for beginning of object key string \(line 1, column 2\)/,
  );
  const containerd = await runCli([
    'check',
    '--cni-conf-dir',
    dir,
    '--cni-bin-dir',
    BIN,
    '--semantics',
    'containerd',
  ]);
  assert.equal(containerd.code, 1);
  // go-cni says "config file" for a .conf ("config list file" is for a .conflist).
  assert.match(
    containerd.stdout.split('\n')[0] ?? '',
    /NOT READY: failed to load CNI config file .*00-multus\.conf: error parsing configuration: invalid character 'M'.*\(containerd-1\.7 semantics\)$/,
  );
  assert.match(containerd.stderr, /warning: --semantics containerd is deprecated: it is containerd-1\.7/);
});

test("check --host-root reads the node's dirs under the mounted root", async (t) => {
  const host = tempDir(t);
  cpSync(join(FIXTURES, 'good', 'net.d'), join(host, 'etc', 'cni', 'net.d'), { recursive: true });
  cpSync(BIN, join(host, 'opt', 'cni', 'bin'), { recursive: true });
  const { code, stdout } = await runCli(['check', '--host-root', host, '-o', 'json']);
  assert.equal(code, 0, stdout);
  const report = JSON.parse(stdout) as CheckJson & { hostRoot: string };
  assert.equal(report.confDir, '/etc/cni/net.d', "the node's own path");
  assert.equal(report.hostRoot, host);
  assert.equal(report.verdicts.crio?.ready, true, 'binaries are found under the host root');
});

test("check --host-root follows the node's absolute symlinks under the root, not in its own filesystem", async (t) => {
  // As flannel, k3s and Multus installs lay it out: the conf dir, a config and a plugin binary are
  // absolute links that only make sense from the node's /. Followed from the debug container's
  // own /, each would be missing.
  const host = tempDir(t);
  const confDir = join(host, 'var', 'lib', 'rancher', 'cni', 'net.d');
  mkdirSync(confDir, { recursive: true });
  mkdirSync(join(host, 'etc', 'cni'), { recursive: true });
  symlinkSync('/var/lib/rancher/cni/net.d', join(host, 'etc', 'cni', 'net.d'));
  mkdirSync(join(host, 'run', 'flannel'), { recursive: true });
  writeFileSync(join(host, 'run', 'flannel', 'cni.conflist'), conflist('cbr0', ['flannel', 'portmap']));
  symlinkSync('/run/flannel/cni.conflist', join(confDir, '10-flannel.conflist'));
  symlinkSync('/run/gone/cni.conflist', join(confDir, '20-dangling.conflist'));
  mkdirSync(join(host, 'usr', 'libexec', 'cni'), { recursive: true });
  mkdirSync(join(host, 'opt', 'cni', 'bin'), { recursive: true });
  cpSync(join(BIN, 'portmap'), join(host, 'opt', 'cni', 'bin', 'portmap'));
  cpSync(join(BIN, 'bridge'), join(host, 'usr', 'libexec', 'cni', 'flannel'));
  symlinkSync('/usr/libexec/cni/flannel', join(host, 'opt', 'cni', 'bin', 'flannel'));

  const { code, stdout } = await runCli(['check', '--host-root', host, '-o', 'json']);
  assert.equal(code, 0, stdout);
  const report = JSON.parse(stdout) as CheckJson;
  const byFile = new Map(report.files.map((file) => [file.file, file]));
  assert.equal(byFile.get('10-flannel.conflist')?.status, 'accepted', stdout);
  assert.deepEqual(
    byFile.get('10-flannel.conflist')?.missingBinaries,
    [],
    'the linked plugin binary is found',
  );
  assert.equal(byFile.get('20-dangling.conflist')?.status, 'rejected', stdout);
  assert.match(
    byFile.get('20-dangling.conflist')?.error ?? '',
    /a symlink to \/run\/gone\/cni\.conflist, which does not exist/,
  );
  assert.deepEqual(
    { ...report.verdicts.crio },
    { ready: true, network: 'cbr0', file: '10-flannel.conflist', reason: null, stale: false },
  );
  const text = await runCli(['check', '--host-root', host]);
  assert.match(text.stdout.split('\n')[0] ?? '', new RegExp(`^/etc/cni/net\\.d \\(under ${host}\\): READY`));
});

test('check on a missing dir exits 1 and says the directory does not exist', async (t) => {
  const { code, stdout } = await runCli(['check', '--cni-conf-dir', join(tempDir(t), 'nope')]);
  assert.equal(code, 1);
  assert.match(stdout, /NOT READY: no network config found in .*nope: the directory does not exist/);
});

test('bad flag values are one-line errors naming the flag and what it accepts, exit 2', async () => {
  const cases: [string[], RegExp][] = [
    [
      ['serve', '--semantics', 'docker'],
      /^cri-netstatus serve: --semantics: "docker" is not one of isulad, containerd-1\.7, containerd-2\.0, containerd-2\.1, crio, auto; accepts isulad, containerd-1\.7, containerd-2\.0, containerd-2\.1, crio, auto, containerd \(deprecated: containerd-1\.7\)\n$/,
    ],
    [
      ['serve', '--stale-after', 'soon'],
      /^cri-netstatus serve: --stale-after: "soon" is not a duration; accepts a duration such as 10m, or 0 for never\n$/,
    ],
    [
      ['serve', '--metrics-address', 'localhost'],
      /^cri-netstatus serve: --metrics-address: "localhost" is not host:port; accepts host:port/,
    ],
    [
      ['serve', '--no-such-flag'],
      /^cri-netstatus serve: Unknown option '--no-such-flag'; see cri-netstatus serve --help\n$/,
    ],
    [['check', '-o', 'yaml'], /^cri-netstatus check: --output: "yaml" is not one of json, text/],
    [
      ['kube-cleanup', '--settle', 'soon'],
      /^cri-netstatus kube-cleanup: --settle: "soon" is not a number of seconds; accepts a number of seconds\n$/,
    ],
    [['frobnicate'], /^cri-netstatus: unknown command "frobnicate"/],
  ];
  for (const [args, pattern] of cases) {
    const { code, stderr } = await runCli(args);
    assert.equal(code, 2, args.join(' '));
    assert.match(stderr, pattern);
  }
});

test('flags can come from CRI_NETSTATUS_* env vars, and errors name the variable', async (t) => {
  const root = tempDir(t);
  mkdirSync(join(root, 'net.d'));
  writeFileSync(join(root, 'net.d', '10-env.conflist'), conflist('from-env'));
  const { code, stdout } = await runCli(['check', '-o', 'json'], {
    CRI_NETSTATUS_CNI_CONF_DIR: join(root, 'net.d'),
  });
  assert.equal(code, 0);
  assert.equal((JSON.parse(stdout) as CheckJson).verdicts.isulad?.network, 'from-env');
  const bad = await runCli(['serve'], { CRI_NETSTATUS_SEMANTICS: 'nope' });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--semantics \(from \$CRI_NETSTATUS_SEMANTICS\): "nope" is not one of/);
});

test('status exits 0 when ready, 1 when not, 2 when the socket does not answer', async (t) => {
  const root = tempDir(t);
  const conf = join(root, 'net.d');
  mkdirSync(conf);
  const socket = join(root, 'cri.sock');
  await spawnServe(t, ['--cni-conf-dir', conf, '--metrics-address', 'off'], socket);
  const notReady = await runCli(['status', '--socket', socket]);
  assert.equal(notReady.code, 1);
  assert.match(
    notReady.stdout.split('\n')[0] ?? '',
    /^NOT READY: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: no network config found in /,
  );
  writeFileSync(join(conf, '10-a.conflist'), conflist('a'));
  const ready = await runCli(['status', '--socket', `unix://${socket}`, '-o', 'json']);
  assert.equal(ready.code, 0);
  const json = JSON.parse(ready.stdout) as {
    status: { conditions: { type: string; status: boolean }[] };
    lastCNILoadStatus: string;
    cniconfig: { network: { name: string } };
  };
  assert.deepEqual(
    json.status.conditions.map((c) => [c.type, c.status]),
    [
      ['RuntimeReady', true],
      ['NetworkReady', true],
      ['NetworkConfigUpToDate', true],
    ],
  );
  assert.equal(json.lastCNILoadStatus, 'OK');
  assert.equal(json.cniconfig.network.name, 'a');
  const unreachable = await runCli(['status', '--socket', join(root, 'nobody.sock'), '--timeout', '1s']);
  assert.equal(unreachable.code, 2);
  assert.match(unreachable.stderr, /cannot reach .*nobody\.sock/);
});

test('version prints the package version', async () => {
  const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
  const { code, stdout } = await runCli(['version']);
  assert.equal(code, 0);
  assert.equal(stdout, `cri-netstatus ${pkg.version}\n`);
});
