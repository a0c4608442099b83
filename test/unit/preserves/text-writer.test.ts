// Unit tests of the Preserves text writer: the compact and indented forms, quoting, the
// deterministic order of sets and dictionaries, and round trips of tricky values through parse.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  Annotated,
  Bytes,
  Dict,
  Double,
  Embedded,
  PSet,
  PreservesWriteLimitError,
  Record,
  dict,
  formatDouble,
  is,
  DEFAULT_MAX_DEPTH,
  isValue,
  parse,
  peel,
  record,
  stringify,
  sym,
  type Value,
} from '../../../src/preserves/index.ts';

/** Equality that also compares annotations, at every depth (positions ignored). */
function same(a: Value, b: Value): boolean {
  const aa = a instanceof Annotated ? a.annotations : [];
  const ba = b instanceof Annotated ? b.annotations : [];
  if (aa.length !== ba.length || !aa.every((x, i) => same(x, ba[i]!))) return false;
  const x = peel(a);
  const y = peel(b);
  if (!is(x, y)) return false;
  if (Array.isArray(x)) return x.every((e: Value, i) => same(e, (y as Value[])[i]!));
  if (x instanceof Record) {
    const r = y as Record;
    return same(x.label, r.label) && x.fields.every((e, i) => same(e, r.fields[i]!));
  }
  if (x instanceof Dict) return [...x].every(([k, v]) => same(v, (y as Dict).get(k)!));
  if (x instanceof Embedded && isValue(x.value))
    return same(x.value, (y as Embedded).value as Value);
  return true;
}

function roundTrips(v: Value, what = stringify(v)): void {
  for (const opts of [{}, { indent: 2 }, { indent: true }, { indent: 8 }]) {
    const text = stringify(v, opts);
    const back = parse(text, { annotations: true });
    assert.ok(same(back, v), `${what} via ${JSON.stringify(opts)}: ${text}`);
  }
}

describe('text writer: compact form', () => {
  it('writes each kind in its usual form', () => {
    assert.equal(
      stringify(record('interface', 'eth0', 2, sym('normal'))),
      '<interface "eth0" 2 normal>',
    );
    assert.equal(stringify(dict({ a: 1, b: 2 })), '{a: 1 b: 2}');
    assert.equal(stringify([1, 2]), '[1 2]');
    assert.equal(stringify([]), '[]');
    assert.equal(stringify(new PSet([2, 1])), '#{1 2}');
    assert.equal(stringify(new PSet()), '#{}');
    assert.equal(stringify(new Dict()), '{}');
    assert.equal(stringify(true), '#t');
    assert.equal(stringify(false), '#f');
    assert.equal(stringify(-7), '-7');
    assert.equal(stringify(2n ** 100n), '1267650600228229401496703205376');
    assert.equal(stringify(new Embedded(sym('x'))), '#:x');
    assert.equal(stringify(new Record(record('a'), [])), '<<a>>');
  });

  it('writes doubles in the shortest form that reads back, with a dot or an exponent', () => {
    const cases: [number, string][] = [
      [1, '1.0'],
      [-1.5, '-1.5'],
      [0.1, '0.1'],
      [1e21, '1e+21'],
      [1e300, '1e+300'],
      [5e-324, '5e-324'],
      [123456789012345680000, '123456789012345680000.0'],
      [0, '0.0'],
      [-0, '-0.0'],
    ];
    for (const [x, t] of cases) assert.equal(stringify(new Double(x)), t);
    assert.equal(stringify(new Double(Infinity)), '#xd"7ff0000000000000"');
    assert.equal(stringify(new Double(-Infinity)), '#xd"fff0000000000000"');
    assert.equal(stringify(Double.fromBits(0xfff8000000000111n)), '#xd"fff8000000000111"');
    assert.equal(formatDouble(new Double(NaN)), '#xd"7ff8000000000000"');
  });

  it('quotes only the symbols that need it', () => {
    const cases: [string, string][] = [
      ['hello', 'hello'],
      ['a-b', 'a-b'],
      ['-', '-'],
      ['+1.x', '+1.x'],
      ['水', '水'],
      ['hello world', "'hello world'"],
      ['', "''"],
      ['1', "'1'"],
      ['-1', "'-1'"],
      ['1.0', "'1.0'"],
      ['1e5', "'1e5'"],
      ['a:b', "'a:b'"],
      ['#x', "'#x'"],
      ['<a>', "'<a>'"],
      ["it's", "'it\\'s'"],
      ['|p|', "'|p|'"],
      ['back\\slash', "'back\\\\slash'"],
      ['new\nline', "'new\\nline'"],
    ];
    for (const [name, t] of cases) {
      assert.equal(stringify(sym(name)), t, name);
      assert.equal((parse(t) as { name?: string }).name, name);
    }
  });

  it('escapes quotes, backslashes and control characters in strings, and keeps the rest raw', () => {
    assert.equal(stringify('say "hi"\\'), '"say \\"hi\\"\\\\"');
    assert.equal(
      stringify('\b\f\n\r\t\u0000\u001f\u007f'),
      '"\\b\\f\\n\\r\\t\\u0000\\u001f\\u007f"',
    );
    assert.equal(stringify("it's 水 😀 \u2028"), `"it's 水 😀 \u2028"`);
  });

  it('writes byte strings as #"..." when they are text, else #x"..." or #[...] when long', () => {
    assert.equal(stringify(Bytes.fromLatin1('hello')), '#"hello"');
    assert.equal(stringify(Bytes.fromLatin1('a"b\\c\n')), '#"a\\"b\\\\c\\n"');
    assert.equal(stringify(new Bytes(Uint8Array.from([0, 255, 16]))), '#x"00ff10"');
    assert.equal(stringify(new Bytes(new Uint8Array(0))), '#""');
    const long = new Bytes(Uint8Array.from({ length: 65 }, (_, i) => i * 3));
    const t = stringify(long);
    assert.match(t, /^#\[[A-Za-z0-9+/]+=*\]$/);
    assert.ok(is(parse(t), long));
    for (const n of [64, 65, 66, 67]) {
      const b = new Bytes(Uint8Array.from({ length: n }, (_, i) => 255 - i));
      assert.ok(is(parse(stringify(b)), b), `${n} bytes`);
    }
  });

  it('writes sets and dictionaries in the total order, whatever the insertion order', () => {
    const a = new PSet([sym('b'), 3, 'x', 1, sym('a')]);
    const b = new PSet([1, sym('a'), 'x', sym('b'), 3]);
    assert.equal(stringify(a), '#{1 3 "x" a b}');
    assert.equal(stringify(a), stringify(b));
    const d1 = new Dict([
      [sym('z'), 1],
      ['k', 2],
      [0, 3],
    ]);
    const d2 = new Dict([
      [0, 3],
      [sym('z'), 1],
      ['k', 2],
    ]);
    assert.equal(stringify(d1), '{0: 3 "k": 2 z: 1}');
    assert.equal(stringify(d1), stringify(d2));
  });

  it('writes annotations as @ann value, or not at all when asked', () => {
    const v = new Annotated(record('R', new Annotated(sym('f'), [sym('af')])), ['doc', sym('ar')]);
    assert.equal(stringify(v), '@"doc" @ar <R @af f>');
    assert.equal(stringify(v, { annotations: false }), '<R f>');
    const positioned = parse('[1 2]', { positions: true });
    assert.equal(stringify(positioned), '[1 2]', 'positions are not written');
  });

  it('writes embedded references that are not values as a numbered placeholder', () => {
    const a = new Map<string, number>();
    const b = { x: 1 };
    const t = stringify([new Embedded(a), new Embedded(b), new Embedded(a)]);
    const m = /^\[#:<ref "Map" (\d+)> #:<ref "Object" (\d+)> #:<ref "Map" (\d+)>\]$/.exec(t);
    assert.ok(m, t);
    assert.equal(m[1], m[3]);
    assert.notEqual(m[1], m[2]);
    assert.equal(stringify(new Embedded(undefined)), '#:<ref "undefined" 0>');
    const custom = stringify(new Embedded(a), { embedded: () => record('dataspace', 'config') });
    assert.equal(custom, '#:<dataspace "config">');
  });

  it('rejects things that are not Preserves values', () => {
    assert.throws(() => stringify(1.5), TypeError);
    assert.throws(() => stringify({} as Value), TypeError);
  });
});

describe('text writer: indented form', () => {
  it('keeps short values on one line', () => {
    const v = record('interface', 'eth0', 2, sym('normal'), dict({ mtu: 1500 }));
    assert.equal(stringify(v, { indent: 2 }), stringify(v));
  });

  it('breaks long values over lines, hanging a record’s bulky last field', () => {
    const spec = parse(
      '<daemon dnsmasq {argv: ["dnsmasq" "-k" "--conf-file=/run/limen/dnsmasq.conf"] env: {PATH: "/usr/bin:/bin"} restart: always readyOnStart: #f}>',
    );
    assert.equal(
      stringify(spec, { indent: 2 }),
      [
        '<daemon dnsmasq {',
        '  argv: ["dnsmasq" "-k" "--conf-file=/run/limen/dnsmasq.conf"]',
        '  env: {PATH: "/usr/bin:/bin"}',
        '  readyOnStart: #f',
        '  restart: always',
        '}>',
      ].join('\n'),
    );
    assert.ok(is(parse(stringify(spec, { indent: 2 })), spec));
  });

  it('packs long runs of atoms into lines and puts compound items one to a line', () => {
    const nums = Array.from({ length: 40 }, (_, i) => i * 1000);
    const t = stringify(nums, { indent: 2 });
    const lines = t.split('\n');
    assert.equal(lines[0], '[');
    assert.equal(lines.at(-1), ']');
    assert.ok(lines.length >= 4 && lines.length < 10, t);
    assert.ok(lines.every((l) => l.length <= 80));
    const recs = Array.from({ length: 6 }, (_, i) =>
      record('address', `eth${i}`, `10.0.${i}.1/24`),
    );
    const u = stringify(recs, { indent: 4 });
    assert.equal(u.split('\n').length, 8);
    assert.ok(u.split('\n')[1]!.startsWith('    <address "eth0"'));
  });

  it('puts long annotations on their own line above the value', () => {
    const doc = 'a long explanation of what this value is for, which will not fit beside it';
    const v = new Annotated(record('x', 'y'.repeat(30)), [doc]);
    const t = stringify(v, { indent: 2 });
    assert.equal(t, `@${JSON.stringify(doc)}\n<x "${'y'.repeat(30)}">`);
    assert.ok(same(parse(t, { annotations: true }), v));
  });

  it('breaks records without a compound last field one field to a line', () => {
    const v = record('long', 'a'.repeat(40), 'b'.repeat(40));
    assert.equal(
      stringify(v, { indent: 2 }),
      `<long\n  "${'a'.repeat(40)}"\n  "${'b'.repeat(40)}">`,
    );
  });
});

describe('text writer: round trips', () => {
  it('round-trips tricky atoms', () => {
    const atoms: Value[] = [
      true,
      false,
      0,
      -1,
      Number.MAX_SAFE_INTEGER,
      -(2n ** 64n),
      2n ** 200n,
      new Double(0),
      new Double(-0),
      new Double(0.1),
      new Double(-1e-300),
      new Double(5e-324),
      new Double(Number.MAX_VALUE),
      new Double(Infinity),
      new Double(-Infinity),
      new Double(NaN),
      Double.fromBits(0x7ff0000000000001n),
      Double.fromBits(0xfff8000000000111n),
      '',
      'plain',
      '"quotes" and \\backslashes\\',
      '\u0000\u0001\b\f\n\r\t\u007f',
      '😀 𝄞 水 é \u2028',
      sym(''),
      sym('hello world'),
      sym('1'),
      sym('-1'),
      sym('1.0'),
      sym('+'),
      sym('a:b'),
      sym('[x]'),
      sym("it's"),
      sym('|'),
      sym('😀'),
      sym('tab\there'),
      Bytes.fromLatin1(''),
      Bytes.fromLatin1('text "with" \\ \n'),
      new Bytes(Uint8Array.from({ length: 256 }, (_, i) => i)),
      new Bytes(Uint8Array.from([0x80, 0x00])),
    ];
    for (const a of atoms) roundTrips(a);
    roundTrips(atoms, 'all atoms in a sequence');
    const nan = parse(stringify(Double.fromBits(0x7ff0000000000123n))) as Double;
    assert.equal(nan.bits(), 0x7ff0000000000123n);
  });

  it('round-trips compounds, embedded values and annotations', () => {
    const values: Value[] = [
      record(
        'interface',
        'eth0',
        2,
        sym('normal'),
        sym('up'),
        sym('up'),
        sym('carrier'),
        '52:54:00:12:34:56',
      ),
      new Record(new Dict([[sym('k'), new PSet([1, 2])]]), [[]]),
      new Dict([
        [[1, 2], new Dict()],
        [new PSet(['x']), record('r')],
        [sym('1'), new Double(-0)],
      ]),
      new Embedded(record('ref', 1)),
      new Embedded(new Embedded([1, 'two'])),
      new Annotated(new Annotated(5, [new Annotated(4, [3])]), [new Annotated(2, [1])]),
      new Annotated([new Annotated(sym('x'), ['c1', 'c2'])], [record('interpreter', '/bin/x')]),
      new Dict([[new Annotated(sym('ak'), ['key']), new Annotated(1, ['value'])]]),
      Array.from({ length: 30 }, (_, i) => record('item', i, 'x'.repeat(i), dict({ n: i }))),
    ];
    for (const v of values) roundTrips(v);
  });

  it('round-trips deeply nested values within the reader’s limit', () => {
    let v: Value = 'core';
    for (let i = 0; i < 300; i++) v = i % 2 === 0 ? [v] : record('n', v, i);
    roundTrips(v, 'deep');
  });
});

describe('text writer: limits', () => {
  /** `<s <s ... z>>`, n levels deep; built bottom-up, so no recursion is needed to make it. */
  const nested = (n: number, label = 's'): Value => {
    let v: Value = sym('z');
    for (let i = 0; i < n; i++) v = record(label, v);
    return v;
  };

  it('writes a value within both limits as it would without them', () => {
    const v = record('a', [1, 'two', sym('three')], dict({ k: new Bytes(new Uint8Array([1, 2])) }));
    const text = stringify(v);
    assert.equal(stringify(v, { maxLength: text.length, maxDepth: 3 }), text);
  });

  it('counts depth as the reader does: the deepest value it reads is the deepest it writes', () => {
    const v = nested(DEFAULT_MAX_DEPTH);
    const text = stringify(v, { maxDepth: DEFAULT_MAX_DEPTH });
    assert.ok(is(parse(text), v));
    assert.throws(
      () => stringify(record('x', v), { maxDepth: DEFAULT_MAX_DEPTH }),
      (e) => e instanceof PreservesWriteLimitError && e.limit === 'depth' && e.max === 512,
    );
    assert.throws(() => parse(stringify(record('x', v))), { code: 'LIMEN_PRESERVES_TOO_DEEP' });
    // Sets, dictionaries, embedded values and written annotations are levels too.
    for (const one of [
      new PSet([1]),
      dict({ k: 1 }),
      new Embedded(sym('e')),
      new Annotated(1, [sym('note')]),
    ]) {
      assert.equal(stringify(one, { maxDepth: 1 }), stringify(one));
      assert.throws(() => stringify([one], { maxDepth: 1 }), PreservesWriteLimitError);
    }
    // An annotation that is not written adds no level.
    const quiet = [new Annotated(1, [sym('note')])];
    assert.equal(stringify(quiet, { maxDepth: 1, annotations: false }), '[1]');
  });

  it('stops at the limit instead of writing a value far deeper than it', () => {
    // 100,000 levels would overflow the stack if the writer went down to the bottom first.
    let v: Value = 1;
    for (let i = 0; i < 100_000; i++) v = [v];
    assert.throws(() => stringify(v, { maxDepth: 512 }), { limit: 'depth' });
    assert.throws(() => stringify(v, { maxLength: 100 }), { limit: 'length', max: 100 });
    assert.equal(stringify(v, { maxLength: 5, ellipsis: '...' }), '[[[[[...');
  });

  it('stops at the length limit before copying a long atom', () => {
    const long = 'x'.repeat(1_000_000);
    for (const v of [long, sym(long), new Bytes(new Uint8Array(1_000_000))]) {
      assert.throws(() => stringify([1, v], { maxLength: 1000 }), {
        code: 'LIMEN_PRESERVES_WRITE_LIMIT',
        limit: 'length',
      });
    }
    // The limit is inclusive: text of exactly maxLength is written.
    assert.equal(stringify(['ab', 'cd'], { maxLength: 11 }), '["ab" "cd"]');
    assert.throws(() => stringify(['ab', 'cd'], { maxLength: 10 }), { limit: 'length' });
  });

  it('writes no more than the limit for a value whose text is exponential in its size', () => {
    // 40 records, each holding the one below twice: 2^40 leaves of text, 40 objects in memory.
    let v: Value = 'leaf';
    for (let i = 0; i < 40; i++) v = record('d', v, v);
    assert.throws(() => stringify(v, { maxLength: 1 << 20 }), { limit: 'length' });
    const cut = stringify(v, { maxLength: 50, ellipsis: '...' });
    assert.equal(cut.length, 53);
    assert.ok(cut.startsWith('<d <d <d '));
  });

  it('refuses limits with indented output', () => {
    assert.throws(() => stringify(1, { indent: 2, maxLength: 10 }), TypeError);
  });
});
