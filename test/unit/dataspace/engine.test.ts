import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { record } from '../../../src/preserves/index.ts';
import { Dataspace, Engine, P } from '../../../src/dataspace/index.ts';

describe('Engine', () => {
  it('uses the injected clock', () => {
    let t = 1000;
    const engine = new Engine({ now: () => t });
    assert.equal(engine.now(), 1000);
    t = 2000;
    assert.equal(engine.now(), 2000);
  });

  it('is quiescent when idle, and sync resolves at once', async () => {
    const engine = new Engine();
    assert.equal(engine.isQuiescent, true);
    assert.equal(engine.inTurn, false);
    await engine.sync();
  });

  it('resolves sync only after queued work and its consequences', async () => {
    const engine = new Engine();
    const ds = new Dataspace(engine);
    const seen: number[] = [];
    engine.root.observe(ds.ref, P.rec('n', P.bind('k')), {
      onAdd: (_v, c) => {
        const k = c.get('k') as number;
        seen.push(k);
        if (k < 3) engine.root.assert(ds.ref, record('n', k + 1));
      },
    });
    engine.root.assert(ds.ref, record('n', 0));
    assert.equal(engine.isQuiescent, false);
    const both = Promise.all([engine.sync(), engine.sync()]);
    await both;
    assert.deepEqual(seen, [0, 1, 2, 3]);
  });

  it('yields to the host after its turn budget', async () => {
    let yields = 0;
    const engine = new Engine({
      turnBudget: 10,
      yieldTo: (run) => {
        yields++;
        setTimeout(run, 0);
      },
    });
    const ds = new Dataspace(engine);
    let count = 0;
    engine.root.observe(ds.ref, P.rec('tick', P.bind('k')), {
      onAdd: (_v, c) => {
        count++;
        const k = c.get('k') as number;
        if (k < 100) engine.root.assert(ds.ref, record('tick', k + 1));
      },
    });
    engine.root.assert(ds.ref, record('tick', 0));
    await engine.sync();
    assert.equal(count, 101);
    assert.ok(yields >= 9, `yielded ${yields} times`);
  });

  it('drains a burst of queued work in linear time (compaction moves each slot O(1) times)', async () => {
    const engine = new Engine({ turnBudget: 100 });
    let ran = 0;
    for (let i = 0; i < 20_000; i++) engine.turn(() => engine.root.turn(() => void ran++));
    await engine.sync();
    assert.equal(ran, 20_000);
    const { enqueued, moved } = engine.queueStats();
    assert.ok(moved <= enqueued, `compaction moved ${moved} slots for ${enqueued} enqueued`);
  });

  it('uses the injected scheduler', async () => {
    const pending: (() => void)[] = [];
    const engine = new Engine({ schedule: (run) => pending.push(run) });
    const ds = new Dataspace(engine);
    let seen = 0;
    engine.root.observe(ds.ref, P._, { onAdd: () => seen++ });
    engine.root.assert(ds.ref, 1);
    assert.equal(pending.length, 1);
    assert.equal(seen, 0);
    const done = engine.sync();
    pending.shift()!();
    await done;
    assert.equal(seen, 1);
  });

  it('survives a logger that throws', async () => {
    const engine = new Engine({
      logger: {
        error() {
          throw new Error('logger broke');
        },
        warn() {},
      },
    });
    const f = engine.root.spawn(() => {});
    f.turn(() => {
      throw new Error('turn broke');
    });
    assert.equal(f.isAlive, false);
    assert.equal(engine.root.isAlive, true);
    await engine.sync();
  });

  it('stops everything when the root stops', async () => {
    const engine = new Engine();
    const ds = new Dataspace(engine);
    engine.root.spawn((f) => f.spawn((g) => g.assert(ds.ref, 1)));
    engine.root.assert(ds.ref, 2);
    engine.root.stop();
    await engine.sync();
    assert.equal(ds.size, 0);
    assert.equal(engine.root.isStopped, true);
  });
});

describe('Engine.turn', () => {
  it('runs in the root by default, and a failing root turn only discards its effects', async () => {
    const errors: string[] = [];
    const engine = new Engine({ logger: { error: (m) => errors.push(m), warn() {} } });
    const ds = new Dataspace(engine);
    engine.turn(() => {
      engine.root.assert(ds.ref, 'kept');
      assert.equal(engine.activeFacet, engine.root);
    });
    engine.turn(() => {
      engine.root.assert(ds.ref, 'discarded');
      throw new Error('root turn failed');
    });
    await engine.sync();
    assert.equal(engine.root.isAlive, true);
    assert.deepEqual([...ds.values()], ['kept']);
    assert.deepEqual(errors, ['root: turn failed: root turn failed']);
  });

  it('runs in the given facet', () => {
    const engine = new Engine();
    const f = engine.root.spawn(() => {});
    let active;
    engine.turn(() => (active = engine.activeFacet), f);
    assert.equal(active, f);
  });
});
