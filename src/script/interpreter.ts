// Runs a checked script in a facet. Each reaction gets facets of its own: `?`
// one per distinct capture tuple (counted here: the dataspace delivers per
// distinct value), `??` one per message (stopped at once if it holds nothing
// after its setup: Syndicate's inert-facet rule). A runtime error is thrown as
// ScriptRuntimeError: the engine stops the facet whose turn raised it (only
// that one) and logs it with the instruction's file:line:col.
//
// Each script runs under a Budget (src/dataspace/budget.ts): a message loop, an
// endless cascade, too many assertions or a value nested too deep stops the
// facet that went over, and is reported once as a ScriptProblem.

import { Embedded, Sym, peel, stringify, type Position, type Value } from '../preserves/index.ts';
import {
  Budget,
  BudgetExceededError,
  Dataspace,
  Ref,
  during,
  embed,
  match,
  type BudgetLimits,
  type Captures,
  type Facet,
} from '../dataspace/index.ts';
import type { Expr, Instr, Script, Target, Template } from './ast.ts';
import { describeEmbedded } from './describe.ts';
import { FacetRef, facetValue } from './facet-ref.ts';
import { ScriptRuntimeError, filePosition, formatLocation, type ScriptProblem } from './errors.ts';
import { instantiateTemplate, patternOf, type Lookup } from './terms.ts';

/** The bindings a script sees: the loader's, then its captures and lets (innermost wins). */
class Env {
  readonly #vars: ReadonlyMap<string, Value>;
  readonly #parent: Env | undefined;
  constructor(vars: ReadonlyMap<string, Value>, parent?: Env) {
    this.#vars = vars;
    this.#parent = parent;
  }
  get(name: string): Value | undefined {
    return this.#vars.get(name) ?? this.#parent?.get(name);
  }
  extend(vars: ReadonlyMap<string, Value>): Env {
    return vars.size === 0 ? this : new Env(vars, this);
  }
  readonly lookup: Lookup = (name) => this.get(name);
}

/** Facets that asserted or observed something (the inert check for `??` facets). */
const holding = new WeakSet<Facet>();

function show(v: Value): string {
  const s = stringify(v, { embedded: describeEmbedded });
  return s.length > 120 ? s.slice(0, 117) + '...' : s;
}

class Run {
  readonly script: Script;
  constructor(script: Script) {
    this.script = script;
  }

  block(body: readonly Instr[], facet: Facet, env: Env): void {
    for (const ins of body) env = this.instr(ins, facet, env);
  }

  /** Runs one instruction; returns the environment for the instructions after it. */
  instr(ins: Instr, facet: Facet, env: Env): Env {
    try {
      return this.#instr(ins, facet, env);
    } catch (e) {
      // A budget error raised below (by the engine or a template) says where in the script.
      if (e instanceof BudgetExceededError) throw e.at(ins.pos);
      throw e;
    }
  }

  #instr(ins: Instr, facet: Facet, env: Env): Env {
    switch (ins.op) {
      case 'assert': {
        const ref = this.ref(ins.target, env, 'assert into');
        facet.assert(ref, build(ins.template, env, ins.pos));
        holding.add(facet);
        return env;
      }
      case 'send': {
        const value = build(ins.template, env, ins.pos);
        const target = this.targetValue(ins.target, env);
        if (target instanceof FacetRef) {
          if (!(value instanceof Sym && value.name === 'stop'))
            throw new ScriptRuntimeError(
              `$${ins.target.name} is a facet: the only message it accepts is stop (got ${show(value)})`,
              ins.pos,
            );
          const f = target.facet;
          // Like any message, the stop takes effect after the sending turn.
          f.turn(() => f.stop());
          return env;
        }
        facet.send(this.ref(ins.target, env, 'send to'), value);
        return env;
      }
      case 'block':
        this.block(ins.body, facet, env);
        return env;
      case 'during': {
        const ref = this.ref(ins.target, env, 'observe');
        const body = ins.body;
        during(
          facet,
          ref,
          patternOf(ins.pattern, env.lookup),
          (child, captures) => void this.instr(body, child, env.extend(captures)),
          formatLocation(ins.pos),
        );
        holding.add(facet);
        return env;
      }
      case 'on-message': {
        const ref = this.ref(ins.target, env, 'observe');
        const body = ins.body;
        const where = formatLocation(ins.pos);
        facet.observe(
          ref,
          patternOf(ins.pattern, env.lookup),
          {
            onMessage: (_value: Value, captures: Captures) => {
              const child = facet.spawn(
                (f) => void this.instr(body, f, env.extend(captures)),
                where,
              );
              if (child.isAlive && !holding.has(child) && child.children.length === 0) child.stop();
            },
          },
          where,
        );
        holding.add(facet);
        return env;
      }
      case 'on-stop': {
        const body = ins.body;
        facet.onStop(() => void this.instr(body, facet, env));
        return env;
      }
      case 'let': {
        const value = this.expr(ins.expr, facet, env);
        const captures = match(patternOf(ins.pattern, env.lookup), value);
        if (captures === null)
          throw new ScriptRuntimeError(`let: ${show(value)} does not match the pattern`, ins.pos);
        return env.extend(captures);
      }
      case 'match': {
        const value = env.get(ins.variable);
        if (value === undefined)
          throw new ScriptRuntimeError(`unbound variable $${ins.variable}`, ins.pos);
        const captures = match(patternOf(ins.pattern, env.lookup), value);
        if (captures !== null) this.instr(ins.then, facet, env.extend(captures));
        else this.block(ins.otherwise, facet, env);
        return env;
      }
    }
  }

  targetValue(target: Target, env: Env): unknown {
    const v = env.get(target.name);
    if (v === undefined)
      throw new ScriptRuntimeError(`unbound variable $${target.name}`, target.pos);
    const p = peel(v);
    return p instanceof Embedded ? p.value : p;
  }

  ref(target: Target, env: Env, what: string): Ref {
    const payload = this.targetValue(target, env);
    if (payload instanceof FacetRef)
      throw new ScriptRuntimeError(
        `cannot ${what} $${target.name}: it is a facet, which only accepts the message stop`,
        target.pos,
      );
    if (payload instanceof Ref) return payload;
    throw new ScriptRuntimeError(
      `cannot ${what} $${target.name}: it is ${show(env.get(target.name)!)}, not a dataspace ref`,
      target.pos,
    );
  }

  expr(e: Expr, facet: Facet, env: Env): Value {
    switch (e.e) {
      case 'dataspace':
        return embed(new Dataspace(facet.engine, formatLocation(e.pos)).ref);
      case 'timestamp':
        return new Date(facet.engine.now()).toISOString();
      case 'facet':
        return facetValue(facet);
      case 'scriptdir':
        return this.script.dir;
      case 'stringify':
        return stringify(this.expr(e.arg, facet, env), { embedded: describeEmbedded });
      case 'join': {
        const separator = this.expr(e.separator, facet, env);
        const list = this.expr(e.list, facet, env);
        if (typeof separator !== 'string')
          throw new ScriptRuntimeError(
            `join: the separator must be a string, not ${show(separator)}`,
            e.pos,
          );
        if (!Array.isArray(list))
          throw new ScriptRuntimeError(
            `join: the list must be a sequence, not ${show(list)}`,
            e.pos,
          );
        return (list as readonly Value[])
          .map((x) => (typeof x === 'string' ? x : stringify(x, { embedded: describeEmbedded })))
          .join(separator);
      }
      case 'template':
        return build(e.template, env, e.pos);
    }
  }
}

/** A template's value, or a budget error at `pos` (the instruction that built it). */
function build(t: Template, env: Env, pos: Position): Value {
  try {
    return instantiateTemplate(t, env.lookup);
  } catch (e) {
    if (e instanceof BudgetExceededError) throw e.at(pos);
    throw e;
  }
}

/** The loader's bindings: variable name -> value (usually an embedded dataspace ref). */
export type ScriptBindings = ReadonlyMap<string, Value>;

export interface RunOptions {
  /** The script's budget (default DEFAULT_BUDGET_LIMITS). */
  readonly limits?: Partial<BudgetLimits>;
  /**
   * Told once per budget problem, after the facet that went over has stopped (the engine
   * has logged it too), inside the failing turn: where in the script, and what.
   */
  readonly onBudgetExceeded?: (problem: ScriptProblem) => void;
}

const LOCATED = /^(.*):(\d+):(\d+)$/;

/** A budget error as a problem of the script `source`, at the error's position or its origin's. */
function budgetProblem(source: string, where: string, error: BudgetExceededError): ScriptProblem {
  const message = `stopped: ${error.detail}`;
  if (error.pos !== undefined) return { pos: error.pos, message };
  const m = LOCATED.exec(where);
  if (m !== null && m[1] === source) {
    const line = Number(m[2]);
    const column = Number(m[3]);
    return { pos: { source, line, column, offset: 0 }, message };
  }
  return { pos: filePosition(source), message };
}

export interface RunResult {
  /** The facet the script runs in (already stopped if its setup failed). */
  readonly facet: Facet;
  /** Why the setup failed, if it did (it has been logged by the engine). */
  readonly error: unknown;
}

/**
 * Runs a script in a new child facet of `parent` (origin: the file name), under a budget
 * of its own. A runtime error in the top-level instructions stops that facet, and is
 * returned as well as logged (and not given to `onBudgetExceeded`).
 */
export function runScript(
  parent: Facet,
  script: Script,
  bindings: ScriptBindings,
  options: RunOptions = {},
): RunResult {
  const run = new Run(script);
  let error: unknown;
  // Problems met while the top level runs are held back: if the setup fails, its error
  // says it all; if it does not, they concern a part that stopped, and are reported.
  let held: ScriptProblem[] | undefined = [];
  const report = options.onBudgetExceeded;
  const budget = new Budget({
    ...(options.limits === undefined ? {} : { limits: options.limits }),
    onExceeded: (where, e) => {
      const p = budgetProblem(script.source, where, e);
      if (held !== undefined) held.push(p);
      else report?.(p);
    },
  });
  const facet = parent.spawn(
    (f) => {
      try {
        run.block(script.body, f, new Env(bindings));
      } catch (e) {
        error = e;
        throw e;
      }
    },
    script.source,
    budget,
  );
  const early = held;
  held = undefined;
  if (error === undefined && report !== undefined) for (const p of early) report(p);
  return { facet, error };
}

/** A binding map from plain names, for callers that hold refs: `{config: ref, ...}`. */
export function bindingsOf(refs: { readonly [name: string]: Ref | Value }): Map<string, Value> {
  const out = new Map<string, Value>();
  for (const [k, v] of Object.entries(refs)) out.set(k, v instanceof Ref ? embed(v) : v);
  return out;
}
