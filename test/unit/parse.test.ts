import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseConfig } from '../../src/cni/parse.js';
import type { LoadResult } from '../../src/cni/types.js';

function ok(result: LoadResult) {
  assert.ok(result.ok, `expected the config to load, got ${result.ok ? '' : result.error.message}`);
  return result.config;
}

function failure(result: LoadResult) {
  assert.ok(!result.ok, 'expected the config to be rejected');
  return result.error;
}

const parse = (file: string, text: string) => parseConfig(file, Buffer.from(text));

test('a .conflist with name and typed plugins loads', () => {
  const config = ok(
    parse(
      '10-a.conflist',
      '{"cniVersion":"1.0.0","name":"cbr0","plugins":[{"type":"flannel"},{"type":"portmap"}]}',
    ),
  );
  assert.equal(config.name, 'cbr0');
  assert.equal(config.cniVersion, '1.0.0');
  assert.deepEqual(
    config.plugins.map((p) => p.type),
    ['flannel', 'portmap'],
  );
  assert.deepEqual(config.warnings, []);
});

test('a .conf is up-converted to a one-plugin list, name and type matched case-insensitively like Go', () => {
  const config = ok(parse('10-a.conf', '{"cniVersion":"0.3.1","NAME":"net","Type":"bridge"}'));
  assert.equal(config.name, 'net');
  // libcni's InjectConf works on a map: "NAME" stays beside the injected "name", keys sorted by bytes.
  assert.deepEqual(config.plugins, [
    { type: 'bridge', conf: '{"NAME":"net","Type":"bridge","cniVersion":"0.3.1","name":"net"}' },
  ]);
});

test('libcni list rules, with libcni wording', () => {
  const cases: [string, string, string][] = [
    ['{"plugins":[{"type":"a"}]}', 'invalid_config', 'error parsing configuration list: no name'],
    ['null', 'invalid_config', 'error parsing configuration list: no name'],
    ['{"name":5,"plugins":[]}', 'invalid_config', 'invalid name type float64'],
    [
      '{"name":"n","cniVersion":1,"plugins":[{"type":"a"}]}',
      'invalid_config',
      'invalid cniVersion type float64',
    ],
    ['{"name":"n"}', 'invalid_config', 'no plugin configs found'],
    ['{"name":"n","plugins":{}}', 'invalid_config', "invalid 'plugins' type map[string]interface {}"],
    ['{"name":"n","plugins":[]}', 'invalid_config', 'no plugins in list'],
    [
      '{"name":"n","plugins":[{"type":"a"},{}]}',
      'invalid_config',
      "failed to parse plugin config 1: error parsing configuration: missing 'type'",
    ],
    ['{"name":"n","plugins":[null]}', 'invalid_config', "missing 'type'"],
    [
      '{"name":"n","disableCheck":"maybe","plugins":[{"type":"a"}]}',
      'invalid_config',
      'invalid value "maybe" for disableCheck',
    ],
    [
      '{"name":"n","cniVersions":["1.0.f"],"plugins":[{"type":"a"}]}',
      'invalid_config',
      'invalid cniVersions entry 1.0.f at index 0: failed to convert micro version part "f": strconv.Atoi: parsing "f": invalid syntax',
    ],
    ['[1,2]', 'invalid_config', 'cannot unmarshal array'],
    [
      '{"name":"n","plugins":[{"type":"a"}],}',
      'parse_error',
      "error parsing configuration list: invalid character '}' looking for beginning of object key string (line 1, column 38)",
    ],
  ];
  for (const [text, reason, message] of cases) {
    const error = failure(parse('x.conflist', text));
    assert.equal(error.reason, reason, text);
    assert.ok(error.message.includes(message), `${text}: "${error.message}" should include "${message}"`);
  }
});

test('string booleans and cniVersions are accepted as libcni does', () => {
  const config = ok(
    parse(
      'x.conflist',
      '{"name":"n","disableCheck":"TRUE","cniVersions":["0.4.0","1.0.0","9.9.9"],"plugins":[{"type":"a"}]}',
    ),
  );
  assert.equal(
    config.cniVersion,
    '1.0.0',
    'versions newer than the spec are dropped, the highest remaining wins',
  );
});

test('a conflist saved as .conf is rejected with a hint (containerd#11076)', () => {
  const error = failure(parse('10-calico.conf', '{"name":"k8s-pod-network","plugins":[{"type":"calico"}]}'));
  assert.match(error.message, /missing 'type'.*name the file \.conflist/);
});

test("truncated, empty, BOM and commented files: Go's scanner message, then line and column", () => {
  const truncated = failure(parse('a.conflist', '{\n  "name": "n",\n  "plugins": [{"type"'));
  assert.equal(truncated.reason, 'parse_error');
  assert.equal(
    truncated.message,
    'error parsing configuration list: unexpected end of JSON input (line 3, column 22: the file ends early; is it truncated or still being written?)',
  );
  assert.equal(
    failure(parse('a.conflist', '')).message,
    'error parsing configuration list: unexpected end of JSON input (the file is empty)',
  );
  assert.match(
    failure(parse('a.conflist', '\ufeff{"name":"n"}')).message,
    /^error parsing configuration list: invalid character 'ï' looking for beginning of value \(line 1, column 1: .*byte order mark/,
  );
  const comment = failure(parse('a.conflist', '{\n // comment\n "name": "n"}')).message;
  assert.equal(
    comment,
    "error parsing configuration list: invalid character '/' looking for beginning of object key string (line 2, column 2)",
  );
  assert.doesNotMatch(comment, /truncated/, 'the half-written hint only when the file really ends early');
  assert.equal(
    failure(parse('a.conflist', '{"name":"n","plugins":[{"type":"a"}]}xyz')).message,
    "error parsing configuration list: invalid character 'x' after top-level value (line 1, column 38)",
  );
});

test('findings libcni only rejects at pod creation are warnings, not rejections', () => {
  const config = ok(
    parse('x.conflist', '{"cniVersion":"7.7.7","name":"bad name","plugins":[{"type":"../../sbin/reboot"}]}'),
  );
  assert.equal(config.warnings.length, 3);
  assert.match(config.warnings.join('\n'), /network name "bad name"/);
  assert.match(config.warnings.join('\n'), /cniVersion "7.7.7"/);
  assert.match(config.warnings.join('\n'), /path separator/);
});
