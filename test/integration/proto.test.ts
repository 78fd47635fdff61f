import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { REPO_ROOT } from '../helpers/agent.js';

test('the committed src/gen is what buf + ts-proto generate from proto/', () => {
  const result = spawnSync(process.execPath, [join(REPO_ROOT, 'scripts', 'gen-proto.js'), '--check'], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
  });
  assert.equal(result.status, 0, `${result.stdout}${result.stderr}`);
  assert.match(result.stdout, /src\/gen is current/);
});
