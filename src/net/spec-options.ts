// Reading an options dictionary written by people (`{parent: "wan0" id: 7}`):
// every problem is collected in words that name the option (an unknown key with
// its likely meaning, a wrong type, a number out of range), and the reader never
// throws. Values that come back are checked; a problem leaves `undefined`.

import { Dict, Sym, peel, showValue, sym, type Value } from '../preserves/index.ts';
import { nearestKey } from '../base/suggest.ts';

export class SpecOptions {
  readonly #d: Dict;
  readonly #problems: string[];
  /** Put before each problem: "" or "peer 2: ". */
  readonly #where: string;

  /** `value` should be a dictionary with only `known` keys; any other is a problem. */
  constructor(value: Value, known: readonly string[], problems: string[], where = '') {
    this.#problems = problems;
    this.#where = where;
    const d = peel(value);
    if (d instanceof Dict) this.#d = d;
    else {
      this.#d = new Dict();
      this.problem(`expected a dictionary {${known.join(' ')} …}, not ${showValue(value, 60)}`);
    }
    for (const k of this.#d.keys()) {
      const key = peel(k);
      const name = key instanceof Sym ? key.name : undefined;
      if (name !== undefined && known.includes(name)) continue;
      const guess = name === undefined ? undefined : nearestKey(name, known);
      this.problem(
        `unknown option ${showValue(k, 40)}${guess === undefined ? '' : ` (did you mean '${guess}'?)`} (known: ${known.join(', ')})`,
      );
    }
  }

  problem(text: string): void {
    this.#problems.push(`${this.#where}${text}`);
  }

  get(key: string): Value | undefined {
    const v = this.#d.get(sym(key));
    return v === undefined ? undefined : peel(v);
  }

  /** A non-empty string of printable characters without spaces. */
  text(key: string, required: boolean): string | undefined {
    const v = this.get(key);
    if (v === undefined) {
      if (required) this.problem(`${key} is required`);
      return undefined;
    }
    if (typeof v === 'string' && v !== '' && v.length <= 4096 && !/[^\x21-\x7e]/.test(v)) return v;
    this.problem(`${key} must be a non-empty string of printable characters without spaces`);
    return undefined;
  }

  /** An absolute path (printable, no spaces, no `..` component). */
  path(key: string, required: boolean): string | undefined {
    const p = this.text(key, required);
    if (p === undefined) return undefined;
    if (p.startsWith('/') && !p.split('/').includes('..')) return p;
    this.problem(`${key} must be an absolute path without '..', not ${JSON.stringify(p)}`);
    return undefined;
  }

  /** A whole number in min..max. */
  integer(key: string, min: number, max: number, required = false): number | undefined {
    const v = this.get(key);
    if (v === undefined) {
      if (required) this.problem(`${key} is required`);
      return undefined;
    }
    if (typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max) return v;
    this.problem(`${key} must be a whole number from ${min} to ${max}, not ${showValue(v, 40)}`);
    return undefined;
  }

  /** A sequence of at most `max` items (required: at least one). */
  list(key: string, max: number, required: boolean): Value[] | undefined {
    const v = this.get(key);
    if (v === undefined) {
      if (required) this.problem(`${key} is required`);
      return undefined;
    }
    if (!Array.isArray(v)) {
      this.problem(`${key} must be a sequence [ … ], not ${showValue(v, 40)}`);
      return undefined;
    }
    if (v.length > max) {
      this.problem(`${key} has ${v.length} entries; at most ${max} are allowed`);
      return undefined;
    }
    if (required && v.length === 0) this.problem(`${key} must not be empty`);
    return (v as Value[]).map((x) => peel(x));
  }
}
