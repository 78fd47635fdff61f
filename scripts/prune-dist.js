#!/usr/bin/env node
// Removes compiled files in dist/ whose TypeScript source is gone. tsc never deletes its outputs,
// so a moved or deleted test would otherwise keep running from dist/ under `npm test`.
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
const OUTPUT = /\.js(\.map)?$/;

function prune(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      prune(path);
    } else if (OUTPUT.test(entry.name)) {
      const source = join(root, relative(dist, path).replace(OUTPUT, '.ts'));
      if (!existsSync(source)) rmSync(path);
    }
  }
}

if (existsSync(dist)) prune(dist);
