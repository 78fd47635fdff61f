// resolveUnderRoot: following a node's symlinks inside the root it is mounted at, on real links.
import assert from 'node:assert/strict';
import { mkdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { resolveUnderRoot } from '../../src/cni/files.js';
import { tempDir } from '../helpers/fs.js';

test('absolute and relative links are followed inside the root, in the dir and in the file name', (t) => {
  const root = tempDir(t);
  mkdirSync(join(root, 'var', 'lib', 'cni', 'net.d'), { recursive: true });
  mkdirSync(join(root, 'etc', 'cni'), { recursive: true });
  mkdirSync(join(root, 'run', 'flannel'), { recursive: true });
  writeFileSync(join(root, 'run', 'flannel', 'cni.conflist'), '{}');
  symlinkSync('/var/lib/cni/net.d', join(root, 'etc', 'cni', 'net.d'));
  symlinkSync('/run/flannel/cni.conflist', join(root, 'var', 'lib', 'cni', 'net.d', '10-flannel.conflist'));
  symlinkSync('10-flannel.conflist', join(root, 'var', 'lib', 'cni', 'net.d', '20-alias.conflist'));
  const flannel = join(root, 'run', 'flannel', 'cni.conflist');
  assert.equal(resolveUnderRoot(root, '/etc/cni/net.d'), join(root, 'var', 'lib', 'cni', 'net.d'));
  assert.equal(resolveUnderRoot(root, '/etc/cni/net.d/10-flannel.conflist'), flannel);
  assert.equal(resolveUnderRoot(root, '/etc/cni/net.d/20-alias.conflist'), flannel);
  assert.equal(resolveUnderRoot(root, 'etc/./cni//net.d/../net.d/10-flannel.conflist'), flannel);
});

test('.. and links climbing out of the root stop at it, as under chroot', (t) => {
  const root = tempDir(t);
  mkdirSync(join(root, 'etc'));
  writeFileSync(join(root, 'passwd'), '');
  symlinkSync('../../../../passwd', join(root, 'etc', 'up'));
  assert.equal(resolveUnderRoot(root, '/etc/up'), join(root, 'passwd'));
  assert.equal(resolveUnderRoot(root, '/../../etc'), join(root, 'etc'));
});

test('a missing component ends the walk with the rest kept', (t) => {
  const root = tempDir(t);
  mkdirSync(join(root, 'etc'));
  symlinkSync('/run/missing/cni.conf', join(root, 'etc', 'dangling.conf'));
  assert.equal(resolveUnderRoot(root, '/etc/dangling.conf'), join(root, 'run', 'missing', 'cni.conf'));
  assert.equal(resolveUnderRoot(root, '/nope/a/b'), join(root, 'nope', 'a', 'b'));
});

test('loops and chains past 40 links are ELOOP, as the kernel says; 40 links resolve', (t) => {
  const root = tempDir(t);
  mkdirSync(join(root, 'etc'));
  mkdirSync(join(root, 'c'));
  const eloop = { code: 'ELOOP', message: /too many levels of symbolic links/ };
  symlinkSync('/etc/b', join(root, 'etc', 'a'));
  symlinkSync('/etc/a', join(root, 'etc', 'b'));
  assert.throws(() => resolveUnderRoot(root, '/etc/a'), eloop);
  symlinkSync('self', join(root, 'etc', 'self'));
  assert.throws(() => resolveUnderRoot(root, '/etc/self'), eloop);
  // /c/l41 -> /c/l40 -> ... -> /c/l1 -> /target: l40 takes 40 links, l41 one more.
  writeFileSync(join(root, 'target'), '');
  for (let i = 1; i <= 41; i++) symlinkSync(i === 1 ? '/target' : `/c/l${i - 1}`, join(root, 'c', `l${i}`));
  assert.equal(resolveUnderRoot(root, '/c/l40'), join(root, 'target'));
  assert.throws(() => resolveUnderRoot(root, '/c/l41'), eloop);
  // The kernel agrees, on the same chain with the root's own paths.
  const kernel = tempDir(t);
  writeFileSync(join(kernel, 'target'), '');
  for (let i = 1; i <= 41; i++)
    symlinkSync(i === 1 ? join(kernel, 'target') : join(kernel, `l${i - 1}`), join(kernel, `l${i}`));
  assert.ok(statSync(join(kernel, 'l40')).isFile());
  assert.throws(() => statSync(join(kernel, 'l41')), { code: 'ELOOP' });
});
