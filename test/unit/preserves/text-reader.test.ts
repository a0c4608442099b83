// Unit tests of the Preserves text reader: every syntax form, every error with its class and
// position, positions and annotations, the depth limit, and the conformance suite's parse cases.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import {
  Annotated,
  Bytes,
  DEFAULT_MAX_DEPTH,
  Dict,
  Double,
  Embedded,
  PSet,
  PreservesEofError,
  type PreservesReadError,
  PreservesShortError,
  PreservesSyntaxError,
  PreservesTooDeepError,
  Record,
  Sym,
  TextReader,
  is,
  isBareSymbol,
  parse,
  parseAll,
  peel,
  record,
  stringify,
  sym,
  type Value,
} from '../../../src/preserves/index.ts';

type ErrorClass = abstract new (...args: never[]) => PreservesReadError;

/** Asserts that parse(text) fails with `cls` at line:col, and that the message matches. */
function fails(text: string, cls: ErrorClass, where: string, message?: RegExp): void {
  assert.throws(
    () => parse(text),
    (e: unknown) => {
      assert.ok(e instanceof cls, `${JSON.stringify(text)}: got ${String(e)}`);
      assert.equal(`${e.pos.line}:${e.pos.column}`, where, `${JSON.stringify(text)}: ${e.message}`);
      if (message !== undefined) assert.match(e.detail, message);
      return true;
    },
  );
}

function bytes(...b: number[]): Bytes {
  return new Bytes(Uint8Array.from(b));
}

function assertIs(actual: Value, expected: Value, what?: string): void {
  assert.ok(
    is(actual, expected),
    what ?? `got ${stringify(actual)}, expected ${stringify(expected)}`,
  );
}

describe('text reader: atoms', () => {
  it('reads booleans', () => {
    assert.equal(parse('#t'), true);
    assert.equal(parse('#f'), false);
  });

  it('reads integers, with sign and leading zeros, as numbers or bigints', () => {
    assert.equal(parse('0'), 0);
    assert.equal(parse('+127'), 127);
    assert.equal(parse('-5'), -5);
    assert.ok(Object.is(parse('-0'), 0), '-0 is the integer 0, not JS -0');
    assert.equal(parse('01'), 1);
    assert.equal(parse('9007199254740991'), 9007199254740991);
    assert.equal(parse('9007199254740992'), 9007199254740992n);
    assert.equal(parse('-98765432109876543210987654321'), -98765432109876543210987654321n);
    assert.equal(parse('000000000000000000000042'), 42, 'long digit strings are normalised');
  });

  it('reads doubles, which need a fraction or an exponent', () => {
    const d = (t: string) => {
      const v = parse(t);
      assert.ok(v instanceof Double, t);
      return v.value;
    };
    assert.equal(d('1.0'), 1);
    assert.equal(d('-1.5e3'), -1500);
    assert.equal(d('1e10'), 1e10);
    assert.equal(d('1E-2'), 0.01);
    assert.equal(d('1.0e+0'), 1);
    assert.ok(Object.is(d('-0.0'), -0));
    assert.ok(Object.is(d('+0.0'), 0));
    assert.equal(d('-1.202e300'), -1.202e300);
  });

  it('reads #xd"..." doubles bit for bit, with whitespace between byte pairs', () => {
    const v = parse('#xd"12 34 56 78  9a bc de f0"');
    assert.ok(v instanceof Double);
    assert.equal(v.bits(), 0x123456789abcdef0n);
    assert.equal((parse('#xd"7ff0000000000000"') as Double).value, Infinity);
    assert.equal((parse('#xd"fff0000000000000"') as Double).value, -Infinity);
    const nan = parse('#xd"7ff8000000000111"') as Double;
    assert.ok(Number.isNaN(nan.value));
    assert.equal(nan.bits(), 0x7ff8000000000111n);
    assert.equal((parse('#xd"FFF0000000000001"') as Double).bits(), 0xfff0000000000001n);
  });

  it('reads strings with every escape, raw newlines and non-BMP characters', () => {
    assert.equal(parse('""'), '');
    assert.equal(parse('"hello"'), 'hello');
    assert.equal(parse(String.raw`"a\\b\/c\"d\be\ff\ng\rh\ti"`), 'a\\b/c"d\be\ff\ng\rh\ti');
    assert.equal(parse(String.raw`"\u6c34\u6C34"`), '水水');
    assert.equal(parse(String.raw`"\uD834\uDD1E"`), '\u{1d11e}');
    assert.equal(parse('"𝄞 raw"'), '𝄞 raw');
    assert.equal(parse('"two\nlines"'), 'two\nlines');
    assert.equal(parse(String.raw`"it\'s"`), "it's", "\\' is accepted in strings too");
  });

  it('reads bare symbols, and numbers only where the whole token is a number', () => {
    const s = (t: string) => {
      const v = parse(t);
      assert.ok(v instanceof Sym, `${t} should be a symbol`);
      return v.name;
    };
    for (const t of [
      'hello',
      '1-2-3',
      'a+b',
      '+',
      '-',
      '---',
      '-a',
      '---1',
      '+1.x',
      '1a',
      '1.',
      '.5',
    ]) {
      assert.equal(s(t), t);
    }
    for (const t of [
      '1e',
      '1e+',
      '1.5.3',
      'Infinity',
      'NaN',
      '?x',
      '$y',
      '_',
      'a/b',
      'x=y',
      '~!$%^&*',
    ]) {
      assert.equal(s(t), t);
    }
    const names = Array.from({ length: 3000 }, (_, i) => `s${i.toString(36)}`);
    assert.deepEqual(
      parseAll(names.join(' ') + ' ' + names.join(' ')).map((v) => (v as Sym).name),
      [...names, ...names],
      'recently read symbols are cached without mixing them up',
    );
    assert.equal(s('水'), '水');
    assert.equal(s('😀x'), '😀x');
    assert.equal(s('é'), 'é');
  });

  it("reads quoted symbols in the current 'x' form and the legacy |x| form", () => {
    assert.equal(parse("'hello world'"), sym('hello world'));
    assert.equal((parse("''") as Sym).name, '');
    assert.equal((parse('||') as Sym).name, '');
    assert.equal((parse("'1'") as Sym).name, '1');
    assert.equal((parse(String.raw`'it\'s'`) as Sym).name, "it's");
    assert.equal((parse(String.raw`|a\|b|`) as Sym).name, 'a|b');
    assert.equal((parse(String.raw`|\uD834\uDD1E|`) as Sym).name, '\u{1d11e}');
    assert.equal((parse(String.raw`'a\nb'`) as Sym).name, 'a\nb');
  });

  it('reads byte strings in all three forms', () => {
    assertIs(parse('#"hello"'), Bytes.fromLatin1('hello'));
    assertIs(
      parse(String.raw`#"abc\x6c\x34\xf0\\/\"\b\f\n\r\txyz"`),
      bytes(
        0x61,
        0x62,
        0x63,
        0x6c,
        0x34,
        0xf0,
        0x5c,
        0x2f,
        0x22,
        8,
        12,
        10,
        13,
        9,
        0x78,
        0x79,
        0x7a,
      ),
    );
    assertIs(parse('#x"414243"'), Bytes.fromLatin1('ABC'));
    assertIs(parse('#x" 41 4A\n4e "'), Bytes.fromLatin1('AJN'));
    assertIs(parse('#x""'), bytes());
    assertIs(parse('#[Y29yeW1i]'), Bytes.fromLatin1('corymb'));
    assertIs(parse('#[Y29 yeW 1i]'), Bytes.fromLatin1('corymb'));
    assertIs(parse('#[SGk=]'), Bytes.fromLatin1('Hi'));
    assertIs(parse('#[SGk]'), Bytes.fromLatin1('Hi'));
    assertIs(parse('#[S G k]'), Bytes.fromLatin1('Hi'));
    assertIs(parse('#[]'), bytes());
    assertIs(parse('#[-_8=]'), bytes(0xfb, 0xff), 'URL-safe alphabet');
    assertIs(parse('#[+/8=]'), bytes(0xfb, 0xff));
  });
});

describe('text reader: compounds', () => {
  it('reads records, sequences, sets and dictionaries', () => {
    const r = parse('<interface "eth0" 2 normal>');
    assert.ok(r instanceof Record);
    assertIs(r, record('interface', 'eth0', 2, sym('normal')));
    assertIs(parse('<<discard> 3 4>'), new Record(record('discard'), [3, 4]));
    assertIs(parse('<7[]>'), new Record(7, [[]]));
    assertIs(parse('[1 2 [3]]'), [1, 2, [3]]);
    assertIs(parse('[]'), []);
    assertIs(parse('#{1 2 3}'), new PSet([3, 2, 1]));
    assertIs(parse('#{}'), new PSet());
    const d = parse('{a: 1 "b": #t [1 2 3]: #"c" {x: y}: {}}');
    assert.ok(d instanceof Dict);
    assert.equal(d.size, 4);
    assert.equal(d.get(sym('a')), 1);
    assert.equal(d.get('b'), true);
    assertIs(d.get([1, 2, 3])!, Bytes.fromLatin1('c'));
    assertIs(d.get(new Dict([[sym('x'), sym('y')]]))!, new Dict());
    assertIs(parse('{a:b}'), new Dict([[sym('a'), sym('b')]]));
    assertIs(parse('{ a : b }'), new Dict([[sym('a'), sym('b')]]));
  });

  it('reads embedded values, mapping the payload when asked', () => {
    const e = parse('#:0');
    assert.ok(e instanceof Embedded);
    assert.equal(e.value, 0);
    assertIs(parse('[#:0 #:"hello" #:#:x]'), [
      new Embedded(0),
      new Embedded('hello'),
      new Embedded(new Embedded(sym('x'))),
    ]);
    const seen: Value[] = [];
    const m = parse('[#:<ref 1> #:<ref 2>]', {
      embedded: (v) => {
        seen.push(v);
        return { ref: v };
      },
    }) as Value[];
    assert.equal(seen.length, 2);
    assert.deepEqual((m[1] as Embedded).value, { ref: seen[1] });
  });

  it('allows commas between the items of sequences, sets and dictionaries only', () => {
    assertIs(parse('[1, 2, 3]'), [1, 2, 3]);
    assertIs(parse('[,, 1,, 2,,]'), [1, 2]);
    assertIs(parse('#{1, 2,}'), new PSet([1, 2]));
    assertIs(
      parse('{,, a: 1,, b: 2,,}'),
      new Dict([
        [sym('a'), 1],
        [sym('b'), 2],
      ]),
    );
    fails('<a, b>', PreservesSyntaxError, '1:3', /commas may only separate/);
    fails('{ a,: 1 }', PreservesSyntaxError, '1:4', /expected ':' after the dictionary key at 1:3/);
    fails('{ a:, 1 }', PreservesSyntaxError, '1:5');
    fails('1, 2', PreservesSyntaxError, '1:2');
    fails('[@a, b]', PreservesSyntaxError, '1:4');
    fails('@,a b', PreservesSyntaxError, '1:2');
    fails('#x"41, 42"', PreservesSyntaxError, '1:6');
  });

  it('needs a delimiter after #t, #f, numbers and bare symbols', () => {
    assertIs(parse('[#f#f]'), [false, false]);
    assertIs(parse('[#f foo]'), [false, sym('foo')]);
    assertIs(parse('[a"b"c]'), [sym('a'), 'b', sym('c')]);
    assertIs(parse('<a<b>>'), record('a', record('b')));
    assertIs(parse('[1[2]]'), [1, [2]]);
    fails('[#ffoo]', PreservesSyntaxError, '1:4', /after '#f'/);
    fails('#t1', PreservesSyntaxError, '1:3');
    fails('foo(bar)', PreservesSyntaxError, '1:4', /after 'foo'/);
    fails('12\\', PreservesSyntaxError, '1:3');
  });
});

describe('text reader: annotations and comments', () => {
  it('drops annotations and comments unless asked', () => {
    assert.equal(parse('@a 1'), 1);
    assert.equal(parse('# note\n1'), 1);
    assertIs(parse('[@x 1 # c\n 2]'), [1, 2]);
    assert.ok(!(parse('[@x 1]') as Value[]).some((v) => v instanceof Annotated));
  });

  it('keeps stacked annotations in order, outermost first', () => {
    const v = parse('@a @b x', { annotations: true });
    assert.ok(v instanceof Annotated);
    assert.equal(v.item, sym('x'));
    assert.deepEqual(v.annotations, [sym('a'), sym('b')]);
    const w = parse('@a@b@c[]', { annotations: true }) as Annotated;
    assert.deepEqual(
      w.annotations.map((a) => (a as Sym).name),
      ['a', 'b', 'c'],
    );
    const n = parse('@@1 2 @@3 4 5', { annotations: true }) as Annotated;
    assert.equal(n.item, 5);
    assert.equal(n.annotations.length, 2);
    assert.deepEqual((n.annotations[0] as Annotated).annotations, [1]);
    assert.equal((n.annotations[0] as Annotated).item, 2);
    assertIs(parse('<@ar R @af f>', { annotations: true }), record('R', sym('f')));
  });

  it('turns `# text` lines into string annotations on the next value', () => {
    const v = parse('# first\n#\n#\tthird\n  0', { annotations: true }) as Annotated;
    assert.deepEqual(v.annotations, ['first', '', 'third']);
    assert.equal(v.item, 0);
    const w = parse('[#f# a line comment\n#t]', { annotations: true }) as Value[];
    assert.deepEqual((w[1] as Annotated).annotations, ['a line comment']);
    assert.deepEqual((parse('#  two\r\n1', { annotations: true }) as Annotated).annotations, [
      ' two',
    ]);
  });

  it('turns a #! line into an <interpreter "..."> annotation', () => {
    const v = parse('#!/usr/bin/env limen\nvalue', { annotations: true }) as Annotated;
    assert.equal(v.item, sym('value'));
    assertIs(v.annotations[0]!, record('interpreter', '/usr/bin/env limen'));
  });

  it('drops comments that come before a closing bracket or the end of input', () => {
    assertIs(parse('[1 # trailing\n]', { annotations: true }), [1]);
    assertIs(parse('{a: 1 # trailing\n}', { annotations: true }), new Dict([[sym('a'), 1]]));
    assert.equal(parse('1 # trailing', { annotations: true }), 1);
    assert.equal(parse('1\n# trailing\n', { annotations: true }), 1);
    assertIs(parse('[1 # note\n, 2]', { annotations: true }), [1, 2]);
  });

  it('annotates dictionary keys and values, and embedded payloads', () => {
    const d = parse('{@ak a: @av 1}', { annotations: true }) as Dict;
    const [k, v] = [...d][0]!;
    assert.deepEqual((k as Annotated).annotations, [sym('ak')]);
    assert.deepEqual((v as Annotated).annotations, [sym('av')]);
    const e = parse('#:@p x', { annotations: true }) as Embedded;
    assert.ok(e.value instanceof Annotated);
  });
});

describe('text reader: positions', () => {
  it('wraps every value, atoms included, with its 1-based line and column', () => {
    const v = parse('[1\n  <a "x">]', { positions: true, source: 'f.pr' });
    assert.ok(v instanceof Annotated);
    assert.deepEqual(v.pos, { source: 'f.pr', line: 1, column: 1, offset: 0 });
    assert.deepEqual(v.annotations, []);
    const [one, rec] = v.item as Value[];
    assert.deepEqual((one as Annotated).pos, { source: 'f.pr', line: 1, column: 2, offset: 1 });
    assert.equal((rec as Annotated).pos?.line, 2);
    assert.equal((rec as Annotated).pos?.column, 3);
    const r = peel(rec!) as Record;
    assert.equal((r.label as Annotated).pos?.column, 4);
    assert.equal((r.fields[0] as Annotated).pos?.column, 6);
    assertIs(v, [1, record('a', 'x')]);
  });

  it('places an annotated value at its item, after the annotations', () => {
    const v = parse('@note\n  # comment\n  item', { positions: true }) as Annotated;
    assert.equal(v.pos?.line, 3);
    assert.equal(v.pos?.column, 3);
    assert.equal(v.annotations.length, 2);
    assert.equal((v.annotations[0] as Annotated).pos?.column, 2);
    assert.equal((v.annotations[1] as Annotated).pos?.line, 2);
  });

  it('counts columns in code points and CR LF as one line break', () => {
    const v = parse('["😀水" x]', { positions: true });
    const [, x] = peel(v) as Value[];
    assert.equal((x as Annotated).pos?.column, 7);
    const w = parse('[a\r\nb\rc]', { positions: true });
    const [, b, c] = peel(w) as Value[];
    assert.deepEqual([(b as Annotated).pos?.line, (b as Annotated).pos?.column], [2, 1]);
    assert.deepEqual([(c as Annotated).pos?.line, (c as Annotated).pos?.column], [3, 1]);
  });

  it('gives comment annotations positions too', () => {
    const v = parse('#!/bin/limen\n# note\nx', { positions: true }) as Annotated;
    const [interp, note] = v.annotations as Annotated[];
    assert.deepEqual([interp!.pos?.line, interp!.pos?.column], [1, 1]);
    assert.equal(((peel(interp!) as Record).fields[0] as Annotated).pos?.column, 3);
    assert.deepEqual([note!.pos?.line, peel(note!)], [2, 'note']);
  });

  it('positions imply annotations, and they survive as ordinary annotations', () => {
    const v = parse('@a 1', { positions: true }) as Annotated;
    assert.deepEqual(
      v.annotations.map((a) => peel(a)),
      [sym('a')],
    );
  });

  it('puts the source name and position in error messages', () => {
    assert.throws(
      () => parse('[1\n  2 >', { source: 'net.pr' }),
      (e: unknown) =>
        e instanceof PreservesSyntaxError &&
        e.message === "net.pr:2:5: expected ']' to close the sequence opened at 1:1, found '>'",
    );
  });
});

describe('text reader: errors', () => {
  it('reports unclosed compounds as short input, naming the opener', () => {
    fails('[', PreservesShortError, '1:2', /expected '\]' to close the sequence opened at 1:1/);
    fails('  <a', PreservesShortError, '1:5', /'>' to close the record opened at 1:3/);
    fails(
      '{ a: b, c: d ',
      PreservesShortError,
      '1:14',
      /'}' to close the dictionary opened at 1:1/,
    );
    fails('{', PreservesShortError, '1:2');
    fails('#{ 1 2', PreservesShortError, '1:7', /the set opened at 1:1/);
    fails('{a', PreservesShortError, '1:3', /expected ':'/);
    fails('{a:', PreservesShortError, '1:4', /expected a value/);
    fails('@a', PreservesShortError, '1:3', /annotated at 1:1/);
    fails('#:', PreservesShortError, '1:3');
    fails('[1 # comment', PreservesShortError, '1:13');
  });

  it('reports unterminated atoms as short input', () => {
    fails('"abc', PreservesShortError, '1:5', /unterminated string opened at 1:1/);
    fails('"abc\\', PreservesShortError, '1:6');
    fails('"\\u12', PreservesShortError, '1:6');
    fails('"\\uD834', PreservesShortError, '1:8');
    fails("'abc", PreservesShortError, '1:5', /quoted symbol/);
    fails('|abc', PreservesShortError, '1:5');
    fails('#"abc', PreservesShortError, '1:6', /byte string/);
    fails('#"\\x4', PreservesShortError, '1:6');
    fails('#x"41', PreservesShortError, '1:6');
    fails('#x"4', PreservesShortError, '1:5');
    fails('#xd"00', PreservesShortError, '1:7');
    fails('#[SGk', PreservesShortError, '1:6');
    fails('#x', PreservesShortError, '1:3');
    fails('#xd', PreservesShortError, '1:4');
  });

  it('tells empty input (EOF) from input that never yields a value (short)', () => {
    fails('', PreservesEofError, '1:1');
    fails('   ', PreservesShortError, '1:4');
    fails('  # just a comment\n', PreservesShortError, '2:1');
  });

  it('reports bad syntax with its position', () => {
    fails(']', PreservesSyntaxError, '1:1', /unexpected '\]'/);
    fails('}', PreservesSyntaxError, '1:1');
    fails('>', PreservesSyntaxError, '1:1');
    fails(':', PreservesSyntaxError, '1:1');
    fails(
      '[1 2>',
      PreservesSyntaxError,
      '1:5',
      /expected '\]' to close the sequence opened at 1:1, found '>'/,
    );
    fails('<>', PreservesSyntaxError, '1:1', /needs a label/);
    fails('[@a]', PreservesSyntaxError, '1:4', /annotated at 1:2/);
    fails('{ a: 1, a: 2 }', PreservesSyntaxError, '1:9', /duplicate key/);
    fails('#{a b a}', PreservesSyntaxError, '1:7', /duplicate element/);
    fails('1 2', PreservesSyntaxError, '1:3', /expected end of input/);
    fails('#q', PreservesSyntaxError, '1:2');
    fails('#xq', PreservesSyntaxError, '1:3');
    fails('\u0001', PreservesSyntaxError, '1:1', /U\+0001/);
    fails('\u00a0', PreservesSyntaxError, '1:1', /unexpected/);
  });

  it('rejects malformed escapes and lone surrogates', () => {
    fails('"\\q"', PreservesSyntaxError, '1:2', /unknown escape/);
    fails('"\\u6c"', PreservesSyntaxError, '1:2', /four hex digits/);
    fails('"blah\\uD834"', PreservesSyntaxError, '1:6', /unpaired surrogate/);
    fails('"blah\\uD834blah"', PreservesSyntaxError, '1:6');
    fails('"\\uDD1Eblah"', PreservesSyntaxError, '1:2');
    fails('"\\uD834\\uD834"', PreservesSyntaxError, '1:2');
    fails('|blah\\uDD1E\\uD834blah|', PreservesSyntaxError, '1:6');
    fails('#"\\u6c34"', PreservesSyntaxError, '1:3', /unknown escape '\\u'/);
    fails('#"\\xZZ"', PreservesSyntaxError, '1:3', /two hex digits/);
    fails('#"é"', PreservesSyntaxError, '1:3', /printable ASCII/);
    fails('#"a\nb"', PreservesSyntaxError, '1:4');
  });

  it('rejects malformed hex and base64 byte strings and doubles', () => {
    fails('#x"414 243"', PreservesSyntaxError, '1:7', /pairs of digits/);
    fails('#x"4g"', PreservesSyntaxError, '1:5');
    fails('#xd"12345678"', PreservesSyntaxError, '1:1', /exactly 16 hex digits, found 8/);
    fails('#xd"123456789abcdef012"', PreservesSyntaxError, '1:1');
    fails('#xd"12zz56789abcdef0"', PreservesSyntaxError, '1:7');
    fails('#xd"12345 6789abcdef0"', PreservesSyntaxError, '1:10');
    fails('#[SGk*]', PreservesSyntaxError, '1:6', /invalid base64/);
    fails('#[S=Gk]', PreservesSyntaxError, '1:5', /padding/);
    fails('#[SGkxS]', PreservesSyntaxError, '1:1', /truncated/);
  });

  it('every error carries a stable code', () => {
    const codes = ['', '[', ']'].map((t) => {
      try {
        parse(t);
        return 'none';
      } catch (e) {
        return (e as PreservesReadError).code;
      }
    });
    assert.deepEqual(codes, [
      'LIMEN_PRESERVES_EOF',
      'LIMEN_PRESERVES_SHORT',
      'LIMEN_PRESERVES_SYNTAX',
    ]);
  });
});

describe('text reader: depth limit', () => {
  it('raises PreservesTooDeepError on 100k nested brackets instead of overflowing the stack', () => {
    for (const opener of ['[', '<a ', '{a: ', '#{', '#:', '@']) {
      assert.throws(
        () => parse(opener.repeat(100_000)),
        (e: unknown) => e instanceof PreservesTooDeepError && e.pos.line === 1,
        opener,
      );
    }
  });

  it('allows nesting up to the limit, which is configurable', () => {
    const ok = '['.repeat(DEFAULT_MAX_DEPTH) + ']'.repeat(DEFAULT_MAX_DEPTH);
    assert.ok(Array.isArray(parse(ok)));
    assert.throws(() => parse('[[[1]]]', { maxDepth: 2 }), PreservesTooDeepError);
    assertIs(parse('[[1]]', { maxDepth: 2 }), [[1]]);
  });

  it('reads 100k comment lines and stacked annotations without recursion', () => {
    assert.equal(parse('# c\n'.repeat(100_000) + '1'), 1);
    assert.equal(parse('@a '.repeat(100_000) + '1'), 1);
  });
});

describe('text reader: streams', () => {
  it('parseAll reads zero or more values', () => {
    assert.deepEqual(parseAll(''), []);
    assert.deepEqual(parseAll('  # only a comment\n'), []);
    assertIs(parseAll('#!/usr/bin/limen\n<a> [1]\n# end\n'), [record('a'), [1]]);
    assert.throws(() => parseAll('<a> ]'), PreservesSyntaxError);
  });

  it('TextReader returns values one at a time, then undefined', () => {
    const r = new TextReader('1 "two"\n<three>  ');
    assert.equal(r.next(), 1);
    assert.equal(r.next(), 'two');
    assertIs(r.next()!, record('three'));
    assert.equal(r.next(), undefined);
    assert.equal(r.next(), undefined);
    assert.equal(new TextReader('').next(), undefined);
    const partial = new TextReader('1 [2');
    assert.equal(partial.next(), 1);
    assert.throws(() => partial.next(), PreservesShortError);
  });

  it('ignores a leading byte-order mark', () => {
    assert.equal(parse('\ufeff1'), 1);
    const v = parse('\ufeffx', { positions: true }) as Annotated;
    assert.equal(v.pos?.column, 1);
  });
});

describe('text reader: isBareSymbol', () => {
  it('accepts exactly the names that read back as bare symbols', () => {
    for (const n of ['a', 'a-b', '+', '-', '...', '1a', '水', '?x', '$y'])
      assert.ok(isBareSymbol(n), n);
    for (const n of [
      '',
      '1',
      '-1',
      '1.0',
      '1e5',
      'a b',
      'a:b',
      '#x',
      "it's",
      '|p|',
      'a,b',
      '(x)',
    ]) {
      assert.ok(!isBareSymbol(n), n);
    }
  });
});

describe('text reader: conformance samples', () => {
  const here = dirname(fileURLToPath(import.meta.url));
  const text = readFileSync(
    join(here, '../../../../shared/conformance/preserves/samples.pr'),
    'utf8',
  );

  it('parses the whole suite with annotations and with positions', () => {
    const v = parse(text, { annotations: true });
    assert.ok(v instanceof Annotated);
    assert.ok(is(v, parse(text, { positions: true })));
    assert.ok(is(v, parse(text)));
  });

  it('fails each ParseError / ParseShort / ParseEOF case with the right class', () => {
    const top = peel(parse(text)) as Record;
    const cases = peel(top.fields[0]!) as Dict;
    const classes: { [k: string]: ErrorClass } = {
      ParseError: PreservesSyntaxError,
      ParseShort: PreservesShortError,
      ParseEOF: PreservesEofError,
    };
    let checked = 0;
    for (const [name, c] of cases) {
      const r = c as Record;
      const cls = classes[(r.label as Sym).name];
      if (cls === undefined) continue;
      assert.throws(
        () => parse(r.fields[0] as string),
        (e: unknown) => e instanceof cls,
        (name as Sym).name,
      );
      checked++;
    }
    assert.ok(checked >= 40, `checked ${checked}`);
  });
});
