// The binary codec: exact bytes from the specification's examples, round trips in all
// three encodings, canonical ordering, decode options, and hostile input (each failure
// with the right error class and byte offset).

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import type { Sym } from '../../../src/preserves/index.ts';
import {
  Annotated,
  BinaryDecoder,
  Bytes,
  Dict,
  Double,
  Embedded,
  PSet,
  PreservesEncodeError,
  PreservesEofError,
  PreservesShortError,
  PreservesSyntaxError,
  PreservesTooDeepError,
  Record,
  canonicalBytes,
  compareBytes,
  decode,
  dict,
  encode,
  is,
  record,
  strip,
  sym,
  type BinaryEncoding,
  type PreservesReadError,
  type Value,
} from '../../../src/preserves/index.ts';
import { same } from '../../support/same.ts';

const here = dirname(fileURLToPath(import.meta.url));
const samplesBin = new Uint8Array(
  readFileSync(join(here, '../../../../shared/conformance/preserves/samples.bin')),
);

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}

function bin(h: string): Uint8Array {
  return new Uint8Array(Buffer.from(h.replace(/\s+/g, ''), 'hex'));
}

function ann(item: Value, ...annotations: Value[]): Annotated {
  return new Annotated(item, annotations);
}

/** Asserts that fn throws exactly `cls` at byte offset `offset`. */
function fails(
  fn: () => unknown,
  cls: new (...args: never[]) => PreservesReadError,
  offset?: number,
  message?: RegExp,
): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${String(e)}`);
    assert.equal(e.constructor, cls);
    if (offset !== undefined) assert.equal(e.pos.offset, offset, e.message);
    assert.equal(e.pos.line, 0);
    if (message) assert.match(e.message, message);
    return true;
  });
}

/** An independent encoder for integers: big-endian two's complement, shortest form. */
function referenceInt(n: bigint): string {
  if (n === 0n) return 'b000';
  const out: number[] = [];
  let x = n;
  for (;;) {
    out.unshift(Number(x & 0xffn));
    x >>= 8n;
    const top = out[0]!;
    if ((x === 0n && top < 0x80) || (x === -1n && top >= 0x80)) break;
  }
  const len = out.length;
  const varint: number[] = [];
  let l = len;
  while (l >= 128) {
    varint.push((l & 0x7f) | 0x80);
    l >>= 7;
  }
  varint.push(l);
  return 'b0' + hex(new Uint8Array([...varint, ...out]));
}

const encodings: readonly BinaryEncoding[] = ['canonical', 'annotated', 'loose'];

describe('binary: atoms', () => {
  it('encodes the specification examples exactly and decodes them back', () => {
    const cases: [Value, string][] = [
      [false, '80'],
      [true, '81'],
      [0, 'b000'],
      [1, 'b00101'],
      [-1, 'b001ff'],
      [127, 'b0017f'],
      [128, 'b0020080'],
      [-128, 'b00180'],
      [-129, 'b002ff7f'],
      [255, 'b00200ff'],
      [256, 'b0020100'],
      [-256, 'b002ff00'],
      [-257, 'b002feff'],
      [32767, 'b0027fff'],
      [32768, 'b003008000'],
      [65535, 'b00300ffff'],
      [131072, 'b003020000'],
      [2500000000, 'b005009502f900'],
      [1234567812345678123456781234567n, 'b00d0f951a8f2b4b049d518b923187'],
      [-12345678123456781234567812345678n, 'b00eff642cf6684f11d1dad08c4a10b2'],
      [87112285931760246646623899502532662132736n, 'b012010000000000000000000000000000000000'],
      [-98765432109876543210987654321098765432109n, 'b012feddc125aed4226c770369269596ce3f0ad3'],
      [new Double(0), '87080000000000000000'],
      [new Double(-0), '87088000000000000000'],
      [new Double(1), '87083ff0000000000000'],
      [new Double(-1.202e300), '8708fe3cb7b759bf0426'],
      [new Double(Infinity), '87087ff0000000000000'],
      [new Double(-Infinity), '8708fff0000000000000'],
      ['', 'b100'],
      ['hello', 'b10568656c6c6f'],
      ['abc\u6c34\u6C34\\/"\b\f\n\r\txyz', 'b114616263e6b0b4e6b0b45c2f22080c0a0d0978797a'],
      ['\uD834\uDD1E', 'b104f09d849e'],
      [Bytes.fromLatin1('hello'), 'b20568656c6c6f'],
      [new Bytes(new Uint8Array(0)), 'b200'],
      [sym(''), 'b300'],
      [sym('hello'), 'b30568656c6c6f'],
      [sym('\uD834\uDD1E'), 'b304f09d849e'],
      [sym('a'.repeat(130)), 'b38201' + '61'.repeat(130)],
    ];
    for (const [v, h] of cases) {
      for (const encoding of encodings) assert.equal(hex(encode(v, { encoding })), h, String(h));
      const back = decode(bin(h));
      assert.ok(is(back, v), h);
      assert.equal(hex(canonicalBytes(back)), h);
    }
  });

  it('writes integers in the shortest two-complement form at every width', () => {
    const ns = new Set<bigint>();
    for (let k = 0; k <= 72; k++) {
      const p = 1n << BigInt(k);
      for (const n of [p - 1n, p, p + 1n, -p - 1n, -p, -p + 1n]) ns.add(n);
    }
    ns.add(BigInt(Number.MAX_SAFE_INTEGER));
    ns.add(BigInt(Number.MIN_SAFE_INTEGER));
    for (const n of ns) {
      const expected = referenceInt(n);
      assert.equal(hex(encode(n)), expected, `bigint ${n}`);
      const safe = n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER);
      if (safe) assert.equal(hex(encode(Number(n))), expected, `number ${n}`);
      const back = decode(bin(expected));
      // Safe integers come back as numbers, others as bigints.
      assert.equal(typeof back, safe ? 'number' : 'bigint', `${n}`);
      assert.equal(BigInt(back as number | bigint), n);
    }
  });

  it('keeps the exact bits of every NaN', () => {
    for (const bits of [
      '7ff8000000000000',
      'fff0000000000001',
      '7ff0000000000111',
      'fff8000000000111',
    ]) {
      const d = decode(bin('8708' + bits));
      assert.ok(d instanceof Double);
      assert.equal(d.bits().toString(16), BigInt('0x' + bits).toString(16));
      assert.equal(hex(encode(d)), '8708' + bits);
    }
  });

  it('writes strings whose UTF-8 length prefix is shorter than reserved', () => {
    for (const s of [
      'é'.repeat(43),
      'é'.repeat(63),
      'é'.repeat(64),
      'x'.repeat(127),
      'x'.repeat(128),
      '水'.repeat(100),
      'a€'.repeat(3000),
    ]) {
      const utf8 = new TextEncoder().encode(s);
      const b = encode(s);
      const back = decode(b);
      assert.equal(back, s);
      assert.equal(
        b.length,
        1 + (utf8.length < 128 ? 1 : utf8.length < 16384 ? 2 : 3) + utf8.length,
      );
    }
  });

  it('keeps a leading byte-order mark in strings', () => {
    assert.equal(decode(bin('b103efbbbf')), '\uFEFF');
    assert.equal(decode(bin('b141efbbbf' + '61'.repeat(62))), '\uFEFF' + 'a'.repeat(62));
  });

  it('refuses values that are not Preserves values or not Unicode text', () => {
    assert.throws(() => encode(1.5), PreservesEncodeError);
    assert.throws(() => encode('a\uD800b'), PreservesEncodeError);
    assert.throws(() => encode(sym('\uDC00')), PreservesEncodeError);
    assert.throws(() => encode({} as unknown as Value), PreservesEncodeError);
  });
});

describe('binary: compound values', () => {
  it('encodes records, sequences and embeddeds as the specification does', () => {
    const cases: [Value, string][] = [
      [record('capture', record('discard')), 'b4b30763617074757265b4b3076469736361726484 84'],
      [record(7, []), 'b4b00107b58484'],
      [new Record('aString', [3, 4]), 'b4b10761537472696e67b00103b0010484'],
      [
        new Record(
          [sym('titled'), sym('person'), 2, sym('thing'), 1],
          [101, 'Blackwell', record('date', 1821, 2, 3), 'Dr'],
        ),
        'b4 b5 b3067469746c6564 b306706572736f6e b00102 b3057468696e67 b00101 84 b00165 b109426c61636b77656c6c b4 b30464617465 b002071d b00102 b00103 84 b1024472 84',
      ],
      [[], 'b584'],
      [
        ['hello', sym('there'), Bytes.fromLatin1('world'), [], new PSet(), true, false],
        'b5 b10568656c6c6f b3057468657265 b205776f726c64 b584 b684 81 80 84',
      ],
      [new Embedded(0), '86b000'],
      [new Embedded(new Embedded(0)), '8686b000'],
      [[new Embedded(0), new Embedded('hello')], 'b586b00086b10568656c6c6f84'],
      [new Dict(), 'b784'],
    ];
    for (const [v, h] of cases) {
      const want = h.replace(/\s+/g, '');
      for (const encoding of encodings) assert.equal(hex(encode(v, { encoding })), want);
      assert.ok(is(decode(bin(want)), v), want);
    }
  });

  it('round-trips every kind in all three encodings', () => {
    const v: Value = [
      true,
      -7,
      2n ** 80n,
      new Double(2.5),
      'text',
      Bytes.fromLatin1('\x00\xff'),
      sym('sym'),
      record('r', 1, record('s')),
      [[], [[]]],
      new PSet([1, 'a', sym('b'), [2]]),
      new Dict([
        ['k', 1],
        [sym('k'), 2],
        [[1], new PSet([3])],
      ]),
      new Embedded(record('ref', 1)),
      ann(5, 'five', ann(sym('x'), 1)),
    ];
    for (const encoding of encodings) {
      const back = decode(encode(v, { encoding }), { annotations: true });
      if (encoding === 'canonical') assert.ok(same(back, strip(v)));
      else assert.ok(same(back, v), encoding);
      assert.ok(is(back, v));
    }
  });

  it('re-encodes samples.bin (annotated, loosely ordered) byte for byte', () => {
    const v = decode(samplesBin, { annotations: true });
    assert.ok(v instanceof Annotated);
    assert.equal(v.annotations.length, 2);
    assert.ok(v.item instanceof Record);
    assert.ok(is(v.item.label, sym('TestCases')));
    assert.equal(hex(encode(v, { encoding: 'loose' })), hex(samplesBin));
    // Without annotations every value is the same, and canonical bytes are a fixed point.
    const plain = decode(samplesBin);
    assert.ok(is(plain, v));
    assert.equal(hex(canonicalBytes(decode(canonicalBytes(plain)))), hex(canonicalBytes(plain)));
  });

  it('meets the binary expectations of every Test case in samples.bin', () => {
    const root = decode(samplesBin, { annotations: true }) as Annotated;
    const cases = strip((root.item as Record).fields[0]!) as Dict;
    const annotatedCases = (root.item as Record).fields[0]! as Dict;
    let checked = 0;
    for (const [name, tc] of annotatedCases) {
      const t = (tc instanceof Annotated ? tc.item : tc) as Record;
      const kind = (strip(t.label) as Sym).name;
      const label = (strip(name) as Sym).name;
      const data = strip(t.fields[0]!) as Bytes;
      if (kind === 'Test' || kind === 'NondeterministicTest') {
        const av = t.fields[1]!;
        const stripped = strip(av);
        assert.ok(is(decode(encode(av)), stripped), `${label}: 1`);
        assert.ok(is(strip(decode(data.bytes)), stripped), `${label}: 2`);
        assert.ok(same(decode(data.bytes, { annotations: true }), av), `${label}: 3`);
        const annotated = encode(av, { encoding: 'annotated' });
        assert.ok(same(decode(annotated, { annotations: true }), av), `${label}: 4`);
        if (kind === 'Test') {
          assert.equal(hex(annotated), hex(data.bytes), `${label}: 7`);
          assert.equal(hex(encode(av, { encoding: 'loose' })), hex(data.bytes), `${label}: 8`);
        }
        checked++;
      } else if (kind === 'DecodeError') {
        fails(() => decode(data.bytes), PreservesSyntaxError);
        checked++;
      } else if (kind === 'DecodeShort') {
        fails(() => decode(data.bytes), PreservesShortError);
        checked++;
      } else if (kind === 'DecodeEOF') {
        fails(() => decode(data.bytes), PreservesEofError);
        checked++;
      }
    }
    assert.equal(cases.size, annotatedCases.size);
    assert.ok(checked > 120, `only ${checked} cases checked`);
  });
});

describe('binary: canonical ordering', () => {
  const entries: [Value, Value][] = [
    [sym('zz'), 1],
    [sym('aaa'), 2],
    ['b', true],
    [[1, 2, 3], Bytes.fromLatin1('c')],
    [dict({ 'first-name': 'Elizabeth' }), dict({ surname: 'Blackwell' })],
    [-1, 'minus one'],
    [1, 'one'],
  ];

  it('encodes a dictionary identically whatever the insertion order', () => {
    const forward = new Dict(entries);
    const backward = new Dict([...entries].reverse());
    const rotated = new Dict([...entries.slice(3), ...entries.slice(0, 3)]);
    for (const encoding of ['canonical', 'annotated'] as const) {
      const a = hex(encode(forward, { encoding }));
      assert.equal(hex(encode(backward, { encoding })), a);
      assert.equal(hex(encode(rotated, { encoding })), a);
    }
    // Loose keeps insertion order, so the two differ there.
    assert.notEqual(
      hex(encode(forward, { encoding: 'loose' })),
      hex(encode(backward, { encoding: 'loose' })),
    );
  });

  it('sorts by the canonical bytes, not by the value order', () => {
    // 1 is b00101 and -1 is b001ff; the symbol zz (b302…) precedes aaa (b303…).
    assert.equal(hex(encode(new PSet([-1, 1]))), 'b6b00101b001ff84');
    assert.equal(hex(encode(new PSet([3, 1, 2]))), 'b6b00101b00102b0010384');
    assert.equal(
      hex(
        encode(
          new Dict([
            [sym('aaa'), 2],
            [sym('zz'), 1],
          ]),
        ),
      ),
      'b7b3027a7ab00101b303616161b0010284',
    );
    // samples.pr dict1 lists its entries in canonical order.
    const dict1 = new Dict([
      [sym('a'), 1],
      ['b', true],
      [[1, 2, 3], Bytes.fromLatin1('c')],
      [dict({ 'first-name': 'Elizabeth' }), dict({ surname: 'Blackwell' })],
    ]);
    assert.equal(
      hex(encode(dict1)),
      'b7b1016281b30161b00101b5b00101b00102b0010384b20163b7b30a66697273742d6e616d65b109456c697a6162657468' +
        '84b7b3077375726e616d65b109426c61636b77656c6c8484',
    );
  });

  it('orders annotated elements by their stripped form, and keeps the annotations', () => {
    const s = new PSet([ann(2, 'x'), 1]);
    assert.equal(hex(encode(s)), 'b6b00101b0010284');
    assert.equal(hex(encode(s, { encoding: 'annotated' })), 'b6b0010185b10178b0010284');
    const d = new Dict([
      [ann(sym('b'), 'kb'), ann(2, 'vb')],
      [sym('a'), 1],
    ]);
    assert.equal(hex(encode(d)), 'b7b30161b00101b30162b0010284');
    assert.equal(
      hex(encode(d, { encoding: 'annotated' })),
      'b7b30161b0010185b1026b62b3016285b1027662b0010284',
    );
    assert.equal(
      hex(encode(d, { encoding: 'loose' })),
      'b785b1026b62b3016285b1027662b00102b30161b0010184',
    );
  });

  it('sorts large collections too, at every depth', () => {
    const keys = Array.from({ length: 60 }, (_, i) => `key${(i * 37) % 60}`);
    const a = new Dict(keys.map((k, i) => [sym(k), new PSet([i, -i - 1, k, [i]])] as const));
    const b = new Dict([...keys].reverse().map((k) => [sym(k), a.get(sym(k))!] as const));
    const bytes = encode(a);
    assert.equal(hex(encode(b)), hex(bytes));
    // Decoding keeps the encoded order, which is strictly increasing by canonical bytes.
    const back = decode(bytes) as Dict;
    const order = [...back.keys()].map((k) => canonicalBytes(k));
    assert.equal(order.length, 60);
    for (let i = 1; i < order.length; i++) assert.ok(compareBytes(order[i - 1]!, order[i]!) < 0);
    for (const s of back.values()) {
      const elements = [...(s as PSet)].map((x) => canonicalBytes(x));
      for (let i = 1; i < elements.length; i++) {
        assert.ok(compareBytes(elements[i - 1]!, elements[i]!) < 0);
      }
    }
  });

  it('gives equal bytes for equal values built from numbers and bigints', () => {
    assert.equal(hex(encode(new PSet([5n, 7]))), hex(encode(new PSet([7n, 5]))));
  });
});

describe('binary: decode options', () => {
  const bytes = bin('85b10161 b5 b00101 85b30162 85b30163 b10178 84');

  it('drops annotations by default and keeps them on request', () => {
    assert.ok(same(decode(bytes), [1, 'x']));
    assert.ok(
      same(decode(bytes, { annotations: true }), ann([1, ann('x', sym('b'), sym('c'))], 'a')),
    );
  });

  it('records the byte offset of every value when asked', () => {
    const v = decode(bytes, { positions: true, source: 'f.bin' });
    assert.ok(v instanceof Annotated);
    assert.deepEqual(v.pos, { source: 'f.bin', line: 0, column: 0, offset: 4 });
    assert.equal(v.annotations.length, 0);
    const [one, x] = v.item as Value[];
    assert.equal((one as Annotated).pos!.offset, 5);
    // An annotated value's position is that of the value itself, after its annotations.
    assert.equal((x as Annotated).pos!.offset, 16);
    const both = decode(bytes, { positions: true, annotations: true }) as Annotated;
    assert.equal(both.annotations.length, 1);
    assert.equal((both.annotations[0] as Annotated).pos!.offset, 1);
  });

  it('turns embedded values into payloads with the embedded option', () => {
    const refs = new Map<string, object>([['ds', { name: 'dataspace' }]]);
    const v = decode(bin('b5 86b1026473 84'), {
      embedded: (x) => refs.get(x as string),
    }) as Value[];
    assert.ok(v[0] instanceof Embedded);
    assert.equal(v[0].value, refs.get('ds'));
    const back = encode(v, {
      embedded: (x) => [...refs].find(([, r]) => r === x)![0],
    });
    assert.equal(hex(back), 'b586b102647384');
    assert.throws(() => encode(v), PreservesEncodeError);
  });

  it('uses the embedded option for sort keys too', () => {
    const a = {};
    const b = {};
    const names = new Map([
      [a, 'a'],
      [b, 'b'],
    ]);
    const s = new PSet([new Embedded(b), new Embedded(a)]);
    for (const encoding of ['canonical', 'annotated'] as const) {
      const out = encode(s, { encoding, embedded: (x) => names.get(x as object)! });
      assert.equal(hex(out), 'b686b1016186b1016284');
    }
  });

  it('encodes correctly when an embedded callback encodes re-entrantly', () => {
    const inner = new Dict([
      [sym('b'), 2],
      [sym('a'), 1],
    ]);
    const v = new Dict([
      [sym('z'), new Embedded({})],
      [sym('y'), inner],
    ]);
    const out = encode(v, {
      embedded: () => new Bytes(canonicalBytes(inner)),
    });
    assert.equal(
      hex(out),
      'b7' + 'b30179' + hex(encode(inner)) + 'b3017a' + '86b20e' + hex(encode(inner)) + '84',
    );
  });

  it('reads a stream of values one at a time', () => {
    const stream = bin('b00101 b584 85b10161 81 b1');
    const d = new BinaryDecoder(stream, { annotations: true });
    assert.equal(d.next(), 1);
    assert.deepEqual(d.next(), []);
    assert.ok(same(d.next()!, ann(true, 'a')));
    assert.equal(d.offset, 10);
    fails(() => d.next(), PreservesShortError, 11);
    // Nothing was consumed: the unfinished value starts at offset 10, so a stream reader
    // can decode again from there once more bytes arrive.
    assert.equal(d.offset, 10);
    const more = new Uint8Array([...stream.subarray(d.offset), 0x01, 0x7a]);
    assert.equal(new BinaryDecoder(more).next(), 'z');
    assert.equal(new BinaryDecoder(bin('81')).next(), true);
    const e = new BinaryDecoder(new Uint8Array(0));
    assert.equal(e.next(), undefined);
  });

  it('copies byte strings out of a Buffer input', () => {
    const buf = Buffer.from(bin('b5 b2026869 b3026869 84'));
    const v = decode(buf) as Value[];
    const b = v[0] as Bytes;
    buf[3] = 0;
    assert.equal(Buffer.from(b.bytes).toString(), 'hi');
    assert.equal(b.bytes.buffer.byteLength, 2);
    assert.equal(v[1], sym('hi'));
  });

  it('accepts a subarray view of a larger buffer', () => {
    const big = bin('ff ff b00105 ff');
    assert.equal(decode(big.subarray(2, 5)), 5);
  });

  it('handles large values (buffer growth) and keeps working afterwards', () => {
    const v = Array.from({ length: 50_000 }, (_, i) =>
      record('item', i, `name${i}`, new Double(i / 3)),
    );
    const b = encode(v);
    assert.ok(b.length > 1 << 20);
    assert.ok(is(decode(b), v));
    assert.equal(hex(encode([1])), 'b5b0010184');
  });
});

describe('binary: hostile input', () => {
  it('reports no input at all as EOF', () => {
    fails(
      () => decode(new Uint8Array(0), { source: 'x.bin' }),
      PreservesEofError,
      0,
      /^x\.bin:@0: /,
    );
  });

  it('reports every truncation as short, never as a syntax error', () => {
    const v: Value = [
      ann(record('r', 'string', sym('sym'), 2n ** 70n, -300), 'note'),
      new Double(1.5),
      Bytes.fromLatin1('bytes'),
      new PSet([1, 2]),
      dict({ a: [true], bb: new Embedded(7) }),
      'x'.repeat(200),
    ];
    const b = encode(v, { encoding: 'annotated' });
    for (let n = 1; n < b.length; n++) {
      fails(() => decode(b.subarray(0, n)), PreservesShortError, n);
    }
  });

  it('rejects invalid UTF-8 in strings and symbols', () => {
    fails(() => decode(bin('b102c328')), PreservesSyntaxError, 2, /invalid UTF-8 in a string/);
    fails(() => decode(bin('b301ff')), PreservesSyntaxError, 2, /invalid UTF-8 in a symbol/);
    fails(() => decode(bin('b102c080')), PreservesSyntaxError, 2); // overlong NUL
    fails(() => decode(bin('b103eda080')), PreservesSyntaxError, 2); // an encoded surrogate
    fails(() => decode(bin('b1 50' + '61'.repeat(79) + 'ff')), PreservesSyntaxError, 2); // long path
    fails(() => decode(bin('b5 b1026869 b102e282 84')), PreservesSyntaxError, 7); // truncated sequence
  });

  it('rejects non-minimal varints and integers', () => {
    fails(() => decode(bin('b18000')), PreservesSyntaxError, 1, /non-minimal length/);
    fails(() => decode(bin('b1850068656c6c6f')), PreservesSyntaxError, 1);
    fails(() => decode(bin('b00100')), PreservesSyntaxError, 0, /non-minimal integer/);
    fails(() => decode(bin('b0020001')), PreservesSyntaxError, 0);
    fails(() => decode(bin('b002ffff')), PreservesSyntaxError, 0);
    fails(() => decode(bin('b002ff80')), PreservesSyntaxError, 0);
    fails(() => decode(bin('b5 b00300007f 84')), PreservesSyntaxError, 1);
    assert.equal(decode(bin('b0020080')), 128);
    assert.equal(decode(bin('b002ff7f')), -129);
  });

  it('reports a declared length beyond the input as short, without allocating it', () => {
    fails(() => decode(bin('b1ffffffff0f')), PreservesShortError, 6, /declares 4294967295 bytes/);
    fails(
      () => decode(bin('b2' + 'ff'.repeat(30) + '01')),
      PreservesShortError,
      32,
      /more than 2\^56/,
    );
    fails(() => decode(bin('b00a0102')), PreservesShortError, 4);
    fails(() => decode(bin('b1ff')), PreservesShortError, 2);
  });

  it('stops deep nesting with a too-deep error, not a stack overflow', () => {
    const deep = new Uint8Array(200_000).fill(0xb5);
    fails(() => decode(deep), PreservesTooDeepError, 512);
    fails(() => decode(new Uint8Array(200_000).fill(0x86)), PreservesTooDeepError);
    const annotations = new Uint8Array(100_000).fill(0x85);
    fails(() => decode(annotations), PreservesTooDeepError);
    const nested = (n: number): Uint8Array => bin('b5'.repeat(n) + '84'.repeat(n));
    assert.ok(is(decode(nested(10), { maxDepth: 10 }), decode(nested(10))));
    fails(() => decode(nested(11), { maxDepth: 10 }), PreservesTooDeepError, 10);
    assert.ok(Array.isArray(decode(nested(512))));
    // A limit the stack cannot honour still ends in a too-deep error.
    fails(() => decode(nested(100_000), { maxDepth: 1e9 }), PreservesTooDeepError);
  });

  it('rejects annotations without an underlying value', () => {
    fails(() => decode(bin('b5 85b00101 84')), PreservesSyntaxError, 5, /no underlying value/);
    fails(() => decode(bin('85 84')), PreservesSyntaxError, 1, /annotation has no value/);
    fails(() => decode(bin('85b00101')), PreservesShortError, 4);
    fails(() => decode(bin('b5 86 84')), PreservesSyntaxError, 2, /embedded value is missing/);
  });

  it('rejects end markers out of place and invalid tags', () => {
    fails(() => decode(bin('84')), PreservesSyntaxError, 0, /unexpected end marker/);
    fails(() => decode(bin('b484')), PreservesSyntaxError, 0, /record has no label/);
    for (const tag of ['00', '10', '7f', '82', '83', '88', '8f', 'a0', 'b8', 'bf', 'ff']) {
      fails(() => decode(bin(tag)), PreservesSyntaxError, 0, /invalid tag/);
      fails(() => decode(bin('b5 b000 ' + tag + ' 84')), PreservesSyntaxError, 3);
    }
  });

  it('rejects dictionaries with a key but no value', () => {
    fails(() => decode(bin('b7 b00101 84')), PreservesSyntaxError, 1, /no value/);
    fails(() => decode(bin('b7 b00101 b00102 b00103 84')), PreservesSyntaxError, 7);
  });

  it('rejects duplicate set elements and dictionary keys, annotations ignored', () => {
    fails(
      () => decode(bin('b6 b00101 b00101 84')),
      PreservesSyntaxError,
      4,
      /duplicate set element/,
    );
    fails(
      () => decode(bin('b7 b00101 b00102 b00101 b00103 84')),
      PreservesSyntaxError,
      7,
      /duplicate dictionary key/,
    );
    fails(
      () => decode(bin('b6 b30161 85b00101b30161 84'), { annotations: true }),
      PreservesSyntaxError,
      4,
    );
    // 1 and 1.0 are different values.
    assert.equal((decode(bin('b6 b00101 87083ff0000000000000 84')) as PSet).size, 2);
  });

  it('accepts only 8-byte doubles (binary32 left the data model)', () => {
    fails(() => decode(bin('87043f800000')), PreservesSyntaxError, 0, /8 bytes, not 4/);
    fails(() => decode(bin('8709' + '00'.repeat(9))), PreservesSyntaxError, 0);
    fails(() => decode(bin('87080000')), PreservesShortError, 4);
  });

  it('rejects trailing bytes after the value', () => {
    fails(() => decode(bin('b000b000')), PreservesSyntaxError, 2, /trailing bytes/);
    fails(() => decode(bin('b00084')), PreservesSyntaxError, 2);
  });

  it('never throws anything but a read error on random input', () => {
    let seed = 12345;
    const rand = (): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed >>> 16;
    };
    const good = encode(
      [
        record('x', 1, 'two', sym('three'), new PSet([4]), dict({ five: new Double(6) })),
        2n ** 65n,
      ],
      { encoding: 'annotated' },
    );
    for (let i = 0; i < 3000; i++) {
      const b = good.slice();
      for (let k = 0; k < 1 + (rand() % 3); k++) b[rand() % b.length] = rand() & 0xff;
      try {
        decode(b.subarray(0, rand() % (b.length + 1)), { annotations: true });
      } catch (e) {
        assert.ok(
          e instanceof PreservesSyntaxError ||
            e instanceof PreservesShortError ||
            e instanceof PreservesEofError,
          String(e),
        );
      }
    }
  });
});
