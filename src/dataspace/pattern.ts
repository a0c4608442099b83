// Patterns over Preserves values: compiled from a value (`_`, `?x`, `<?x P>`,
// `$x`, literals), or built with `P` from TypeScript; `match` returns the
// captures or null; `instantiate` fills `$x` holes in a template.
//
// Invariants: a compiled pattern is immutable and holds no annotations in its
// literals; capture names are unique within a pattern (a repeated name is a
// PatternError, so matching never needs to compare two captures). Records and
// sequences match by prefix unless the node is `exact` (attenuation caveats);
// dictionaries match when every listed key is present and matches.
//
// Syntax decisions: `?` alone is an error (write `_` to discard); `?_` and
// `<?_ P>` capture nothing (same as `_` and `P`); `$` alone is an error. A set
// in a pattern is compared literally and may not contain `_` or `?x`. There is
// no escape for a literal `_`, `?x` or `$x` symbol in text; use `P.lit(sym(..))`.

import {
  Annotated,
  Dict,
  Embedded,
  PSet,
  Record,
  Sym,
  is,
  peel,
  positionOf,
  strip,
  sym,
  type Position,
  type Value,
} from '../preserves/index.ts';
import { PatternError, UnboundVariableError } from './errors.ts';

export interface DiscardPattern {
  readonly type: 'discard';
  readonly pos: Position | undefined;
}
export interface CapturePattern {
  readonly type: 'capture';
  readonly name: string;
  readonly pattern: Pattern;
  readonly pos: Position | undefined;
}
export interface LiteralPattern {
  readonly type: 'literal';
  readonly value: Value;
  readonly pos: Position | undefined;
}
export interface RecordPattern {
  readonly type: 'record';
  readonly label: Pattern;
  readonly fields: readonly Pattern[];
  /** Exact arity (attenuation) rather than prefix (observation). */
  readonly exact: boolean;
  readonly pos: Position | undefined;
}
export interface SequencePattern {
  readonly type: 'sequence';
  readonly items: readonly Pattern[];
  readonly exact: boolean;
  readonly pos: Position | undefined;
}
export interface DictPattern {
  readonly type: 'dict';
  /** Keys are literal values (annotations stripped); extra keys in the value are allowed. */
  readonly entries: readonly (readonly [Value, Pattern])[];
  readonly pos: Position | undefined;
}

export type Pattern =
  DiscardPattern | CapturePattern | LiteralPattern | RecordPattern | SequencePattern | DictPattern;

/** Captured values by name, in the order the captures appear in the pattern. */
export type Captures = ReadonlyMap<string, Value>;

/** Where `$x` finds its value: a map or a lookup function (undefined means unbound). */
export type Bindings = ReadonlyMap<string, Value> | ((name: string) => Value | undefined);

export const noCaptures: Captures = new Map();

function lookup(bindings: Bindings | undefined, name: string): Value | undefined {
  if (bindings === undefined) return undefined;
  return typeof bindings === 'function' ? bindings(name) : bindings.get(name);
}

// ---- Compiling from Preserves values ---------------------------------------------------

export interface CompileOptions {
  /** Values for `$x`. */
  readonly env?: Bindings | undefined;
  /** Records and sequences must match with exact arity (used by attenuation caveats). */
  readonly exact?: boolean | undefined;
}

/** Compiles a Preserves value into a pattern. Throws PatternError or UnboundVariableError. */
export function compilePattern(value: Value, options: CompileOptions = {}): Pattern {
  const p = compileNode(value, options.env, options.exact === true, undefined);
  captureNames(p);
  return p;
}

function compileNode(
  v: Value,
  env: Bindings | undefined,
  exact: boolean,
  outerPos: Position | undefined,
): Pattern {
  const pos = positionOf(v) ?? outerPos;
  v = peel(v);
  if (v instanceof Sym) {
    const n = v.name;
    if (n === '_') return { type: 'discard', pos };
    if (n.startsWith('?')) {
      if (n.length === 1)
        throw new PatternError(`'?' needs a name: write ?name to capture, or _ to discard`, pos);
      const name = n.slice(1);
      if (name === '_') return { type: 'discard', pos };
      return { type: 'capture', name, pattern: { type: 'discard', pos }, pos };
    }
    if (n.startsWith('$')) return { type: 'literal', value: boundValue(n, env, pos), pos };
    return { type: 'literal', value: v, pos };
  }
  if (v instanceof Record) {
    const label = peel(v.label);
    if (label instanceof Sym && label.name.startsWith('?') && label.name.length > 1) {
      if (v.fields.length !== 1)
        throw new PatternError(
          `<${label.name} P> captures while matching one pattern P; found ${v.fields.length} fields`,
          pos,
        );
      const inner = compileNode(v.fields[0]!, env, exact, pos);
      const name = label.name.slice(1);
      return name === '_' ? inner : { type: 'capture', name, pattern: inner, pos };
    }
    return {
      type: 'record',
      label: compileNode(v.label, env, exact, pos),
      fields: v.fields.map((f) => compileNode(f, env, exact, pos)),
      exact,
      pos,
    };
  }
  if (Array.isArray(v)) {
    const items = (v as readonly Value[]).map((x) => compileNode(x, env, exact, pos));
    return { type: 'sequence', items, exact, pos };
  }
  if (v instanceof Dict) {
    const entries: (readonly [Value, Pattern])[] = [];
    for (const [k, x] of v) {
      const kp = positionOf(k) ?? pos;
      const key = peel(k);
      const keyValue =
        key instanceof Sym && key.name.startsWith('$') ? boundValue(key.name, env, kp) : strip(key);
      entries.push([keyValue, compileNode(x, env, exact, pos)] as const);
    }
    return { type: 'dict', entries, pos };
  }
  if (v instanceof PSet) {
    for (const x of v) {
      const e = peel(x);
      if (e instanceof Sym && (e.name === '_' || e.name.startsWith('?')))
        throw new PatternError(
          `a set is matched literally and cannot contain ${e.name}; match a sequence instead`,
          positionOf(x) ?? pos,
        );
    }
    return { type: 'literal', value: instantiate(v, env ?? new Map()), pos };
  }
  return { type: 'literal', value: v instanceof Embedded ? v : strip(v), pos };
}

function boundValue(symbolName: string, env: Bindings | undefined, pos: Position | undefined) {
  if (symbolName.length === 1)
    throw new PatternError(`'$' needs a variable name, as in $name`, pos);
  const name = symbolName.slice(1);
  const bound = lookup(env, name);
  if (bound === undefined) throw new UnboundVariableError(name, pos);
  return strip(bound);
}

// ---- Programmatic construction -----------------------------------------------------------

/** A pattern, or a value that stands for itself (a literal). */
export type PatternLike = Pattern | Value;

/** Patterns are plain objects; no Preserves value is. */
export function isPattern(x: unknown): x is Pattern {
  return (
    typeof x === 'object' &&
    x !== null &&
    !Array.isArray(x) &&
    Object.getPrototypeOf(x) === Object.prototype
  );
}

function toPattern(x: PatternLike): Pattern {
  return isPattern(x) ? x : { type: 'literal', value: strip(x), pos: undefined };
}

const discard: DiscardPattern = Object.freeze({ type: 'discard', pos: undefined });

/**
 * Builds patterns from TypeScript. Arguments that are not patterns are literals,
 * and a string given as a record label is a symbol (as with `record()`):
 * `P.rec('interface', P.bind('name'), P._)` is `<interface ?name _>`.
 */
export const P = {
  _: discard as Pattern,
  discard(): Pattern {
    return discard;
  },
  /** `?name`, or `<?name p>` when p is given. */
  bind(name: string, pattern: PatternLike = discard): Pattern {
    if (name === '') throw new PatternError('a capture needs a name');
    return { type: 'capture', name, pattern: toPattern(pattern), pos: undefined };
  },
  capture(name: string, pattern: PatternLike = discard): Pattern {
    return P.bind(name, pattern);
  },
  lit(value: Value): Pattern {
    return { type: 'literal', value: strip(value), pos: undefined };
  },
  rec(label: string | PatternLike, ...fields: PatternLike[]): Pattern {
    return {
      type: 'record',
      label: typeof label === 'string' ? P.lit(sym(label)) : toPattern(label),
      fields: fields.map(toPattern),
      exact: false,
      pos: undefined,
    };
  },
  seq(...items: PatternLike[]): Pattern {
    return { type: 'sequence', items: items.map(toPattern), exact: false, pos: undefined };
  },
  /** Keys are literal values; a plain object's keys become symbols. */
  dict(
    entries: Iterable<readonly [Value, PatternLike]> | { readonly [key: string]: PatternLike },
  ): Pattern {
    const list: (readonly [Value, Pattern])[] = [];
    if (Symbol.iterator in entries) {
      for (const [k, x] of entries) list.push([strip(k), toPattern(x)] as const);
    } else {
      for (const [k, x] of Object.entries(entries)) list.push([sym(k), toPattern(x)] as const);
    }
    return { type: 'dict', entries: list, pos: undefined };
  },
  /** The same pattern with every record and sequence matching exact arity. */
  exact(pattern: Pattern): Pattern {
    return exactPattern(pattern);
  },
} as const;

export function exactPattern(p: Pattern): Pattern {
  switch (p.type) {
    case 'discard':
    case 'literal':
      return p;
    case 'capture':
      return { ...p, pattern: exactPattern(p.pattern) };
    case 'record':
      return {
        ...p,
        label: exactPattern(p.label),
        fields: p.fields.map(exactPattern),
        exact: true,
      };
    case 'sequence':
      return { ...p, items: p.items.map(exactPattern), exact: true };
    case 'dict':
      return { ...p, entries: p.entries.map(([k, x]) => [k, exactPattern(x)] as const) };
  }
}

// ---- Inspection and matching -------------------------------------------------------------

/** The capture names of a pattern in order of appearance. Throws PatternError on a repeat. */
export function captureNames(p: Pattern): readonly string[] {
  // Not cached: a WeakMap keyed by 100,000 patterns makes every GC cycle slower.
  const out: string[] = [];
  collectNames(p, out, new Set());
  return out;
}

function collectNames(p: Pattern, out: string[], seen: Set<string>): void {
  switch (p.type) {
    case 'discard':
    case 'literal':
      return;
    case 'capture':
      if (seen.has(p.name))
        throw new PatternError(`?${p.name} is captured twice in one pattern`, p.pos);
      seen.add(p.name);
      out.push(p.name);
      collectNames(p.pattern, out, seen);
      return;
    case 'record':
      collectNames(p.label, out, seen);
      for (const f of p.fields) collectNames(f, out, seen);
      return;
    case 'sequence':
      for (const x of p.items) collectNames(x, out, seen);
      return;
    case 'dict':
      for (const [, x] of p.entries) collectNames(x, out, seen);
      return;
  }
}

/** The captures if the value matches, otherwise null. */
export function match(p: Pattern, v: Value): Map<string, Value> | null {
  const out = new Map<string, Value>();
  return matchInto(p, v, out) ? out : null;
}

/** True if the value matches (no captures are built). */
export function matches(p: Pattern, v: Value): boolean {
  return matchInto(p, v, undefined);
}

function matchInto(p: Pattern, v: Value, out: Map<string, Value> | undefined): boolean {
  if (v instanceof Annotated) v = v.item;
  switch (p.type) {
    case 'discard':
      return true;
    case 'capture':
      // Set before matching the inner pattern so that captures keep pattern order.
      out?.set(p.name, v);
      return matchInto(p.pattern, v, out);
    case 'literal':
      return is(p.value, v);
    case 'record': {
      if (!(v instanceof Record)) return false;
      const n = p.fields.length;
      if (p.exact ? v.fields.length !== n : v.fields.length < n) return false;
      if (!matchInto(p.label, v.label, out)) return false;
      for (let i = 0; i < n; i++) if (!matchInto(p.fields[i]!, v.fields[i]!, out)) return false;
      return true;
    }
    case 'sequence': {
      if (!Array.isArray(v)) return false;
      const s = v as readonly Value[];
      const n = p.items.length;
      if (p.exact ? s.length !== n : s.length < n) return false;
      for (let i = 0; i < n; i++) if (!matchInto(p.items[i]!, s[i]!, out)) return false;
      return true;
    }
    case 'dict': {
      if (!(v instanceof Dict)) return false;
      for (const [k, x] of p.entries) {
        const w = v.get(k);
        if (w === undefined || !matchInto(x, w, out)) return false;
      }
      return true;
    }
  }
}

// ---- Templates ---------------------------------------------------------------------------

/**
 * The template with every `$x` symbol replaced by its binding, at any depth (labels,
 * fields, items, set elements, dictionary keys and values; embedded values are opaque).
 * Annotations are dropped. Throws UnboundVariableError (with the position) for a
 * missing binding and PatternError for a bare `$`.
 */
export function instantiate(template: Value, bindings: Bindings): Value {
  return subst(template, (name, pos) => {
    const v = lookup(bindings, name);
    if (v === undefined) throw new UnboundVariableError(name, pos);
    return v;
  });
}

/**
 * Like instantiate, but `resolve` decides each variable: a value replaces it, undefined
 * leaves the `$x` symbol in place (used to fill in some variables now and the rest later).
 */
export function substitute(
  template: Value,
  resolve: (name: string, pos: Position | undefined) => Value | undefined,
): Value {
  return subst(template, resolve);
}

function subst(
  v: Value,
  resolve: (name: string, pos: Position | undefined) => Value | undefined,
  outerPos?: Position,
): Value {
  if (v instanceof Annotated) return subst(v.item, resolve, v.pos ?? outerPos);
  switch (typeof v) {
    case 'boolean':
    case 'number':
    case 'bigint':
    case 'string':
      return v;
    default:
      break;
  }
  if (v instanceof Sym) {
    if (!v.name.startsWith('$')) return v;
    if (v.name.length === 1)
      throw new PatternError(`'$' needs a variable name, as in $name`, outerPos);
    const r = resolve(v.name.slice(1), outerPos);
    return r === undefined ? v : strip(r);
  }
  if (v instanceof Record)
    return new Record(
      subst(v.label, resolve, outerPos),
      v.fields.map((f) => subst(f, resolve, outerPos)),
    );
  if (Array.isArray(v)) return (v as readonly Value[]).map((x) => subst(x, resolve, outerPos));
  if (v instanceof PSet) {
    const out = new PSet();
    for (const x of v) out.add(subst(x, resolve, outerPos));
    return out;
  }
  if (v instanceof Dict) {
    const out = new Dict();
    for (const [k, x] of v) out.set(subst(k, resolve, outerPos), subst(x, resolve, outerPos));
    return out;
  }
  return v;
}
