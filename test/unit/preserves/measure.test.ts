import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  Annotated,
  Dict,
  PSet,
  measureValue,
  record,
  sym,
  stringify,
  type Value,
} from '../../../src/preserves/index.ts';

describe('measureValue', () => {
  it('is about the length of the text form, and the nesting depth', () => {
    const values: Value[] = [
      1,
      'hello',
      sym('a-symbol'),
      record('point', 1, 2),
      [1, [2, [3, 'x']]],
      new Dict([
        [sym('k'), 'v'],
        [sym('list'), [1, 2, 3]],
      ]),
      new PSet([1, 2, 3]),
      record('big', 'y'.repeat(10_000), [record('n', 123456789)]),
    ];
    for (const v of values) {
      const text = stringify(v).length;
      const { size } = measureValue(v);
      assert.ok(size >= text * 0.5 && size <= text * 2 + 4, `${stringify(v)}: ${size} for ${text}`);
    }
    assert.equal(measureValue(1).depth, 0);
    assert.equal(measureValue(record('a', record('b', [1]))).depth, 3);
    assert.equal(measureValue(new Annotated(record('a'), [sym('note')])).depth, 1);
  });

  it('counts shared structure every time it appears, in time linear in the objects', () => {
    // 200 doublings: 2^200 copies of "x" written out, 200 objects in memory. Without
    // remembering each object's measure this walk would never end.
    let v: Value = 'x';
    for (let i = 0; i < 200; i++) v = record('d', v, v);
    const m = measureValue(v);
    assert.equal(m.depth, 200);
    assert.equal(m.size, 2 ** 52, 'saturated, not Infinity or wrapped');
    let w: Value = 'x';
    for (let i = 0; i < 10; i++) w = [w, w];
    const text = stringify(w).length;
    assert.ok(
      Math.abs(measureValue(w).size - text) <= text * 0.1,
      `${measureValue(w).size} for ${text}`,
    );
  });
});
