// Where the agent's CPU goes on the Status path: runs `cri-netstatus serve` under `node --cpu-prof`
// (one valid conflist, refresh on every Status), drives it with the Python client, stops it, and
// prints the main thread's profile per Status call: by area, the top functions by self time, and
// the inclusive time of the agent's own functions.
//
//   node dist/bench/profile.js [--calls 100000] [--concurrency 16] [--top 25] [--constant]
// --constant profiles bench/constant-server.ts instead, the baseline to subtract.
// The raw profile is kept with --keep (path printed), for Chrome DevTools or speedscope.
//   node dist/bench/profile.js --analyse FILE.cpuprofile --calls N
// prints the same tables for any profile, per N operations (e.g. of `node --cpu-prof dist/bench/refresh.js`).
import { copyFileSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { runScript, tempDir } from './lib/cleanup.js';
import { LoadClient } from './lib/client.js';
import { conflist, writeAtomic } from './lib/conf.js';
import { progress } from './lib/fleet.js';
import { machineFacts } from './lib/machine.js';
import { startAgent, startConstant } from './lib/servers.js';
import { REPO_ROOT, commandLine, fmt, hasFlag, intFlag, isMain, table } from './lib/util.js';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

function where(frame: CallFrame): string {
  const url = frame.url.startsWith('file://') ? relative(REPO_ROOT, new URL(frame.url).pathname) : frame.url;
  const name = frame.functionName || '(anonymous)';
  return url ? `${name} ${url.replace(/^node_modules\//, '')}:${frame.lineNumber + 1}` : name;
}

function area(frame: CallFrame): string {
  const { url, functionName } = frame;
  if (!url) return functionName.startsWith('(') ? functionName : '(native)';
  if (url.includes('/node_modules/@grpc/grpc-js/')) return '@grpc/grpc-js';
  if (url.includes('/node_modules/prom-client/')) return 'prom-client';
  if (url.includes('/node_modules/')) return 'other node_modules';
  if (url.includes('/dist/src/gen/')) return 'agent: generated protobuf';
  if (url.includes('/dist/src/'))
    return `agent: ${relative(join(REPO_ROOT, 'dist', 'src'), new URL(url).pathname)}`;
  if (url.startsWith('node:')) return `node: ${url.slice(5).split('/').slice(0, 2).join('/')}`;
  return url;
}

export function analyse(profile: CpuProfile, calls: number, top: number): string {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  const areas = new Map<string, number>();
  let busy = 0;
  profile.samples.forEach((id, i) => {
    const node = byId.get(id);
    const dt = profile.timeDeltas[i] ?? 0;
    if (!node || node.callFrame.functionName === '(idle)') return;
    busy += dt;
    const key = where(node.callFrame);
    self.set(key, (self.get(key) ?? 0) + dt);
    const a = area(node.callFrame);
    areas.set(a, (areas.get(a) ?? 0) + dt);
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const frame = byId.get(at)?.callFrame;
      if (!frame?.url.includes('/dist/src/') || frame.url.includes('/dist/src/gen/')) continue;
      const k = where(frame);
      if (seen.has(k)) continue;
      seen.add(k);
      inclusive.set(k, (inclusive.get(k) ?? 0) + dt);
    }
  });
  const perCall = (us: number): string => fmt(us / calls, 2);
  const share = (us: number): string => `${fmt((100 * us) / busy, 1)}%`;
  const sorted = (map: Map<string, number>, n: number): [string, number][] =>
    [...map].sort((a, b) => b[1] - a[1]).slice(0, n);
  return [
    `Main-thread busy time: ${fmt(busy / 1000)} ms for ${fmt(calls)} calls = ${perCall(busy)} µs/call (the sampling profiler adds its own overhead; GC and compiler threads are not in it).`,
    '',
    '#### By area (self time)',
    '',
    table(
      ['area', 'µs/call', 'share'],
      sorted(areas, 30).map(([k, v]) => [k, perCall(v), share(v)]),
    ),
    '',
    `#### Top ${top} functions by self time`,
    '',
    table(
      ['function', 'µs/call', 'share'],
      sorted(self, top).map(([k, v]) => [`\`${k}\``, perCall(v), share(v)]),
    ),
    '',
    '#### Agent functions, inclusive time',
    '',
    table(
      ['function', 'µs/call', 'share'],
      sorted(inclusive, top).map(([k, v]) => [`\`${k}\``, perCall(v), share(v)]),
    ),
  ].join('\n');
}

export async function profileBenchmark(): Promise<string> {
  const calls = intFlag('calls', 100_000);
  const concurrency = intFlag('concurrency', 16);
  const top = intFlag('top', 25);
  const dir = tempDir();
  const confDir = join(dir, 'net.d');
  const profDir = join(dir, 'prof');
  mkdirSync(confDir);
  mkdirSync(profDir);
  writeAtomic(confDir, '10-bench.conflist', conflist('bench-net'));
  const nodeArgs = ['--cpu-prof', `--cpu-prof-dir=${profDir}`];
  const constant = hasFlag('constant');
  const agent = constant
    ? await startConstant(dir, 'constant', { nodeArgs })
    : await startAgent(dir, confDir, 'agent', { nodeArgs });
  const client = await LoadClient.open(agent.socket);
  await client.run(5000, concurrency);
  progress(`profile: ${fmt(calls)} calls at concurrency ${concurrency}`);
  const result = await client.run(calls, concurrency);
  await client.close();
  await agent.stop(); // SIGTERM: the agent drains and exits, and node writes the profile
  const file = readdirSync(profDir).find((name) => name.endsWith('.cpuprofile'));
  if (!file) throw new Error(`no .cpuprofile written in ${profDir}; see ${agent.log}`);
  let kept = '';
  if (hasFlag('keep')) {
    kept = join(REPO_ROOT, '.run', `agent-${Date.now()}.cpuprofile`);
    mkdirSync(join(REPO_ROOT, '.run'), { recursive: true });
    copyFileSync(join(profDir, file), kept);
  }
  const profile = JSON.parse(readFileSync(join(profDir, file), 'utf8')) as CpuProfile;
  return [
    `### CPU profile of ${constant ? 'the constant grpc-js server' : "the agent's Status path"} (concurrency ${concurrency}, ${fmt(result.calls)} measured calls + 5,000 warm-up)`,
    '',
    analyse(profile, result.calls + 5000, top),
    '',
    `- command: \`${commandLine('profile')}\`${kept ? ` (profile kept at ${relative(REPO_ROOT, kept)})` : ''}`,
  ].join('\n');
}

function stringFlag(name: string): string | undefined {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? process.argv[at + 1] : undefined;
}

if (isMain(import.meta.url)) {
  const file = stringFlag('analyse');
  await runScript(async () =>
    file
      ? analyse(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile, intFlag('calls', 1), intFlag('top', 25))
      : `${machineFacts()}\n\n${await profileBenchmark()}`,
  );
}
