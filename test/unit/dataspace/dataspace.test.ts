import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  Annotated,
  Dict,
  Embedded,
  ValueMap,
  is,
  record,
  sym,
  type Value,
} from '../../../src/preserves/index.ts';
import {
  Dataspace,
  Engine,
  ForeignRefError,
  P,
  asRef,
  attenuate,
  C,
  embed,
  match,
  type Facet,
  type Handle,
  type Logger,
  type Pattern,
} from '../../../src/dataspace/index.ts';
import { prng } from '../../support/random.ts';

function captureLogger(): Logger & { errors: string[] } {
  const errors: string[] = [];
  return { errors, error: (m) => errors.push(m), warn: (m) => errors.push(m) };
}

/** An observer that records what it sees. */
function watch(facet: Facet, ds: Dataspace, pattern: Pattern) {
  const log: string[] = [];
  const handle = facet.observe(ds.ref, pattern, {
    onAdd: (v, c) => log.push(`+${show(v)}${showCaps(c)}`),
    onRemove: (v, c) => log.push(`-${show(v)}${showCaps(c)}`),
    onMessage: (v, c) => log.push(`!${show(v)}${showCaps(c)}`),
  });
  return { log, handle, take: () => log.splice(0) };
}

function show(v: Value): string {
  if (v instanceof Annotated) return show(v.item);
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  if (Array.isArray(v)) return `[${(v as Value[]).map(show).join(' ')}]`;
  if (v instanceof Dict)
    return `{${[...v]
      .map(([k, x]) => `${show(k)}:${show(x)}`)
      .sort()
      .join(' ')}}`;
  if (v instanceof Embedded) return '#:ref';
  if ('label' in v) return `<${[v.label, ...v.fields].map(show).join(' ')}>`;
  if ('name' in v) return v.name;
  return '?';
}

function showCaps(c: ReadonlyMap<string, Value>): string {
  return c.size === 0 ? '' : ` ${[...c].map(([k, v]) => `${k}=${show(v)}`).join(' ')}`;
}

function world() {
  const logger = captureLogger();
  const engine = new Engine({ logger });
  const ds = new Dataspace(engine, 'machine');
  const facet = engine.root.spawn(() => {}, 'test');
  return { engine, ds, facet, logger };
}

describe('Dataspace', () => {
  it('counts references: the same value asserted twice survives one retraction', async () => {
    const { engine, ds, facet } = world();
    const w = watch(facet, ds, P.rec('up', P.bind('x')));
    const v = record('up', 'eth0');
    const h1 = facet.assert(ds.ref, v);
    const h2 = facet.assert(ds.ref, record('up', 'eth0'));
    await engine.sync();
    assert.equal(ds.count(v), 2);
    assert.deepEqual(w.take(), ['+<up "eth0"> x="eth0"']);
    facet.retract(h1);
    facet.retract(h1); // idempotent
    await engine.sync();
    assert.equal(ds.count(v), 1);
    assert.ok(ds.has(v));
    assert.deepEqual(w.take(), []);
    h2.dispose();
    await engine.sync();
    assert.equal(ds.has(v), false);
    assert.deepEqual(w.take(), ['-<up "eth0"> x="eth0"']);
  });

  it('reports only 0->1 and 1->0 transitions, across facets and annotations', async () => {
    const { engine, ds, facet } = world();
    const other = engine.root.spawn(() => {});
    const w = watch(facet, ds, P.rec('a', P._));
    const hs: Handle[] = [];
    for (let i = 0; i < 5; i++) {
      hs.push(facet.assert(ds.ref, record('a', 1)));
      hs.push(other.assert(ds.ref, new Annotated(record('a', 1), ['comment'])));
    }
    await engine.sync();
    assert.deepEqual(w.take(), ['+<a 1>']);
    for (const h of hs.slice(1)) h.dispose();
    await engine.sync();
    assert.deepEqual(w.take(), []);
    hs[0]!.dispose();
    await engine.sync();
    assert.deepEqual(w.take(), ['-<a 1>']);
  });

  it('hands a new observer what is already asserted', async () => {
    const { engine, ds, facet } = world();
    facet.assert(ds.ref, record('interface', 'eth0', 'up'));
    facet.assert(ds.ref, record('interface', 'eth1', 'down'));
    facet.assert(ds.ref, record('address', 'eth0', '10.0.0.1'));
    const w = watch(facet, ds, P.rec('interface', P.bind('n'), 'up'));
    await engine.sync();
    assert.deepEqual(w.take(), ['+<interface "eth0" "up"> n="eth0"']);
  });

  it('delivers messages to current observers and does not retain them', async () => {
    const { engine, ds, facet } = world();
    facet.send(ds.ref, record('ping', 0));
    const w = watch(facet, ds, P.rec('ping', P.bind('n')));
    await engine.sync();
    assert.deepEqual(w.take(), []);
    facet.send(ds.ref, record('ping', 1));
    facet.send(ds.ref, record('pong', 1));
    await engine.sync();
    assert.deepEqual(w.take(), ['!<ping 1> n=1']);
    assert.equal(ds.size, 0);
    const late = watch(facet, ds, P.rec('ping', P._));
    await engine.sync();
    assert.deepEqual(late.take(), []);
  });

  it('stops reporting to an observer once retracted, even with notifications queued', async () => {
    const { engine, ds, facet } = world();
    const w = watch(facet, ds, P.rec('a', P._));
    facet.assert(ds.ref, record('a', 1));
    w.handle.dispose();
    await engine.sync();
    assert.deepEqual(w.take(), []);
  });

  it('sync waits for cascades of reactions', async () => {
    const { engine, ds, facet } = world();
    // Each <n k> causes <n k+1>, up to 50.
    facet.observe(ds.ref, P.rec('n', P.bind('k')), {
      onAdd: (_v, c) => {
        const k = c.get('k') as number;
        if (k < 50) facet.assert(ds.ref, record('n', k + 1));
      },
    });
    facet.assert(ds.ref, record('n', 0));
    await engine.sync();
    assert.equal(ds.size, 51);
    assert.ok(engine.isQuiescent);
    await ds.sync();
  });

  it('answers queries and lists values', () => {
    const { ds, facet } = world();
    facet.assert(ds.ref, record('interface', 'eth0', 'up'));
    facet.assert(ds.ref, record('interface', 'eth1', 'down'));
    const q = ds.query(P.rec('interface', P.bind('n'), 'up'));
    assert.equal(q.length, 1);
    assert.ok(is(q[0]!.captures.get('n')!, 'eth0'));
    assert.equal([...ds.values()].length, 2);
  });

  it('embeds refs as values compared by identity', () => {
    const { engine, ds, facet } = world();
    const other = new Dataspace(engine, 'log');
    assert.ok(is(embed(ds.ref), ds.ref.toValue()));
    assert.ok(is(embed(ds.ref), new Embedded(ds.ref)));
    assert.ok(!is(embed(ds.ref), embed(other.ref)));
    const weak = attenuate(ds.ref, [C.accept(P.rec('x'))]);
    assert.ok(!is(embed(ds.ref), embed(weak)));
    assert.equal(asRef(embed(weak)), weak);
    assert.equal(asRef(1), undefined);
    // A ref inside an assertion can be matched as a literal and captured.
    facet.assert(ds.ref, record('config', embed(other.ref)));
    const q = ds.query(P.rec('config', P.bind('ds')));
    assert.equal(asRef(q[0]!.captures.get('ds')!), other.ref);
    assert.equal(ds.query(P.rec('config', embed(other.ref))).length, 1);
    assert.equal(ds.query(P.rec('config', embed(ds.ref))).length, 0);
  });

  it('refuses refs from another engine', () => {
    const { facet } = world();
    const foreign = new Dataspace(new Engine(), 'x');
    assert.throws(() => facet.assert(foreign.ref, 1), ForeignRefError);
  });
});

// ---- Randomized check against a brute-force model ------------------------------------------

interface ModelFacet {
  facet: Facet;
  parent: ModelFacet | undefined;
  children: ModelFacet[];
  alive: boolean;
}
interface ModelHandle {
  owner: ModelFacet;
  handle: Handle;
  value: Value;
}
interface ModelObserver {
  owner: ModelFacet;
  handle: Handle;
  pattern: Pattern;
  view: ValueMap<ReadonlyMap<string, Value>>;
  messages: [Value, ReadonlyMap<string, Value>][];
  violations: string[];
}

class Gen {
  readonly rand: () => number;
  #names = 0;
  constructor(seed: number) {
    this.rand = prng(seed);
  }
  int(n: number): number {
    return Math.floor(this.rand() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  atom(): Value {
    return this.pick<Value>([1, 2, 'x', 'y', sym('s'), true]);
  }
  value(depth = 2): Value {
    const r = this.int(10);
    if (depth === 0 || r < 3) return this.atom();
    const kids = () => Array.from({ length: this.int(3) }, () => this.value(depth - 1));
    if (r < 8) return record(this.pick(['a', 'b', 'c']), ...kids());
    if (r < 9) return kids();
    const d = new Dict();
    for (const k of ['k', 'j']) if (this.rand() < 0.6) d.set(sym(k), this.value(depth - 1));
    return d;
  }
  pattern(depth = 2, top = true): Pattern {
    const r = this.int(12);
    if (r === 0 && !top) return P._;
    if (r === 1) return P.bind(`v${this.#names++}`);
    if (r === 2 && !top) return P.bind(`v${this.#names++}`, this.pattern(depth - 1, false));
    if (depth === 0 || r < 5) return P.lit(r === 3 ? this.value(1) : this.atom());
    const kids = () => Array.from({ length: this.int(3) }, () => this.pattern(depth - 1, false));
    if (r < 10) {
      const label = this.rand() < 0.85 ? this.pick(['a', 'b', 'c']) : this.pattern(0, false);
      return P.rec(label, ...kids());
    }
    if (r < 11) return P.seq(...kids());
    const entries: [Value, Pattern][] = [];
    for (const k of ['k', 'j'])
      if (this.rand() < 0.5) entries.push([sym(k), this.pattern(depth - 1, false)]);
    return P.dict(entries);
  }
}

function sameCaptures(a: ReadonlyMap<string, Value>, b: ReadonlyMap<string, Value>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) {
    const w = b.get(k);
    if (w === undefined || !is(v, w)) return false;
  }
  return true;
}

async function randomRun(seed: number, steps: number): Promise<void> {
  const g = new Gen(seed);
  const logger = captureLogger();
  const engine = new Engine({ logger });
  const ds = new Dataspace(engine, 'model');
  const rootModel: ModelFacet = {
    facet: engine.root,
    parent: undefined,
    children: [],
    alive: true,
  };
  const facets: ModelFacet[] = [rootModel];
  let handles: ModelHandle[] = [];
  let observers: ModelObserver[] = [];
  const fail = (step: number, what: string) =>
    assert.fail(`seed ${seed}, step ${step}: ${what} (rerun with SEED=${seed})`);

  const live = () => facets.filter((f) => f.alive);
  const markStopped = (m: ModelFacet) => {
    for (const c of m.children) markStopped(c);
    m.alive = false;
  };
  const prune = () => {
    handles = handles.filter((h) => h.owner.alive);
    observers = observers.filter((o) => o.owner.alive);
  };
  const spawnModel = (parent: ModelFacet) => {
    const facet = parent.facet.spawn(() => {});
    const m: ModelFacet = { facet, parent, children: [], alive: true };
    parent.children.push(m);
    facets.push(m);
  };
  const startObserver = (owner: ModelFacet) => {
    const pattern = g.pattern();
    const o: ModelObserver = {
      owner,
      pattern,
      view: new ValueMap(),
      messages: [],
      violations: [],
      handle: undefined as unknown as Handle,
    };
    o.handle = owner.facet.observe(ds.ref, pattern, {
      onAdd: (v, c) => {
        if (o.view.has(v)) o.violations.push(`added twice: ${show(v)}`);
        o.view.set(v, c);
      },
      onRemove: (v, c) => {
        const had = o.view.get(v);
        if (had === undefined) o.violations.push(`removed but absent: ${show(v)}`);
        else if (!sameCaptures(had, c)) o.violations.push(`captures changed: ${show(v)}`);
        o.view.delete(v);
      },
      onMessage: (v, c) => o.messages.push([v, c]),
    });
    observers.push(o);
  };
  const assertOne = (owner: ModelFacet) => {
    const value = g.value();
    handles.push({ owner, value, handle: owner.facet.assert(ds.ref, value) });
  };
  const retractOne = () => {
    const i = g.int(handles.length);
    const h = handles[i]!;
    handles.splice(i, 1);
    h.owner.facet.retract(h.handle);
  };

  for (let step = 0; step < steps; step++) {
    const r = g.int(100);
    let message: Value | undefined;
    const fs = live();
    const owner = g.pick(fs);
    if (r < 28) assertOne(owner);
    else if (r < 48) {
      if (handles.length > 0) retractOne();
    } else if (r < 58) {
      if (observers.length < 30) startObserver(owner);
    } else if (r < 63) {
      if (observers.length > 0) {
        const i = g.int(observers.length);
        observers[i]!.handle.dispose();
        observers.splice(i, 1);
      }
    } else if (r < 68) {
      if (fs.length < 12) spawnModel(owner);
    } else if (r < 71) {
      if (owner !== rootModel) {
        owner.facet.stop();
        markStopped(owner);
        prune();
      }
    } else if (r < 76) {
      if (handles.length > 0) {
        const i = g.int(handles.length);
        const old = handles[i]!;
        const value = g.rand() < 0.5 ? old.value : g.value();
        const h = old.owner.facet.replace(old.handle, ds.ref, value)!;
        handles[i] = { owner: old.owner, value, handle: h };
      }
    } else if (r < 84) {
      message = g.value();
      owner.facet.send(ds.ref, message);
    } else if (r < 92) {
      // Several effects in one turn.
      owner.facet.turn(() => {
        for (let k = 0; k < 1 + g.int(4); k++) {
          if (g.rand() < 0.6 || handles.length === 0) assertOne(owner);
          else retractOne();
        }
      });
    } else if (r < 96) {
      // A turn that fails after doing things: its effects vanish and its facet stops.
      if (owner !== rootModel) {
        const before = handles.length;
        const snapshot = [...handles];
        owner.facet.turn(() => {
          assertOne(owner);
          if (handles.length > 1) retractOne();
          throw new Error('boom');
        });
        void before;
        handles = snapshot;
        markStopped(owner);
        prune();
      }
    } else {
      // A child whose setup fails leaves its parent running.
      owner.facet.spawn((child) => {
        child.assert(ds.ref, g.value());
        throw new Error('setup failed');
      });
    }
    await engine.sync();

    // The dataspace's counts equal the model's.
    const counts = new ValueMap<number>();
    for (const h of handles) counts.set(h.value, (counts.get(h.value) ?? 0) + 1);
    if (counts.size !== ds.size)
      fail(step, `dataspace holds ${ds.size} values, model ${counts.size}`);
    for (const [v, n] of counts)
      if (ds.count(v) !== n) fail(step, `count of ${show(v)} is ${ds.count(v)}, model ${n}`);

    // Each observer's view equals a linear scan of the model.
    for (const o of observers) {
      if (o.violations.length > 0) fail(step, o.violations.join('; '));
      let expected = 0;
      for (const [v] of counts) {
        const m = match(o.pattern, v);
        if (m === null) continue;
        expected++;
        const seen = o.view.get(v);
        if (seen === undefined) fail(step, `observer missed ${show(v)}`);
        else if (!sameCaptures(seen, m)) fail(step, `wrong captures for ${show(v)}`);
      }
      if (o.view.size !== expected)
        fail(step, `observer sees ${o.view.size} values, model ${expected}`);
      const wantMessage = message !== undefined ? match(o.pattern, message) : null;
      if (wantMessage === null) {
        if (o.messages.length !== 0) fail(step, `unexpected message ${show(o.messages[0]![0])}`);
      } else {
        if (o.messages.length !== 1) fail(step, `got ${o.messages.length} copies of a message`);
        else if (!sameCaptures(o.messages[0]![1], wantMessage))
          fail(step, 'wrong message captures');
      }
      o.messages.length = 0;
    }
  }
  // Stopping everything leaves nothing behind.
  engine.root.stop();
  await engine.sync();
  assert.equal(ds.size, 0, `seed ${seed}: values left after stopping the root`);
  assert.deepEqual(ds.indexStats(), { discriminators: 0, classes: 0, groups: 0 });
  assert.ok(
    logger.errors.every((e) => /boom|setup failed/.test(e)),
    logger.errors.join('\n'),
  );
}

describe('Dataspace (randomized, against a linear-scan model)', () => {
  const seeds = process.env.SEED ? [Number(process.env.SEED)] : [1, 2, 3, 0xbeef];
  for (const seed of seeds) {
    it(`agrees with the model for seed ${seed}`, async () => {
      await randomRun(seed, 3000);
    });
  }
});
