// Keeps the README's front door true: every serve flag and every metric the agent registers is
// documented, and nothing documented is gone.
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { serveFlags } from '../../src/cli/serve.js';
import { systemClock } from '../../src/util/clock.js';
import { VerdictPublisher } from '../../src/verdict/publisher.js';
import { AgentMetrics } from '../../src/metrics/registry.js';
import { Refresher } from '../../src/cni/refresher.js';
import { REPO_ROOT } from '../helpers/agent.js';

const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');

test('the README documents every serve flag, and only real ones', () => {
  const documented = new Set([...readme.matchAll(/^\| `--([a-z-]+)`\s*\|/gm)].map((m) => m[1]));
  const real = Object.keys(serveFlags).filter((flag) => flag !== 'help');
  assert.deepEqual([...documented].sort(), real.sort());
});

test('the README documents every cri_netstatus_ metric the agent registers', async () => {
  const refresher = new Refresher({
    confDir: '/nonexistent',
    binDirs: [],
    semantics: 'isulad',
    maxFileSize: 1024,
  });
  const verdicts = new VerdictPublisher({
    source: refresher,
    staleAfterMs: undefined,
    clock: systemClock,
    onError: (error) => assert.fail(String(error)),
  });
  const metrics = new AgentMetrics('0', verdicts);
  const names = (await metrics.registry.getMetricsAsJSON())
    .map((m) => m.name)
    .filter((name) => name.startsWith('cri_netstatus_'));
  assert.ok(names.length >= 10);
  for (const name of names) assert.ok(readme.includes(`\`${name}`), `README's metrics table lacks ${name}`);
});

test('the README documents every cri_netstatus_ metric declared anywhere in src/', () => {
  const sources = readdirSync(join(REPO_ROOT, 'src'), { recursive: true, encoding: 'utf8' })
    .filter((file) => file.endsWith('.ts'))
    .map((file) => readFileSync(join(REPO_ROOT, 'src', file), 'utf8'));
  const names = new Set(
    sources.flatMap((text) => [...text.matchAll(/name: '(cri_netstatus_\w+)'/g)].map((m) => m[1])),
  );
  assert.ok(names.size >= 15, `found ${names.size} metric declarations`);
  const missing = [...names].filter((name) => !readme.includes(`\`${name}`));
  assert.deepEqual(missing, [], "metrics missing from the README's tables");
});
