// Reads and checks a script: Preserves text -> instructions (ast.ts), with every
// mistake collected (unknown operators, missing operands, malformed patterns,
// unbound variables...) before anything runs. Invariant: a Script is returned
// only when there were no problems, so running it can fail only on values.
//
// Scoping is lexical: `?x` in a pattern binds x in the reaction's instruction;
// `let` binds for the rest of the enclosing block; the loader's bindings
// (`$config`, `$machine`, `$log`...) are in scope everywhere.

import { dirname } from 'node:path';
import {
  Dict,
  PSet,
  PreservesReadError,
  PreservesShortError,
  Record,
  Sym,
  TextReader,
  kindNames,
  kindOf,
  peel,
  positionOf,
  type Position,
  type Value,
} from '../preserves/index.ts';
import type { Expr, Instr, Script, Target } from './ast.ts';
import { ScriptCheckError, filePosition, type ScriptProblem } from './errors.ts';
import { nearest } from '../base/suggest.ts';
import { compilePatternTerm, compileTemplate, type CheckContext } from './terms.ts';

export interface CompileOptions {
  /** The file name used in positions, errors and origins. */
  readonly source: string;
  /** What `scriptdir` yields (default: the directory of `source`). */
  readonly dir?: string;
  /** The variables the loader binds (e.g. config, machine, log). */
  readonly names: Iterable<string>;
}

export interface CompileResult {
  /** The script, if there were no problems. */
  readonly script: Script | undefined;
  /** Every problem found, in source order. */
  readonly problems: readonly ScriptProblem[];
  /**
   * The text ended in the middle of a value: a file still being written, perhaps (the
   * config watcher waits a little before reporting it).
   */
  readonly truncated: boolean;
}

/** The instruction operators (symbols with a meaning in instruction position). */
export const OPERATORS = ['?', '??', '?-', '!', '+=', 'let', '=~'] as const;
/** The expression keywords (after `let PATTERN =`). */
export const EXPRESSIONS = [
  'dataspace',
  'timestamp',
  'facet',
  'scriptdir',
  'stringify',
  'join',
] as const;

/** The target of an instruction that names none. */
export const DEFAULT_TARGET = 'config';

const instructionForms =
  'an instruction is a record or dictionary to assert, [a block], $var INSTR, += VALUE, ! VALUE, ' +
  '? PATTERN INSTR, ?? PATTERN INSTR, ?- INSTR, let PATTERN = EXPR or $var =~ PATTERN INSTR';

function isSym(v: Value | undefined, name: string): boolean {
  if (v === undefined) return false;
  const p = peel(v);
  return p instanceof Sym && p.name === name;
}

interface Parsed<T> {
  readonly node: T | undefined;
  /** Index of the first item not consumed. */
  readonly next: number;
}

class Compiler {
  readonly problems: ScriptProblem[] = [];

  report(pos: Position, message: string): void {
    this.problems.push({ pos, message });
  }

  ctx(scope: ReadonlySet<string>): CheckContext {
    return { scope, report: (pos, message) => this.report(pos, message) };
  }

  /** The target an instruction uses: the retargeted variable, or $config. */
  target(
    target: Target | undefined,
    pos: Position,
    scope: ReadonlySet<string>,
    what: string,
  ): Target {
    if (target !== undefined) return target;
    if (!scope.has(DEFAULT_TARGET)) {
      const names = [...scope].map((n) => `$${n}`).join(', ');
      this.report(
        pos,
        `no $${DEFAULT_TARGET} to ${what}: retarget with $name INSTR` +
          (names === '' ? '' : ` (in scope: ${names})`),
      );
    }
    return { name: DEFAULT_TARGET, pos };
  }

  block(
    items: readonly Value[],
    outer: ReadonlySet<string>,
    target: Target | undefined,
    pos: Position,
  ): Instr[] {
    const scope = new Set(outer);
    const out: Instr[] = [];
    for (let i = 0; i < items.length;) {
      const r = this.instr(items, i, scope, target, pos);
      if (r.node !== undefined) out.push(r.node);
      i = r.next;
    }
    return out;
  }

  /** Parses the instruction at items[i]; `let` adds its captures to `scope`. */
  instr(
    items: readonly Value[],
    i: number,
    scope: Set<string>,
    target: Target | undefined,
    outer: Position,
  ): Parsed<Instr> {
    const item = items[i]!;
    const pos = positionOf(item) ?? outer;
    const v = peel(item);
    const end = items.length;
    if (v instanceof Record || v instanceof Dict) {
      const t = this.target(target, pos, scope, 'assert into');
      return {
        node: {
          op: 'assert',
          target: t,
          template: compileTemplate(item, this.ctx(scope), pos),
          pos,
        },
        next: i + 1,
      };
    }
    if (Array.isArray(v)) {
      return {
        node: { op: 'block', body: this.block(v as readonly Value[], scope, target, pos), pos },
        next: i + 1,
      };
    }
    if (!(v instanceof Sym)) {
      const name = v instanceof PSet ? 'set' : kindNames[kindOf(v)]!;
      const kind = `${/^[aeiou]/.test(name) ? 'an' : 'a'} ${name}`;
      this.report(
        pos,
        `${kind} is not an instruction (to assert it, write += VALUE); ${instructionForms}`,
      );
      return { node: undefined, next: i + 1 };
    }
    const n = v.name;
    const op = this.operator(n, items, i, scope, target, pos);
    if (op !== undefined) return op;
    if (n.startsWith('$')) {
      if (n.length === 1) {
        this.report(pos, `'$' needs a variable name, as in $name INSTR`);
        return { node: undefined, next: i + 1 };
      }
      const name = n.slice(1);
      if (isSym(items[i + 1], '=~')) return this.match(items, i, scope, target, pos);
      // Checked through a template so that the report (with its suggestion) is the same.
      compileTemplate(item, this.ctx(scope), pos);
      if (i + 1 >= end) {
        this.report(
          pos,
          `missing instruction after $${name}: write $${name} INSTR, as in $${name} <assertion>`,
        );
        return { node: undefined, next: end };
      }
      return this.instr(items, i + 1, scope, { name, pos }, pos);
    }
    if (/^\?[\p{L}_]/u.test(n)) {
      this.report(
        pos,
        `'${n}' cannot start an instruction: captures go in patterns (after ?, ?? or let); ` +
          `did you mean '? ${n.slice(1)}'?`,
      );
      return { node: undefined, next: i + 1 };
    }
    if ((EXPRESSIONS as readonly string[]).includes(n)) {
      this.report(
        pos,
        `'${n}' is an expression, not an instruction: use it in let, as in let ?x = ${n}`,
      );
      return { node: undefined, next: i + 1 };
    }
    const near = nearest(n, OPERATORS);
    if (near === undefined || near === '=~') {
      this.report(pos, `unknown instruction '${n}'; ${instructionForms}`);
      return { node: undefined, next: i + 1 };
    }
    this.report(pos, `unknown instruction '${n}' (did you mean '${near}'?)`);
    // Read on as if it were the operator meant, so that one typo is one problem.
    return this.operator(near, items, i, scope, target, pos) ?? { node: undefined, next: i + 1 };
  }

  /** Parses the operator `n` at items[i]; undefined if `n` is not one. */
  operator(
    n: string,
    items: readonly Value[],
    i: number,
    scope: Set<string>,
    target: Target | undefined,
    pos: Position,
  ): Parsed<Instr> | undefined {
    const end = items.length;
    switch (n) {
      case '?':
      case '??': {
        if (i + 1 >= end) {
          this.report(
            pos,
            `'${n}' needs a pattern and an instruction, as in ${n} <service-state ?s ready> INSTR`,
          );
          return { node: undefined, next: end };
        }
        const pattern = compilePatternTerm(items[i + 1]!, this.ctx(scope), pos);
        if (i + 2 >= end) {
          this.report(pos, `'${n}' needs an instruction after its pattern`);
          return { node: undefined, next: end };
        }
        const t = this.target(target, pos, scope, 'observe');
        const bodyScope = new Set([...scope, ...pattern.captures]);
        const body = this.instr(items, i + 2, bodyScope, target, pos);
        if (body.node === undefined) return { node: undefined, next: body.next };
        const op = n === '?' ? 'during' : 'on-message';
        return { node: { op, target: t, pattern, body: body.node, pos }, next: body.next };
      }
      case '?-': {
        if (i + 1 >= end) {
          this.report(pos, `'?-' needs an instruction to run when the facet stops`);
          return { node: undefined, next: end };
        }
        const body = this.instr(items, i + 1, new Set(scope), target, pos);
        if (body.node === undefined) return { node: undefined, next: body.next };
        return { node: { op: 'on-stop', body: body.node, pos }, next: body.next };
      }
      case '!':
      case '+=': {
        const verb = n === '!' ? 'send' : 'assert';
        if (i + 1 >= end) {
          this.report(pos, `'${n}' needs a value to ${verb}`);
          return { node: undefined, next: end };
        }
        const t = this.target(target, pos, scope, n === '!' ? 'send to' : 'assert into');
        const template = compileTemplate(items[i + 1]!, this.ctx(scope), pos);
        return { node: { op: verb, target: t, template, pos }, next: i + 2 };
      }
      case 'let':
        return this.let(items, i, scope, pos);
      case '=~':
        this.report(pos, `'=~' needs a variable before it: $var =~ PATTERN INSTR`);
        return { node: undefined, next: i + 1 };
      case '=':
        this.report(pos, `'=' belongs in let PATTERN = EXPR`);
        return { node: undefined, next: i + 1 };
      case '_':
        this.report(pos, `'_' is pattern syntax, not an instruction; ${instructionForms}`);
        return { node: undefined, next: i + 1 };
      default:
        return undefined;
    }
  }

  let(items: readonly Value[], i: number, scope: Set<string>, pos: Position): Parsed<Instr> {
    const end = items.length;
    if (i + 1 >= end) {
      this.report(pos, `let needs a pattern, '=' and an expression, as in let ?x = EXPR`);
      return { node: undefined, next: end };
    }
    const pattern = compilePatternTerm(items[i + 1]!, this.ctx(scope), pos);
    if (!isSym(items[i + 2], '=')) {
      const at = items[i + 2] === undefined ? pos : (positionOf(items[i + 2]!) ?? pos);
      this.report(at, `let needs '=' after its pattern: let PATTERN = EXPR`);
      // Bind the names anyway: one mistake should not also report every later use.
      for (const c of pattern.captures) scope.add(c);
      return { node: undefined, next: Math.min(i + 2, end) };
    }
    if (i + 3 >= end) {
      this.report(positionOf(items[i + 2]!) ?? pos, `let needs an expression after '='`);
      for (const c of pattern.captures) scope.add(c);
      return { node: undefined, next: end };
    }
    const expr = this.expr(items, i + 3, scope, pos);
    for (const c of pattern.captures) scope.add(c);
    if (expr.node === undefined) return { node: undefined, next: expr.next };
    return { node: { op: 'let', pattern, expr: expr.node, pos }, next: expr.next };
  }

  expr(
    items: readonly Value[],
    i: number,
    scope: ReadonlySet<string>,
    outer: Position,
  ): Parsed<Expr> {
    const item = items[i]!;
    const pos = positionOf(item) ?? outer;
    const v = peel(item);
    const end = items.length;
    if (v instanceof Sym) {
      switch (v.name) {
        case 'dataspace':
        case 'timestamp':
        case 'facet':
        case 'scriptdir':
          return { node: { e: v.name, pos }, next: i + 1 };
        case 'stringify': {
          if (i + 1 >= end) {
            this.report(pos, `stringify needs an expression: stringify EXPR`);
            return { node: undefined, next: end };
          }
          const arg = this.expr(items, i + 1, scope, pos);
          if (arg.node === undefined) return arg;
          return { node: { e: 'stringify', arg: arg.node, pos }, next: arg.next };
        }
        case 'join': {
          if (i + 2 >= end) {
            this.report(pos, `join needs a separator and a list: join SEPARATOR LIST`);
            return { node: undefined, next: end };
          }
          const separator = this.expr(items, i + 1, scope, pos);
          if (separator.next >= end) {
            this.report(pos, `join needs a list after its separator: join SEPARATOR LIST`);
            return { node: undefined, next: end };
          }
          const list = this.expr(items, separator.next, scope, pos);
          if (separator.node === undefined || list.node === undefined)
            return { node: undefined, next: list.next };
          return {
            node: { e: 'join', separator: separator.node, list: list.node, pos },
            next: list.next,
          };
        }
        default:
          break;
      }
    }
    return {
      node: { e: 'template', template: compileTemplate(item, this.ctx(scope), pos), pos },
      next: i + 1,
    };
  }

  /** `$var =~ PATTERN INSTR REST...`: REST is the else-branch, so it ends the block. */
  match(
    items: readonly Value[],
    i: number,
    scope: Set<string>,
    target: Target | undefined,
    pos: Position,
  ): Parsed<Instr> {
    const end = items.length;
    const name = (peel(items[i]!) as Sym).name.slice(1);
    compileTemplate(items[i]!, this.ctx(scope), pos);
    const opPos = positionOf(items[i + 1]!) ?? pos;
    if (i + 2 >= end) {
      this.report(opPos, `'=~' needs a pattern and an instruction: $${name} =~ PATTERN INSTR`);
      return { node: undefined, next: end };
    }
    const pattern = compilePatternTerm(items[i + 2]!, this.ctx(scope), opPos);
    if (i + 3 >= end) {
      this.report(opPos, `'=~' needs an instruction after its pattern: $${name} =~ PATTERN INSTR`);
      return { node: undefined, next: end };
    }
    const then = this.instr(items, i + 3, new Set([...scope, ...pattern.captures]), target, opPos);
    const otherwise = this.block(items.slice(then.next), scope, target, opPos);
    if (then.node === undefined) return { node: undefined, next: end };
    return {
      node: { op: 'match', variable: name, pattern, then: then.node, otherwise, pos: opPos },
      next: end,
    };
  }
}

function byPosition(a: ScriptProblem, b: ScriptProblem): number {
  return a.pos.line - b.pos.line || a.pos.column - b.pos.column;
}

/** Checks values already read (with positions, for useful reports) as a script. */
export function compileValues(values: readonly Value[], options: CompileOptions): CompileResult {
  const c = new Compiler();
  const body = c.block(values, new Set(options.names), undefined, filePosition(options.source));
  const problems = c.problems.sort(byPosition);
  const script: Script | undefined =
    problems.length === 0
      ? { source: options.source, dir: options.dir ?? dirname(options.source), body }
      : undefined;
  return { script, problems, truncated: false };
}

/**
 * Reads and checks script text. A syntax error is one problem; the values before it
 * are still checked, so one run reports as much as can be known.
 */
export function compileScript(text: string, options: CompileOptions): CompileResult {
  const values: Value[] = [];
  let syntax: ScriptProblem | undefined;
  let truncated = false;
  const reader = new TextReader(text, { source: options.source, positions: true });
  try {
    for (let v = reader.next(); v !== undefined; v = reader.next()) values.push(v);
  } catch (e) {
    if (!(e instanceof PreservesReadError)) throw e;
    syntax = { pos: e.pos, message: e.detail };
    truncated = e instanceof PreservesShortError;
  }
  const result = compileValues(values, options);
  if (syntax === undefined) return result;
  return {
    script: undefined,
    problems: [...result.problems, syntax].sort(byPosition),
    truncated,
  };
}

/** Like compileScript, but throws ScriptCheckError (listing every problem) instead. */
export function loadScript(text: string, options: CompileOptions): Script {
  const r = compileScript(text, options);
  if (r.script === undefined) throw new ScriptCheckError(options.source, r.problems);
  return r.script;
}
