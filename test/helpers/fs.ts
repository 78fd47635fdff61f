// Real temp dirs and the ways CNI installers really write files.
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';

/** A fresh temp dir removed when the test ends. */
export function tempDir(t: TestContext, prefix = 'cri-netstatus-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Write-to-temp then rename, as kindnet, Cilium and the AWS VPC CNI do. */
export function writeAtomic(path: string, content: string): void {
  const temp = `${path}.tmp-${process.pid}`;
  writeFileSync(temp, content);
  renameSync(temp, path);
}

/** A valid conflist for network `name` with the given plugin types. */
export function conflist(name: string, types: string[] = ['bridge'], cniVersion = '1.0.0'): string {
  return `${JSON.stringify({ cniVersion, name, plugins: types.map((type) => ({ type })) }, null, 2)}\n`;
}

/** `root`/net.d (empty) and `root`/bin holding stub plugin executables: found by lookup, never run. */
export function cniDirs(
  root: string,
  plugins: readonly string[] = ['bridge'],
): { confDir: string; binDir: string } {
  const confDir = join(root, 'net.d');
  const binDir = join(root, 'bin');
  mkdirSync(confDir);
  mkdirSync(binDir);
  for (const plugin of plugins) writeFileSync(join(binDir, plugin), '#!/bin/sh\n', { mode: 0o755 });
  return { confDir, binDir };
}
