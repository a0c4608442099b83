// Errors raised while reading Preserves text or binary. Each carries a stable
// code and the position (file:line:col for text, byte offset for binary).
// A syntax error and running out of input are different classes, because a
// streaming reader must wait for more input on EOF but never on bad syntax.

import { LimenError, UserError } from '../base/errors.ts';
import { formatPosition, type Position } from './values.ts';

export type PreservesErrorCode =
  | 'LIMEN_PRESERVES_SYNTAX'
  | 'LIMEN_PRESERVES_SHORT'
  | 'LIMEN_PRESERVES_EOF'
  | 'LIMEN_PRESERVES_TOO_DEEP';

export abstract class PreservesReadError extends UserError {
  abstract override readonly code: PreservesErrorCode;
  readonly pos: Position;
  /** The message without the position prefix. */
  readonly detail: string;
  constructor(detail: string, pos: Position) {
    super(`${formatPosition(pos)}: ${detail}`);
    this.pos = pos;
    this.detail = detail;
  }
}

/** The input is not valid Preserves (never raised merely because input ended). */
export class PreservesSyntaxError extends PreservesReadError {
  readonly code = 'LIMEN_PRESERVES_SYNTAX';
}

/** Input ended in the middle of a value (expectations 21 and 31). */
export class PreservesShortError extends PreservesReadError {
  readonly code = 'LIMEN_PRESERVES_SHORT';
}

/** Input ended before any value began (expectations 22 and 32). */
export class PreservesEofError extends PreservesReadError {
  readonly code = 'LIMEN_PRESERVES_EOF';
}

/** Nesting deeper than the reader's limit (guards the stack against hostile input). */
export class PreservesTooDeepError extends PreservesReadError {
  readonly code = 'LIMEN_PRESERVES_TOO_DEEP';
}

/** Default nesting limit for readers and decoders. */
export const DEFAULT_MAX_DEPTH = 512;

/**
 * A value whose text would pass a limit the caller of stringify set (`maxLength` or
 * `maxDepth`): the writer stopped there, having built at most that much text.
 */
export class PreservesWriteLimitError extends LimenError {
  readonly code = 'LIMEN_PRESERVES_WRITE_LIMIT';
  /** Which limit: the length of the text, or the nesting depth. */
  readonly limit: 'length' | 'depth';
  readonly max: number;
  constructor(limit: 'length' | 'depth', max: number) {
    super(
      limit === 'length'
        ? `the text would be longer than ${max} characters`
        : `the value nests deeper than ${max} levels`,
    );
    this.limit = limit;
    this.max = max;
  }
}
