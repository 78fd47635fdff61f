// libcni's config decoding (containernetworking/cni libcni/conf.go and pkg/types), per release,
// on top of the Go-exact JSON in gojson.ts: the same checks in the same order and the same error
// texts, so an operator grepping the runtime's log finds the words we print. Releases differ:
//   v1.1.2 (containerd 1.6/1.7): disableCheck must be a JSON bool; `plugins` is required.
//   v1.2.3 (containerd 2.0): cniVersions, string booleans, disableGC; `cni.dev/valid-attachments`.
//   v1.3.1 (containerd 2.1+): `plugins` optional, loadOnlyInlinedPlugins, `<dir>/<name>/*.conf`.
import { checkValid, goQuote, parseValid } from './gojson.js';
import type { GoValue } from './gojson.js';

export const LIBCNI_VERSIONS = ['1.1.2', '1.2.3', '1.3.1'] as const;
export type LibcniVersion = (typeof LIBCNI_VERSIONS)[number];
export const NEWEST_LIBCNI: LibcniVersion = '1.3.1';

export interface LibcniFailure {
  /** libcni's error text, exactly. */
  message: string;
  /** Byte offset in the file the error is about, when we can tell. */
  offset?: number;
  /** The file ended before its JSON did. */
  atEnd?: boolean;
}

export type Decoded<T> = { ok: true; value: T } | { ok: false; error: LibcniFailure };

/** The fields of types.PluginConf (NetConf before v1.3) the agent uses. */
export interface PluginConf {
  type: string;
  name: string;
  cniVersion: string;
  /** The plugin's JSON as decoded (what libcni keeps as PluginConfig.Bytes), for its STATUS stdin. */
  raw?: GoValue;
}

export interface ConfList {
  name: string;
  cniVersion: string;
  plugins: PluginConf[];
  loadOnlyInlinedPlugins: boolean;
}

type GoType =
  | { kind: 'string' | 'bool' | 'any' }
  | { kind: 'slice' | 'map'; name: string; elem: GoType }
  | { kind: 'struct'; name: string; short: string; fields: Array<[string, GoType]> };

const STRING: GoType = { kind: 'string' };
const BOOL: GoType = { kind: 'bool' };
const STRINGS: GoType = { kind: 'slice', name: '[]string', elem: STRING };

/** types.PluginConf as each release declares it (field names are the JSON names). */
function pluginConfType(version: LibcniVersion): Extract<GoType, { kind: 'struct' }> {
  const fields: Array<[string, GoType]> = [
    ['cniVersion', STRING],
    ['name', STRING],
    ['type', STRING],
    ['capabilities', { kind: 'map', name: 'map[string]bool', elem: BOOL }],
    ['ipam', { kind: 'struct', name: 'types.IPAM', short: 'IPAM', fields: [['type', STRING]] }],
    [
      'dns',
      {
        kind: 'struct',
        name: 'types.DNS',
        short: 'DNS',
        fields: [
          ['nameservers', STRINGS],
          ['domain', STRING],
          ['search', STRINGS],
          ['options', STRINGS],
        ],
      },
    ],
    ['prevResult', { kind: 'map', name: 'map[string]interface {}', elem: { kind: 'any' } }],
  ];
  if (version !== '1.1.2') {
    const attachment: GoType = {
      kind: 'struct',
      name: 'types.GCAttachment',
      short: 'GCAttachment',
      fields: [
        ['containerID', STRING],
        ['ifname', STRING],
      ],
    };
    fields.push([
      'cni.dev/valid-attachments',
      { kind: 'slice', name: '[]types.GCAttachment', elem: attachment },
    ]);
  }
  const short = version === '1.3.1' ? 'PluginConf' : 'NetConf';
  return { kind: 'struct', name: `types.${short}`, short, fields };
}

const PLUGIN_TYPES = new Map(LIBCNI_VERSIONS.map((v) => [v, pluginConfType(v)]));

/** Parses a document; a syntax error comes back as libcni would wrap it. */
function parseDocument(data: Uint8Array, prefix: string): Decoded<GoValue> {
  const syntax = checkValid(data);
  if (syntax) {
    return {
      ok: false,
      error: {
        message: `${prefix}: ${syntax.message}`,
        // Go's offset counts the culprit byte; at the end, we point just past the last byte.
        offset: syntax.atEnd ? syntax.offset : syntax.offset - 1,
        atEnd: syntax.atEnd,
      },
    };
  }
  return { ok: true, value: parseValid(data) };
}

/** NetworkPluginConfFromBytes (ConfFromBytes): one plugin, which needs a `type`. */
export function pluginConfFromBytes(data: Uint8Array, version: LibcniVersion): Decoded<PluginConf> {
  const prefix = 'error parsing configuration';
  const doc = parseDocument(data, prefix);
  if (!doc.ok) return doc;
  return decodePlugin(doc.value, version);
}

function decodePlugin(value: GoValue, version: LibcniVersion): Decoded<PluginConf> {
  const prefix = 'error parsing configuration';
  const decoder = new StructDecoder();
  const conf: PluginConf = { type: '', name: '', cniVersion: '' };
  decoder.value(value, PLUGIN_TYPES.get(version) ?? pluginConfType(version), { stack: [] }, conf);
  if (decoder.error) {
    return { ok: false, error: { message: `${prefix}: ${decoder.error.message}`, offset: decoder.error.at } };
  }
  if (conf.type === '') return { ok: false, error: { message: `${prefix}: missing 'type'` } };
  return { ok: true, value: { ...conf, raw: value } };
}

/** NetworkConfFromBytes (ConfListFromBytes): a list, before any `<dir>/<name>/*.conf` plugins. */
export function confListFromBytes(data: Uint8Array, version: LibcniVersion): Decoded<ConfList> {
  const prefix = 'error parsing configuration list';
  const doc = parseDocument(data, prefix);
  if (!doc.ok) return doc;
  const raw = decodeInterfaceMap(doc.value);
  if (!raw.ok) return { ok: false, error: { ...raw.error, message: `${prefix}: ${raw.error.message}` } };
  return listFromMap(raw.value, version);
}

/**
 * ConfListFromConf: a `.conf` plugin up-converted to a list. libcni decodes the file again into a
 * map and re-encodes it, so keys are deduplicated and sorted before the plugin is decoded a second
 * time: `{"type":"","Type":"bridge"}` loads once (file order) and then fails (sorted order).
 */
export function confListFromConf(
  data: Uint8Array,
  plugin: PluginConf,
  version: LibcniVersion,
): Decoded<ConfList> {
  const value = parseValid(data);
  const raw = decodeInterfaceMap(value);
  if (!raw.ok) return raw;
  // Wrapped into {"plugins":[...]}, the plugin sits two levels deeper when the list is scanned.
  const deep = firstTooDeep(value, MAX_DEPTH - 2);
  if (deep) {
    return {
      ok: false,
      error: { message: `error parsing configuration list: invalid character '${deep}' exceeded max depth` },
    };
  }
  const list = new Map<string, GoValue>([
    ['name', { kind: 'string', at: 0, value: plugin.name }],
    ['cniVersion', { kind: 'string', at: 0, value: plugin.cniVersion }],
    ['plugins', { kind: 'array', at: 0, items: [value] }],
  ]);
  return listFromMap(list, version);
}

/** Go's scanner nesting limit. */
const MAX_DEPTH = 10000;

/**
 * The bracket that first nests deeper than `limit` when `value` is written out again by
 * json.Marshal (objects deduplicated, keys sorted), if any.
 */
function firstTooDeep(value: GoValue, limit: number): string | undefined {
  const pending: Array<[GoValue, number]> = [[value, 1]];
  while (pending.length > 0) {
    const [v, depth] = pending.pop() as [GoValue, number];
    if (v.kind !== 'object' && v.kind !== 'array') continue;
    if (depth > limit) return v.kind === 'object' ? '{' : '[';
    const children =
      v.kind === 'array'
        ? v.items
        : [...new Map(v.entries)].sort(([a], [b]) => compareUtf8(a, b)).map(([, c]) => c);
    for (let i = children.length - 1; i >= 0; i--) pending.push([children[i] as GoValue, depth + 1]);
  }
  return undefined;
}

/** json.Unmarshal into map[string]interface{}: any JSON, but numbers must fit a float64. */
function decodeInterfaceMap(value: GoValue): Decoded<Map<string, GoValue>> {
  if (value.kind === 'null') return { ok: true, value: new Map() };
  if (value.kind !== 'object') {
    return {
      ok: false,
      error: {
        message: `json: cannot unmarshal ${value.kind} into Go value of type map[string]interface {}`,
        offset: value.at,
      },
    };
  }
  const overflow = firstOverflow(value);
  if (overflow) {
    return {
      ok: false,
      error: {
        message: `json: cannot unmarshal number ${overflow.literal} into Go value of type float64`,
        offset: overflow.at,
      },
    };
  }
  // Later duplicates win, as they overwrite the map entry.
  return { ok: true, value: new Map(value.entries) };
}

/** The first number (in document order) that strconv.ParseFloat rejects as out of range. */
function firstOverflow(value: GoValue): Extract<GoValue, { kind: 'number' }> | undefined {
  const pending: GoValue[] = [value];
  while (pending.length > 0) {
    const v = pending.pop() as GoValue;
    if (v.kind === 'number' && !Number.isFinite(Number(v.literal))) return v;
    const children = v.kind === 'object' ? v.entries.map(([, c]) => c) : v.kind === 'array' ? v.items : [];
    for (let i = children.length - 1; i >= 0; i--) pending.push(children[i] as GoValue);
  }
  return undefined;
}

function listFromMap(raw: Map<string, GoValue>, version: LibcniVersion): Decoded<ConfList> {
  const prefix = 'error parsing configuration list';
  const fail = (message: string, offset?: number): Decoded<ConfList> => ({
    ok: false,
    error: { message: `${prefix}: ${message}`, ...(offset === undefined ? {} : { offset }) },
  });
  const rawName = raw.get('name');
  if (!rawName) return fail('no name');
  if (rawName.kind !== 'string') return fail(`invalid name type ${dynamicType(rawName)}`, rawName.at);
  let cniVersion = '';
  const rawVersion = raw.get('cniVersion');
  if (rawVersion) {
    if (rawVersion.kind !== 'string') {
      return fail(`invalid cniVersion type ${dynamicType(rawVersion)}`, rawVersion.at);
    }
    cniVersion = rawVersion.value;
  }
  let loadOnlyInlinedPlugins = false;
  if (version === '1.1.2') {
    const check = raw.get('disableCheck');
    if (check && check.kind !== 'bool')
      return fail(`invalid disableCheck type ${dynamicType(check)}`, check.at);
  } else {
    const versions = raw.get('cniVersions');
    if (versions) {
      const picked = pickVersion(versions, cniVersion);
      if (typeof picked !== 'string') return fail(picked.problem, picked.at);
      cniVersion = picked;
    }
    const keys = ['disableCheck', 'disableGC', ...(version === '1.3.1' ? ['loadOnlyInlinedPlugins'] : [])];
    for (const key of keys) {
      const value = readBool(raw.get(key), key);
      if (typeof value !== 'boolean') return fail(value.problem, value.at);
      if (key === 'loadOnlyInlinedPlugins') loadOnlyInlinedPlugins = value;
    }
  }
  const list: ConfList = { name: rawName.value, cniVersion, plugins: [], loadOnlyInlinedPlugins };
  const plugins = raw.get('plugins');
  if (!plugins) {
    if (version !== '1.3.1') return fail("no 'plugins' key");
    if (loadOnlyInlinedPlugins) return fail("`loadOnlyInlinedPlugins` is true, and no 'plugins' key");
    return { ok: true, value: list };
  }
  if (plugins.kind !== 'array') return fail(`invalid 'plugins' type ${dynamicType(plugins)}`, plugins.at);
  if (plugins.items.length === 0) return fail('no plugins in list', plugins.at);
  for (const [index, item] of plugins.items.entries()) {
    const plugin = decodePlugin(reencoded(item), version);
    if (!plugin.ok) {
      const offset = plugin.error.offset ?? item.at;
      return {
        ok: false,
        error: { message: `failed to parse plugin config ${index}: ${plugin.error.message}`, offset },
      };
    }
    list.plugins.push(plugin.value);
  }
  return { ok: true, value: list };
}

/**
 * A value as json.Marshal writes it back from interface{}: objects deduplicated, keys sorted.
 * Only the levels libcni's types reach matter (plugin, dns, valid-attachments entries); deeper
 * values are decoded as interface{}, where order cannot change the outcome.
 */
function reencoded(value: GoValue, depth = 0): GoValue {
  if (depth > 3) return value;
  if (value.kind === 'array') return { ...value, items: value.items.map((v) => reencoded(v, depth + 1)) };
  if (value.kind !== 'object') return value;
  const entries = [...new Map(value.entries)].map(([k, v]): [string, GoValue] => [
    k,
    reencoded(v, depth + 1),
  ]);
  entries.sort(([a], [b]) => compareUtf8(a, b));
  return { ...value, entries };
}

/** Go's string order: by UTF-8 bytes. */
function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

interface Problem {
  problem: string;
  at?: number;
}

/** libcni's readBool (v1.2+): a JSON bool, or the string "true"/"false" in any case. */
function readBool(value: GoValue | undefined, key: string): boolean | Problem {
  if (!value) return false;
  if (value.kind === 'bool') return value.value;
  if (value.kind !== 'string')
    return { problem: `invalid type ${dynamicType(value)} for ${key}`, at: value.at };
  const text = value.value.toLowerCase();
  if (text === 'true' || text === 'false') return text === 'true';
  return { problem: `invalid value ${goQuote(text)} for ${key}`, at: value.at };
}

/** The effective version from `cniVersions` (and `cniVersion`), as libcni v1.2+ picks it. */
function pickVersion(value: GoValue, cniVersion: string): string | Problem {
  // libcni prints %T of its own zero slice here, so the type is always []interface {}.
  if (value.kind !== 'array')
    return { problem: 'invalid type for cniVersions: []interface {}', at: value.at };
  const kept: string[] = [];
  for (const [index, entry] of value.items.entries()) {
    if (entry.kind !== 'string') {
      return { problem: `invalid type for cniVersions index ${index}: ${dynamicType(entry)}`, at: entry.at };
    }
    const gt = greaterThan(entry.value, CURRENT_SPEC);
    if (typeof gt !== 'boolean') {
      return {
        problem: `invalid cniVersions entry ${entry.value} at index ${index}: ${gt.problem}`,
        at: entry.at,
      };
    }
    if (!gt) kept.push(entry.value);
  }
  if (cniVersion !== '') {
    const gt = greaterThan(cniVersion, CURRENT_SPEC);
    if (typeof gt !== 'boolean') return { problem: `invalid cniVersion ${cniVersion}: ${gt.problem}` };
    if (!gt) kept.push(cniVersion);
  }
  // slices.SortFunc with libcni's comparator, which calls equal versions spelled differently
  // "less" both ways; Go's insertion sort (used up to 12 entries) decides which one ends last.
  const less = (a: string, b: string): boolean => a !== b && greaterThan(a, b) !== true;
  for (let i = 1; i < kept.length; i++) {
    for (let j = i; j > 0 && less(kept[j] ?? '', kept[j - 1] ?? ''); j--) {
      [kept[j], kept[j - 1]] = [kept[j - 1] ?? '', kept[j] ?? ''];
    }
  }
  return kept.length > 0 ? (kept[kept.length - 1] ?? cniVersion) : cniVersion;
}

/** pkg/version.Current(). */
const CURRENT_SPEC = '1.1.0';

/** pkg/version.GreaterThan. */
function greaterThan(a: string, b: string): boolean | Problem {
  const va = parseVersion(a);
  if (!Array.isArray(va)) return va;
  const vb = parseVersion(b);
  if (!Array.isArray(vb)) return vb;
  for (let i = 0; i < 3; i++) {
    if ((va[i] ?? 0) !== (vb[i] ?? 0)) return (va[i] ?? 0) > (vb[i] ?? 0);
  }
  return false;
}

/** pkg/version.GreaterThanOrEqualTo as GetStatusNetworkList uses it: a version it cannot parse is "no". */
export function versionAtLeast(version: string, minimum: string): boolean {
  const gt = greaterThan(minimum, version);
  return gt === false;
}

/** pkg/version.ParseVersion: lenient ("1.0" and "" are fine), each part through strconv.Atoi. */
export function parseVersion(version: string): [number, number, number] | Problem {
  if (version === '') return [0, 1, 0];
  const parts = version.split('.');
  if (parts.length >= 4) return { problem: `invalid version ${goQuote(version)}: too many parts` };
  const out: [number, number, number] = [0, 0, 0];
  const names = ['major', 'minor', 'micro'];
  for (const [i, part] of parts.entries()) {
    const n = atoi(part);
    if (typeof n !== 'number') {
      return { problem: `failed to convert ${names[i] ?? ''} version part ${goQuote(part)}: ${n.problem}` };
    }
    out[i] = n;
  }
  return out;
}

/** strconv.Atoi on 64-bit: optional sign, decimal digits, int64 range. */
function atoi(text: string): number | Problem {
  const bad = (why: string): Problem => ({ problem: `strconv.Atoi: parsing ${goQuote(text)}: ${why}` });
  if (!/^[+-]?[0-9]+$/.test(text)) return bad('invalid syntax');
  const n = BigInt(text);
  if (n > 9223372036854775807n || n < -9223372036854775808n) return bad('value out of range');
  return Number(n);
}

/** Go's `%T` of a JSON value decoded into interface{}. */
function dynamicType(value: GoValue): string {
  switch (value.kind) {
    case 'null':
      return '<nil>';
    case 'array':
      return '[]interface {}';
    case 'number':
      return 'float64';
    case 'object':
      return 'map[string]interface {}';
    default:
      return value.kind;
  }
}

/** Go's foldName for the field names libcni declares (all ASCII): K and ſ fold to ASCII too. */
function foldName(name: string): string {
  let out = '';
  for (const ch of name) {
    if (ch === '\u212a') out += 'K';
    else if (ch === '\u017f') out += 'S';
    else out += ch.length === 1 && ch < '\x80' ? ch.toUpperCase() : `\0${ch}`;
  }
  return out;
}

interface ErrorContext {
  struct?: string;
  stack: string[];
}

/**
 * json.Unmarshal into a Go type: keys match fields exactly or by Unicode simple folding, later
 * keys overwrite earlier ones, `null` leaves a field as it was, and a wrongly typed value is
 * skipped with its error saved; the first saved error (in document order) is what Go returns.
 */
class StructDecoder {
  error?: { message: string; at: number };

  value(value: GoValue, type: GoType, ctx: ErrorContext, top?: PluginConf): void {
    if (this.error || value.kind === 'null') return;
    switch (type.kind) {
      case 'any': {
        // interface{}: anything goes, but numbers become float64 (walked without recursion).
        const overflow = firstOverflow(value);
        if (overflow) this.fail(`number ${overflow.literal}`, 'float64', ctx, overflow.at);
        return;
      }
      case 'string':
      case 'bool':
        if (value.kind !== type.kind) this.fail(value.kind, type.kind, ctx, value.at);
        return;
      case 'slice':
        if (value.kind !== 'array') return this.fail(value.kind, type.name, ctx, value.at);
        for (const item of value.items) this.value(item, type.elem, ctx);
        return;
      case 'map':
        if (value.kind !== 'object') return this.fail(value.kind, type.name, ctx, value.at);
        for (const [, v] of value.entries) this.value(v, type.elem, ctx);
        return;
      case 'struct':
        if (value.kind !== 'object') return this.fail(value.kind, type.name, ctx, value.at);
        for (const [key, v] of value.entries) {
          const folded = foldName(key);
          const field =
            type.fields.find(([name]) => name === key) ??
            type.fields.find(([name]) => foldName(name) === folded);
          if (!field) continue;
          const [name, fieldType] = field;
          this.value(v, fieldType, { struct: type.short, stack: [...ctx.stack, name] });
          if (top && v.kind === 'string' && (name === 'type' || name === 'name' || name === 'cniVersion')) {
            top[name] = v.value;
          }
        }
        return;
    }
  }

  private fail(what: string, type: string, ctx: ErrorContext, at: number): void {
    if (this.error) return;
    const into =
      ctx.struct !== undefined || ctx.stack.length > 0
        ? `Go struct field ${ctx.struct ?? ''}.${ctx.stack.join('.')}`
        : 'Go value';
    this.error = { message: `json: cannot unmarshal ${what} into ${into} of type ${type}`, at };
  }
}
