// Command-line flags: one table per command, each flag also settable as the environment
// variable CRI_NETSTATUS_<FLAG_IN_CAPS>. A bad value is a one-line error naming the flag and
// what it accepts.
import { errorText } from '../util/text.js';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { UsageError } from '../errors.js';

export interface FlagSpec<T> {
  description: string;
  /** Shown in help and parsed when neither the flag nor its env var is set. */
  default?: string;
  /** What the flag accepts, for help and errors. */
  accepts?: string;
  short?: string;
  boolean?: boolean;
  env?: string | false;
  parse: (raw: string) => T;
}

export type FlagTable = Record<string, FlagSpec<unknown>>;
/** Parsed values: a flag with a default always has a value, one without may be undefined. */
export type FlagValues<Table extends FlagTable> = {
  [K in keyof Table]: Table[K] extends FlagSpec<infer T>
    ? Table[K] extends { default: string }
      ? T
      : T | undefined
    : never;
};

export function envName(flag: string): string {
  return `CRI_NETSTATUS_${flag.replace(/-/g, '_').toUpperCase()}`;
}

export function parseFlags<Table extends FlagTable>(
  command: string,
  table: Table,
  argv: string[],
  env: NodeJS.ProcessEnv,
): FlagValues<Table> {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: Object.fromEntries(
        Object.entries(table).map(([name, spec]) => [
          name,
          {
            type: spec.boolean ? ('boolean' as const) : ('string' as const),
            ...(spec.short ? { short: spec.short } : {}),
          },
        ]),
      ),
    });
  } catch (error) {
    throw new UsageError(
      `cri-netstatus ${command}: ${error instanceof Error ? error.message.replace(/\. To specify.*$/s, '') : String(error)}; see cri-netstatus ${command} --help`,
    );
  }
  const values: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(table)) {
    const given = parsed.values[name];
    const fromEnv = spec.env === false ? undefined : env[spec.env ?? envName(name)];
    let raw: string | undefined;
    let source: string;
    if (given !== undefined) {
      raw = String(given);
      source = `--${name}`;
    } else if (fromEnv !== undefined) {
      raw = fromEnv;
      source = `--${name} (from $${spec.env === false ? '' : (spec.env ?? envName(name))})`;
    } else {
      raw = spec.default;
      source = `--${name}`;
    }
    if (raw === undefined) {
      values[name] = undefined;
      continue;
    }
    try {
      values[name] = spec.parse(raw);
    } catch (error) {
      const why = errorText(error);
      throw new UsageError(
        `cri-netstatus ${command}: ${source}: ${why}${spec.accepts ? `; accepts ${spec.accepts}` : ''}`,
      );
    }
  }
  return values as FlagValues<Table>;
}

export function helpText(command: string, summary: string, table: FlagTable): string {
  const lines = [`Usage: cri-netstatus ${command} [flags]`, '', summary, '', 'Flags:'];
  for (const [name, spec] of Object.entries(table)) {
    const flag = `${spec.short ? `-${spec.short}, ` : '    '}--${name}${spec.boolean ? '' : ' VALUE'}`;
    const meta = [
      spec.accepts ? `accepts ${spec.accepts}` : '',
      !spec.boolean && spec.default !== undefined && spec.default !== '' ? `default ${spec.default}` : '',
      spec.env === false ? '' : `env ${spec.env ?? envName(name)}`,
    ]
      .filter(Boolean)
      .join('; ');
    lines.push(`  ${flag.padEnd(34)} ${spec.description}${meta ? ` (${meta})` : ''}`);
  }
  return `${lines.join('\n')}\n`;
}

/** `-h, --help`, the same on every command. */
export const helpFlag = {
  description: 'show this help',
  boolean: true,
  short: 'h',
  env: false,
  default: 'false',
  parse: (raw: string): boolean => raw === 'true',
} as const;

// Value parsers. Each throws with a short reason; parseFlags adds the flag and what it accepts.

export const text = (raw: string): string => raw;

export function nonEmpty(raw: string): string {
  if (raw.trim() === '') throw new Error('must not be empty');
  return raw;
}

export function oneOf<const T extends string>(choices: readonly T[]) {
  return (raw: string): T => {
    if (!(choices as readonly string[]).includes(raw))
      throw new Error(`"${raw}" is not one of ${choices.join(', ')}`);
    return raw as T;
  };
}

export function list(raw: string): string[] {
  const items = raw
    .split(',')
    .map((item) => item.trim())
    .filter(Boolean);
  if (items.length === 0) throw new Error('must name at least one directory');
  return items;
}

const UNITS_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Go-style durations: 300ms, 30s, 5m, 1h30m; 0 means off. */
export function duration(raw: string): number {
  if (raw === '0') return 0;
  const parts = [...raw.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== raw)
    throw new Error(`"${raw}" is not a duration`);
  return parts.reduce((total, [, value, unit]) => total + Number(value) * (UNITS_MS[unit ?? 's'] ?? 0), 0);
}

/** Sizes: 1048576, 512Ki, 1Mi. */
export function size(raw: string): number {
  const match = /^(\d+)(Ki|Mi|Gi)?$/.exec(raw);
  if (!match) throw new Error(`"${raw}" is not a size`);
  const factor = { Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3 }[match[2] ?? ''] ?? 1;
  const bytes = Number(match[1]) * factor;
  if (bytes < 1) throw new Error('must be at least 1 byte');
  return bytes;
}

export function fileMode(raw: string): number {
  if (!/^0?[0-7]{3}$/.test(raw)) throw new Error(`"${raw}" is not an octal file mode`);
  return parseInt(raw, 8);
}

export interface HostPort {
  host: string;
  port: number;
}

/** host:port, [v6]:port or :port (all interfaces); "off" disables the endpoint. */
export function hostPort(raw: string): HostPort | undefined {
  if (raw === 'off' || raw === '') return undefined;
  const match = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(raw);
  const port = Number(match?.[3]);
  if (!match || port > 65535) throw new Error(`"${raw}" is not host:port`);
  return { host: match[1] ?? (match[2] || '0.0.0.0'), port };
}

/** A unix socket path, with or without the unix:// scheme; relative paths resolve from the working dir. */
export function unixEndpoint(raw: string): string {
  const path = raw.startsWith('unix://') ? raw.slice('unix://'.length) : raw;
  if (path === '' || /^[a-z]+:\/\//.test(path)) throw new Error(`"${raw}" is not a unix socket path`);
  return resolve(path);
}

/** How a flag parser warns: one line on stderr (flags are read before the logger exists). */
export function warnFlag(line: string): void {
  process.stderr.write(`cri-netstatus: warning: ${line}\n`);
}
