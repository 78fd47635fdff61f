// What the container image holds, proven without a container engine: `npm pack` the repo, install
// the tarball with --omit=dev into an empty project, and run the installed CLI (version, check,
// serve answered by status). Then rebuild the Dockerfile's runtime file set (package.json, bin/,
// dist/src/ and the production node_modules, nothing else) and run the same commands from there.
//
// An e2e test, not `npm test`: installing the tarball as a user would resolves its dependencies
// from the npm registry (npm ci's cache holds their tarballs, not their metadata), and the
// `npm test` tier runs without network.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { TestContext } from 'node:test';
import { REPO_ROOT } from '../helpers/agent.js';
import { conflist, tempDir } from '../helpers/fs.js';

const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as {
  name: string;
  version: string;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

/** The environment without npm's per-run variables (npm test sets npm_config_*, npm_lifecycle_*). */
function cleanEnv(): NodeJS.ProcessEnv {
  const keep = new Set(['npm_config_cache', 'npm_config_registry', 'npm_config_userconfig']);
  return Object.fromEntries(
    Object.entries(process.env).filter(
      ([key]) => !(key.startsWith('npm_') && !keep.has(key)) && !key.startsWith('CRI_NETSTATUS_'),
    ),
  );
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], cwd: string): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      command,
      args,
      // A bounded wait: npm retrying an unreachable registry must fail the test, not hang CI.
      { cwd, env: cleanEnv(), encoding: 'utf8', maxBuffer: 32 * 1024 * 1024, timeout: 300_000 },
      (error, stdout, stderr) =>
        resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr }),
    );
  });
}

interface PackResult {
  filename: string;
  files: { path: string }[];
}

// One pack and one install for the whole file, in a dir removed at the end.
const work = mkdtempSync(join(tmpdir(), 'cri-netstatus-pack-'));
after(() => rmSync(work, { recursive: true, force: true }));
const project = join(work, 'project');
let packed: PackResult;
let installed = '';

before(async () => {
  // --ignore-scripts: "prepare" would rebuild dist/ while other tests use it; npm test builds first.
  assert.ok(existsSync(join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js')), 'run npm run build first');
  const pack = await run(
    'npm',
    ['pack', '--json', '--ignore-scripts', '--pack-destination', work],
    REPO_ROOT,
  );
  assert.equal(pack.code, 0, `npm pack failed:\n${pack.stderr}`);
  const results = JSON.parse(pack.stdout) as PackResult[];
  assert.equal(results.length, 1);
  packed = results[0] as PackResult;

  mkdirSync(project);
  writeFileSync(
    join(project, 'package.json'),
    JSON.stringify({ name: 'empty', version: '1.0.0', private: true }),
  );
  const install = await run(
    'npm',
    [
      'install',
      '--omit=dev',
      '--prefer-offline',
      '--no-audit',
      '--no-fund',
      '--ignore-scripts',
      join(work, packed.filename),
    ],
    project,
  );
  assert.equal(
    install.code,
    0,
    `npm install --omit=dev of the tarball failed:\n${install.stdout}${install.stderr}`,
  );
  installed = join(project, 'node_modules', pkg.name);
});

/** Starts `serve` from an installed CLI and resolves once its socket answers. */
async function serve(
  t: TestContext,
  cli: string[],
  cwd: string,
  confDir: string,
): Promise<{ socket: string; child: ChildProcess }> {
  const dir = tempDir(t);
  const socket = join(dir, 'cri.sock');
  const [command, ...prefix] = cli;
  const child = spawn(
    command ?? 'node',
    [
      ...prefix,
      'serve',
      '--socket',
      socket,
      '--cni-conf-dir',
      confDir,
      '--cni-bin-dir',
      join(dir, 'bin'),
      '--metrics-address',
      '127.0.0.1:0',
      '--kube',
      'off',
      '--log-format',
      'text',
    ],
    { cwd, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const deadline = Date.now() + 20_000;
  while (!(existsSync(socket) && output.includes('serving CRI'))) {
    assert.equal(child.exitCode, null, `serve exited early:\n${output}`);
    assert.ok(Date.now() < deadline, `serve did not start within 20s:\n${output}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return { socket, child };
}

/** version, check (good and bad dirs) and serve + status + SIGTERM, through one way of running the CLI. */
function exercise(label: string, cli: () => string[], cwd: () => string, examples: () => string): void {
  test(`${label}: version`, async () => {
    const [command, ...args] = cli();
    const result = await run(command ?? '', [...args, 'version'], cwd());
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, `cri-netstatus ${pkg.version}\n`);
  });

  test(`${label}: check on the shipped example dir and on a broken one`, async (t) => {
    const [command, ...args] = cli();
    const good = await run(
      command ?? '',
      [...args, 'check', '--cni-conf-dir', examples(), '-o', 'json'],
      cwd(),
    );
    assert.equal(good.code, 0, good.stderr);
    const report = JSON.parse(good.stdout) as {
      verdicts: Record<string, { ready: boolean; network: string | null }>;
    };
    assert.deepEqual(report.verdicts.isulad, {
      ...report.verdicts.isulad,
      ready: true,
      network: 'example-net',
    });

    const bad = join(tempDir(t), 'net.d');
    mkdirSync(bad);
    writeFileSync(join(bad, '10-broken.conflist'), conflist('broken').slice(0, 20));
    const broken = await run(command ?? '', [...args, 'check', '--cni-conf-dir', bad], cwd());
    assert.equal(broken.code, 1, `${broken.stdout}${broken.stderr}`);
    assert.match(broken.stdout, /NOT READY/);
    assert.match(broken.stdout, /10-broken\.conflist/);
  });

  test(`${label}: serve on a temp socket, answered by status, stopped by SIGTERM`, async (t) => {
    const { socket, child } = await serve(t, cli(), cwd(), examples());
    const [command, ...args] = cli();
    const status = await run(command ?? '', [...args, 'status', '--socket', socket], cwd());
    assert.equal(status.code, 0, `${status.stdout}${status.stderr}`);
    assert.match(status.stdout, /^READY: NetworkReady=true \(cri-netstatus /);
    const json = await run(command ?? '', [...args, 'status', '--socket', socket, '-o', 'json'], cwd());
    const parsed = JSON.parse(json.stdout) as { runtime: { name: string; version: string } };
    assert.deepEqual(parsed.runtime, { ...parsed.runtime, name: 'cri-netstatus', version: pkg.version });

    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
    assert.ok(!existsSync(socket), 'the socket is removed on SIGTERM');
    const gone = await run(command ?? '', [...args, 'status', '--socket', socket], cwd());
    assert.equal(gone.code, 2, 'status exits 2 when nothing answers');
  });
}

describe('npm pack', () => {
  test('ships bin/, dist/src/, proto/ and examples/, and no tests, sources or tooling', () => {
    const files = packed.files.map((file) => file.path);
    for (const needed of [
      'package.json',
      'bin/cri-netstatus.js',
      'dist/src/cli/main.js',
      'dist/src/version.js',
      'examples/net.d/10-example.conflist',
    ])
      assert.ok(files.includes(needed), `the tarball lacks ${needed}`);
    assert.ok(
      files.some((file) => file.startsWith('proto/') && file.endsWith('.proto')),
      'the tarball lacks proto/',
    );
    const stray = files.filter((file) =>
      /^(dist\/test|dist\/bench|test|src|bench|charts|deploy|scripts|node_modules|\.ci)\//.test(file),
    );
    assert.deepEqual(stray, [], 'the tarball carries files the package does not need');
  });
});

describe('npm install --omit=dev of the tarball into an empty project', () => {
  test('installs the production dependencies only', () => {
    const modules = new Set(readdirSync(join(project, 'node_modules')));
    for (const dep of Object.keys(pkg.dependencies)) {
      const top = dep.split('/')[0] ?? dep;
      assert.ok(modules.has(top), `production dependency ${dep} is missing`);
    }
    // A dev dependency may be present only as some production package's own dependency
    // (protobufjs depends on @types/node, for one).
    const required = new Set<string>();
    const scan = (dir: string): void => {
      for (const name of readdirSync(dir)) {
        if (name.startsWith('.')) continue;
        if (name.startsWith('@')) {
          scan(join(dir, name));
          continue;
        }
        const manifest = join(dir, name, 'package.json');
        if (!existsSync(manifest)) continue;
        const { dependencies = {}, optionalDependencies = {} } = JSON.parse(
          readFileSync(manifest, 'utf8'),
        ) as {
          dependencies?: Record<string, string>;
          optionalDependencies?: Record<string, string>;
        };
        for (const dep of [...Object.keys(dependencies), ...Object.keys(optionalDependencies)])
          required.add(dep);
        if (existsSync(join(dir, name, 'node_modules'))) scan(join(dir, name, 'node_modules'));
      }
    };
    scan(join(project, 'node_modules'));
    for (const dev of Object.keys(pkg.devDependencies)) {
      if (required.has(dev)) continue;
      assert.ok(!existsSync(join(project, 'node_modules', dev)), `dev dependency ${dev} was installed`);
    }
    assert.ok(!existsSync(join(project, 'node_modules', 'typescript')), 'no compiler in the production tree');
    assert.ok(existsSync(join(project, 'node_modules', '.bin', 'cri-netstatus')), 'npm linked the bin');
  });

  exercise(
    'node_modules/.bin/cri-netstatus',
    () => [join(project, 'node_modules', '.bin', 'cri-netstatus')],
    () => project,
    () => join(installed, 'examples', 'net.d'),
  );
});

describe("the Dockerfile's runtime file set (package.json, bin/, dist/src/, production node_modules)", () => {
  let app = '';
  before(() => {
    // Mirror the runtime stage's COPY lines: /app/{package.json,bin,dist/src,node_modules}.
    const dockerfile = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
    const runtime = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
    const copies = [...runtime.matchAll(/^COPY --from=build (\S+) (\S+)$/gm)].map((m) => [m[1], m[2]]);
    assert.deepEqual(copies, [
      ['/src/package.json', './package.json'],
      ['/src/node_modules', './node_modules'],
      ['/src/dist/src', './dist/src'],
      ['/src/bin', './bin'],
    ]);
    assert.match(runtime, /^ENTRYPOINT \["cri-netstatus"\]$/m);
    assert.match(runtime, /^CMD \["serve"\]$/m);
    assert.match(runtime, /ln -s \/app\/bin\/cri-netstatus\.js \/usr\/local\/bin\/cri-netstatus/);

    app = join(work, 'app');
    mkdirSync(app);
    cpSync(join(installed, 'package.json'), join(app, 'package.json'));
    cpSync(join(installed, 'bin'), join(app, 'bin'), { recursive: true });
    cpSync(join(installed, 'dist', 'src'), join(app, 'dist', 'src'), { recursive: true });
    cpSync(join(project, 'node_modules'), join(app, 'node_modules'), {
      recursive: true,
      filter: (source) =>
        !source.startsWith(join(project, 'node_modules', pkg.name)) && !source.includes('/.bin'),
    });
    assert.ok(!existsSync(join(app, 'node_modules', pkg.name)));
  });

  exercise(
    'node /app/bin/cri-netstatus.js',
    () => [process.execPath, join(app, 'bin', 'cri-netstatus.js')],
    () => work,
    // The image ships no examples/: use a copy outside the app dir.
    () => {
      const dir = join(work, 'examples-copy');
      if (!existsSync(dir)) cpSync(join(REPO_ROOT, 'examples', 'net.d'), dir, { recursive: true });
      return dir;
    },
  );
});
