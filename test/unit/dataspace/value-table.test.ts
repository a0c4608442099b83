import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Annotated, Double, record, sym, type Value } from '../../../src/preserves/index.ts';
import { ValueTable } from '../../../src/dataspace/value-table.ts';
import { prng } from '../../support/random.ts';

describe('ValueTable', () => {
  it('stores, finds and deletes by Preserves equality', () => {
    const t = new ValueTable<string>();
    t.set(record('a', 1), 'rec');
    t.set(1, 'int');
    t.set(new Double(1), 'double');
    t.set(sym('x'), 'sym');
    t.set('x', 'str');
    assert.equal(t.size, 5);
    assert.equal(t.get(new Annotated(record('a', 1), ['note'])), 'rec');
    assert.equal(t.get(1n), 'int');
    assert.equal(t.get(new Double(1)), 'double');
    assert.equal(t.get(sym('x')), 'sym');
    assert.equal(t.get('x'), 'str');
    assert.equal(t.get(record('a', 2)), undefined);
    t.set(1, 'int2');
    assert.equal(t.size, 5);
    assert.equal(t.get(1), 'int2');
    assert.equal(t.delete(record('a', 1)), true);
    assert.equal(t.delete(record('a', 1)), false);
    assert.equal(t.has(record('a', 1)), false);
    assert.equal(t.size, 4);
    assert.deepEqual([...t.values()].sort(), ['double', 'int2', 'str', 'sym']);
    t.clear();
    assert.equal(t.size, 0);
    assert.equal(t.get(1), undefined);
  });

  it('agrees with a model under random churn, including colliding hashes', () => {
    for (const seed of [1, 2, 3]) {
      const rand = prng(seed);
      const t = new ValueTable<number>();
      const model = new Map<number, number>();
      // Keys 0..299; half the operations pass a deliberately colliding hash (k % 7),
      // which must still work because equality, not the hash, decides.
      const collide = seed === 2;
      for (let step = 0; step < 20_000; step++) {
        const k = Math.floor(rand() * (step < 10_000 ? 300 : 20));
        const h = collide ? k % 7 : undefined;
        const op = rand();
        if (op < 0.5) {
          t.set(k, step, h);
          model.set(k, step);
        } else if (op < 0.8) {
          assert.equal(t.delete(k, h), model.delete(k), `seed ${seed} step ${step}`);
        } else {
          assert.equal(t.get(k, h), model.get(k), `seed ${seed} step ${step}`);
        }
        assert.equal(t.size, model.size);
      }
      for (const [k, v] of model) assert.equal(t.get(k, collide ? k % 7 : undefined), v);
      assert.deepEqual(
        [...t.values()].sort((a, b) => a - b),
        [...model.values()].sort((a, b) => a - b),
      );
    }
  });

  it('keeps working when one key is deleted and re-added many times in a large table', () => {
    const t = new ValueTable<number>();
    for (let i = 0; i < 5000; i++) t.set(`k${i}`, i);
    const key: Value = 'flapping';
    for (let i = 0; i < 50_000; i++) {
      t.set(key, i);
      assert.equal(t.delete(key), true);
    }
    assert.equal(t.size, 5000);
    assert.equal(t.get('k4999'), 4999);
  });
});
