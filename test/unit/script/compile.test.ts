import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  ScriptCheckError,
  compileScript,
  formatProblem,
  loadScript,
} from '../../../src/script/index.ts';

const names = ['config', 'machine', 'log'];

/** The problems of a script, formatted as `limen check` prints them. */
function problems(text: string, bound: readonly string[] = names): string[] {
  return compileScript(text, { source: 's.pr', names: bound }).problems.map(formatProblem);
}

function ok(text: string, bound: readonly string[] = names): void {
  assert.deepEqual(problems(text, bound), []);
}

describe('compileScript: instructions', () => {
  it('accepts every construct of the language', () => {
    ok(`
      <a 1> {k: v}
      [<b> [<c>]]
      $machine <x>
      += "a string" += sym
      ! <m>
      ? <link ?name _> [<seen $name> ?- ! <gone $name>]
      ?? <ping ?n> <pong $n>
      ?- ! <bye>
      let ?t = timestamp
      let ?d = dataspace
      let ?f = facet
      let ?s = scriptdir
      let ?j = join ", " ["a" $t]
      let ?q = stringify stringify <x $s>
      let <p ?a ?b> = <p 1 2>
      $a =~ <ok ?y> <good $y>
      <bad $a $b $d $f $j $q>
    `);
  });

  it('compiles to a script with the source and directory', () => {
    const s = loadScript('<a>', { source: '/etc/limen/core/10-a.pr', names });
    assert.equal(s.source, '/etc/limen/core/10-a.pr');
    assert.equal(s.dir, '/etc/limen/core');
    assert.equal(s.body.length, 1);
    assert.equal(loadScript('', { source: 'e.pr', names, dir: '/x' }).dir, '/x');
  });

  it('suggests the nearest operator for an unknown instruction, and reads on as that operator', () => {
    assert.deepEqual(problems('let? ?x = 1\n<a $x>'), [
      "s.pr:1:1: unknown instruction 'let?' (did you mean 'let'?)",
    ]);
    assert.deepEqual(problems('??? <a ?n> <b $n>'), [
      "s.pr:1:1: unknown instruction '???' (did you mean '??'?)",
    ]);
    assert.match(
      problems('frobnicate <a>')[0]!,
      /^s\.pr:1:1: unknown instruction 'frobnicate'; an instruction is a record or dictionary to assert, \[a block\], \$var INSTR, \+= VALUE, ! VALUE, \? PATTERN INSTR, \?\? PATTERN INSTR, \?- INSTR, let PATTERN = EXPR or \$var =~ PATTERN INSTR$/,
    );
    assert.deepEqual(problems('?x <a>'), [
      "s.pr:1:1: '?x' cannot start an instruction: captures go in patterns (after ?, ?? or let); did you mean '? x'?",
    ]);
  });

  it('collects every problem of a file, in source order', () => {
    const found = problems(`<a $nope>
? <b ?x ?x> <c>
!
`);
    assert.deepEqual(found, [
      's.pr:1:4: unbound variable $nope (bind it with let ?nope = ..., or capture it with ?nope in an enclosing pattern)',
      's.pr:2:9: ?x is captured twice in one pattern; use two names',
      "s.pr:3:1: '!' needs a value to send",
    ]);
    const e = assert.throws(
      () => loadScript('<a $nope>\n!', { source: 's.pr', names }),
      (err: unknown) => err instanceof ScriptCheckError,
    );
    void e;
    try {
      loadScript('<a $nope>\n!', { source: 's.pr', names });
    } catch (err) {
      assert.ok(err instanceof ScriptCheckError);
      assert.equal(err.code, 'LIMEN_SCRIPT_CHECK');
      assert.equal(err.problems.length, 2);
      assert.equal(err.message.split('\n').length, 2);
    }
  });

  it('reports missing operands', () => {
    assert.deepEqual(problems('[<a> ?]'), [
      "s.pr:1:6: '?' needs a pattern and an instruction, as in ? <service-state ?s ready> INSTR",
    ]);
    assert.deepEqual(problems('?? <a>'), ["s.pr:1:1: '??' needs an instruction after its pattern"]);
    assert.deepEqual(problems('?-'), [
      "s.pr:1:1: '?-' needs an instruction to run when the facet stops",
    ]);
    assert.deepEqual(problems('+='), ["s.pr:1:1: '+=' needs a value to assert"]);
    assert.deepEqual(problems('$machine'), [
      's.pr:1:1: missing instruction after $machine: write $machine INSTR, as in $machine <assertion>',
    ]);
    assert.deepEqual(problems('$ <a>'), ["s.pr:1:1: '$' needs a variable name, as in $name INSTR"]);
    assert.deepEqual(problems('let'), [
      "s.pr:1:1: let needs a pattern, '=' and an expression, as in let ?x = EXPR",
    ]);
    assert.deepEqual(problems('let ?x ='), ["s.pr:1:8: let needs an expression after '='"]);
    assert.deepEqual(problems('let ?x = stringify'), [
      's.pr:1:10: stringify needs an expression: stringify EXPR',
    ]);
    assert.deepEqual(problems('let ?x = join ","'), [
      's.pr:1:10: join needs a separator and a list: join SEPARATOR LIST',
    ]);
    assert.deepEqual(problems('let ?v = 1 $v =~ <a>'), [
      "s.pr:1:15: '=~' needs an instruction after its pattern: $v =~ PATTERN INSTR",
    ]);
    assert.deepEqual(problems('let ?v = 1 $v =~'), [
      "s.pr:1:15: '=~' needs a pattern and an instruction: $v =~ PATTERN INSTR",
    ]);
  });

  it("reports let without '=' once, binding its names so later uses are not reported", () => {
    assert.deepEqual(problems('let ?x 5\n<a $x>'), [
      "s.pr:1:8: let needs '=' after its pattern: let PATTERN = EXPR",
      's.pr:1:8: an integer is not an instruction (to assert it, write += VALUE); an instruction is a record or dictionary to assert, [a block], $var INSTR, += VALUE, ! VALUE, ? PATTERN INSTR, ?? PATTERN INSTR, ?- INSTR, let PATTERN = EXPR or $var =~ PATTERN INSTR',
    ]);
  });

  it('explains misplaced operators, expressions and atoms', () => {
    assert.match(
      problems('=~ <a> <b>')[0]!,
      /'=~' needs a variable before it: \$var =~ PATTERN INSTR/,
    );
    assert.match(problems('_')[0]!, /'_' is pattern syntax, not an instruction/);
    assert.match(
      problems('timestamp')[0]!,
      /'timestamp' is an expression, not an instruction: use it in let, as in let \?x = timestamp/,
    );
    assert.match(
      problems('"hello"')[0]!,
      /a string is not an instruction \(to assert it, write \+= VALUE\)/,
    );
    assert.match(problems('#{1}')[0]!, /a set is not an instruction/);
  });

  it('reports a syntax error with its position, and still checks what came before it', () => {
    assert.deepEqual(problems('<a $nope>\n<b 1\n'), [
      's.pr:1:4: unbound variable $nope (bind it with let ?nope = ..., or capture it with ?nope in an enclosing pattern)',
      "s.pr:3:1: expected '>' to close the record opened at 2:1, found end of input",
    ]);
  });
});

describe('compileScript: scope', () => {
  it('binds let for the rest of its block only', () => {
    ok('let ?x = 1 <a $x> [<b $x>]');
    assert.deepEqual(problems('[let ?x = 1 <a $x>] <b $x>'), [
      's.pr:1:24: unbound variable $x (bind it with let ?x = ..., or capture it with ?x in an enclosing pattern)',
    ]);
    assert.deepEqual(problems('<b $x> let ?x = 1'), [
      's.pr:1:4: unbound variable $x (bind it with let ?x = ..., or capture it with ?x in an enclosing pattern)',
    ]);
  });

  it('binds captures in the reaction instruction only', () => {
    ok('? <a ?x> [<b $x> ? <c ?y> <d $x $y>]');
    ok('?? <a ?x> <b $x>');
    assert.match(problems('? <a ?x> <b $x> <c $x>')[0]!, /^s\.pr:1:20: unbound variable \$x/);
  });

  it('binds =~ captures in its instruction, not in the else-branch', () => {
    ok('let ?v = 1 $v =~ <ok ?w> <a $w> <b $v>');
    assert.match(
      problems('let ?v = 1 $v =~ <ok ?w> <a $w> <b $w>')[0]!,
      /^s\.pr:1:36: unbound variable \$w \(bind it/,
    );
  });

  it('suggests a near name for an unbound variable', () => {
    assert.deepEqual(problems('let ?argv = 1 <a $argvv>'), [
      's.pr:1:18: unbound variable $argvv (did you mean $argv?)',
    ]);
    assert.deepEqual(problems('$machin <a>'), [
      's.pr:1:1: unbound variable $machin (did you mean $machine?)',
    ]);
  });

  it('checks the default target $config against the loader bindings', () => {
    assert.deepEqual(problems('<a>', ['machine']), [
      's.pr:1:1: no $config to assert into: retarget with $name INSTR (in scope: $machine)',
    ]);
    assert.match(problems('! <a>', ['machine'])[0]!, /no \$config to send to/);
    assert.match(problems('? <a> $machine <b>', ['machine'])[0]!, /no \$config to observe/);
    ok('$machine [<a> ? <b> <c>]', ['machine']);
  });

  it('uses $x in a pattern as the bound value, and checks it', () => {
    ok('let ?want = "eth0" ? <link $want ?s> <state $s>');
    assert.match(problems('? <link $want> <x>')[0]!, /unbound variable \$want/);
  });
});

describe('compileScript: patterns and templates', () => {
  it('reports malformed patterns', () => {
    assert.deepEqual(problems('? <a ?> <b>'), [
      "s.pr:1:6: '?' needs a name: write ?name to capture, or _ to discard",
    ]);
    assert.deepEqual(problems('? <?x 1 2> <b>'), [
      's.pr:1:3: <?x PATTERN> captures while matching one pattern; found 2 fields',
    ]);
    assert.deepEqual(problems('? <a ... 1> <b>'), [
      "s.pr:1:6: '...' can only be the last field of a record or sequence pattern",
    ]);
    assert.deepEqual(problems('? ... <b>'), [
      "s.pr:1:3: '...' can only be the last field of a record or sequence pattern",
    ]);
    assert.deepEqual(problems('? #{?x} <b>'), [
      's.pr:1:5: a set is matched literally and cannot contain ?x; match a sequence instead',
    ]);
    assert.deepEqual(problems('? <a $> <b>'), ["s.pr:1:6: '$' needs a variable name, as in $name"]);
    ok('? <a ?x ...> <b $x>');
    ok('? [?x ...] <b $x>');
    ok('? <?all <a _>> <b $all>');
    ok('? {k: ?v} <b $v>');
  });

  it('reports pattern syntax in a value to assert or send', () => {
    assert.deepEqual(problems('<a ?x>'), [
      "s.pr:1:4: '?x' is pattern syntax and cannot appear in a value to assert or send (to use a bound variable write $x)",
    ]);
    assert.deepEqual(problems('! <a _>'), [
      "s.pr:1:6: '_' is pattern syntax and cannot appear in a value to assert or send",
    ]);
  });

  it('checks attenuation and its caveats', () => {
    ok('let ?sys = <* $config [<or [<rewrite <a ?x> <b $x>> <accept _>]> <reject <c ...>>]>');
    ok('<holder <* $config [<accept <x>>]>>');
    assert.deepEqual(problems('let ?s = <* config [<accept _>]>'), [
      's.pr:1:13: <* ...> attenuates a variable holding a ref; write <* $ref [CAVEAT ...]>',
    ]);
    assert.deepEqual(problems('let ?s = <* $config <accept _>>'), [
      's.pr:1:21: <* ...> needs a sequence of caveats; write <* $ref [CAVEAT ...]>',
    ]);
    assert.deepEqual(problems('let ?s = <* $config>'), [
      's.pr:1:10: <* ...> takes a variable and a sequence of caveats; write <* $ref [CAVEAT ...]>',
    ]);
    assert.deepEqual(problems('let ?s = <* $config [<acept _>]>'), [
      's.pr:1:22: unknown caveat <acept ...> (did you mean <accept ...>?)',
    ]);
    assert.deepEqual(problems('let ?s = <* $config [<rewrite <a>>]>'), [
      's.pr:1:22: <rewrite ...> takes 2 fields; a caveat is <rewrite PATTERN TEMPLATE>, <accept PATTERN>, <reject PATTERN> or <or [CAVEAT ...]>',
    ]);
    assert.deepEqual(problems('let ?s = <* $config [<or []>]>'), [
      's.pr:1:22: <or []> needs at least one alternative',
    ]);
    assert.deepEqual(problems('let ?s = <* $config [<rewrite <a ?x> <b $y>>]>'), [
      's.pr:1:41: unbound variable $y (bind it with let ?y = ..., or capture it with ?y in an enclosing pattern)',
    ]);
    assert.deepEqual(problems('let ?s = <* $nope [<accept _>]>'), [
      's.pr:1:13: unbound variable $nope (bind it with let ?nope = ..., or capture it with ?nope in an enclosing pattern)',
    ]);
  });
});
