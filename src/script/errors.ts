// Errors of the script language. A script's mistakes are found before it runs
// and reported together (ScriptCheckError, one problem per mistake, each located
// as file:line:col); what can only go wrong while running (ScriptRuntimeError)
// stops the facet that raised it and is logged by the engine.

import { UserError } from '../base/errors.ts';
import type { Position } from '../preserves/index.ts';

/** One mistake in a script: where it is and what to do about it. */
export interface ScriptProblem {
  /** Line 0 means the whole file (it could not be read, say). */
  readonly pos: Position;
  readonly message: string;
}

/** `file:line:col`, or just `file` for a position with no line. */
export function formatLocation(pos: Position): string {
  const file = pos.source ?? '<script>';
  return pos.line === 0 ? file : `${file}:${pos.line}:${pos.column}`;
}

/** `file:line:col: message`, or `file: message` for a problem with no line. */
export function formatProblem(p: ScriptProblem): string {
  return `${formatLocation(p.pos)}: ${p.message}`;
}

/** A position for a problem that concerns a whole file. */
export function filePosition(source: string): Position {
  return { source, line: 0, column: 0, offset: 0 };
}

/** A script that cannot be read, parsed or checked; `problems` lists every mistake found. */
export class ScriptCheckError extends UserError {
  readonly code = 'LIMEN_SCRIPT_CHECK';
  readonly source: string;
  readonly problems: readonly ScriptProblem[];
  constructor(source: string, problems: readonly ScriptProblem[]) {
    super(problems.map(formatProblem).join('\n'));
    this.source = source;
    this.problems = problems;
  }
}

/** A script instruction that failed while running (a `let` mismatch, a target that is not a ref...). */
export class ScriptRuntimeError extends UserError {
  readonly code = 'LIMEN_SCRIPT_RUNTIME';
  readonly pos: Position | undefined;
  /** The message without the position prefix. */
  readonly detail: string;
  constructor(detail: string, pos: Position | undefined) {
    super(pos === undefined ? detail : formatProblem({ pos, message: detail }));
    this.pos = pos;
    this.detail = detail;
  }
}

/** A path given to `limen check`, `limen eval` or a config watcher that does not exist. */
export class ScriptPathError extends UserError {
  readonly code = 'LIMEN_SCRIPT_PATH';
  readonly path: string;
  constructor(path: string, detail: string) {
    super(`${path}: ${detail}`);
    this.path = path;
  }
}

/** `4 MiB` for a whole number of MiB, else `N bytes`. */
export function sizeText(n: number): string {
  const mib = 1024 * 1024;
  return n >= mib && n % mib === 0 ? `${n / mib} MiB` : `${n} bytes`;
}

/** A script file larger than limen reads (MAX_SCRIPT_BYTES), refused before it is read. */
export class ScriptTooLargeError extends UserError {
  readonly code = 'LIMEN_SCRIPT_TOO_LARGE';
  readonly size: number;
  readonly limit: number;
  constructor(size: number, limit: number) {
    super(
      `the file is ${size} bytes, over the limit of ${sizeText(limit)} for a script: ` +
        `split it, or keep bulk data in a file that a service reads`,
    );
    this.size = size;
    this.limit = limit;
  }
}

/** A config watcher asked for with unusable arguments (no `config` ref, a path that is not a string...). */
export class ConfigWatcherError extends UserError {
  readonly code = 'LIMEN_CONFIG_WATCHER';
}
