// Engine errors in tests. The engine catches whatever its logger throws (a
// broken logger must not break it), so a logger whose `error` calls assert.fail
// can never fail a test, and a silent one hides every failed turn. Tests give
// the engine a RecordingLogger instead and check it when they end: an error the
// test did not declare with expectError() fails the test, with every error seen.
// Harnesses in another process forward their log lines here (record()).

import { after } from 'node:test';
import {
  Engine,
  type EngineOptions,
  type LogFields,
  type Logger,
} from '../../src/dataspace/index.ts';

export type LogLevel = 'error' | 'warn' | 'info';

export interface LogEntry {
  readonly level: LogLevel;
  readonly message: string;
  readonly fields?: LogFields | undefined;
}

export class UnexpectedEngineErrorsError extends Error {
  override name = 'UnexpectedEngineErrorsError';
}

export class RecordingLogger implements Logger {
  readonly entries: LogEntry[] = [];
  readonly #expected: RegExp[] = [];

  error(message: string, fields?: LogFields): void {
    this.record('error', message, fields);
  }
  warn(message: string, fields?: LogFields): void {
    this.record('warn', message, fields);
  }
  info(message: string, fields?: LogFields): void {
    this.record('info', message, fields);
  }
  record(level: LogLevel, message: string, fields?: LogFields): void {
    this.entries.push({ level, message, fields });
  }

  /** Errors matching `re` are part of what the test checks, not failures. */
  expectError(re: RegExp): void {
    this.#expected.push(re);
  }

  /** Every error logged so far, with its fields (an error's message, a facet's origin). */
  errors(): string[] {
    return this.entries.filter((e) => e.level === 'error').map(describeEntry);
  }

  /** Errors that no expectError() pattern matches. */
  unexpected(): string[] {
    return this.errors().filter((e) => !this.#expected.some((re) => re.test(e)));
  }

  /** Throws, listing them, if an unexpected error was logged. */
  check(): void {
    const bad = this.unexpected();
    if (bad.length > 0) {
      throw new UnexpectedEngineErrorsError(
        `${bad.length} unexpected engine error(s) were logged:\n  ${bad.join('\n  ')}`,
      );
    }
  }
}

function describeEntry(e: LogEntry): string {
  if (e.fields === undefined) return e.message;
  const extra = Object.entries(e.fields)
    .filter(([k]) => k !== 'facet')
    .map(([k, v]) => `${k}: ${v instanceof Error ? v.message : JSON.stringify(v)}`);
  return extra.length === 0 ? e.message : `${e.message} (${extra.join(', ')})`;
}

/** What registers a hook that runs when a test or suite ends: a TestContext, or `{ after }`. */
export interface AfterHook {
  after(fn: () => void | Promise<void>): void;
}

/**
 * An Engine with a RecordingLogger that is checked when the test ends (after the
 * engine's queue has drained): `t` is the test's context, or by default node:test's
 * `after`, which attaches to the test (or suite) that is running. The check runs
 * before teardown registered later; a test whose own teardown must run first calls
 * `log.check()` at its end instead.
 */
export function checkedEngine(
  t: AfterHook = { after },
  options: Omit<EngineOptions, 'logger'> = {},
): { engine: Engine; log: RecordingLogger } {
  const log = new RecordingLogger();
  const engine = new Engine({ ...options, logger: log });
  t.after(async () => {
    await engine.sync();
    log.check();
  });
  return { engine, log };
}
