// Attenuation: caveats that filter and rewrite what is published through a Ref.
// `<rewrite P T>` turns a value matching P into T (with P's captures filled in),
// `<accept P>` passes a value matching P unchanged, `<reject P>` drops a value
// matching P and passes the rest, `<or [c ...]>` takes the first alternative that
// yields a value. Patterns in caveats match records and sequences with EXACT
// arity (unlike observation patterns, which match by prefix).
//
// Order: a ref's caveats apply in list order and a value that any caveat drops is
// dropped. `attenuate(ref, [a, b])` applies a, then b, then ref's own caveats:
// the newest caveats apply first. Observation is not attenuated (see Ref).

import { Record, Sym, peel, positionOf, type Position, type Value } from '../preserves/index.ts';
import { Ref } from './dataspace.ts';
import { checkBuiltValue } from './budget.ts';
import { CaveatError, PatternError, UnboundVariableError } from './errors.ts';
import {
  captureNames,
  compilePattern,
  exactPattern,
  instantiate,
  isPattern,
  match,
  matches,
  P,
  substitute,
  type Bindings,
  type Pattern,
  type PatternLike,
} from './pattern.ts';

export type Caveat =
  | {
      readonly type: 'rewrite';
      readonly pattern: Pattern;
      readonly template: Value;
      readonly pos: Position | undefined;
    }
  | { readonly type: 'accept'; readonly pattern: Pattern; readonly pos: Position | undefined }
  | { readonly type: 'reject'; readonly pattern: Pattern; readonly pos: Position | undefined }
  | {
      readonly type: 'or';
      readonly alternatives: readonly Caveat[];
      readonly pos: Position | undefined;
    };

const usage =
  'a caveat is <rewrite PATTERN TEMPLATE>, <accept PATTERN>, <reject PATTERN> or <or [CAVEAT ...]>';

/**
 * Compiles a caveat. `$x` in a pattern takes its value from env; `$x` in a rewrite
 * template is P's capture x if P captures x, otherwise env's x (bound now).
 */
export function compileCaveat(value: Value, env?: Bindings): Caveat {
  const pos = positionOf(value);
  const v = peel(value);
  if (!(v instanceof Record) || !(peel(v.label) instanceof Sym)) throw new CaveatError(usage, pos);
  const name = (peel(v.label) as Sym).name;
  const arity = (n: number) => {
    if (v.fields.length !== n)
      throw new CaveatError(`<${name} ...> takes ${n} field${n === 1 ? '' : 's'}; ${usage}`, pos);
  };
  switch (name) {
    case 'rewrite': {
      arity(2);
      const pattern = compilePattern(v.fields[0]!, { env, exact: true });
      return { type: 'rewrite', pattern, template: bindTemplate(pattern, v.fields[1]!, env), pos };
    }
    case 'accept':
    case 'reject':
      arity(1);
      return { type: name, pattern: compilePattern(v.fields[0]!, { env, exact: true }), pos };
    case 'or': {
      arity(1);
      const alts = peel(v.fields[0]!);
      if (!Array.isArray(alts))
        throw new CaveatError(`<or ...> takes a sequence of caveats, as in <or [c1 c2]>`, pos);
      const alternatives = (alts as readonly Value[]).map((a) => compileCaveat(a, env));
      return { type: 'or', alternatives, pos };
    }
    default:
      throw new CaveatError(`unknown caveat <${name} ...>; ${usage}`, pos);
  }
}

/** Compiles a sequence of caveats (or a single caveat). */
export function compileCaveats(value: Value, env?: Bindings): Caveat[] {
  const v = peel(value);
  if (Array.isArray(v)) return (v as readonly Value[]).map((c) => compileCaveat(c, env));
  return [compileCaveat(value, env)];
}

/** Fills in the template's env variables now, leaving the pattern's captures for later. */
function bindTemplate(pattern: Pattern, template: Value, env: Bindings | undefined): Value {
  const captured = new Set(captureNames(pattern));
  return substitute(template, (name, pos) => {
    if (captured.has(name)) return undefined;
    const v = env === undefined ? undefined : typeof env === 'function' ? env(name) : env.get(name);
    if (v === undefined) throw new UnboundVariableError(name, pos);
    return v;
  });
}

/** Builds caveats from TypeScript; patterns are made exact. */
export const C = {
  rewrite(pattern: PatternLike, template: Value): Caveat {
    const p = exactPattern(isPattern(pattern) ? pattern : P.lit(pattern));
    return {
      type: 'rewrite',
      pattern: p,
      template: bindTemplate(p, template, undefined),
      pos: undefined,
    };
  },
  accept(pattern: PatternLike): Caveat {
    const p = exactPattern(isPattern(pattern) ? pattern : P.lit(pattern));
    captureNames(p);
    return { type: 'accept', pattern: p, pos: undefined };
  },
  reject(pattern: PatternLike): Caveat {
    const p = exactPattern(isPattern(pattern) ? pattern : P.lit(pattern));
    captureNames(p);
    return { type: 'reject', pattern: p, pos: undefined };
  },
  or(...alternatives: Caveat[]): Caveat {
    if (alternatives.length === 0) throw new PatternError('<or []> needs at least one alternative');
    return { type: 'or', alternatives, pos: undefined };
  },
} as const;

/** The caveat's result for a value, or undefined if it drops the value. */
export function applyCaveat(c: Caveat, v: Value): Value | undefined {
  switch (c.type) {
    case 'rewrite': {
      const captures = match(c.pattern, v);
      if (captures === null) return undefined;
      // A chain of rewrites that each double what they are given is 2^n bytes written.
      const out = instantiate(c.template, captures);
      checkBuiltValue(out);
      return out;
    }
    case 'accept':
      return matches(c.pattern, v) ? v : undefined;
    case 'reject':
      return matches(c.pattern, v) ? undefined : v;
    case 'or':
      for (const a of c.alternatives) {
        const r = applyCaveat(a, v);
        if (r !== undefined) return r;
      }
      return undefined;
  }
}

/** Runs a caveat chain (in order); undefined if any caveat drops the value. */
export function applyCaveats(caveats: readonly Caveat[], v: Value): Value | undefined {
  let r: Value | undefined = v;
  for (let i = 0; i < caveats.length && r !== undefined; i++) r = applyCaveat(caveats[i]!, r);
  return r;
}

/** A new ref to the same dataspace whose new caveats apply before the ref's own. */
export function attenuate(ref: Ref, caveats: readonly Caveat[]): Ref {
  return new Ref(ref.dataspace, [...caveats, ...ref.caveats]);
}
