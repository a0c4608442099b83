// Values on the command line and on the screen: arguments are Preserves text (a
// syntax error shows the argument with a caret under the column), a service may be
// a bare word (`sshd` means `<daemon sshd>`), and values are shown as Preserves
// text for people or as JSON (docs/json-mapping.md) for scripts.

import { compilePattern, PatternError, UnboundVariableError } from '../dataspace/index.ts';
import {
  PreservesReadError,
  Sym,
  parse,
  peel,
  record,
  stringify,
  strip,
  toJSONText,
  type Position,
  type Value,
} from '../preserves/index.ts';
import { UsageError } from './args.ts';

/** An argument that is not valid Preserves (or not a valid pattern); the message has a caret. */
export class ArgumentSyntaxError extends UsageError {
  readonly argument: string;
  constructor(message: string, argument: string) {
    super(message);
    this.argument = argument;
  }
}

/** The argument's line at pos, with a caret under pos's column. */
export function caret(text: string, pos: Position): string {
  const lines = text.split('\n');
  const line = lines[Math.max(0, pos.line - 1)] ?? '';
  const col = Math.max(1, pos.column);
  // Columns count code points; tabs keep their place so the caret lines up.
  const lead = [...line]
    .slice(0, col - 1)
    .map((ch) => (ch === '\t' ? '\t' : ' '))
    .join('');
  return `  ${line}\n  ${lead}^`;
}

function located(what: string, text: string, detail: string, pos: Position): ArgumentSyntaxError {
  const where = pos.line > 1 ? `line ${pos.line}, column ${pos.column}` : `column ${pos.column}`;
  return new ArgumentSyntaxError(`${what}: ${detail} (${where})\n${caret(text, pos)}`, text);
}

/** Reads an argument as one Preserves value (positions kept for pattern errors). */
export function parseValueArg(text: string, what: string): Value {
  try {
    return parse(text, { source: what, positions: true });
  } catch (e) {
    if (e instanceof PreservesReadError) {
      throw located(`${what} is not valid Preserves`, text, e.detail, e.pos);
    }
    throw e;
  }
}

/** Reads an argument as a pattern: Preserves, and a pattern that compiles (checked here). */
export function parsePatternArg(text: string, what: string): Value {
  const v = parseValueArg(text, what);
  try {
    compilePattern(v);
  } catch (e) {
    if (e instanceof PatternError && e.pos !== undefined) {
      throw located(`${what} is not a valid pattern`, text, e.detail, e.pos);
    }
    if (e instanceof PatternError || e instanceof UnboundVariableError) {
      throw new ArgumentSyntaxError(`${what} is not a valid pattern: ${e.message}`, text);
    }
    throw e;
  }
  return strip(v);
}

/** A service argument: Preserves text; a bare symbol is shorthand for `<daemon SYMBOL>`. */
export function parseServiceArg(text: string, what = 'SERVICE'): Value {
  const v = strip(parseValueArg(text, what));
  return peel(v) instanceof Sym ? record('daemon', v) : v;
}

/** A value as Preserves text, on one line. */
export function show(v: Value): string {
  return stringify(strip(v));
}

/** Strings as they are, anything else as Preserves text (for status-like fields). */
export function plain(v: Value): string {
  const p = peel(v);
  return typeof p === 'string' ? p : show(p);
}

/** One JSON document or line for scripts. */
export function jsonLine(v: Value): string {
  return toJSONText(strip(v)) + '\n';
}

/** A time for people: `2024-01-01 12:00:00` (UTC, as logs carry it). */
export function showTime(ms: number | undefined): string {
  if (ms === undefined || ms === 0) return '-';
  return new Date(ms)
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, 'Z');
}
