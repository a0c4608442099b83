// The daemon's own log: one line per event on stderr, as text for people or
// JSON lines for collectors (`--log-format`). Service output arrives here too,
// through $log, so the journal of a systemd unit holds everything.

import type { Logger, LogFields } from '../dataspace/index.ts';

export type LogFormat = 'text' | 'json';
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface DaemonLog extends Logger {
  info(msg: string, fields?: LogFields): void;
  debug(msg: string, fields?: LogFields): void;
  log(level: LogLevel, msg: string, fields?: LogFields): void;
}

function textValue(v: unknown): string {
  if (typeof v === 'string') return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
  if (v instanceof Error) return JSON.stringify(v.message);
  if (typeof v === 'object' && v !== null) return JSON.stringify(v);
  return String(v);
}

export function createDaemonLog(
  format: LogFormat,
  write: (line: string) => void,
  now: () => Date = () => new Date(),
  minLevel: LogLevel = 'info',
): DaemonLog {
  const order: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };
  const log = (level: LogLevel, msg: string, fields: LogFields = {}) => {
    if (order[level] < order[minLevel]) return;
    const time = now().toISOString();
    if (format === 'json') {
      const obj: { [k: string]: unknown } = { time, level, msg };
      for (const [k, v] of Object.entries(fields)) {
        obj[k] = v instanceof Error ? v.message : typeof v === 'bigint' ? v.toString() : v;
      }
      write(JSON.stringify(obj) + '\n');
    } else {
      const extra = Object.entries(fields)
        .map(([k, v]) => ` ${k}=${textValue(v)}`)
        .join('');
      write(`${time} ${level.padEnd(5)} ${msg}${extra}\n`);
    }
  };
  return {
    log,
    debug: (m, f) => log('debug', m, f),
    info: (m, f) => log('info', m, f),
    warn: (m, f) => log('warn', m, f),
    error: (m, f) => log('error', m, f),
  };
}
