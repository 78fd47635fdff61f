// The container image users run, built by scripts/image.sh on its local base (Debian from Debian's
// mirror + the official Node.js binary from the npm registry: no container registry here) and run
// with buildah's `run` (runc, the image's own user, env and workdir): its config is what the
// Dockerfile says, its file set holds no npm, compiler, package cache, dev dependency, source map
// or test, and `version`, `check`, `serve` + `status` work inside it. The runbook's `kubectl debug`
// identity for hardened nodes (conf dir 0700 root) is checked the same way: the runbook's
// `--custom` profile's runAsUser reads the dir, the image's own user cannot.
//
// The archive scripts/image.sh leaves in the peer cache is kept (keyed by content) for later
// real-node tests; this file copies it into a private buildah storage removed at the end.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { TestContext } from 'node:test';
import { REPO_ROOT } from '../helpers/agent.js';
import { conflist } from '../helpers/fs.js';
import { crictl, startContainerd } from './harness/containerd.js';
import { describeRun, requirePeers, run } from './harness/peers.js';
import type { RunResult } from './harness/peers.js';

const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as {
  version: string;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};
const dockerfile = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
const runtimeStage = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));

const peers = requirePeers('buildah', 'mmdebstrap', 'imageNode');
// Short paths: buildah's overlay mounts and the agent's socket path (< 108 bytes) live under it.
const work = mkdtempSync('/tmp/cn-img-');
const storage = ['--root', join(work, 'root'), '--runroot', join(work, 'run'), '--storage-driver', 'overlay'];
let archive = '';
/** The archive's image in the private storage: pulled once, each container made from it. */
let imageId = '';
let built: RunResult;
const containers: string[] = [];

async function buildah(args: readonly string[], timeoutMs = 120_000): Promise<RunResult> {
  return run(peers.buildah, [...storage, ...args], { timeoutMs });
}

async function mustBuildah(args: readonly string[], timeoutMs?: number): Promise<string> {
  const result = await buildah(args, timeoutMs);
  assert.equal(result.code, 0, describeRun('buildah', args, result));
  return result.stdout.trim();
}

/** A working container of the image; buildah serializes runs of one container, so one per use. */
async function container(): Promise<string> {
  const name = `cn-img-${process.pid}-${containers.length}`;
  await mustBuildah(['from', '--quiet', '--pull-never', '--name', name, imageId]);
  containers.push(name);
  return name;
}

interface RunOptions {
  user?: number;
  volumes?: string[];
}

function runArgs(name: string, command: readonly string[], options: RunOptions = {}): string[] {
  return [
    'run',
    // No network at all: only the container's own loopback exists.
    '--network',
    'none',
    ...(options.user === undefined ? [] : ['--user', String(options.user)]),
    ...(options.volumes ?? []).flatMap((volume) => ['--volume', volume]),
    name,
    '--',
    ...command,
  ];
}

async function inImage(command: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  return buildah(runArgs(await container(), command, options));
}

before(async () => {
  // Cold, this makes the Debian base (mmdebstrap), fetches Node and builds: minutes. Cached: seconds.
  const args = [join(REPO_ROOT, 'scripts', 'image.sh'), '--base', 'local', '--builder', 'buildah'];
  built = await run('bash', args, { timeoutMs: 20 * 60_000 });
  assert.equal(built.code, 0, describeRun('bash', args, built));
  archive = built.stdout.trim().split('\n').pop() ?? '';
  assert.ok(existsSync(archive), `scripts/image.sh printed no archive path:\n${built.stdout}`);
  imageId = await mustBuildah(['pull', '--quiet', `oci-archive:${archive}`], 300_000);
});

after(async () => {
  for (const name of containers) await buildah(['rm', name]);
  await buildah(['rmi', '--all', '--force']);
  rmSync(work, { recursive: true, force: true });
});

describe('scripts/image.sh --base local', () => {
  test('keeps the image as an OCI archive in the peer cache, named by version and content key', () => {
    assert.match(
      archive,
      new RegExp(`/image/cri-netstatus-${pkg.version.replace(/\./g, '\\.')}-local-[0-9a-f]{16}\\.oci\\.tar$`),
    );
    assert.match(built.stderr, /stage base: \d+s/);
  });

  test("prints the image's size, unpacked and gzip, above its Node base", () => {
    const above = /^\s*([\d.]+) MB\s+([\d.]+) MB\s+above the base$/m.exec(built.stderr);
    const base = /^\s*([\d.]+) MB\s+([\d.]+) MB\s+base image \(\d+ layers?\)$/m.exec(built.stderr);
    assert.ok(above && base, `no size table in the output:\n${built.stderr}`);
    // The Node binary alone is over 100 MB; the app above it aims at 40 MB at most.
    assert.ok(Number(base[1]) > 100, `base ${base[1]} MB`);
    assert.ok(Number(above[1]) > 1 && Number(above[1]) <= 40, `the app adds ${above[1]} MB`);
  });

  test('a rerun on the same tree is served from the cache', async () => {
    const args = [join(REPO_ROOT, 'scripts', 'image.sh'), '--base', 'local', '--builder', 'buildah'];
    const again = await run('bash', args, { timeoutMs: 5 * 60_000 });
    assert.equal(again.code, 0, describeRun('bash', args, again));
    assert.equal(again.stdout.trim(), archive);
    assert.match(again.stderr, /build: cached/);
  });
});

describe('the image config is what the Dockerfile says', () => {
  test('user, NODE_OPTIONS, entrypoint, command, workdir', async () => {
    const name = await container();
    const info = JSON.parse(await mustBuildah(['inspect', '--type', 'container', name])) as {
      OCIv1: {
        config: { User?: string; Env?: string[]; Entrypoint?: string[]; Cmd?: string[]; WorkingDir?: string };
      };
    };
    const config = info.OCIv1.config;
    const user = /^USER (\S+)$/m.exec(runtimeStage)?.[1];
    const nodeOptions = /NODE_OPTIONS="([^"]*)"/.exec(runtimeStage)?.[1];
    assert.ok(user && nodeOptions, 'the runtime stage sets USER and NODE_OPTIONS');
    assert.equal(config.User, user);
    assert.ok(config.Env?.includes(`NODE_OPTIONS=${nodeOptions}`), JSON.stringify(config.Env));
    assert.ok(config.Env?.includes('NODE_ENV=production'), JSON.stringify(config.Env));
    assert.deepEqual(config.Entrypoint, ['cri-netstatus']);
    assert.deepEqual(config.Cmd, ['serve']);
    assert.equal(config.WorkingDir, '/app');
  });

  test("a process in it runs as 65532 in group root, with the Dockerfile's NODE_OPTIONS and the pinned Node", async () => {
    const result = await inImage(['sh', '-c', 'id -u; id -G; echo "$NODE_OPTIONS"; node --version']);
    assert.equal(result.code, 0, describeRun('buildah run', [], result));
    const [uid, groups, options, version] = result.stdout.trim().split('\n');
    assert.equal(uid, '65532');
    assert.ok(groups?.split(' ').includes('0'), `groups: ${groups}`);
    assert.equal(options, /NODE_OPTIONS="([^"]*)"/.exec(runtimeStage)?.[1]);
    const host = await run(peers.imageNode, ['--version']);
    assert.equal(version, host.stdout.trim(), 'the Node of scripts/peers.sh node');
    assert.match(version ?? '', /^v24\./);
  });
});

describe('the file set', () => {
  let rootfs = '';
  before(async () => {
    rootfs = await mustBuildah(['mount', await container()]);
  });

  /** Every path under `dir` (relative to the rootfs), without following symlinks. */
  function walk(dir: string, out: string[] = []): string[] {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      out.push(`/${relative(rootfs, path)}`);
      if (entry.isDirectory()) walk(path, out);
    }
    return out;
  }

  test('the runtime: node and the CLI on PATH, no npm, no compiler, no package cache', () => {
    assert.ok(lstatSync(join(rootfs, 'usr/local/bin/node')).isFile());
    assert.equal(readlinkSync(join(rootfs, 'usr/local/bin/cri-netstatus')), '/app/bin/cri-netstatus.js');
    for (const absent of [
      'usr/local/bin/npm',
      'usr/local/bin/npx',
      'usr/local/bin/corepack',
      'usr/local/lib/node_modules',
      'usr/local/include/node',
      'usr/bin/gcc',
      'usr/bin/cc',
      'usr/bin/make',
      'usr/bin/python3',
      'root/.npm',
      'src',
    ])
      assert.ok(!existsSync(join(rootfs, absent)), `/${absent} is in the image`);
    const debs = existsSync(join(rootfs, 'var/cache/apt/archives'))
      ? readdirSync(join(rootfs, 'var/cache/apt/archives')).filter((f) => f.endsWith('.deb'))
      : [];
    assert.deepEqual(debs, [], 'no cached .deb files');
    const lists = existsSync(join(rootfs, 'var/lib/apt/lists'))
      ? readdirSync(join(rootfs, 'var/lib/apt/lists')).filter(
          (f) => f !== 'lock' && f !== 'partial' && f !== 'auxfiles',
        )
      : [];
    assert.deepEqual(lists, [], 'no apt lists');
  });

  test('/app: package.json, bin/, dist/src/ and production node_modules; no maps, TypeScript, tests or dev dependencies', () => {
    assert.deepEqual(readdirSync(join(rootfs, 'app')).sort(), [
      'bin',
      'dist',
      'node_modules',
      'package.json',
    ]);
    assert.deepEqual(readdirSync(join(rootfs, 'app/dist')), ['src']);
    const files = walk(join(rootfs, 'app'));
    assert.ok(files.includes('/app/dist/src/cli/main.js'));
    assert.deepEqual(
      files.filter((f) => /\.(map|ts|mts|cts)$/.test(f) || /\/(test|tests|__tests__)$/.test(f)),
      [],
      'source maps, TypeScript or test dirs in /app',
    );
    const modules = join(rootfs, 'app/node_modules');
    for (const dep of Object.keys(pkg.dependencies))
      assert.ok(existsSync(join(modules, dep)), `${dep} missing`);
    // A dev dependency may be there only as a production package's own dependency
    // (protobufjs depends on @types/node, stripped to its package.json by the .ts rule).
    const required = new Set<string>();
    for (const manifest of files.filter(
      (f) => f.startsWith('/app/node_modules/') && f.endsWith('/package.json'),
    )) {
      const { dependencies = {}, optionalDependencies = {} } = JSON.parse(
        readFileSync(join(rootfs, manifest), 'utf8'),
      ) as {
        dependencies?: Record<string, string>;
        optionalDependencies?: Record<string, string>;
      };
      for (const dep of [...Object.keys(dependencies), ...Object.keys(optionalDependencies)])
        required.add(dep);
    }
    for (const dev of Object.keys(pkg.devDependencies)) {
      if (required.has(dev)) continue;
      assert.ok(!existsSync(join(modules, dev)), `dev dependency ${dev} is in the image`);
    }
    assert.ok(!existsSync(join(modules, 'typescript')), 'no compiler');
  });

  test('every module of dist/src loads inside the image (nothing the strip step removed is needed)', async () => {
    const modules = walk(join(rootfs, 'app/dist/src')).filter((f) => f.endsWith('.js'));
    assert.ok(modules.length > 10);
    const script = `for (const m of ${JSON.stringify(modules)}) await import(m); console.log('loaded', ${modules.length});`;
    const result = await inImage(['node', '--input-type=module', '-e', script]);
    assert.equal(result.code, 0, describeRun('node -e', [], result));
    assert.equal(result.stdout.trim(), `loaded ${modules.length}`);
  });
});

describe('the CLI inside the image', () => {
  const examples = join(REPO_ROOT, 'examples', 'net.d');

  test('version', async () => {
    const result = await inImage(['cri-netstatus', 'version']);
    assert.equal(result.code, 0, describeRun('cri-netstatus version', [], result));
    assert.equal(result.stdout, `cri-netstatus ${pkg.version}\n`);
  });

  test('check on the example dir and on a broken one', async () => {
    const good = await inImage(['cri-netstatus', 'check', '--cni-conf-dir', '/conf', '-o', 'json'], {
      volumes: [`${examples}:/conf:ro`],
    });
    assert.equal(good.code, 0, describeRun('check', [], good));
    const report = JSON.parse(good.stdout) as {
      verdicts: Record<string, { ready: boolean; network: string | null }>;
    };
    assert.equal(report.verdicts.isulad?.ready, true);
    assert.equal(report.verdicts.isulad?.network, 'example-net');

    const bad = join(work, 'broken');
    mkdirSync(bad);
    writeFileSync(join(bad, '10-broken.conflist'), conflist('broken').slice(0, 20));
    chmodSync(bad, 0o755);
    const broken = await inImage(['cri-netstatus', 'check', '--cni-conf-dir', '/conf'], {
      volumes: [`${bad}:/conf:ro`],
    });
    assert.equal(broken.code, 1, describeRun('check', [], broken));
    assert.match(broken.stdout, /NOT READY/);
    assert.match(broken.stdout, /10-broken\.conflist/);
  });

  test('serve (as the image user) answered by status from a second container, stopped by SIGTERM', async (t: TestContext) => {
    const socketDir = mkdtempSync(join(work, 'sock-'));
    chmodSync(socketDir, 0o777); // the agent runs as 65532 and creates its socket here
    const volumes = [`${socketDir}:/run/cri-netstatus`, `${examples}:/conf:ro`];
    const serveArgs = runArgs(
      await container(),
      [
        'cri-netstatus',
        'serve',
        '--socket',
        '/run/cri-netstatus/cri.sock',
        '--cni-conf-dir',
        '/conf',
        '--metrics-address',
        '127.0.0.1:0',
        '--kube',
        'off',
        '--log-format',
        'text',
      ],
      { volumes },
    );
    const child = spawn(peers.buildah, [...storage, ...serveArgs], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
    t.after(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    const deadline = Date.now() + 60_000;
    while (!(existsSync(join(socketDir, 'cri.sock')) && output.includes('serving CRI'))) {
      assert.equal(child.exitCode, null, `serve exited early:\n${output}`);
      assert.ok(Date.now() < deadline, `serve did not start within 60s:\n${output}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal(lstatSync(join(socketDir, 'cri.sock')).uid, 65532, 'the agent ran as the image user');

    const status = await inImage(['cri-netstatus', 'status', '--socket', '/run/cri-netstatus/cri.sock'], {
      volumes,
    });
    assert.equal(status.code, 0, describeRun('status', [], status));
    assert.match(status.stdout, /^READY: NetworkReady=true \(cri-netstatus /);

    // buildah run does not forward signals: SIGTERM the agent itself, as the kubelet would.
    const agent = agentPid(socketDir);
    assert.ok(agent, `no agent process with ${socketDir} in its mounts`);
    process.kill(agent, 'SIGTERM');
    assert.equal(await exited, 0, output);
    assert.ok(!existsSync(join(socketDir, 'cri.sock')), 'the socket is removed on SIGTERM');
  });
});

/** The host PID of the `cri-netstatus serve` whose mount table holds `socketDir`. */
function agentPid(socketDir: string): number | undefined {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      // node /usr/local/bin/cri-netstatus serve … (the symlink the entrypoint runs through env).
      if (!cmdline.includes('serve') || !cmdline.some((arg) => /\/cri-netstatus(\.js)?$/.test(arg))) continue;
      if (readFileSync(`/proc/${entry}/mountinfo`, 'utf8').includes(socketDir)) return Number(entry);
    } catch {
      // the process exited meanwhile
    }
  }
  return undefined;
}

describe('docs/runbooks.md: kubectl debug on a node whose conf dir is 0700 root', () => {
  // The runbook's --custom profile, as written there.
  const runbook = readFileSync(join(REPO_ROOT, 'docs', 'runbooks.md'), 'utf8');
  const profileText = /cat > debug-root\.json <<'EOF'\n([\s\S]*?)\nEOF\n/.exec(runbook)?.[1];
  const command =
    /^kubectl debug node\/\$NODE -it --image=\$IMAGE --custom=debug-root\.json -- (cri-netstatus check --host-root \/host)$/m.exec(
      runbook,
    )?.[1];

  function hostRoot(): string {
    // A node's /etc/cni/net.d, mode 0700 root, as hardened nodes have it; bind-mounted as /host.
    const host = mkdtempSync(join(work, 'host-'));
    chmodSync(host, 0o755);
    mkdirSync(join(host, 'etc', 'cni', 'net.d'), { recursive: true, mode: 0o755 });
    writeFileSync(join(host, 'etc', 'cni', 'net.d', '10-node.conflist'), conflist('node-net'), {
      mode: 0o600,
    });
    chmodSync(join(host, 'etc', 'cni', 'net.d'), 0o700);
    // The plugin binary, so that every runtime's semantics (crio checks binaries) is ready.
    mkdirSync(join(host, 'opt', 'cni', 'bin'), { recursive: true, mode: 0o755 });
    writeFileSync(join(host, 'opt', 'cni', 'bin', 'bridge'), '#!/bin/sh\n', { mode: 0o755 });
    return host;
  }

  test('the runbook gives the profile and the command', () => {
    assert.ok(profileText, 'docs/runbooks.md has the debug-root.json heredoc');
    assert.ok(command, 'docs/runbooks.md has the --custom=debug-root.json check command');
    const profile = JSON.parse(profileText) as { securityContext?: { runAsUser?: number } };
    assert.equal(profile.securityContext?.runAsUser, 0);
  });

  test("the profile's user reads it: READY, the node's network named", async () => {
    const profile = JSON.parse(profileText ?? '{}') as { securityContext?: { runAsUser?: number } };
    const user = profile.securityContext?.runAsUser;
    assert.equal(user, 0);
    const result = await inImage((command ?? '').split(' '), { user, volumes: [`${hostRoot()}:/host:ro`] });
    assert.equal(result.code, 0, describeRun(command ?? '', [], result));
    assert.match(
      result.stdout,
      /^\/etc\/cni\/net\.d \(under \/host\): READY: network "node-net" from 10-node\.conflist/,
    );
    assert.doesNotMatch(result.stdout, /NOT READY|permission denied/);
  });

  test("without it, the image's own user (65532) is refused: why the runbook needs the profile", async () => {
    const result = await inImage((command ?? '').split(' '), { volumes: [`${hostRoot()}:/host:ro`] });
    assert.equal(result.code, 1, describeRun(command ?? '', [], result));
    assert.match(result.stdout, /NOT READY: .*permission denied/);
  });
});

describe('the kept archive', () => {
  test('imports into containerd 1.6 under its tag, as a node without a registry loads it', async (t) => {
    const ctrd = await startContainerd(t, { confDir: mkdtempSync(join(work, 'net.d-')) });
    const ctr = join(dirname(requirePeers('containerd').containerd), 'ctr');
    const base = ['--address', ctrd.socket, '--namespace', 'k8s.io'];
    const args = [...base, 'images', 'import', '--snapshotter', 'native', archive];
    // Unpacking 236 MB with the native snapshotter: 48 s alone, 160 s on a loaded 2-core machine.
    const imported = await run(ctr, args, { timeoutMs: 600_000 });
    assert.equal(imported.code, 0, describeRun('ctr', args, imported));
    const tag = `localhost/cri-netstatus:${pkg.version}`;
    const listed = await run(ctr, [...base, 'images', 'ls', '--quiet']);
    assert.ok(listed.stdout.split('\n').includes(tag), listed.stdout);
    // The kubelet's view: the CRI image service lists it by that tag.
    const images = await crictl(ctrd.endpoint, ['images', '--output', 'json']);
    assert.equal(images.code, 0, describeRun('crictl images', [], images));
    const repoTags = (JSON.parse(images.stdout) as { images: { repoTags: string[] }[] }).images.flatMap(
      (i) => i.repoTags,
    );
    assert.ok(repoTags.includes(tag), repoTags.join(', '));
  });
});
