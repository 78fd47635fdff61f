#!/usr/bin/env node
// Prints an OCI image archive's size, uncompressed and gzip-compressed, layer by layer, and the
// part above its first BASE_LAYERS layers (the base image it was built on):
//
//   node scripts/image-size.js IMAGE.oci.tar [BASE_LAYERS] [--json]
//
// Uncompressed = the layer tars' bytes (what the image takes unpacked); gzip = the layer blobs as
// stored and pulled (buildah writes gzip layers). Reads the archive with tar; needs nothing else.
import { execFileSync, spawn } from 'node:child_process';
import process from 'node:process';
import { createGunzip } from 'node:zlib';

const args = process.argv.slice(2);
const json = args.includes('--json');
const [archive, baseArg] = args.filter((a) => a !== '--json');
if (!archive) {
  console.error('usage: node scripts/image-size.js IMAGE.oci.tar [BASE_LAYERS] [--json]');
  process.exit(2);
}
const baseLayers = baseArg === undefined ? 0 : Number(baseArg);

function blobPath(digest) {
  const [algorithm, hex] = digest.split(':');
  return `blobs/${algorithm}/${hex}`;
}

function readJson(path) {
  return JSON.parse(execFileSync('tar', ['-xOf', archive, path], { encoding: 'utf8', maxBuffer: 64 << 20 }));
}

/** Bytes of one layer blob once decompressed (a plain tar layer counts as it is). */
function uncompressedSize(layer) {
  return new Promise((resolve, reject) => {
    const tar = spawn('tar', ['-xOf', archive, blobPath(layer.digest)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let bytes = 0;
    const gzip = layer.mediaType.endsWith('gzip');
    const stream = gzip ? tar.stdout.pipe(createGunzip()) : tar.stdout;
    stream.on('data', (chunk) => (bytes += chunk.length));
    stream.on('error', reject);
    stream.on('end', () => resolve(bytes));
    tar.on('error', reject);
  });
}

const index = readJson('index.json');
const manifest = readJson(blobPath(index.manifests[0].digest));
const config = readJson(blobPath(manifest.config.digest));
// History entries that made a layer, in layer order.
const made = (config.history ?? []).filter((h) => !h.empty_layer);
const layers = [];
for (const [i, layer] of manifest.layers.entries()) {
  const createdBy = (made[i]?.created_by ?? '').replace(/\s+/g, ' ').trim();
  layers.push({ gzip: layer.size, uncompressed: await uncompressedSize(layer), createdBy });
}
const sum = (list, key) => list.reduce((total, layer) => total + layer[key], 0);
const base = layers.slice(0, baseLayers);
const above = layers.slice(baseLayers);
const result = {
  total: { uncompressed: sum(layers, 'uncompressed'), gzip: sum(layers, 'gzip') },
  base: { layers: base.length, uncompressed: sum(base, 'uncompressed'), gzip: sum(base, 'gzip') },
  aboveBase: { uncompressed: sum(above, 'uncompressed'), gzip: sum(above, 'gzip') },
  layers,
};
if (json) {
  console.log(JSON.stringify(result, null, 2));
} else {
  const mb = (bytes) => `${(bytes / 1e6).toFixed(1)} MB`;
  const row = (label, s) => `${mb(s.uncompressed).padStart(9)} ${mb(s.gzip).padStart(9)}  ${label}`;
  console.log(`${'unpacked'.padStart(9)} ${'gzip'.padStart(9)}  ${archive}`);
  for (const layer of layers) console.log(row(layer.createdBy.slice(0, 100), layer));
  if (baseLayers > 0) {
    console.log(row(`base image (${base.length} layer${base.length === 1 ? '' : 's'})`, result.base));
    console.log(row('above the base', result.aboveBase));
  }
  console.log(row('total', result.total));
}
