// Errors raised by the dataspace layer. A malformed pattern, template or caveat
// is the user's mistake (UserError, with the source position when the value was
// read with positions); using a stopped facet is a bug in the caller.

import { LimenError, UserError } from '../base/errors.ts';
import { formatPosition, type Position } from '../preserves/index.ts';

function located(detail: string, pos: Position | undefined): string {
  return pos === undefined ? detail : `${formatPosition(pos)}: ${detail}`;
}

/** A pattern, template or caveat that cannot be compiled. */
export class PatternError extends UserError {
  readonly code = 'LIMEN_PATTERN';
  readonly pos: Position | undefined;
  /** The message without the position prefix. */
  readonly detail: string;
  constructor(detail: string, pos?: Position) {
    super(located(detail, pos));
    this.pos = pos;
    this.detail = detail;
  }
}

/** `$name` named a variable that has no value. */
export class UnboundVariableError extends UserError {
  readonly code = 'LIMEN_UNBOUND_VARIABLE';
  readonly variable: string;
  readonly pos: Position | undefined;
  constructor(variable: string, pos?: Position) {
    super(located(`unbound variable $${variable}`, pos));
    this.variable = variable;
    this.pos = pos;
  }
}

/** A caveat value that is not `<rewrite P T>`, `<accept P>`, `<reject P>` or `<or [...]>`. */
export class CaveatError extends UserError {
  readonly code = 'LIMEN_CAVEAT';
  readonly pos: Position | undefined;
  readonly detail: string;
  constructor(detail: string, pos?: Position) {
    super(located(detail, pos));
    this.pos = pos;
    this.detail = detail;
  }
}

/** A stopped facet was asked to assert, observe or spawn: the caller kept a facet too long. */
export class FacetStoppedError extends LimenError {
  readonly code = 'LIMEN_FACET_STOPPED';
}

/** A Ref of one engine was used by a facet of another. */
export class ForeignRefError extends LimenError {
  readonly code = 'LIMEN_FOREIGN_REF';
}

export type BudgetKind = 'chain' | 'turns' | 'handles' | 'depth' | 'size';

/**
 * A script went over one of its budgets (budget.ts): a message loop, an endless
 * cascade, too many assertions, a value nested too deep. The script's mistake;
 * the facet whose turn it was is stopped.
 */
export class BudgetExceededError extends UserError {
  readonly code = 'LIMEN_BUDGET_EXCEEDED';
  readonly kind: BudgetKind;
  readonly pos: Position | undefined;
  /** The message without the position prefix. */
  readonly detail: string;
  constructor(kind: BudgetKind, detail: string, pos?: Position) {
    super(located(detail, pos));
    this.kind = kind;
    this.pos = pos;
    this.detail = detail;
  }
  /** The same problem, located at `pos` (where a script made the call that went over). */
  at(pos: Position): BudgetExceededError {
    return this.pos !== undefined ? this : new BudgetExceededError(this.kind, this.detail, pos);
  }
}
