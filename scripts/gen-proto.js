#!/usr/bin/env node
// Regenerates the committed TypeScript in src/gen from proto/ with buf + ts-proto (both npm
// packages, so no protoc and no network). `--check` regenerates into a temp dir and exits 1
// when the committed code differs, which the unit tests use to keep src/gen current.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const check = process.argv.includes('--check');
const buf = join(root, 'node_modules', '.bin', 'buf');

function listFiles(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? listFiles(path) : [path];
  });
}

const work = mkdtempSync(join(tmpdir(), 'cri-netstatus-proto-'));
try {
  cpSync(join(root, 'buf.gen.yaml'), join(work, 'buf.gen.yaml'));
  const template = readFileSync(join(root, 'buf.gen.yaml'), 'utf8').replace(
    'local: node_modules/.bin/protoc-gen-ts_proto',
    `local: ${join(root, 'node_modules', '.bin', 'protoc-gen-ts_proto')}`,
  );
  writeFileSync(join(work, 'buf.gen.yaml'), template);
  execFileSync(buf, ['generate', join(root, 'proto'), '--template', join(work, 'buf.gen.yaml'), '-o', work], {
    cwd: root,
    stdio: 'inherit',
  });
  const fresh = join(work, 'src', 'gen');
  const committed = join(root, 'src', 'gen');
  if (check) {
    const stale = listFiles(fresh).filter((file) => {
      const twin = join(committed, relative(fresh, file));
      try {
        return readFileSync(twin, 'utf8') !== readFileSync(file, 'utf8');
      } catch {
        return true;
      }
    });
    if (stale.length > 0) {
      console.error(
        `src/gen is out of date with proto/ (${stale.map((f) => relative(fresh, f)).join(', ')}); run: npm run proto`,
      );
      process.exit(1);
    }
    console.log('src/gen is current');
  } else {
    rmSync(committed, { recursive: true, force: true });
    cpSync(fresh, committed, { recursive: true });
    console.log(`regenerated ${listFiles(committed).length} files in src/gen`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
