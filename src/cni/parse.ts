// Parsing and validation of one CNI config file, following libcni (containernetworking/cni
// libcni/conf.go): `.conf`/`.json` hold one plugin and are up-converted to a list
// (ConfListFromConf); `.conflist` needs a string `name` and non-empty `plugins`, each with a
// `type`. Messages keep libcni's wording and add where in the file the problem is.
import type { LoadResult, NetworkConfig, PluginConfig } from './types.js';

/** libcni's network name rule (pkg/utils: `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`), checked at ADD time. */
const VALID_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
/** Spec versions libcni knows (pkg/version.All). */
const KNOWN_VERSIONS = new Set(['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0']);
const SEMVER = /^\d+\.\d+\.\d+$/;

type JsonObject = Record<string, unknown>;

export function isListFile(file: string): boolean {
  return file.endsWith('.conflist');
}

export function parseConfig(file: string, bytes: Buffer): LoadResult {
  const list = isListFile(file);
  const prefix = list ? 'error parsing configuration list' : 'error parsing configuration';
  const text = bytes.toString('utf8');
  const json = parseJson(text);
  if (!json.ok) return invalid('parse_error', `${prefix}: ${json.message}`);
  return list ? parseList(json.value, text) : parseSingle(json.value, text);
}

function parseList(value: unknown, source: string): LoadResult {
  const prefix = 'error parsing configuration list';
  // A top-level null decodes into a nil map in Go, so libcni reports the missing name.
  if (value === null) return invalid('invalid_config', `${prefix}: no name`);
  if (!isObject(value)) return invalid('invalid_config', `${prefix}: ${notAnObject(value)}`);
  if (!('name' in value)) return invalid('invalid_config', `${prefix}: no name`);
  const { name, cniVersion } = value;
  if (typeof name !== 'string')
    return invalid('invalid_config', `${prefix}: invalid name type ${goDynamicType(name)}`);
  if (cniVersion !== undefined && typeof cniVersion !== 'string') {
    return invalid('invalid_config', `${prefix}: invalid cniVersion type ${goDynamicType(cniVersion)}`);
  }
  const versions = readCniVersions(value.cniVersions);
  if (typeof versions === 'string') return invalid('invalid_config', `${prefix}: ${versions}`);
  for (const key of ['disableCheck', 'disableGC', 'loadOnlyInlinedPlugins']) {
    const problem = checkBool(value[key], key);
    if (problem) return invalid('invalid_config', `${prefix}: ${problem}`);
  }
  const { plugins } = value;
  if (plugins === undefined) {
    return invalid(
      'invalid_config',
      `${prefix}: no 'plugins' key: a .conflist needs "plugins": [{"type": ...}]`,
    );
  }
  if (!Array.isArray(plugins)) {
    return invalid('invalid_config', `${prefix}: invalid 'plugins' type ${goDynamicType(plugins)}`);
  }
  if (plugins.length === 0) return invalid('invalid_config', `${prefix}: no plugins in list`);
  const parsed: PluginConfig[] = [];
  for (const [index, plugin] of plugins.entries()) {
    const type = pluginType(plugin);
    if (typeof type !== 'string') {
      return invalid(
        'invalid_config',
        `failed to parse plugin config ${index}: error parsing configuration: ${type.problem}`,
      );
    }
    parsed.push({ type });
  }
  const effectiveVersion = highestVersion([...versions, ...(cniVersion ? [cniVersion] : [])]) ?? '';
  return accepted({ name, cniVersion: effectiveVersion, plugins: parsed, source, warnings: [] });
}

function parseSingle(value: unknown, source: string): LoadResult {
  const prefix = 'error parsing configuration';
  const type = pluginType(value);
  if (typeof type !== 'string') {
    const hint =
      isObject(value) && Array.isArray(value.plugins)
        ? ' (this looks like a configuration list: name the file .conflist)'
        : '';
    return invalid('invalid_config', `${prefix}: ${type.problem}${hint}`);
  }
  const object = value as JsonObject;
  const name = goField(object, 'name');
  const cniVersion = goField(object, 'cniVersion');
  if (name !== undefined && typeof name !== 'string') {
    return invalid(
      'invalid_config',
      `${prefix}: json: cannot unmarshal ${goType(name)} into Go struct field .name of type string`,
    );
  }
  if (cniVersion !== undefined && typeof cniVersion !== 'string') {
    return invalid(
      'invalid_config',
      `${prefix}: json: cannot unmarshal ${goType(cniVersion)} into Go struct field .cniVersion of type string`,
    );
  }
  return accepted({
    name: name ?? '',
    cniVersion: cniVersion ?? '',
    plugins: [{ type }],
    source,
    warnings: [],
  });
}

/** libcni decodes plugins into a Go struct, so `type` must be a non-empty string (keys match case-insensitively). */
function pluginType(value: unknown): string | { problem: string } {
  if (value === null) return { problem: "missing 'type'" };
  if (!isObject(value))
    return { problem: `json: cannot unmarshal ${goType(value)} into Go value of type types.PluginConf` };
  const type = goField(value, 'type');
  if (type === undefined || type === '') return { problem: "missing 'type'" };
  if (typeof type !== 'string') {
    return { problem: `json: cannot unmarshal ${goType(type)} into Go struct field .type of type string` };
  }
  return type;
}

/** encoding/json field matching: the exact key wins, else the first case-insensitive match. */
function goField(object: JsonObject, key: string): unknown {
  if (key in object) return object[key];
  const lower = key.toLowerCase();
  const match = Object.keys(object).find((k) => k.toLowerCase() === lower);
  return match === undefined ? undefined : object[match];
}

function readCniVersions(value: unknown): string[] | string {
  if (value === undefined) return [];
  if (!Array.isArray(value)) return 'invalid cniVersions type []interface {}';
  const versions: string[] = [];
  for (const entry of value) {
    if (typeof entry !== 'string') return `invalid cniVersions entry type ${goDynamicType(entry)}`;
    if (!SEMVER.test(entry)) return `failed to parse cniVersions entry "${entry}": not a semantic version`;
    // libcni drops versions newer than the spec it implements.
    if (compareVersions(entry, '1.1.0') <= 0) versions.push(entry);
  }
  return versions;
}

function checkBool(value: unknown, key: string): string | undefined {
  if (value === undefined || typeof value === 'boolean') return undefined;
  if (typeof value === 'string') {
    return ['true', 'false'].includes(value.toLowerCase())
      ? undefined
      : `invalid value "${value}" for ${key}`;
  }
  return `invalid type ${goDynamicType(value)} for ${key}`;
}

function highestVersion(versions: string[]): string | undefined {
  return versions.reduce<string | undefined>(
    (best, v) => (best === undefined || (SEMVER.test(v) && compareVersions(v, best) > 0) ? v : best),
    undefined,
  );
}

function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** Findings libcni does not reject at load but that fail at pod creation. */
function warningsFor(config: NetworkConfig): string[] {
  const warnings: string[] = [];
  if (config.name === '')
    warnings.push('network has no name; pod creation will fail with "missing network name"');
  else if (!VALID_NAME.test(config.name)) {
    warnings.push(
      `network name "${config.name}" has characters CNI rejects at pod creation (allowed: ${VALID_NAME.source})`,
    );
  }
  if (config.cniVersion === '') warnings.push('no cniVersion; plugins treat it as 0.1.0');
  else if (!KNOWN_VERSIONS.has(config.cniVersion)) {
    warnings.push(
      `cniVersion "${config.cniVersion}" is not a CNI spec version (${[...KNOWN_VERSIONS].join(', ')})`,
    );
  }
  for (const { type } of config.plugins) {
    if (type.includes('/'))
      warnings.push(`plugin type "${type}" contains a path separator; CNI refuses to run it`);
  }
  return warnings;
}

function accepted(config: NetworkConfig): LoadResult {
  return { ok: true, config: { ...config, warnings: warningsFor(config) } };
}

function invalid(reason: 'parse_error' | 'invalid_config', message: string): LoadResult {
  return { ok: false, error: { reason, message } };
}

type JsonResult = { ok: true; value: unknown } | { ok: false; message: string };

/** JSON.parse with the failure located by line and column, and the common causes named. */
export function parseJson(text: string): JsonResult {
  if (text.charCodeAt(0) === 0xfeff) {
    return { ok: false, message: 'the file starts with a UTF-8 byte order mark; save it without a BOM' };
  }
  if (text.trim() === '') return { ok: false, message: 'unexpected end of JSON input (the file is empty)' };
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch (error) {
    const raw = error instanceof Error ? error.message : String(error);
    return { ok: false, message: describeJsonError(text, raw) };
  }
}

function describeJsonError(text: string, raw: string): string {
  const detail = raw.replace(/ in JSON at position \d+.*$/s, '').replace(/, ".*" is not valid JSON$/s, '');
  const position = /at position (\d+)/.exec(raw)?.[1];
  // V8 reports a cut-off file either as "end of input" or as an error at its very last position.
  if (
    /Unexpected end of JSON input/i.test(raw) ||
    position === undefined ||
    Number(position) >= text.trimEnd().length
  ) {
    const { line, column } = locate(text, text.length);
    return `unexpected end of JSON input at line ${line}, column ${column} (the file is truncated or still being written)`;
  }
  const { line, column } = locate(text, Number(position));
  return `invalid JSON at line ${line}, column ${column}: ${detail}`;
}

function locate(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  const column = offset - before.lastIndexOf('\n');
  return { line, column };
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function notAnObject(value: unknown): string {
  return `json: cannot unmarshal ${goType(value)} into Go value of type map[string]interface {}`;
}

type JsonKind = 'null' | 'array' | 'number' | 'boolean' | 'string' | 'object';

function jsonKind(value: unknown): JsonKind {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  const type = typeof value;
  return type === 'number' || type === 'boolean' || type === 'string' ? type : 'object';
}

/** How Go names a JSON value: in encoding/json's unmarshal errors, and as `%T` of an interface{} (libcni). */
const GO_UNMARSHAL_NAME: Record<JsonKind, string> = {
  null: 'null',
  array: 'array',
  number: 'number',
  boolean: 'bool',
  string: 'string',
  object: 'object',
};
const GO_DYNAMIC_NAME: Record<JsonKind, string> = {
  null: '<nil>',
  array: '[]interface {}',
  number: 'float64',
  boolean: 'bool',
  string: 'string',
  object: 'map[string]interface {}',
};

/** The Go type name encoding/json would report for a JSON value. */
function goType(value: unknown): string {
  return GO_UNMARSHAL_NAME[jsonKind(value)];
}

/** Go's `%T` of a value decoded into interface{}, as libcni prints it. */
function goDynamicType(value: unknown): string {
  return GO_DYNAMIC_NAME[jsonKind(value)];
}
