// Property-based test (fast-check) of the refresher and the profiles against a small model of the
// documented semantics: random sequences of in-place writes, atomic rewrites, renames, deletes,
// symlink swaps and Status calls on a real directory; after every step the agent's answer
// (read-your-writes, per-file last good, each profile's verdict) must equal the model's. A failure
// prints fast-check's shrunk counterexample: the shortest sequence of steps that disagrees.
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { Refresher } from '../../src/cni/refresher.js';
import type { NetworkState, Semantics } from '../../src/cni/types.js';
import { tempDir } from '../helpers/fs.js';

const NAMES = ['05-c.conf', '10-a.conflist', '20-b.conflist'] as const;
const LINK = '30-link.conflist';
type Name = (typeof NAMES)[number];
/** A file's content in the model: the network it defines, or null for a broken file. */
type Content = string | null;
/** What a name holds: the content and whether it was written as a list (a .conflist's text). */
interface Held {
  network: Content;
  list: boolean;
}

type Op =
  | { op: 'write'; name: Name; content: Content }
  | { op: 'atomic'; name: Name; content: Content }
  | { op: 'rename'; from: Name; to: Name }
  | { op: 'delete'; name: Name }
  | { op: 'link'; target: 'x' | 'y' | 'none' }
  | { op: 'status' };

const content = fc.oneof(fc.constantFrom('net1', 'net2', 'net3'), fc.constant(null));
const name = fc.constantFrom(...NAMES);
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constant('write' as const), name, content }),
  fc.record({ op: fc.constant('atomic' as const), name, content }),
  fc.record({ op: fc.constant('rename' as const), from: name, to: name }),
  fc.record({ op: fc.constant('delete' as const), name }),
  fc.record({
    op: fc.constant('link' as const),
    target: fc.constantFrom('x' as const, 'y' as const, 'none' as const),
  }),
  fc.constant({ op: 'status' as const }),
);

/** The link's targets: x is a valid network, y a broken file. */
const TARGETS: Record<'x' | 'y', Content> = { x: 'linked', y: null };

function text(file: string, network: Content): string {
  if (network === null) return file.endsWith('.conf') ? '{"type":' : '{"name":"half",';
  return file.endsWith('.conf')
    ? `{"cniVersion":"1.0.0","name":"${network}","type":"bridge"}`
    : `{"cniVersion":"1.0.0","name":"${network}","plugins":[{"type":"bridge"}]}`;
}

/** The documented semantics, over what the dir holds at each Status call. */
class Model {
  files = new Map<string, Held>();
  lastGood = new Map<string, string>();
  isuladNetwork: string | undefined;

  apply(step: Op): void {
    switch (step.op) {
      case 'write':
      case 'atomic':
        this.files.set(step.name, { network: step.content, list: step.name.endsWith('.conflist') });
        break;
      case 'rename':
        if (step.from !== step.to && this.files.has(step.from)) {
          this.files.set(step.to, this.files.get(step.from) ?? { network: null, list: true });
          this.files.delete(step.from);
        }
        break;
      case 'delete':
        this.files.delete(step.name);
        break;
      case 'link':
        if (step.target === 'none') this.files.delete(LINK);
        else this.files.set(LINK, { network: TARGETS[step.target], list: true });
        break;
      case 'status':
        break;
    }
  }

  /** The network a name defines now: a list's text only loads as a .conflist, a plugin's as a .conf. */
  private valid(name: string): Content {
    const held = this.files.get(name);
    return held && held.list === name.endsWith('.conflist') ? held.network : null;
  }

  /** A Status call: per-file last good is updated from what is on disk now. */
  status(): Record<string, string> {
    for (const name of [...this.lastGood.keys()]) if (!this.files.has(name)) this.lastGood.delete(name);
    const sorted = [...this.files.keys()].sort();
    for (const name of sorted) {
      const network = this.valid(name);
      if (network) this.lastGood.set(name, network);
    }
    const inForce = sorted.find((name) => this.lastGood.has(name));
    if (inForce) this.isuladNetwork = this.lastGood.get(inForce);
    const first = sorted[0];
    const firstValid = sorted.find((name) => this.valid(name));
    return {
      isulad: this.isuladNetwork ?? 'NOT READY',
      'containerd-1.7': (first !== undefined && this.valid(first)) || 'NOT READY',
      crio: (firstValid !== undefined && this.valid(firstValid)) || 'NOT READY',
      files: sorted
        .map((name) => `${name}=${this.valid(name) ? 'ok' : this.lastGood.has(name) ? 'stale' : 'bad'}`)
        .join(','),
    };
  }
}

function observed(state: NetworkState, also?: Semantics): Record<string, string> {
  const verdict = (profile: Semantics): string => {
    const selection = state.verdicts[profile];
    return selection.ready ? (selection.network?.name ?? '?') : 'NOT READY';
  };
  return {
    isulad: verdict('isulad'),
    'containerd-1.7': verdict('containerd-1.7'),
    crio: verdict('crio'),
    ...(also ? { [also]: verdict(also) } : {}),
    files: state.files
      .map((file) => `${file.file}=${file.current.ok ? 'ok' : file.lastGood ? 'stale' : 'bad'}`)
      .join(','),
  };
}

function perform(confDir: string, step: Op): void {
  const path = (file: string) => join(confDir, file);
  switch (step.op) {
    case 'write':
      writeFileSync(path(step.name), text(step.name, step.content));
      break;
    case 'atomic':
      writeFileSync(path(`.${step.name}.tmp`), text(step.name, step.content));
      renameSync(path(`.${step.name}.tmp`), path(step.name));
      break;
    case 'rename':
      try {
        if (step.from !== step.to) renameSync(path(step.from), path(step.to));
      } catch {
        // Renaming a file that is not there changes nothing, in the model too.
      }
      break;
    case 'delete':
      rmSync(path(step.name), { force: true });
      break;
    case 'link':
      if (step.target === 'none') rmSync(path(LINK), { force: true });
      else {
        // A ConfigMap-style swap: a new link renamed over the old one.
        symlinkSync(join('..', 'targets', step.target), path('.link.tmp'));
        renameSync(path('.link.tmp'), path(LINK));
      }
      break;
    case 'status':
      break;
  }
}

test('refresher and profiles agree with the model at every step of random write/rename/delete/symlink sequences', (t) => {
  const root = tempDir(t);
  const bin = join(root, 'bin');
  mkdirSync(bin);
  writeFileSync(join(bin, 'bridge'), '#!/bin/sh\n');
  chmodSync(join(bin, 'bridge'), 0o755);
  mkdirSync(join(root, 'targets'));
  for (const [target, network] of Object.entries(TARGETS))
    writeFileSync(join(root, 'targets', target), text(LINK, network));
  let run = 0;
  fc.assert(
    fc.property(fc.array(op, { minLength: 1, maxLength: 25 }), (steps) => {
      const confDir = join(root, `net${run++}`);
      mkdirSync(confDir);
      const refresher = new Refresher({ confDir, binDirs: [bin], semantics: 'isulad', maxFileSize: 1 << 20 });
      // The same dir under the newest containerd profile (libcni v1.3, plugin subdirs on).
      const v13 = new Refresher({
        confDir,
        binDirs: [bin],
        semantics: 'containerd-2.1',
        maxFileSize: 1 << 20,
      });
      const model = new Model();
      for (const [index, step] of steps.entries()) {
        perform(confDir, step);
        model.apply(step);
        const expected = model.status();
        assert.deepEqual(
          observed(refresher.refresh()),
          expected,
          `after step ${index}: ${JSON.stringify(step)}`,
        );
        assert.equal(
          observed(v13.refresh(), 'containerd-2.1')['containerd-2.1'],
          expected['containerd-1.7'],
          `containerd-2.1 after step ${index}: ${JSON.stringify(step)}`,
        );
      }
      rmSync(confDir, { recursive: true, force: true });
    }),
    { numRuns: 300, seed: 9 },
  );
});
