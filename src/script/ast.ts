// The compiled form of a script: instructions, expressions, templates and
// patterns, as produced by compile.ts and run by interpreter.ts. Invariants:
// every node that can fail at run time carries its source position; every
// variable a node names was in scope when the script was checked.

import type { Pattern } from '../dataspace/index.ts';
import type { Position, Value } from '../preserves/index.ts';

/** A value to build at run time: constants are folded into `lit` nodes. */
export type Template =
  | { readonly t: 'lit'; readonly value: Value }
  | { readonly t: 'var'; readonly name: string; readonly pos: Position }
  | { readonly t: 'rec'; readonly label: Template; readonly fields: readonly Template[] }
  | { readonly t: 'seq'; readonly items: readonly Template[] }
  | { readonly t: 'set'; readonly items: readonly Template[] }
  | { readonly t: 'dict'; readonly entries: readonly (readonly [Template, Template])[] }
  | {
      readonly t: 'attenuate';
      readonly variable: string;
      readonly caveats: readonly CaveatTemplate[];
      readonly pos: Position;
    };

/** A pattern whose `$x` holes are filled in when the instruction runs. */
export type ScriptPattern =
  | { readonly p: 'discard' }
  | {
      readonly p: 'capture';
      readonly name: string;
      readonly inner: ScriptPattern;
      readonly pos: Position;
    }
  | { readonly p: 'lit'; readonly value: Value; readonly pos: Position }
  | { readonly p: 'var'; readonly name: string; readonly pos: Position }
  | {
      readonly p: 'rec';
      readonly label: ScriptPattern;
      readonly fields: readonly ScriptPattern[];
      /** `...` as the last field: further fields are allowed (prefix match). */
      readonly open: boolean;
      readonly pos: Position;
    }
  | {
      readonly p: 'seq';
      readonly items: readonly ScriptPattern[];
      readonly open: boolean;
      readonly pos: Position;
    }
  | {
      readonly p: 'dict';
      readonly entries: readonly (readonly [Template, ScriptPattern])[];
      readonly pos: Position;
    };

/** A checked pattern: its capture names (in order) and, if it has no `$x`, the compiled pattern. */
export interface PatternTerm {
  readonly pattern: ScriptPattern;
  readonly captures: readonly string[];
  readonly constant: Pattern | undefined;
  readonly pos: Position;
}

export type CaveatTemplate =
  | {
      readonly c: 'rewrite';
      readonly pattern: PatternTerm;
      readonly template: Template;
      readonly pos: Position;
    }
  | { readonly c: 'accept' | 'reject'; readonly pattern: PatternTerm; readonly pos: Position }
  | { readonly c: 'or'; readonly alternatives: readonly CaveatTemplate[]; readonly pos: Position };

export type Expr =
  | { readonly e: 'dataspace' | 'timestamp' | 'facet' | 'scriptdir'; readonly pos: Position }
  | { readonly e: 'stringify'; readonly arg: Expr; readonly pos: Position }
  | { readonly e: 'join'; readonly separator: Expr; readonly list: Expr; readonly pos: Position }
  | { readonly e: 'template'; readonly template: Template; readonly pos: Position };

/** Where an instruction publishes or observes: the variable holding the ref. */
export interface Target {
  readonly name: string;
  readonly pos: Position;
}

export type Instr =
  | {
      readonly op: 'assert' | 'send';
      readonly target: Target;
      readonly template: Template;
      readonly pos: Position;
    }
  | { readonly op: 'block'; readonly body: readonly Instr[]; readonly pos: Position }
  | {
      readonly op: 'during' | 'on-message';
      readonly target: Target;
      readonly pattern: PatternTerm;
      readonly body: Instr;
      readonly pos: Position;
    }
  | { readonly op: 'on-stop'; readonly body: Instr; readonly pos: Position }
  | {
      readonly op: 'let';
      readonly pattern: PatternTerm;
      readonly expr: Expr;
      readonly pos: Position;
    }
  | {
      readonly op: 'match';
      readonly variable: string;
      readonly pattern: PatternTerm;
      readonly then: Instr;
      /** The rest of the enclosing block: runs only when the value does not match. */
      readonly otherwise: readonly Instr[];
      readonly pos: Position;
    };

/** A checked script, ready to run. */
export interface Script {
  /** The file name used in positions and origins. */
  readonly source: string;
  /** What `scriptdir` yields. */
  readonly dir: string;
  readonly body: readonly Instr[];
}
