// Templates, patterns and caveats of the script language: checked once when a
// script is compiled (every mistake reported, none thrown) and filled in with
// the current bindings each time an instruction runs.
//
// Pattern semantics (see docs/script-language.md): records and sequences match
// with EXACT arity, as in syndicate-server's scripts, unless their last field is
// `...`, which admits further fields; dictionaries match when the listed keys
// match. `$x` is the value bound to x when the instruction runs.

import {
  Dict,
  Embedded,
  PSet,
  Record,
  Sym,
  peel,
  positionOf,
  strip,
  sym,
  type Position,
  type Value,
} from '../preserves/index.ts';
import {
  checkBuiltValue,
  asRef,
  attenuate,
  embed,
  type Caveat,
  type Pattern,
} from '../dataspace/index.ts';
import type { CaveatTemplate, PatternTerm, ScriptPattern, Template } from './ast.ts';
import { ScriptRuntimeError } from './errors.ts';
import { nearest } from '../base/suggest.ts';

/** What checking needs to know: the names in scope, and where to report a mistake. */
export interface CheckContext {
  readonly scope: ReadonlySet<string>;
  report(pos: Position, message: string): void;
}

/** Looks a variable up when an instruction runs. */
export type Lookup = (name: string) => Value | undefined;

const ELLIPSIS = '...';

function unbound(ctx: CheckContext, name: string, pos: Position): void {
  const near = nearest(name, ctx.scope);
  ctx.report(
    pos,
    near !== undefined
      ? `unbound variable $${name} (did you mean $${near}?)`
      : `unbound variable $${name} (bind it with let ?${name} = ..., or capture it with ?${name} in an enclosing pattern)`,
  );
}

/** Checks `$name`: reports a bare `$` or an unbound name; returns the name or undefined. */
function variable(ctx: CheckContext, symbol: string, pos: Position): string | undefined {
  if (symbol.length === 1) {
    ctx.report(pos, `'$' needs a variable name, as in $name`);
    return undefined;
  }
  const name = symbol.slice(1);
  if (!ctx.scope.has(name)) unbound(ctx, name, pos);
  return name;
}

function isSym(v: Value, name: string): boolean {
  const p = peel(v);
  return p instanceof Sym && p.name === name;
}

// ---- Templates ------------------------------------------------------------------------------

function lit(value: Value): Template {
  return { t: 'lit', value };
}

/** Compiles a value to build: `$x` is a variable, `<* $ref [caveat ...]>` an attenuated ref. */
export function compileTemplate(value: Value, ctx: CheckContext, outer: Position): Template {
  const pos = positionOf(value) ?? outer;
  const v = peel(value);
  if (v instanceof Sym) {
    const n = v.name;
    if (n.startsWith('$')) {
      const name = variable(ctx, n, pos);
      return name === undefined ? lit(v) : { t: 'var', name, pos };
    }
    if (n === '_' || n.startsWith('?'))
      ctx.report(
        pos,
        `'${n}' is pattern syntax and cannot appear in a value to assert or send` +
          (n.length > 1 && n !== '_' ? ` (to use a bound variable write $${n.slice(1)})` : ''),
      );
    return lit(v);
  }
  if (v instanceof Record) {
    if (isSym(v.label, '*')) return compileAttenuation(v, ctx, pos);
    const label = compileTemplate(v.label, ctx, pos);
    const fields = v.fields.map((f) => compileTemplate(f, ctx, pos));
    if (label.t === 'lit' && fields.every((f) => f.t === 'lit'))
      return lit(new Record(label.value, fields.map(litValue)));
    return { t: 'rec', label, fields };
  }
  if (Array.isArray(v)) {
    const items = (v as readonly Value[]).map((x) => compileTemplate(x, ctx, pos));
    return items.every((x) => x.t === 'lit') ? lit(items.map(litValue)) : { t: 'seq', items };
  }
  if (v instanceof PSet) {
    const items = [...v].map((x) => compileTemplate(x, ctx, pos));
    return items.every((x) => x.t === 'lit')
      ? lit(new PSet(items.map(litValue)))
      : { t: 'set', items };
  }
  if (v instanceof Dict) {
    const entries = [...v].map(
      ([k, x]) => [compileTemplate(k, ctx, pos), compileTemplate(x, ctx, pos)] as const,
    );
    return entries.every(([k, x]) => k.t === 'lit' && x.t === 'lit')
      ? lit(new Dict(entries.map(([k, x]) => [litValue(k), litValue(x)] as const)))
      : { t: 'dict', entries };
  }
  return lit(v instanceof Embedded ? v : strip(v));
}

function litValue(t: Template): Value {
  return (t as { readonly value: Value }).value;
}

const attenuationUsage = 'write <* $ref [CAVEAT ...]>';

function compileAttenuation(r: Record, ctx: CheckContext, pos: Position): Template {
  const bad: Template = lit(r);
  if (r.fields.length !== 2) {
    ctx.report(pos, `<* ...> takes a variable and a sequence of caveats; ${attenuationUsage}`);
    return bad;
  }
  const base = peel(r.fields[0]!);
  const basePos = positionOf(r.fields[0]!) ?? pos;
  let name: string | undefined;
  if (base instanceof Sym && base.name.startsWith('$')) name = variable(ctx, base.name, basePos);
  else ctx.report(basePos, `<* ...> attenuates a variable holding a ref; ${attenuationUsage}`);
  const list = peel(r.fields[1]!);
  const listPos = positionOf(r.fields[1]!) ?? pos;
  if (!Array.isArray(list)) {
    ctx.report(listPos, `<* ...> needs a sequence of caveats; ${attenuationUsage}`);
    return bad;
  }
  const caveats = (list as readonly Value[]).map((c) => compileCaveat(c, ctx, listPos));
  if (name === undefined || caveats.some((c) => c === undefined)) return bad;
  return { t: 'attenuate', variable: name, caveats: caveats as CaveatTemplate[], pos };
}

const caveatUsage =
  'a caveat is <rewrite PATTERN TEMPLATE>, <accept PATTERN>, <reject PATTERN> or <or [CAVEAT ...]>';

function compileCaveat(
  value: Value,
  ctx: CheckContext,
  outer: Position,
): CaveatTemplate | undefined {
  const pos = positionOf(value) ?? outer;
  const v = peel(value);
  const label = v instanceof Record ? peel(v.label) : undefined;
  if (!(v instanceof Record) || !(label instanceof Sym)) {
    ctx.report(pos, caveatUsage);
    return undefined;
  }
  const arity = (n: number): boolean => {
    if (v.fields.length === n) return true;
    ctx.report(pos, `<${label.name} ...> takes ${n} field${n === 1 ? '' : 's'}; ${caveatUsage}`);
    return false;
  };
  switch (label.name) {
    case 'rewrite': {
      if (!arity(2)) return undefined;
      const pattern = compilePatternTerm(v.fields[0]!, ctx, pos);
      // The template sees the pattern's captures (filled in when a value is rewritten) as
      // well as the variables in scope (filled in when the attenuation is evaluated).
      const scope = new Set([...ctx.scope, ...pattern.captures]);
      const inner: CheckContext = { scope, report: (p, m) => ctx.report(p, m) };
      const template = compileTemplate(v.fields[1]!, inner, pos);
      if (capturedAttenuation(template, pattern.captures))
        ctx.report(
          positionOf(v.fields[1]!) ?? pos,
          `a rewrite template cannot attenuate a captured value; attenuate a variable bound outside the caveat`,
        );
      return { c: 'rewrite', pattern, template, pos };
    }
    case 'accept':
    case 'reject':
      if (!arity(1)) return undefined;
      return { c: label.name, pattern: compilePatternTerm(v.fields[0]!, ctx, pos), pos };
    case 'or': {
      if (!arity(1)) return undefined;
      const alts = peel(v.fields[0]!);
      if (!Array.isArray(alts)) {
        ctx.report(pos, `<or ...> takes a sequence of caveats, as in <or [CAVEAT ...]>`);
        return undefined;
      }
      if (alts.length === 0) {
        ctx.report(pos, `<or []> needs at least one alternative`);
        return undefined;
      }
      const altPos = positionOf(v.fields[0]!) ?? pos;
      const alternatives = (alts as readonly Value[]).map((a) => compileCaveat(a, ctx, altPos));
      if (alternatives.some((a) => a === undefined)) return undefined;
      return { c: 'or', alternatives: alternatives as CaveatTemplate[], pos };
    }
    default: {
      const near = nearest(label.name, ['rewrite', 'accept', 'reject', 'or']);
      ctx.report(
        pos,
        `unknown caveat <${label.name} ...>` +
          (near !== undefined ? ` (did you mean <${near} ...>?)` : `; ${caveatUsage}`),
      );
      return undefined;
    }
  }
}

function capturedAttenuation(t: Template, captures: readonly string[]): boolean {
  switch (t.t) {
    case 'lit':
    case 'var':
      return false;
    case 'attenuate':
      return captures.includes(t.variable);
    case 'rec':
      return [t.label, ...t.fields].some((x) => capturedAttenuation(x, captures));
    case 'seq':
    case 'set':
      return t.items.some((x) => capturedAttenuation(x, captures));
    case 'dict':
      return t.entries.some(
        ([k, x]) => capturedAttenuation(k, captures) || capturedAttenuation(x, captures),
      );
  }
}

// ---- Patterns -------------------------------------------------------------------------------

/** Compiles a pattern; its captures are listed in order of appearance. */
export function compilePatternTerm(value: Value, ctx: CheckContext, outer: Position): PatternTerm {
  const pos = positionOf(value) ?? outer;
  const captures: string[] = [];
  const pattern = compilePatternNode(value, ctx, pos, captures, false);
  let constant: Pattern | undefined;
  if (!hasVariables(pattern))
    constant = instantiatePattern(pattern, () => {
      throw new Error('unreachable: a pattern without variables looked one up');
    });
  return { pattern, captures, constant, pos };
}

function compilePatternNode(
  value: Value,
  ctx: CheckContext,
  outer: Position,
  captures: string[],
  inFields: boolean,
): ScriptPattern {
  const pos = positionOf(value) ?? outer;
  const v = peel(value);
  const capture = (name: string, inner: ScriptPattern): ScriptPattern => {
    if (name === '_') return inner;
    if (captures.includes(name))
      ctx.report(pos, `?${name} is captured twice in one pattern; use two names`);
    captures.push(name);
    return { p: 'capture', name, inner, pos };
  };
  if (v instanceof Sym) {
    const n = v.name;
    if (n === '_') return { p: 'discard' };
    if (n.startsWith('?')) {
      if (n.length === 1) {
        ctx.report(pos, `'?' needs a name: write ?name to capture, or _ to discard`);
        return { p: 'discard' };
      }
      return capture(n.slice(1), { p: 'discard' });
    }
    if (n.startsWith('$')) {
      const name = variable(ctx, n, pos);
      return name === undefined ? { p: 'discard' } : { p: 'var', name, pos };
    }
    if (n === ELLIPSIS && !inFields)
      ctx.report(pos, `'...' can only be the last field of a record or sequence pattern`);
    return { p: 'lit', value: v, pos };
  }
  if (v instanceof Record) {
    const label = peel(v.label);
    if (label instanceof Sym && label.name.startsWith('?') && label.name.length > 1) {
      if (v.fields.length !== 1) {
        ctx.report(
          pos,
          `<${label.name} PATTERN> captures while matching one pattern; found ${v.fields.length} fields`,
        );
        return capture(label.name.slice(1), { p: 'discard' });
      }
      return capture(
        label.name.slice(1),
        compilePatternNode(v.fields[0]!, ctx, pos, captures, false),
      );
    }
    const labelPattern = compilePatternNode(v.label, ctx, pos, captures, false);
    const [fields, open] = compileItems(v.fields, ctx, pos, captures);
    return { p: 'rec', label: labelPattern, fields, open, pos };
  }
  if (Array.isArray(v)) {
    const [items, open] = compileItems(v as readonly Value[], ctx, pos, captures);
    return { p: 'seq', items, open, pos };
  }
  if (v instanceof Dict) {
    const entries: (readonly [Template, ScriptPattern])[] = [];
    for (const [k, x] of v) {
      const key = compileTemplate(k, ctx, positionOf(k) ?? pos);
      entries.push([key, compilePatternNode(x, ctx, pos, captures, false)] as const);
    }
    return { p: 'dict', entries, pos };
  }
  if (v instanceof PSet) {
    for (const x of v) {
      const e = peel(x);
      if (e instanceof Sym && (e.name === '_' || e.name.startsWith('?'))) {
        ctx.report(
          positionOf(x) ?? pos,
          `a set is matched literally and cannot contain ${e.name}; match a sequence instead`,
        );
        return { p: 'discard' };
      }
    }
    const t = compileTemplate(v, ctx, pos);
    if (t.t !== 'lit') {
      ctx.report(pos, `a set in a pattern cannot contain variables; match a sequence instead`);
      return { p: 'discard' };
    }
    return { p: 'lit', value: t.value, pos };
  }
  return { p: 'lit', value: v instanceof Embedded ? v : strip(v), pos };
}

function compileItems(
  items: readonly Value[],
  ctx: CheckContext,
  pos: Position,
  captures: string[],
): [ScriptPattern[], boolean] {
  const out: ScriptPattern[] = [];
  let open = false;
  items.forEach((x, i) => {
    if (isSym(x, ELLIPSIS)) {
      if (i === items.length - 1) open = true;
      else
        ctx.report(
          positionOf(x) ?? pos,
          `'...' can only be the last field of a record or sequence pattern`,
        );
      return;
    }
    out.push(compilePatternNode(x, ctx, pos, captures, true));
  });
  return [out, open];
}

function hasVariables(p: ScriptPattern): boolean {
  switch (p.p) {
    case 'discard':
    case 'lit':
      return false;
    case 'var':
      return true;
    case 'capture':
      return hasVariables(p.inner);
    case 'rec':
      return hasVariables(p.label) || p.fields.some(hasVariables);
    case 'seq':
      return p.items.some(hasVariables);
    case 'dict':
      return p.entries.some(([k, x]) => k.t !== 'lit' || hasVariables(x));
  }
}

// ---- Running --------------------------------------------------------------------------------

function bound(lookup: Lookup, name: string, pos: Position): Value {
  const v = lookup(name);
  if (v === undefined) throw new ScriptRuntimeError(`unbound variable $${name}`, pos);
  return v;
}

/** The dataspace pattern for a script pattern, with `$x` replaced by the bindings. */
export function instantiatePattern(p: ScriptPattern, lookup: Lookup): Pattern {
  switch (p.p) {
    case 'discard':
      return { type: 'discard', pos: undefined };
    case 'capture':
      return {
        type: 'capture',
        name: p.name,
        pattern: instantiatePattern(p.inner, lookup),
        pos: p.pos,
      };
    case 'lit':
      return { type: 'literal', value: p.value, pos: p.pos };
    case 'var':
      return { type: 'literal', value: strip(bound(lookup, p.name, p.pos)), pos: p.pos };
    case 'rec':
      return {
        type: 'record',
        label: instantiatePattern(p.label, lookup),
        fields: p.fields.map((f) => instantiatePattern(f, lookup)),
        exact: !p.open,
        pos: p.pos,
      };
    case 'seq':
      return {
        type: 'sequence',
        items: p.items.map((x) => instantiatePattern(x, lookup)),
        exact: !p.open,
        pos: p.pos,
      };
    case 'dict':
      return {
        type: 'dict',
        entries: p.entries.map(
          ([k, x]) => [instantiateTemplate(k, lookup), instantiatePattern(x, lookup)] as const,
        ),
        pos: p.pos,
      };
  }
}

/** The pattern of a term with the current bindings (compiled once when it has no `$x`). */
export function patternOf(term: PatternTerm, lookup: Lookup): Pattern {
  return term.constant ?? instantiatePattern(term.pattern, lookup);
}

/**
 * The value a template describes with the current bindings. Names in `keep` stay as
 * `$name` symbols (a rewrite caveat fills them from its pattern's captures later).
 * A value nested too deeply or too large written out is a BudgetExceededError
 * (checkBuiltValue).
 */
export function instantiateTemplate(
  t: Template,
  lookup: Lookup,
  keep?: ReadonlySet<string>,
): Value {
  const v = fill(t, lookup, keep);
  // A lone variable passes on a value that exists already: only what is built is checked.
  if (t.t !== 'var' && t.t !== 'attenuate') checkBuiltValue(v);
  return v;
}

function fill(t: Template, lookup: Lookup, keep: ReadonlySet<string> | undefined): Value {
  switch (t.t) {
    case 'lit':
      return t.value;
    case 'var':
      return keep?.has(t.name) === true ? sym('$' + t.name) : strip(bound(lookup, t.name, t.pos));
    case 'rec':
      return new Record(
        fill(t.label, lookup, keep),
        t.fields.map((f) => fill(f, lookup, keep)),
      );
    case 'seq':
      return t.items.map((x) => fill(x, lookup, keep));
    case 'set':
      return new PSet(t.items.map((x) => fill(x, lookup, keep)));
    case 'dict':
      return new Dict(
        t.entries.map(([k, x]) => [fill(k, lookup, keep), fill(x, lookup, keep)] as const),
      );
    case 'attenuate': {
      const base = bound(lookup, t.variable, t.pos);
      const ref = asRef(base);
      if (ref === undefined)
        throw new ScriptRuntimeError(
          `$${t.variable} is not a dataspace ref, so <* $${t.variable} ...> cannot attenuate it`,
          t.pos,
        );
      return embed(
        attenuate(
          ref,
          t.caveats.map((c) => instantiateCaveat(c, lookup)),
        ),
      );
    }
  }
}

function instantiateCaveat(c: CaveatTemplate, lookup: Lookup): Caveat {
  switch (c.c) {
    case 'rewrite':
      return {
        type: 'rewrite',
        pattern: patternOf(c.pattern, lookup),
        template: instantiateTemplate(c.template, lookup, new Set(c.pattern.captures)),
        pos: c.pos,
      };
    case 'accept':
    case 'reject':
      return { type: c.c, pattern: patternOf(c.pattern, lookup), pos: c.pos };
    case 'or':
      return {
        type: 'or',
        alternatives: c.alternatives.map((a) => instantiateCaveat(a, lookup)),
        pos: c.pos,
      };
  }
}
