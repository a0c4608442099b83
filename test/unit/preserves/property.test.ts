// Property tests over random values: round-trips through text and binary,
// a total order that agrees with equality and hashing, and canonical bytes
// that do not depend on insertion order. Failures print their seed.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  compare,
  decode,
  encode,
  fromJSON,
  hash,
  is,
  parse,
  stringify,
  strip,
  toJSON,
} from '../../../src/preserves/index.ts';
import { ValueGen, prng, shuffled } from '../../support/random.ts';

const SEEDS = 300;
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('preserves properties', () => {
  it('text round-trips (compact and indented)', () => {
    for (let seed = 1; seed <= SEEDS; seed++) {
      const v = new ValueGen(seed, { embedded: true }).value(4);
      const t = stringify(v);
      assert.ok(is(parse(t), v), `seed ${seed}: ${t}`);
      const ti = stringify(v, { indent: 2 });
      assert.ok(is(parse(ti), v), `seed ${seed} (indented): ${ti}`);
    }
  });

  it('binary round-trips in every encoding, annotations kept where asked', () => {
    for (let seed = 1; seed <= SEEDS; seed++) {
      const v = new ValueGen(seed, { annotations: true, embedded: true }).value(4);
      const s = strip(v);
      for (const encoding of ['canonical', 'annotated', 'loose'] as const) {
        const back = decode(encode(v, { encoding }), { annotations: true });
        assert.ok(is(back, s), `seed ${seed} ${encoding}: ${stringify(v)}`);
      }
    }
  });

  it('the order is total and agrees with equality and hashing', () => {
    const gen = new ValueGen(4242);
    const vs = Array.from({ length: 120 }, () => gen.value(3));
    for (const a of vs) {
      for (const b of vs) {
        const ab = Math.sign(compare(a, b));
        assert.equal(
          ab,
          0 - Math.sign(compare(b, a)) || 0, // `|| 0` turns -0 into 0
          `antisymmetry: ${stringify(a)} ${stringify(b)}`,
        );
        assert.equal(ab === 0, is(a, b), `equality: ${stringify(a)} ${stringify(b)}`);
        if (ab === 0) assert.equal(hash(a), hash(b));
      }
    }
    const sorted = [...vs].sort(compare);
    for (let i = 0; i + 2 < sorted.length; i++) {
      assert.ok(compare(sorted[i]!, sorted[i + 2]!) <= 0, 'transitivity');
    }
  });

  it('canonical bytes do not depend on insertion order', () => {
    for (let seed = 1; seed <= SEEDS; seed++) {
      const v = new ValueGen(seed).value(4);
      const w = shuffled(v, prng(seed * 7919));
      assert.ok(is(v, w));
      assert.equal(hex(encode(v)), hex(encode(w)), `seed ${seed}: ${stringify(v)}`);
    }
  });

  it('JSON mapping round-trips', () => {
    for (let seed = 1; seed <= SEEDS; seed++) {
      const v = new ValueGen(seed, { embedded: true }).value(4);
      const j = JSON.parse(JSON.stringify(toJSON(v))) as unknown;
      assert.ok(is(fromJSON(j), v), `seed ${seed}: ${stringify(v)} -> ${JSON.stringify(j)}`);
    }
  });
});
