// One test per class of issue 9: what the real libcni (per release) decides for a file, and the
// words it uses. Expected texts were taken from the real libcni (test/peers/libcni-loader).
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { checkValid, parseValid } from '../../src/cni/gojson.js';
import { pluginConfFromBytes } from '../../src/cni/libcni.js';
import type { LibcniVersion } from '../../src/cni/libcni.js';
import { parseConfig } from '../../src/cni/parse.js';
import { select } from '../../src/cni/profiles.js';
import { Refresher } from '../../src/cni/refresher.js';
import { runCheck } from '../../src/cli/check.js';
import type { LoadResult } from '../../src/cni/types.js';
import { tempDir } from '../helpers/fs.js';

const parse = (file: string, text: string | Buffer, version?: LibcniVersion): LoadResult =>
  parseConfig(file, Buffer.isBuffer(text) ? text : Buffer.from(text), version);

function rejected(result: LoadResult): string {
  assert.ok(!result.ok, 'expected the file to be rejected');
  return result.error.message;
}
function loaded(result: LoadResult) {
  assert.ok(result.ok, `expected the file to load, got ${result.ok ? '' : result.error.message}`);
  return result.config;
}

test('typed fields: every field libcni declares is type-checked, with encoding/json messages per release', () => {
  const list =
    '{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge","dns":{"nameservers":"10.0.0.10"}}]}';
  assert.match(
    rejected(parse('a.conflist', list)),
    /^failed to parse plugin config 0: error parsing configuration: json: cannot unmarshal string into Go struct field DNS\.dns\.nameservers of type \[\]string/,
  );
  const cases: Array<[string, LibcniVersion, string]> = [
    [
      '{"type":"b","ipam":[]}',
      '1.3.1',
      'cannot unmarshal array into Go struct field PluginConf.ipam of type types.IPAM',
    ],
    [
      '{"type":"b","ipam":[]}',
      '1.1.2',
      'cannot unmarshal array into Go struct field NetConf.ipam of type types.IPAM',
    ],
    ['{"type":"b","capabilities":{"x":1}}', '1.3.1', 'Go struct field PluginConf.capabilities of type bool'],
    [
      '{"type":"b","prevResult":"x"}',
      '1.2.3',
      'Go struct field NetConf.prevResult of type map[string]interface {}',
    ],
    [
      '{"type":"b","name":7}',
      '1.3.1',
      'cannot unmarshal number into Go struct field PluginConf.name of type string',
    ],
    [
      '{"type":"b","cniVersion":true}',
      '1.3.1',
      'cannot unmarshal bool into Go struct field PluginConf.cniVersion',
    ],
    [
      '{"type":"b","cni.dev/valid-attachments":[{"containerID":1}]}',
      '1.3.1',
      'cannot unmarshal number into Go struct field GCAttachment.cni.dev/valid-attachments.containerID of type string',
    ],
    ['{"type":"b","ipam":{"type":1},"dns":"x"}', '1.3.1', 'Go struct field IPAM.ipam.type of type string'],
  ];
  for (const [text, version, message] of cases) {
    assert.ok(rejected(parse('a.conf', text, version)).includes(message), `${text} (${version})`);
  }
  // libcni v1.1.2 does not declare cni.dev/valid-attachments: any value loads.
  loaded(parse('a.conf', '{"type":"b","cni.dev/valid-attachments":"x"}', '1.1.2'));
  assert.match(
    rejected(parse('a.conf', '{"type":"b","cni.dev/valid-attachments":"x"}', '1.2.3')),
    /of type \[\]types\.GCAttachment/,
  );
});

test("Go's key rules: Unicode simple folding, the last match wins, null keeps the value", () => {
  // ſ (U+017F) folds to s: "dnſ" is the dns field.
  assert.match(
    rejected(parse('a.conf', '{"type":"b","dn\u017f":"x"}')),
    /PluginConf\.dns of type types\.DNS/,
  );
  assert.equal(loaded(parse('a.conf', '{"TYPE":"bridge","NAME":"n"}')).name, 'n');
  assert.match(rejected(parse('a.conf', '{"type":"bridge","Type":""}')), /missing 'type'/);
  // null leaves a decoded field as it was: the .conf itself decodes with type "bridge"...
  const nulled = pluginConfFromBytes(Buffer.from('{"type":"bridge","type":null}'), '1.3.1');
  assert.ok(nulled.ok && nulled.value.type === 'bridge');
  // ...but go-cni then converts it to a list through a map, where the later null replaced "bridge".
  assert.match(
    rejected(parse('a.conf', '{"type":"bridge","type":null}')),
    /^failed to parse plugin config 0: error parsing configuration: missing 'type'/,
  );
  // In a list, plugins are re-encoded from a map (keys sorted), so "Type" is decoded before "type".
  const list = loaded(parse('a.conflist', '{"name":"n","plugins":[{"type":"bridge","Type":""}]}'));
  assert.equal(list.plugins[0]?.type, 'bridge');
  // A .conf loads in file order, then go-cni converts it to a list (sorted order) and fails.
  const error = parse('a.conf', '{"type":"","Type":"bridge"}');
  assert.ok(!error.ok && error.error.converting);
  assert.match(
    rejected(error),
    /^failed to parse plugin config 0: error parsing configuration: missing 'type'/,
  );
});

test('nesting deeper than 10,000 and numbers outside float64 are errors, as in Go', () => {
  const nested = (depth: number) => `{"type":"b","deep":${'['.repeat(depth - 1)}${']'.repeat(depth - 1)}}`;
  loaded(parse('a.conflist', `{"name":"n","plugins":[${nested(9998)}]}`));
  assert.match(
    rejected(parse('a.conflist', `{"name":"n","plugins":[${nested(9999)}]}`)),
    /^error parsing configuration list: invalid character '\[' exceeded max depth/,
  );
  assert.equal(checkValid(Buffer.from('['.repeat(10000) + ']'.repeat(10000))), undefined);
  assert.match(
    rejected(parse('a.conflist', '{"name":"n","mtu":1e400,"plugins":[{"type":"b"}]}')),
    /^error parsing configuration list: json: cannot unmarshal number 1e400 into Go value of type float64/,
  );
  assert.match(
    rejected(parse('a.conf', '{"type":"b","prevResult":{"x":-1e999}}')),
    /cannot unmarshal number -1e999 into Go struct field PluginConf\.prevResult of type float64/,
  );
  loaded(parse('a.conflist', '{"name":"n","tiny":1e-400,"plugins":[{"type":"b"}]}'));
});

test("invalid UTF-8 is replaced per Go's rules: one U+FFFD per bad byte", () => {
  const name = Buffer.concat([
    Buffer.from('{"name":"a'),
    Buffer.from([0xff, 0xe2, 0x82]),
    Buffer.from('","plugins":[{"type":"b"}]}'),
  ]);
  assert.equal(loaded(parse('a.conflist', name)).name, 'a\ufffd\ufffd\ufffd');
  const value = parseValid(Buffer.from('"\\ud800\\u0041"'));
  assert.deepEqual(value.kind === 'string' ? value.value : undefined, '\ufffdA');
});

test('version-specific list rules: v1.1 strict disableCheck and plugins, v1.2 cniVersions, v1.3 optional plugins', () => {
  const stringBool = '{"name":"n","disableCheck":"true","plugins":[{"type":"b"}]}';
  assert.match(
    rejected(parse('a.conflist', stringBool, '1.1.2')),
    /invalid disableCheck type string \(line 1, column 28\)$/,
  );
  loaded(parse('a.conflist', stringBool, '1.2.3'));
  const lenient = '{"cniVersions":["1.0","0.4.0"],"name":"n","plugins":[{"type":"b"}]}';
  assert.equal(loaded(parse('a.conflist', lenient, '1.2.3')).cniVersion, '1.0');
  assert.equal(loaded(parse('a.conflist', lenient, '1.1.2')).cniVersion, '', 'v1.1 ignores cniVersions');
  assert.match(
    rejected(parse('a.conflist', '{"name":"n","disableGC":2,"plugins":[{"type":"b"}]}', '1.3.1')),
    /invalid type float64 for disableGC \(/,
  );
  loaded(parse('a.conflist', '{"name":"n","disableGC":2,"plugins":[{"type":"b"}]}', '1.1.2'));
  assert.match(rejected(parse('a.conflist', '{"name":"n"}', '1.2.3')), /no 'plugins' key/);
  assert.match(rejected(parse('a.conflist', '{"name":"n"}', '1.3.1')), /^no plugin configs found/);
  assert.match(
    rejected(parse('a.conflist', '{"name":"n","loadOnlyInlinedPlugins":true}', '1.3.1')),
    /`loadOnlyInlinedPlugins` is true, and no 'plugins' key/,
  );
});

test('libcni v1.3 loads <dir>/<network>/*.conf plugins, and sees them change', (t) => {
  const confDir = join(tempDir(t), 'net.d');
  mkdirSync(join(confDir, 'n'), { recursive: true });
  writeFileSync(join(confDir, '10-n.conflist'), '{"cniVersion":"1.0.0","name":"n"}');
  writeFileSync(join(confDir, 'n', '10-pm.conf'), '{"type":"portmap"}');
  const make = (dirPlugins: boolean, libcni: LibcniVersion) =>
    new Refresher({
      confDir,
      binDirs: [],
      semantics: 'containerd-2.1',
      maxFileSize: 1 << 20,
      libcni,
      dirPlugins,
    });
  const v13 = make(true, '1.3.1');
  const state = v13.refresh();
  // The subdir's plugin gets the list's name and cniVersion on its STATUS stdin, as libcni injects them.
  assert.deepEqual(state.selection.network?.plugins, [
    { type: 'portmap', conf: '{"cniVersion":"1.0.0","name":"n","type":"portmap"}' },
  ]);
  assert.equal(make(false, '1.1.2').refresh().selection.ready, false, 'containerd 1.7 needs "plugins"');
  writeFileSync(join(confDir, 'n', '20-bad.conf'), '{"capabilities":{}}');
  const after = v13.refresh();
  assert.equal(after.selection.ready, false, 'a bad plugin file fails the list, as in libcni');
  assert.match(after.selection.reason ?? '', /10-n\.conflist: error parsing configuration: missing 'type'/);
  assert.equal(readFileSync(join(confDir, 'n', '10-pm.conf'), 'utf8'), '{"type":"portmap"}');
});

test('listing: a file named exactly .conflist is a candidate, and a name that is not UTF-8 is listed and read', (t) => {
  const confDir = join(tempDir(t), 'net.d');
  mkdirSync(confDir);
  writeFileSync(join(confDir, '.conflist'), '{"name":"dot","plugins":[{"type":"b"}]}');
  writeFileSync(
    Buffer.concat([Buffer.from(`${confDir}/`), Buffer.from([0x30, 0xff]), Buffer.from('.conflist')]),
    '{"name":"raw","plugins":[{"type":"b"}]}',
  );
  const state = new Refresher({ confDir, binDirs: [], semantics: 'isulad', maxFileSize: 1 << 20 }).refresh();
  assert.deepEqual(
    state.files.map((f) => [f.file, f.current.ok ? f.current.config.name : f.current.error.message]),
    [
      ['.conflist', 'dot'],
      ['0\ufffd.conflist', 'raw'],
    ],
  );
});

test("diagnosis: Go's scanner message and position; the half-written hint only when the file ends early", () => {
  const cases: Array<[string, string]> = [
    ['# x\n{}', "invalid character '#' looking for beginning of value (line 1, column 1)"],
    ['{"a": NaN}', "invalid character 'N' looking for beginning of value (line 1, column 7)"],
    ['{"a": True}', "invalid character 'T' looking for beginning of value (line 1, column 7)"],
    ['{"a": [1,]}', "invalid character ']' looking for beginning of value (line 1, column 10)"],
    [
      '{"a": tru',
      "invalid character ' ' in literal true (expecting 'e') (line 1, column 10: the file ends early",
    ],
    ['{"a": "b', 'unexpected end of JSON input (line 1, column 9: the file ends early'],
  ];
  for (const [text, message] of cases) {
    const got = rejected(parse('a.conflist', text));
    assert.ok(
      got.startsWith(`error parsing configuration list: ${message}`),
      `${JSON.stringify(text)}: ${got}`,
    );
  }
  const utf16 = Buffer.from('\ufeff{"name":"n"}', 'utf16le');
  assert.match(rejected(parse('a.conflist', utf16)), /invalid character 'ÿ' looking for beginning of value/);
  assert.doesNotMatch(rejected(parse('a.conflist', '{"a":1}}')), /ends early/);
});

test("go-cni's wording: 'config file' for .conf and .json, 'config list file' for .conflist", () => {
  const files = [
    [
      '10-a.conf',
      '{}',
      /^failed to load CNI config file \/d\/10-a\.conf: error parsing configuration: missing 'type'/,
    ],
    [
      '10-a.json',
      '#',
      /^failed to load CNI config file \/d\/10-a\.json: error parsing configuration: invalid character '#'/,
    ],
    [
      '10-a.conflist',
      '{}',
      /^failed to load CNI config list file \/d\/10-a\.conflist: error parsing configuration list: no name: invalid cni config/,
    ],
  ] as const;
  for (const [file, text, reason] of files) {
    const current = parse(file, text, '1.1.2');
    const verdict = select('containerd-1.7', {
      confDir: '/d',
      files: [{ file, path: `/d/${file}`, current, missingBinaries: [] }],
    });
    assert.match(verdict.reason ?? '', reason);
  }
});

test('check -o json carries each profile: its libcni, every file as that release decides it, and its verdict', (t) => {
  const confDir = join(tempDir(t), 'net.d');
  mkdirSync(join(confDir, 'n'), { recursive: true });
  writeFileSync(join(confDir, '10-n.conflist'), '{"cniVersion":"1.0.0","name":"n","disableCheck":"true"}');
  writeFileSync(join(confDir, 'n', '10-pm.conf'), '{"type":"portmap"}');
  const report = runCheck({ confDir, binDirs: [], maxFileSize: 1 << 20 });
  const summary = Object.fromEntries(
    Object.entries(report.profiles).map(([profile, p]) => [
      profile,
      `${p.libcni} ${p.files.map((f) => `${f.file}=${f.status}`).join(',')} ready=${p.verdict.ready}`,
    ]),
  );
  assert.deepEqual(summary, {
    isulad: 'v1.3.1 10-n.conflist=rejected ready=false',
    'containerd-1.7': 'v1.1.2 10-n.conflist=rejected ready=false',
    'containerd-2.0': 'v1.2.3 10-n.conflist=rejected ready=false',
    'containerd-2.1': 'v1.3.1 10-n.conflist=accepted ready=true',
    crio: 'v1.3.1 10-n.conflist=accepted ready=false', // CRI-O also needs the plugin binaries
  });
  assert.match(report.profiles['containerd-1.7'].files[0]?.error ?? '', /invalid disableCheck type string/);
  assert.match(report.profiles['containerd-2.0'].files[0]?.error ?? '', /no 'plugins' key/);
  assert.equal(report.verdicts['containerd-2.1'].network, 'n');
});
