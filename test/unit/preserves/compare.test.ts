import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  Annotated,
  Bytes,
  Dict,
  Double,
  Embedded,
  PSet,
  ValueMap,
  compare,
  dict,
  hash,
  int,
  is,
  record,
  strip,
  sym,
  type Value,
} from '../../../src/preserves/index.ts';

describe('preserves equality', () => {
  it('distinguishes integers from doubles and normalises big integers', () => {
    assert.equal(is(1, new Double(1)), false);
    assert.equal(is(int(2n ** 40n), 2 ** 40), true);
    assert.equal(is(2n ** 70n, 2n ** 70n), true);
    assert.equal(int(2n ** 70n), 2n ** 70n);
    assert.equal(typeof int(5n), 'number');
    assert.equal(hash(5n), hash(5));
  });

  it('compares doubles by bit pattern: -0.0 differs from 0.0, NaN payloads matter', () => {
    assert.equal(is(new Double(0), new Double(-0)), false);
    assert.equal(is(new Double(NaN), new Double(NaN)), true);
    const a = Double.fromBits(0x7ff0000000000001n);
    const b = Double.fromBits(0x7ff0000000000111n);
    assert.equal(is(a, b), false);
    assert.equal(a.bits(), 0x7ff0000000000001n);
  });

  it('ignores annotations at every depth', () => {
    const plain = record('a', 1, [2, 'x']);
    const annotated = new Annotated(
      record('a', new Annotated(1, ['one']), [2, new Annotated('x', [sym('note')])]),
      ['outer'],
    );
    assert.equal(is(plain, annotated), true);
    assert.equal(hash(plain), hash(annotated));
    assert.equal(compare(plain, annotated), 0);
    assert.equal(is(strip(annotated), plain), true);
    assert.equal(
      strip(plain),
      plain,
      'strip returns the same object when there is nothing to strip',
    );
  });

  it('sets and dictionaries are equal regardless of insertion order', () => {
    assert.equal(is(new PSet([1, 2, 3]), new PSet([3, 1, 2])), true);
    assert.equal(hash(new PSet([1, 2, 3])), hash(new PSet([3, 1, 2])));
    const d1 = new Dict([
      [sym('a'), 1],
      [sym('b'), 2],
    ]);
    const d2 = new Dict([
      [sym('b'), 2],
      [sym('a'), 1],
    ]);
    assert.equal(is(d1, d2), true);
    assert.equal(hash(d1), hash(d2));
    assert.equal(is(d1, dict({ a: 1, b: 3 })), false);
  });

  it('compares embedded references by identity and embedded values structurally', () => {
    const ref = { name: 'a dataspace' };
    assert.equal(is(new Embedded(ref), new Embedded(ref)), true);
    assert.equal(is(new Embedded(ref), new Embedded({ name: 'a dataspace' })), false);
    assert.equal(is(new Embedded([1]), new Embedded([1])), true);
  });
});

describe('preserves total order', () => {
  const ascending: Value[] = [
    false,
    true,
    new Double(-Infinity),
    new Double(-1),
    new Double(-0),
    new Double(0),
    new Double(1.5),
    new Double(Infinity),
    Double.fromBits(0x7ff8000000000000n),
    -(2n ** 80n),
    -1,
    0,
    7,
    2n ** 80n,
    '',
    'a',
    'b',
    '\uffff',
    '\u{1f600}',
    new Bytes(new Uint8Array([])),
    new Bytes(new Uint8Array([0, 1])),
    new Bytes(new Uint8Array([255])),
    sym(''),
    sym('a'),
    sym('b'),
    record('a'),
    record('a', 1),
    record('a', 2),
    record('b'),
    [],
    [1],
    [1, 2],
    [2],
    new PSet([]),
    new PSet([1]),
    new PSet([1, 2]),
    new PSet([2]),
    new Dict(),
    dict({ a: 1 }),
    dict({ a: 2 }),
    dict({ b: 1 }),
    new Embedded(1),
    new Embedded({}),
  ];

  it('orders kinds and values within each kind as the specification says', () => {
    for (let i = 0; i < ascending.length; i++) {
      for (let j = 0; j < ascending.length; j++) {
        const c = Math.sign(compare(ascending[i]!, ascending[j]!));
        assert.equal(c, Math.sign(i - j), `compare(#${i}, #${j})`);
        assert.equal(is(ascending[i]!, ascending[j]!), i === j, `is(#${i}, #${j})`);
      }
    }
  });

  it('orders strings by code point, not UTF-16 unit', () => {
    // U+FF61 sorts below U+1F600 by code point, though its UTF-16 unit is higher than D83D.
    assert.ok(compare('\uff61', '\u{1f600}') < 0);
    assert.ok('\uff61' > '\u{1f600}', 'JS string order differs, which is why this matters');
  });
});

describe('ValueMap', () => {
  it('keys by value, ignoring annotations, and handles collisions', () => {
    const m = new ValueMap<number>();
    for (let i = 0; i < 1000; i++) m.set(record('k', i), i);
    assert.equal(m.size, 1000);
    assert.equal(m.get(record('k', new Annotated(500, ['x']))), 500);
    assert.equal(m.delete(record('k', 500)), true);
    assert.equal(m.has(record('k', 500)), false);
    assert.equal(m.size, 999);
    assert.equal(
      m.getOrCreate(record('k', 1), () => -1),
      1,
    );
    assert.equal(
      m.getOrCreate(record('k', 500), () => -1),
      -1,
    );
  });
});
