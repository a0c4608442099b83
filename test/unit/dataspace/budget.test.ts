// Budgets: a budgeted facet tree that loops, cascades or hoards handles is
// stopped (only it), reported once, and everything else keeps running; the
// daemon's own unbudgeted facets are never charged.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { record, sym } from '../../../src/preserves/index.ts';
import type { BudgetExceededError } from '../../../src/dataspace/index.ts';
import {
  Budget,
  Dataspace,
  Engine,
  P,
  type Facet,
  type Logger,
} from '../../../src/dataspace/index.ts';
import { until } from '../../support/until.ts';

function setup(options: { chainLimit?: number } = {}) {
  const errors: string[] = [];
  const logger: Logger = { error: (m) => errors.push(m), warn: (m) => errors.push(m) };
  const engine = new Engine({ logger, ...options });
  const ds = new Dataspace(engine, 'ds');
  const reports: { where: string; error: BudgetExceededError }[] = [];
  const budget = (limits: { handles?: number; turns?: number } = {}) =>
    new Budget({ limits, onExceeded: (where, error) => reports.push({ where, error }) });
  return { engine, ds, errors, reports, budget };
}

/** `?? <msg> ! <msg>` in TypeScript: a message loop, in a facet of its own. */
function pingLoop(parent: Facet, ds: Dataspace, label: string, budget?: Budget): Facet {
  return parent.spawn(
    (f) => {
      f.observe(ds.ref, P.rec(label), { onMessage: () => f.send(ds.ref, record(label)) }, label);
      f.send(ds.ref, record(label));
    },
    `${label}-facet`,
    budget,
  );
}

describe('budgets', () => {
  it('stops a message loop at the chain limit: only its facet, reported and logged once', async () => {
    const { engine, ds, errors, reports, budget } = setup({ chainLimit: 1000 });
    let loop!: Facet;
    let bystander!: Facet;
    engine.turn(() => {
      loop = pingLoop(engine.root, ds, 'ping', budget());
      // Another script, and an unbudgeted driver, both alive and holding assertions.
      bystander = engine.root.spawn((f) => f.assert(ds.ref, record('other')), 'other', budget());
      engine.root.assert(ds.ref, record('driver'));
    });
    await engine.sync();
    assert.equal(loop.isStopped, true);
    assert.equal(bystander.isAlive, true);
    assert.ok(ds.has(record('other')) && ds.has(record('driver')));
    assert.equal(reports.length, 1);
    assert.equal(reports[0]!.error.kind, 'chain');
    assert.equal(reports[0]!.where, 'ping');
    assert.deepEqual(errors, [
      'ping: facet stopped: a chain of more than 1000 turns, each caused by the one before, did not end (a message or assertion loop?)',
    ]);
  });

  it('never charges unbudgeted facets: a driver chain longer than the limit runs to its end', async () => {
    const { engine, ds, errors } = setup({ chainLimit: 100 });
    let n = 0;
    engine.turn(() => {
      engine.root.observe(ds.ref, P.rec('step'), {
        onMessage: () => {
          if (++n < 500) engine.root.send(ds.ref, record('step'));
        },
      });
      engine.root.send(ds.ref, record('step'));
    });
    await engine.sync();
    assert.equal(n, 500);
    assert.deepEqual(errors, []);
  });

  it('starts a new chain for what comes from outside any turn (I/O)', async () => {
    const { engine, ds, errors, budget } = setup({ chainLimit: 50 });
    let n = 0;
    let f!: Facet;
    // Each step is caused by a timer callback, not by the turn before it.
    const next = () =>
      setImmediate(() => {
        if (f.isAlive) f.turn(() => f.send(ds.ref, record('tick')));
      });
    engine.turn(() => {
      f = engine.root.spawn(
        (x) =>
          x.observe(ds.ref, P.rec('tick'), {
            onMessage: () => {
              if (++n < 200) next();
            },
          }),
        'ticker',
        budget(),
      );
    });
    await engine.sync();
    next();
    await until(() => n === 200, { describe: () => `n = ${n}` });
    assert.equal(f.isAlive, true);
    assert.deepEqual(errors, []);
  });

  it('stops a cascade that fans out at the turns limit (the chain stays short)', async () => {
    const { engine, ds, reports, budget } = setup();
    let fan!: Facet;
    let turns = 0;
    engine.turn(() => {
      fan = engine.root.spawn(
        (f) => {
          f.observe(ds.ref, P.rec('f'), {
            onMessage: () => {
              turns++;
              f.send(ds.ref, record('f'));
              f.send(ds.ref, record('f'));
            },
          });
          f.send(ds.ref, record('f'));
        },
        'fan',
        budget({ turns: 5000 }),
      );
    });
    await engine.sync();
    assert.equal(fan.isStopped, true);
    assert.equal(turns, 5000);
    assert.equal(reports.length, 1);
    assert.equal(reports[0]!.error.kind, 'turns');
  });

  it('gives a budget its turns back once the engine has been idle', async () => {
    const { engine, ds, errors, budget } = setup();
    const b = budget({ turns: 100 });
    let f!: Facet;
    let count = 0;
    engine.turn(() => {
      f = engine.root.spawn(
        (x) => x.observe(ds.ref, P.rec('n', P._), { onMessage: () => void count++ }),
        'counter',
        b,
      );
    });
    await engine.sync();
    for (let round = 0; round < 3; round++) {
      engine.turn(() => {
        for (let i = 0; i < 90; i++) engine.root.send(ds.ref, record('n', i));
      });
      await engine.sync();
    }
    assert.equal(count, 270);
    assert.equal(f.isAlive, true);
    assert.deepEqual(errors, []);
  });

  it('refuses a handle over the limit, stops the facet, and counts every handle back', async () => {
    const { engine, ds, reports, budget } = setup();
    const b = budget({ handles: 10 });
    let top!: Facet;
    let child!: Facet;
    engine.turn(() => {
      top = engine.root.spawn(
        (f) => {
          for (let i = 0; i < 5; i++) f.assert(ds.ref, record('a', i));
          f.observe(ds.ref, P.rec('more'), {
            onMessage: () => {
              for (let i = 0; i < 10; i++) f.assert(ds.ref, record('b', i));
            },
          });
        },
        'hoarder',
        b,
      );
      child = top.spawn((f) => f.assert(ds.ref, record('c')));
    });
    await engine.sync();
    assert.equal(b.handles, 7);
    // A failed turn's handles never existed: they are not counted.
    engine.turn(() => engine.root.send(ds.ref, record('more')));
    await engine.sync();
    assert.equal(top.isStopped, true);
    assert.equal(child.isStopped, true);
    assert.equal(b.handles, 0);
    assert.equal(ds.has(record('a', 0)), false);
    assert.equal(reports.length, 1);
    assert.equal(reports[0]!.error.kind, 'handles');
  });

  it('counts retractions and replacements, so a facet that churns never runs out', async () => {
    const { engine, ds, errors, budget } = setup();
    const b = budget({ handles: 3 });
    let f!: Facet;
    engine.turn(() => {
      f = engine.root.spawn(() => {}, 'churn', b);
    });
    let h = f.assert(ds.ref, record('v', 0));
    for (let i = 1; i < 100; i++) h = f.replace(h, ds.ref, record('v', i))!;
    await engine.sync();
    assert.equal(b.handles, 1);
    assert.ok(ds.has(record('v', 99)));
    f.retract(h);
    assert.equal(b.handles, 0);
    assert.deepEqual(errors, []);
  });

  it('reports a problem once, however often it happens, and stops each offender', async () => {
    const { engine, ds, errors, reports, budget } = setup();
    const b = budget({ handles: 2 });
    const kids: Facet[] = [];
    engine.turn(() => {
      engine.root.spawn(
        (f) => {
          f.assert(ds.ref, sym('held'));
          f.observe(ds.ref, P.rec('go'), {
            onMessage: () => {
              kids.push(f.spawn((k) => k.assert(ds.ref, record('k', kids.length)), 'kid'));
            },
          });
        },
        'parent',
        b,
      );
    });
    for (let i = 0; i < 5; i++) engine.turn(() => engine.root.send(ds.ref, record('go')));
    await engine.sync();
    assert.equal(kids.length, 5);
    assert.ok(kids.every((k) => k.isStopped));
    assert.equal(reports.length, 1);
    assert.equal(errors.length, 1);
  });
});
