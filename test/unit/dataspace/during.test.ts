import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { record } from '../../../src/preserves/index.ts';
import { Dataspace, P, during, type Handle } from '../../../src/dataspace/index.ts';
import { checkedEngine } from '../../support/engine-log.ts';

describe('during', () => {
  it('runs one facet per distinct capture tuple, stopped when the last match goes', async () => {
    const engine = checkedEngine().engine;
    const ds = new Dataspace(engine, 'config');
    const log: string[] = [];
    during(engine.root, ds.ref, P.rec('link', P.bind('name'), P._), (f, c) => {
      const name = c.get('name') as string;
      log.push(`start ${name}`);
      f.assert(ds.ref, record('seen', name));
      f.onStop(() => log.push(`stop ${name}`));
    });
    const hs: Handle[] = [];
    engine.turn(() => {
      hs.push(engine.root.assert(ds.ref, record('link', 'eth0', 1)));
      hs.push(engine.root.assert(ds.ref, record('link', 'eth0', 2)));
      hs.push(engine.root.assert(ds.ref, record('link', 'eth1', 1)));
    });
    await engine.sync();
    assert.deepEqual(log, ['start eth0', 'start eth1']);
    assert.ok(ds.has(record('seen', 'eth0')));
    engine.turn(() => engine.root.retract(hs[0]!));
    await engine.sync();
    assert.deepEqual(log, ['start eth0', 'start eth1'], 'eth0 still has a match');
    engine.turn(() => engine.root.retract(hs[1]!));
    await engine.sync();
    assert.deepEqual(log, ['start eth0', 'start eth1', 'stop eth0']);
    assert.ok(!ds.has(record('seen', 'eth0')), 'what the facet asserted is retracted');
    assert.ok(ds.has(record('seen', 'eth1')));
  });
});
