import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  Annotated,
  is,
  record,
  sym,
  type Position,
  type Value,
} from '../../../src/preserves/index.ts';
import {
  BudgetExceededError,
  C,
  CaveatError,
  Dataspace,
  P,
  UnboundVariableError,
  applyCaveats,
  attenuate,
  compileCaveat,
  compileCaveats,
  type Caveat,
} from '../../../src/dataspace/index.ts';
import { checkedEngine } from '../../support/engine-log.ts';

const s = sym;
const at = (line: number, column: number): Position => ({
  source: 'ds.pr',
  line,
  column,
  offset: 0,
});

function apply(caveats: Caveat[], v: Value): Value | undefined {
  return applyCaveats(caveats, v);
}

function same(a: Value | undefined, b: Value | undefined) {
  if (b === undefined) return assert.equal(a, undefined);
  assert.ok(a !== undefined && is(a, b), 'values differ');
}

describe('caveats', () => {
  it('rewrites a match with exact arity into the template', () => {
    const c = compileCaveat(record('rewrite', record('a', s('?x')), record('b', s('$x'), 'k')));
    same(apply([c], record('a', 1)), record('b', 1, 'k'));
    same(apply([c], record('a', 1, 2)), undefined); // exact arity, not prefix
    same(apply([c], record('a')), undefined);
    same(apply([c], record('z', 1)), undefined);
  });

  it('matches sequences with exact length too', () => {
    const c = compileCaveat(record('accept', [1, s('_')]));
    same(apply([c], [1, 2]), [1, 2]);
    same(apply([c], [1, 2, 3]), undefined);
    same(apply([c], [1]), undefined);
  });

  it('accepts matching values unchanged and drops the rest', () => {
    const c = compileCaveat(record('accept', record('log', s('_'), s('_'))));
    const v = record('log', 1, 'x');
    assert.equal(apply([c], v), v);
    same(apply([c], record('log', 1)), undefined);
    same(apply([c], record('other', 1, 2)), undefined);
  });

  it('rejects matching values and passes the rest unchanged', () => {
    const c = compileCaveat(record('reject', record('secret', s('_'))));
    same(apply([c], record('secret', 1)), undefined);
    const v = record('secret', 1, 2); // exact arity: does not match, so passes
    assert.equal(apply([c], v), v);
    assert.equal(apply([c], 'hello'), 'hello');
  });

  it('takes the first alternative of <or> that yields a value', () => {
    const c = compileCaveat(
      record('or', [
        record('rewrite', record('a', s('?x')), record('first', s('$x'))),
        record('rewrite', record('a', s('?y')), record('second', s('$y'))),
        record('accept', record('b')),
      ]),
    );
    same(apply([c], record('a', 1)), record('first', 1));
    same(apply([c], record('b')), record('b'));
    same(apply([c], record('c')), undefined);
  });

  it('applies a list in order and drops a value any caveat drops', () => {
    const list = compileCaveats([
      record('rewrite', record('a', s('?x')), record('b', s('$x'))),
      record('rewrite', record('b', s('?x')), record('c', s('$x'))),
    ]);
    same(apply(list, record('a', 1)), record('c', 1));
    same(apply(list, record('b', 1)), undefined);
    assert.equal(compileCaveats(record('accept', s('_'))).length, 1);
  });

  it('binds template variables from the environment unless the pattern captures them', () => {
    const env = new Map<string, Value>([
      ['who', 'alice'],
      ['x', 'shadowed'],
    ]);
    const c = compileCaveat(
      record('rewrite', record('say', s('?x')), record('said', s('$who'), s('$x'))),
      env,
    );
    same(apply([c], record('say', 'hi')), record('said', 'alice', 'hi'));
    // $x in the pattern is a bound value from env.
    const d = compileCaveat(record('accept', record('is', s('$who'))), env);
    same(apply([d], record('is', 'alice')), record('is', 'alice'));
    same(apply([d], record('is', 'bob')), undefined);
  });

  it('reports malformed caveats with positions', () => {
    const bad = (v: Value, re: RegExp, cls: new (...a: never[]) => Error = CaveatError) =>
      assert.throws(
        () => compileCaveat(v),
        (e: unknown) => {
          assert.ok(e instanceof cls, String(e));
          assert.match(e.message, re);
          return true;
        },
      );
    bad(
      new Annotated(record('frobnicate', 1), [], at(3, 9)),
      /^ds\.pr:3:9: unknown caveat <frobnicate/,
    );
    bad(record('accept'), /<accept \.\.\.> takes 1 field/);
    bad(record('rewrite', s('_')), /<rewrite \.\.\.> takes 2 fields/);
    bad(record('or', record('accept', s('_'))), /takes a sequence of caveats/);
    bad(42, /a caveat is <rewrite/);
    bad(
      record('rewrite', record('a', s('?x')), record('b', new Annotated(s('$y'), [], at(7, 2)))),
      /^ds\.pr:7:2: unbound variable \$y$/,
      UnboundVariableError,
    );
    assert.equal(new CaveatError('x').code, 'LIMEN_CAVEAT');
  });

  it('can be built from TypeScript, with exact patterns', () => {
    const c = C.or(C.reject(P.rec('a', P._)), C.accept(P.rec('b')));
    same(apply([c], record('a', 1)), undefined); // rejected, and <accept <b>> does not match
    same(apply([c], record('a', 1, 2)), record('a', 1, 2)); // exact arity: reject passes it
    same(apply([c], record('b')), record('b'));
    const r = C.rewrite(P.rec('a', P.bind('x')), record('b', s('$x')));
    same(apply([r], record('a', 1)), record('b', 1));
    same(apply([r], record('a', 1, 2)), undefined);
    assert.throws(() => C.rewrite(P.rec('a'), record('b', s('$nope'))), UnboundVariableError);
  });
});

describe('attenuation', () => {
  function world() {
    const engine = checkedEngine().engine;
    const ds = new Dataspace(engine, 'config');
    return { engine, ds, f: engine.root.spawn(() => {}) };
  }

  it('filters assertions published through the ref', async () => {
    const { engine, ds, f } = world();
    const ref = attenuate(ds.ref, [C.accept(P.rec('allowed', P._))]);
    assert.equal(ref.isAttenuated, true);
    assert.equal(ref.dataspace, ds);
    f.assert(ref, record('allowed', 1));
    const dropped = f.assert(ref, record('denied', 1));
    await engine.sync();
    assert.deepEqual(
      [...ds.values()].map((v) => is(v, record('allowed', 1))),
      [true],
    );
    dropped.dispose(); // harmless
    await engine.sync();
    assert.equal(ds.size, 1);
  });

  it('applies the newest caveats first', () => {
    const { ds, f } = world();
    const older = attenuate(ds.ref, [C.rewrite(P.rec('b', P.bind('x')), record('c', s('$x')))]);
    const newer = attenuate(older, [C.rewrite(P.rec('a', P.bind('x')), record('b', s('$x')))]);
    // a -> b (newest) -> c (oldest). The other order would drop <a 1>.
    f.assert(newer, record('a', 1));
    assert.equal(ds.has(record('c', 1)), true);
    assert.equal(ds.size, 1);
    assert.equal(newer.caveats.length, 2);
    assert.equal(newer.caveats[1], older.caveats[0]);
  });

  it('filters and rewrites messages', async () => {
    const { engine, ds, f } = world();
    const heard: Value[] = [];
    f.observe(ds.ref, P._, { onMessage: (v) => heard.push(v) });
    const ref = attenuate(ds.ref, [
      C.or(C.rewrite(P.rec('ping', P.bind('n')), record('pong', s('$n'))), C.accept(P.rec('ok'))),
    ]);
    f.send(ref, record('ping', 1));
    f.send(ref, record('ok'));
    f.send(ref, record('nope'));
    await engine.sync();
    assert.equal(heard.length, 2);
    same(heard[0], record('pong', 1));
    same(heard[1], record('ok'));
  });

  it('lets observation through an attenuated ref see the whole dataspace', async () => {
    const { engine, ds, f } = world();
    f.assert(ds.ref, record('anything', 1));
    const ref = attenuate(ds.ref, [C.reject(P._)]);
    const seen: Value[] = [];
    f.observe(ref, P.rec('anything', P._), { onAdd: (v) => seen.push(v) });
    await engine.sync();
    assert.equal(seen.length, 1);
  });
});

describe('caveats: what a rewrite may build', () => {
  it('stops a chain of rewrites that double what they are given (2^n bytes written out)', () => {
    // Each caveat makes <x [V V]> of <x V>: 40 of them are 2^40 copies of the value.
    const double = compileCaveat(
      record('rewrite', record('x', s('?a')), record('x', [s('$a'), s('$a')])),
    );
    const chain = Array.from({ length: 40 }, () => double);
    assert.throws(
      () => apply(chain, record('x', 'value')),
      (e: unknown) =>
        e instanceof BudgetExceededError &&
        e.kind === 'size' &&
        /larger than 1 MiB/.test(e.message),
    );
    // A few doublings are fine.
    const small = apply(chain.slice(0, 4), record('x', 'v'));
    assert.ok(small !== undefined);
  });
});

describe('caveats: a value too large through a driver', () => {
  it("drops a driver's value that a script's doubling caveats would blow up, and keeps the driver", async () => {
    const engine = checkedEngine().engine;
    const ds = new Dataspace(engine, 'ds');
    const double = compileCaveat(
      record('rewrite', record('x', s('?a')), record('x', [s('$a'), s('$a')])),
    );
    let ref = ds.ref;
    for (let i = 0; i < 40; i++) ref = attenuate(ref, [double]);
    // The daemon's own facets have no budget: the value is dropped, the facet lives on.
    engine.root.spawn((f) => {
      f.assert(ref, record('x', 'value'));
      f.assert(ds.ref, record('kept'));
    });
    await engine.sync();
    assert.deepEqual(
      [...ds.values()].map((v) => is(v, record('kept'))),
      [true],
    );
  });
});
