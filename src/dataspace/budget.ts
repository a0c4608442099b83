// Budgets: what one untrusted facet tree (a script file's) may cost the engine.
// A facet spawned with a Budget, and every facet under it, shares it. The engine
// charges it for the handles (assertions and observations) the tree holds and
// for the turns it runs while the engine is never idle, and refuses a turn at the
// end of an overlong causal chain; going over stops the facet whose turn it was
// (only that one) with a BudgetExceededError, reported once through `onExceeded`.
//
// Facets without a budget (the daemon's own drivers) are never charged: a loop
// through a driver and a script is stopped at the script's next turn.

import { measureValue, type Value } from '../preserves/index.ts';
import { BudgetExceededError } from './errors.ts';

export interface BudgetLimits {
  /** Assertions and observations the facet tree may hold at once. */
  readonly handles: number;
  /** Turns the tree may run while the engine is never idle (its CPU budget, in turns). */
  readonly turns: number;
}

/** The limits a script file gets unless told otherwise (docs/script-language.md, "Budgets"). */
export const DEFAULT_BUDGET_LIMITS: BudgetLimits = { handles: 50_000, turns: 200_000 };

/** How many distinct problems one budget reports; later ones only stop their facets. */
const MAX_REPORTS = 16;

export interface BudgetOptions {
  readonly limits?: Partial<BudgetLimits>;
  /**
   * Told once per distinct problem (where it happened, and the error), after the
   * facet has been stopped, inside the failing turn. Must not throw.
   */
  readonly onExceeded?: (where: string, error: BudgetExceededError) => void;
}

export class Budget {
  readonly limits: BudgetLimits;
  /** Handles the tree holds now (made and not yet ended). */
  handles = 0;
  /** @internal Turns run in the engine's busy period `period`. */
  turns = 0;
  /** @internal */
  period = -1;
  readonly #onExceeded: ((where: string, error: BudgetExceededError) => void) | undefined;
  readonly #reported = new Set<string>();

  constructor(options: BudgetOptions = {}) {
    this.limits = { ...DEFAULT_BUDGET_LIMITS, ...options.limits };
    this.#onExceeded = options.onExceeded;
  }

  /** @internal Counts a new handle, or throws if the tree holds as many as it may. */
  _charge(): void {
    if (this.handles >= this.limits.handles)
      throw new BudgetExceededError(
        'handles',
        `more than ${this.limits.handles} assertions and observations held at once by one script`,
      );
    this.handles++;
  }

  /**
   * @internal Notes a problem; true the first time this one is seen (log and report it),
   * false for a repeat or once MAX_REPORTS are out (the facet is stopped all the same).
   */
  _note(where: string, error: BudgetExceededError): boolean {
    const key = `${where}\n${error.message}`;
    if (this.#reported.has(key) || this.#reported.size >= MAX_REPORTS) return false;
    this.#reported.add(key);
    this.#onExceeded?.(where, error);
    return true;
  }
}

/**
 * How deeply a value a script builds may nest (docs/script-language.md, "Budgets"):
 * half the codec's limit, so that whatever a script makes can still be written,
 * inside a reply or a log record, and compared and hashed without exhausting the stack.
 */
export const MAX_VALUE_DEPTH = 256;

/**
 * How large a value a script builds may be, written out (docs/script-language.md,
 * "Budgets"): a value shares what it was built from, so one that doubles each turn
 * is small in memory and 2^n bytes in every reply, log line and comparison.
 */
export const MAX_VALUE_SIZE = 1024 * 1024;

/**
 * Throws a BudgetExceededError for a value that a script (a template, or a rewrite
 * caveat it made) may not build: nested deeper than MAX_VALUE_DEPTH, or larger than
 * MAX_VALUE_SIZE written out. Costs one walk of what is new in it (measure.ts).
 */
export function checkBuiltValue(v: Value): void {
  const m = measureValue(v);
  if (m.depth > MAX_VALUE_DEPTH)
    throw new BudgetExceededError(
      'depth',
      `a value nested more than ${MAX_VALUE_DEPTH} levels deep (one that grows each turn?)`,
    );
  if (m.size > MAX_VALUE_SIZE)
    throw new BudgetExceededError(
      'size',
      `a value larger than 1 MiB written out (${m.size >= 2 ** 52 ? 'petabytes' : `${m.size} bytes`}; one that doubles each turn?)`,
    );
}
