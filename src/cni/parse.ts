// Parsing and validation of one CNI config file exactly as the runtime's libcni and go-cni do
// (libcni.ts, on Go's encoding/json in gojson.ts): `.conf`/`.json` hold one plugin and are
// up-converted to a list (ConfFromFile, then ConfListFromConf); `.conflist` goes through
// ConfListFromBytes. Each runtime profile names the libcni release it vendors. Messages are
// libcni's text, word for word, followed by our hint in parentheses: where in the file, and why.
import { lineAndColumn, marshalValue } from './gojson.js';
import type { GoValue } from './gojson.js';
import { confListFromBytes, confListFromConf, NEWEST_LIBCNI, pluginConfFromBytes } from './libcni.js';
import type { ConfList, LibcniFailure, LibcniVersion } from './libcni.js';
import type { DirPlugins } from './dirplugins.js';
import type { LoadResult, NetworkConfig } from './types.js';

/** libcni's network name rule (pkg/utils: `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`), checked at ADD time. */
const VALID_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
/** Spec versions libcni knows (pkg/version.All). */
const KNOWN_VERSIONS = new Set(['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0']);

/** go-cni decides by suffix: `.conflist` is a list, `.conf` and `.json` are single plugins. */
export function isListFile(file: string): boolean {
  return file.endsWith('.conflist');
}

/**
 * One file as `version` of libcni loads it through go-cni. `dirPlugins`, when the runtime loads
 * libcni v1.3's `<dir>/<name>/*.conf` plugins (ConfListFromFile), reads them for a list.
 */
export function parseConfig(
  file: string,
  bytes: Buffer,
  version: LibcniVersion = NEWEST_LIBCNI,
  dirPlugins?: (network: string) => DirPlugins,
): LoadResult {
  if (isListFile(file)) {
    const list = confListFromBytes(bytes, version);
    if (!list.ok) return rejected(bytes, list.error, listHint(list.error));
    if (version === '1.3.1' && !list.value.loadOnlyInlinedPlugins) {
      const extra = dirPlugins?.(list.value.name);
      if (extra?.error) return rejected(bytes, { message: extra.error });
      list.value.plugins.push(...(extra?.plugins ?? []));
      if (list.value.plugins.length === 0) {
        return rejected(
          bytes,
          { message: 'no plugin configs found' },
          'the list has no "plugins" and no plugin files',
        );
      }
    }
    return fromList(list.value, bytes);
  }
  const plugin = pluginConfFromBytes(bytes, version);
  if (!plugin.ok) return rejected(bytes, plugin.error, confHint(plugin.error, bytes));
  const list = confListFromConf(bytes, plugin.value, version);
  if (!list.ok) return rejected(bytes, list.error, undefined, true);
  return fromList(list.value, bytes);
}

function fromList(list: ConfList, bytes: Buffer): LoadResult {
  return accepted({
    name: list.name,
    cniVersion: list.cniVersion,
    plugins: list.plugins.map(({ type, raw }) => ({
      type,
      conf: statusConf(raw, list.name, list.cniVersion),
    })),
    source: bytes.toString('utf8'),
    warnings: [],
  });
}

/**
 * The plugin's config as libcni's GetStatusNetworkList hands it to the plugin: InjectConf sets the
 * list's name and cniVersion, and json.Marshal writes the map back (keys deduplicated and sorted).
 */
function statusConf(raw: GoValue | undefined, name: string, cniVersion: string): string {
  const entries: Array<[string, GoValue]> = raw?.kind === 'object' ? [...raw.entries] : [];
  entries.push(['name', { kind: 'string', at: 0, value: name }]);
  entries.push(['cniVersion', { kind: 'string', at: 0, value: cniVersion }]);
  return marshalValue({ kind: 'object', at: 0, entries });
}

function rejected(bytes: Buffer, failure: LibcniFailure, hint?: string, converting?: boolean): LoadResult {
  const where = failure.offset === undefined ? undefined : locate(bytes, failure);
  const parts = [where, hint].filter((part): part is string => part !== undefined && part !== '');
  const full = parts.length ? `${failure.message} (${parts.join(': ')})` : failure.message;
  const reason = /^error parsing configuration(?: list)?: (invalid character|unexpected end)/.test(
    failure.message,
  )
    ? 'parse_error'
    : 'invalid_config';
  return {
    ok: false,
    error: {
      reason,
      message: full,
      libcni: failure.message,
      ...(converting ? { converting: true } : {}),
    },
  };
}

function locate(bytes: Buffer, failure: LibcniFailure): string {
  if (bytes.length === 0) return 'the file is empty';
  if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf && failure.offset === 0) {
    return 'line 1, column 1: the file starts with a UTF-8 byte order mark; save it without one';
  }
  const { line, column } = lineAndColumn(bytes, failure.offset ?? 0);
  const at = `line ${line}, column ${column}`;
  return failure.atEnd ? `${at}: the file ends early; is it truncated or still being written?` : at;
}

function listHint(failure: LibcniFailure): string | undefined {
  return failure.message.endsWith("no 'plugins' key")
    ? 'a .conflist needs "plugins": [{"type": ...}]'
    : undefined;
}

function confHint(failure: LibcniFailure, bytes: Buffer): string | undefined {
  return failure.message.endsWith("missing 'type'") && /"plugins"\s*:\s*\[/.test(bytes.toString('utf8'))
    ? 'this looks like a configuration list: name the file .conflist'
    : undefined;
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
