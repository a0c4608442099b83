// Digests are SHA-1/SHA-256 of the canonical binary form: checked against node:crypto
// over hand-written canonical bytes, and independent of annotations and insertion order.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  Annotated,
  Dict,
  PSet,
  record,
  sha1,
  sha1Bytes,
  sha256,
  sha256Bytes,
  sym,
  type Value,
} from '../../../src/preserves/index.ts';

function expected(algorithm: 'sha1' | 'sha256', hexBytes: string): string {
  return createHash(algorithm)
    .update(Buffer.from(hexBytes.replace(/\s+/g, ''), 'hex'))
    .digest('hex');
}

describe('digest', () => {
  // <capture <discard>> and {a: 1 b: #{2 1}}, written out by hand in canonical form.
  const cases: [Value, string][] = [
    [record('capture', record('discard')), 'b4 b30763617074757265 b4 b30764697363617264 84 84'],
    [
      new Dict([
        [sym('b'), new PSet([2, 1])],
        [sym('a'), 1],
      ]),
      'b7 b30161 b00101 b30162 b6 b00101 b00102 84 84',
    ],
    ['', 'b100'],
  ];

  it('hashes the canonical bytes', () => {
    for (const [v, bytes] of cases) {
      assert.equal(sha1(v), expected('sha1', bytes));
      assert.equal(sha256(v), expected('sha256', bytes));
      assert.match(sha1(v), /^[0-9a-f]{40}$/);
      assert.match(sha256(v), /^[0-9a-f]{64}$/);
    }
  });

  it('gives the same digest as bytes', () => {
    for (const [v] of cases) {
      const b1 = sha1Bytes(v);
      const b256 = sha256Bytes(v);
      assert.ok(b1 instanceof Uint8Array);
      assert.equal(b1.length, 20);
      assert.equal(b256.length, 32);
      assert.equal(Buffer.from(b1).toString('hex'), sha1(v));
      assert.equal(Buffer.from(b256).toString('hex'), sha256(v));
    }
  });

  it('ignores annotations and insertion order, and tells different values apart', () => {
    const a = new Dict([
      [sym('a'), 1],
      [sym('b'), new PSet([1, 2])],
    ]);
    const b = new Dict([
      [new Annotated(sym('b'), ['note']), new PSet([2, 1])],
      [sym('a'), new Annotated(1, [sym('one')])],
    ]);
    assert.equal(sha1(a), sha1(b));
    assert.equal(sha256(a), sha256(b));
    assert.notEqual(sha1(a), sha1(new Dict([[sym('a'), 1]])));
    assert.notEqual(sha1(1), sha1('1'));
  });
});
