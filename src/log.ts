// Structured logs (pino). `--log-format text` prints the same records as one readable line each
// for terminals; JSON stays the default for log shippers.
import { pino } from 'pino';
import type { DestinationStream, Logger } from 'pino';

export type LogFormat = 'json' | 'text';
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

const LEVEL_NAMES: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO',
  40: 'WARN',
  50: 'ERROR',
  60: 'FATAL',
};

export function createLogger(
  level: LogLevel,
  format: LogFormat,
  stream: NodeJS.WritableStream = process.stderr,
): Logger {
  const destination: DestinationStream =
    format === 'text' ? textStream(stream) : { write: (line: string) => stream.write(line) };
  return pino(
    { level, base: { name: 'cri-netstatus' }, timestamp: pino.stdTimeFunctions.isoTime },
    destination,
  );
}

function textStream(stream: NodeJS.WritableStream): DestinationStream {
  return {
    write(line: string) {
      const { time, level, msg, ...fields } = JSON.parse(line) as Record<string, unknown>;
      delete fields.name;
      const extra = Object.entries(fields)
        .map(
          ([key, value]) =>
            `${key}=${typeof value === 'string' && !/\s/.test(value) ? value : JSON.stringify(value)}`,
        )
        .join(' ');
      stream.write(
        `${String(time)} ${LEVEL_NAMES[Number(level)] ?? String(level)} ${String(msg)}${extra ? ` ${extra}` : ''}\n`,
      );
    },
  };
}

export type { Logger };
