import assert from 'node:assert/strict';
import { mkdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { startInProcess } from '../helpers/agent.js';
import type { CriClient } from '../helpers/cri.js';
import { parsedInfo } from '../helpers/cri.js';
import { conflist, writeAtomic } from '../helpers/fs.js';

async function networkInForce(client: CriClient): Promise<string | undefined> {
  const info = parsedInfo(await client.status(true));
  return (info.cniconfig as { network: { name: string } | null }).network?.name;
}

test('500 rounds of atomic create, Status, delete, Status: every first Status reflects the write', async (t) => {
  const { client, confDir } = await startInProcess(t);
  mkdirSync(confDir, { recursive: true });
  writeFileSync(join(confDir, '50-base.conflist'), conflist('base'));
  const missed: string[] = [];
  for (let round = 0; round < 500; round++) {
    const name = `net-${round}`;
    writeAtomic(join(confDir, '10-round.conflist'), conflist(name));
    const afterCreate = await networkInForce(client);
    if (afterCreate !== name) missed.push(`round ${round}: after create saw ${afterCreate}`);
    unlinkSync(join(confDir, '10-round.conflist'));
    const afterDelete = await networkInForce(client);
    if (afterDelete !== 'base') missed.push(`round ${round}: after delete saw ${afterDelete}`);
  }
  assert.deepEqual(missed, []);
});

test('500 in-place rewrites (same size, back to back): every first Status reflects the write', async (t) => {
  const { client, confDir } = await startInProcess(t);
  mkdirSync(confDir, { recursive: true });
  const path = join(confDir, '10-net.conflist');
  const missed: string[] = [];
  for (let round = 0; round < 500; round++) {
    const name = `net-${String(round).padStart(4, '0')}`; // same length every round
    writeFileSync(path, conflist(name));
    const seen = await networkInForce(client);
    if (seen !== name) missed.push(`round ${round}: saw ${seen}`);
  }
  assert.deepEqual(missed, []);
});

test('100 concurrent Status calls during a storm of rewrites all succeed and never see a half-parsed state', async (t) => {
  const { client, confDir } = await startInProcess(t);
  mkdirSync(confDir, { recursive: true });
  const path = join(confDir, '10-net.conflist');
  const names = ['alpha', 'bravo-network', 'c'];
  writeFileSync(path, conflist('alpha'));
  await client.status();
  let writing = true;
  let writes = 0;
  const storm = (async () => {
    while (writing) {
      // Alternate in-place (non-atomic, can be caught half-written) and atomic writes.
      const name = names[writes % names.length] ?? 'alpha';
      if (writes % 2) writeFileSync(path, conflist(name));
      else writeAtomic(path, conflist(name));
      writes++;
      await new Promise((resolve) => setImmediate(resolve));
    }
  })();
  const seen = new Set<string>();
  for (let wave = 0; wave < 5; wave++) {
    const responses = await Promise.all(Array.from({ length: 100 }, () => client.status(wave % 2 === 0)));
    for (const response of responses) {
      const network = response.status?.conditions.find((c) => c.type === 'NetworkReady');
      assert.equal(network?.status, true, `NetworkReady must stay true: ${network?.message ?? ''}`);
      if (Object.keys(response.info).length) {
        const name = (parsedInfo(response).cniconfig as { network: { name: string } }).network.name;
        assert.ok(names.includes(name), `network "${name}" must be one that was written whole`);
        seen.add(name);
      }
    }
  }
  writing = false;
  await storm;
  assert.ok(writes > 10, `the storm wrote ${writes} times`);
  assert.ok(seen.size >= 1);
});
