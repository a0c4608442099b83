import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { record, type Value } from '../../../src/preserves/index.ts';
import {
  Dataspace,
  Engine,
  FacetStoppedError,
  P,
  type Facet,
  type Logger,
} from '../../../src/dataspace/index.ts';

function world() {
  const errors: string[] = [];
  const logger: Logger = { error: (m) => errors.push(m), warn: (m) => errors.push(m) };
  const engine = new Engine({ logger });
  const ds = new Dataspace(engine, 'config');
  return { engine, ds, errors };
}

/** Records add/remove of every value matching the pattern. */
function recorder(facet: Facet, ds: Dataspace, label: string) {
  const log: string[] = [];
  facet.observe(ds.ref, P.rec(label, P.bind('x')), {
    onAdd: (_v, c) => log.push(`+${c.get('x') as string}`),
    onRemove: (_v, c) => log.push(`-${c.get('x') as string}`),
  });
  return log;
}

describe('Facet', () => {
  it('stops children first, in reverse order of start, then its own handlers', () => {
    const { engine } = world();
    const order: string[] = [];
    const named = (parent: Facet, name: string, setup?: (f: Facet) => void) =>
      parent.spawn((f) => {
        f.onStop(() => order.push(name));
        setup?.(f);
      }, name);
    const a = named(engine.root, 'A', (f) => {
      named(f, 'A1');
      named(f, 'A2', (g) => {
        named(g, 'A2a');
        named(g, 'A2b');
      });
      named(f, 'A3');
      f.onStop(() => order.push('A (second handler)'));
    });
    const b = named(engine.root, 'B');
    a.stop();
    assert.deepEqual(order, ['A3', 'A2b', 'A2a', 'A2', 'A1', 'A (second handler)', 'A']);
    assert.equal(a.isAlive, false);
    assert.equal(a.isStopped, true);
    assert.equal(b.isAlive, true);
    assert.deepEqual(
      engine.root.children.map((f) => f.origin),
      ['B'],
    );
  });

  it('retracts everything a stopped subtree held, including observers', async () => {
    const { engine, ds } = world();
    const watcher = engine.root.spawn(() => {});
    const seen = recorder(watcher, ds, 'x');
    let childSaw = 0;
    const parent = engine.root.spawn((p) => {
      p.assert(ds.ref, record('x', 'parent'));
      p.spawn((c) => {
        c.assert(ds.ref, record('x', 'child'));
        c.observe(ds.ref, P.rec('x', P._), { onAdd: () => childSaw++ });
      });
    });
    await engine.sync();
    assert.deepEqual(seen.sort(), ['+child', '+parent']);
    assert.equal(childSaw, 2);
    const classesBefore = ds.indexStats().classes;
    parent.stop();
    await engine.sync();
    assert.deepEqual(seen.slice(2).sort(), ['-child', '-parent']);
    assert.equal(ds.size, 0);
    watcher.assert(ds.ref, record('x', 'later'));
    await engine.sync();
    assert.equal(childSaw, 2);
    // The child's observer is gone from the index (the watcher's remains).
    assert.equal(ds.indexStats().classes, classesBefore);
    assert.equal(ds.indexStats().classes, 1);
  });

  it('commits a turn’s effects together, at the end of the turn', async () => {
    const { engine, ds } = world();
    const f = engine.root.spawn(() => {});
    const v = record('x', 1);
    f.turn(() => {
      f.assert(ds.ref, v);
      assert.equal(ds.has(v), false, 'not visible inside the turn');
      assert.equal(engine.inTurn, true);
      assert.equal(engine.activeFacet, f);
    });
    assert.equal(ds.has(v), true);
    assert.equal(engine.inTurn, false);
    // An assertion retracted in the same turn is still seen to come and go.
    const seen = recorder(f, ds, 'y');
    f.turn(() => {
      const h = f.assert(ds.ref, record('y', 1));
      f.retract(h);
    });
    await engine.sync();
    assert.deepEqual(seen, ['+1', '-1']);
  });

  it('stops only the facet whose turn threw, discards its effects and logs the origin', async () => {
    const { engine, ds, errors } = world();
    const parent = engine.root.spawn(() => {}, 'core.pr:1:1');
    const sibling = parent.spawn((s) => s.assert(ds.ref, record('x', 'sibling')), 'core.pr:2:1');
    const bad = parent.spawn((b) => b.assert(ds.ref, record('x', 'bad-before')), 'net.pr:12:7');
    const badChild = bad.spawn(() => {});
    bad.turn(() => {
      bad.assert(ds.ref, record('x', 'bad-during'));
      throw new Error('kaboom');
    });
    await engine.sync();
    assert.equal(bad.isAlive, false);
    assert.equal(badChild.isAlive, false);
    assert.equal(parent.isAlive, true);
    assert.equal(sibling.isAlive, true);
    assert.deepEqual(
      [...ds.values()].map((v) => (v as ReturnType<typeof record>).fields[0]),
      ['sibling'],
    );
    assert.equal(errors.length, 1);
    assert.match(errors[0]!, /^net\.pr:12:7: turn failed: kaboom$/);
  });

  it('stops the observing facet when a callback throws, reporting the observer’s origin', async () => {
    const { engine, ds, errors } = world();
    const a = engine.root.spawn(() => {}, 'a.pr');
    const b = engine.root.spawn(() => {}, 'b.pr');
    const got: string[] = [];
    a.observe(
      ds.ref,
      P.rec('ev', P._),
      {
        onAdd: () => {
          a.assert(ds.ref, record('a-reacted'));
          throw new TypeError('bad callback');
        },
      },
      'a.pr:3:5',
    );
    b.observe(ds.ref, P.rec('ev', P._), { onAdd: () => got.push('b') });
    engine.root.assert(ds.ref, record('ev', 1));
    await engine.sync();
    assert.equal(a.isAlive, false);
    assert.equal(b.isAlive, true);
    assert.deepEqual(got, ['b']);
    assert.equal(ds.has(record('a-reacted')), false);
    assert.deepEqual(errors, ['a.pr:3:5: observer failed: bad callback']);
  });

  it('isolates a child whose setup throws', async () => {
    const { engine, ds, errors } = world();
    const parent = engine.root.spawn(() => {}, 'p');
    const child = parent.spawn((c) => {
      c.assert(ds.ref, record('half-done'));
      throw new Error('setup broke');
    }, 'child.pr:4:2');
    parent.assert(ds.ref, record('parent-ok'));
    await engine.sync();
    assert.equal(child.isAlive, false);
    assert.equal(parent.isAlive, true);
    assert.deepEqual(
      [...ds.values()],
      [record('parent-ok')].map((v) => ds.query(P.lit(v))[0]!.value),
    );
    assert.equal(ds.has(record('half-done')), false);
    assert.deepEqual(errors, ['child.pr:4:2: facet setup failed: setup broke']);
  });

  it('replaces without flapping when the value is unchanged', async () => {
    const { engine, ds } = world();
    const f = engine.root.spawn(() => {});
    const seen = recorder(f, ds, 'state');
    let h = f.replace(undefined, ds.ref, record('state', 'up'))!;
    h = f.replace(h, ds.ref, record('state', 'up'))!;
    await engine.sync();
    assert.deepEqual(seen.splice(0), ['+up']);
    h = f.replace(h, ds.ref, record('state', 'down'))!;
    await engine.sync();
    assert.deepEqual(seen.splice(0), ['+down', '-up']);
    assert.equal(f.replace(h, ds.ref, undefined), undefined);
    await engine.sync();
    assert.deepEqual(seen.splice(0), ['-down']);
    assert.equal(ds.size, 0);
  });

  it('runs stop handlers registered late at once and aborts its signal', () => {
    const { engine } = world();
    const f = engine.root.spawn(() => {});
    const signal = f.signal;
    let aborted = false;
    signal.addEventListener('abort', () => (aborted = true));
    f.stop();
    assert.equal(aborted, true);
    let ran = false;
    f.onStop(() => (ran = true));
    assert.equal(ran, true);
    assert.equal(f.signal.aborted, true);
  });

  it('refuses to act once stopped, but ignores late turns and stops', () => {
    const { engine, ds } = world();
    const f = engine.root.spawn(() => {});
    f.stop();
    assert.throws(() => f.assert(ds.ref, 1), FacetStoppedError);
    assert.throws(() => f.observe(ds.ref, P._, {}), FacetStoppedError);
    assert.throws(() => f.send(ds.ref, 1), FacetStoppedError);
    assert.throws(
      () => f.spawn(() => {}),
      (e: unknown) => {
        assert.ok(e instanceof FacetStoppedError);
        assert.equal(e.code, 'LIMEN_FACET_STOPPED');
        return true;
      },
    );
    let ran = false;
    f.turn(() => (ran = true));
    f.stop();
    assert.equal(ran, false);
  });

  it('logs a failing stop handler and still finishes stopping', async () => {
    const { engine, ds, errors } = world();
    const f = engine.root.spawn((f) => {
      f.assert(ds.ref, record('held'));
      f.onStop(() => {
        throw new Error('cleanup failed');
      });
    }, 'svc.pr:9:1');
    f.stop();
    await engine.sync();
    assert.equal(ds.size, 0);
    assert.deepEqual(errors, ['svc.pr:9:1: stop handler failed: cleanup failed']);
  });

  it('lets a stop handler send messages; its assertions end with the facet', async () => {
    const { engine, ds } = world();
    const heard: Value[] = [];
    engine.root.observe(ds.ref, P.rec('bye', P.bind('who')), {
      onMessage: (_v, c) => heard.push(c.get('who')!),
    });
    const seen = recorder(engine.root, ds, 'last');
    const f = engine.root.spawn((f) =>
      f.onStop(() => {
        f.send(ds.ref, record('bye', 'f'));
        f.assert(ds.ref, record('last', 'f'));
      }),
    );
    f.stop();
    await engine.sync();
    assert.deepEqual(heard, ['f']);
    assert.deepEqual(seen, ['+f', '-f']);
    assert.equal(ds.size, 0);
  });

  it('runs callbacks one at a time, never re-entrantly', async () => {
    const { engine, ds } = world();
    const trace: string[] = [];
    const f = engine.root.spawn(() => {});
    f.observe(ds.ref, P.rec('a', P._), {
      onAdd: () => {
        trace.push('a:start');
        f.assert(ds.ref, record('b', 1));
        f.turn(() => trace.push('queued turn'));
        trace.push('a:end');
      },
    });
    f.observe(ds.ref, P.rec('b', P._), { onAdd: () => trace.push('b') });
    f.assert(ds.ref, record('a', 1));
    await engine.sync();
    // FIFO: the nested turn was queued during the callback, b's notification at its commit.
    assert.deepEqual(trace, ['a:start', 'a:end', 'queued turn', 'b']);
  });

  it('reports handle kinds and liveness', async () => {
    const { engine, ds } = world();
    const f = engine.root.spawn(() => {});
    let h = f.assert(ds.ref, 1);
    assert.equal(h.kind, 'assertion');
    assert.equal(h.isLive, true);
    f.turn(() => {
      h = f.assert(ds.ref, 2);
      assert.equal(h.isLive, false);
    });
    assert.equal(h.isLive, true);
    const o = f.observe(ds.ref, P._, {});
    assert.equal(o.kind, 'observer');
    o.dispose();
    assert.equal(o.isLive, false);
    await engine.sync();
  });
});
