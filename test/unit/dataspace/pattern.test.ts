import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  Annotated,
  Dict,
  Double,
  Embedded,
  PSet,
  dict,
  is,
  record,
  sym,
  type Position,
  type Value,
} from '../../../src/preserves/index.ts';
import {
  P,
  PatternError,
  UnboundVariableError,
  captureNames,
  compilePattern,
  instantiate,
  match,
  matches,
  substitute,
  type Pattern,
} from '../../../src/dataspace/index.ts';

const at = (line: number, column: number): Position => ({
  source: 'net.pr',
  line,
  column,
  offset: 0,
});
const pos = (v: Value, line: number, column: number) => new Annotated(v, [], at(line, column));

function caps(p: Pattern, v: Value): Record<string, Value> | null {
  const m = match(p, v);
  return m === null ? null : Object.fromEntries(m);
}

function assertCaps(p: Pattern, v: Value, want: Record<string, Value> | null) {
  const got = caps(p, v);
  if (want === null) return assert.equal(got, null);
  assert.notEqual(got, null, 'expected a match');
  assert.deepEqual(Object.keys(got!), Object.keys(want));
  for (const k of Object.keys(want)) assert.ok(is(got![k]!, want[k]!), `capture ${k}`);
}

describe('compilePattern', () => {
  it('treats _ as discard', () => {
    const p = compilePattern(sym('_'));
    assertCaps(p, 1, {});
    assertCaps(p, record('x', 1), {});
  });

  it('captures ?x', () => {
    assertCaps(compilePattern(sym('?x')), 'hello', { x: 'hello' });
  });

  it('rejects a bare ? and treats ?_ as discard', () => {
    assert.throws(
      () => compilePattern(pos(sym('?'), 3, 4)),
      (e: unknown) => {
        assert.ok(e instanceof PatternError);
        assert.equal(e.code, 'LIMEN_PATTERN');
        assert.match(e.message, /^net\.pr:3:4: '\?' needs a name/);
        return true;
      },
    );
    assert.deepEqual(captureNames(compilePattern(record('a', sym('?_')))), []);
  });

  it('captures while matching with <?x P>', () => {
    const p = compilePattern(record('iface', record('?addr', record('ipv4', sym('?ip')))));
    assertCaps(p, record('iface', record('ipv4', '10.0.0.1')), {
      addr: record('ipv4', '10.0.0.1'),
      ip: '10.0.0.1',
    });
    assertCaps(p, record('iface', record('ipv6', '::1')), null);
    assert.throws(() => compilePattern(record('?x', 1, 2)), PatternError);
    assert.throws(() => compilePattern(record('?x')), PatternError);
    // <?_ P> is just P.
    assert.deepEqual(captureNames(compilePattern(record('?_', sym('?y')))), ['y']);
  });

  it('substitutes bound $x values and reports unbound ones with the name and position', () => {
    const env = new Map<string, Value>([['name', 'eth0']]);
    const p = compilePattern(record('interface', sym('$name'), sym('?state')), { env });
    assertCaps(p, record('interface', 'eth0', 'up'), { state: 'up' });
    assertCaps(p, record('interface', 'eth1', 'up'), null);
    // A function environment works too, and the bound value is a literal even if it
    // looks like a pattern.
    const q = compilePattern(record('a', sym('$v')), { env: () => sym('_') });
    assert.equal(matches(q, record('a', 1)), false);
    assert.equal(matches(q, record('a', sym('_'))), true);
    assert.throws(
      () => compilePattern(record('a', pos(sym('$missing'), 12, 7))),
      (e: unknown) => {
        assert.ok(e instanceof UnboundVariableError);
        assert.equal(e.code, 'LIMEN_UNBOUND_VARIABLE');
        assert.equal(e.variable, 'missing');
        assert.equal(e.message, 'net.pr:12:7: unbound variable $missing');
        return true;
      },
    );
    assert.throws(() => compilePattern(sym('$')), PatternError);
  });

  it('compares literals with Preserves equality', () => {
    const p = compilePattern(record('a', 1, 'one', new Double(1), sym('one'), true));
    assert.equal(matches(p, record('a', 1, 'one', new Double(1), sym('one'), true)), true);
    assert.equal(matches(p, record('a', 1, 'one', 1, sym('one'), true)), false);
    assert.equal(matches(p, record('a', 1, sym('one'), new Double(1), sym('one'), true)), false);
    assert.equal(matches(compilePattern(2n ** 70n), 2n ** 70n), true);
  });

  it('matches records by prefix of fields, with the label as a sub-pattern', () => {
    const p = compilePattern(record('a', sym('_')));
    assert.equal(matches(p, record('a', 1)), true);
    assert.equal(matches(p, record('a', 1, 2)), true);
    assert.equal(matches(p, record('a')), false);
    assert.equal(matches(p, record('b', 1)), false);
    assert.equal(matches(p, [sym('a'), 1]), false);
    assertCaps(compilePattern(record('?l', sym('_'))), record('zz', 1), { l: record('zz', 1) });
    // A label pattern: <<?x _> ...> is a capture-while-matching label, so use _ / ?x labels.
    const anyLabel = compilePattern(new Annotated(record('_', 1)));
    assert.equal(matches(anyLabel, record('q', 1, 9)), true);
    assert.equal(matches(anyLabel, record('q', 2)), false);
  });

  it('matches sequences by prefix', () => {
    const p = compilePattern([1, sym('?x')]);
    assertCaps(p, [1, 2], { x: 2 });
    assertCaps(p, [1, 2, 3], { x: 2 });
    assertCaps(p, [1], null);
    assertCaps(p, [2, 2], null);
    assertCaps(p, record('a', 1, 2), null);
    assert.equal(matches(compilePattern([]), [1, 2]), true);
  });

  it('matches dictionaries when listed keys are present, allowing others', () => {
    const p = compilePattern(dict({ name: sym('?n'), up: true }));
    assertCaps(p, dict({ name: 'eth0', up: true, mtu: 1500 }), { n: 'eth0' });
    assertCaps(p, dict({ name: 'eth0' }), null);
    assertCaps(p, dict({ name: 'eth0', up: false }), null);
    assertCaps(p, [1], null);
    // Keys may be bound variables.
    const q = compilePattern(new Dict([[sym('$k'), sym('?v')]]), {
      env: new Map([['k', 'key']]),
    });
    assertCaps(q, new Dict([['key', 5]]), { v: 5 });
  });

  it('compares sets literally and refuses captures inside them', () => {
    const p = compilePattern(new PSet([1, 2]));
    assert.equal(matches(p, new PSet([2, 1])), true);
    assert.equal(matches(p, new PSet([1])), false);
    assert.throws(() => compilePattern(new PSet([sym('?x')])), PatternError);
  });

  it('compares embedded values by identity', () => {
    const a = {};
    const p = compilePattern(record('ref', new Embedded(a)));
    assert.equal(matches(p, record('ref', new Embedded(a))), true);
    assert.equal(matches(p, record('ref', new Embedded({}))), false);
  });

  it('ignores annotations in patterns and values', () => {
    const p = compilePattern(pos(record(pos(sym('a'), 1, 2), pos(sym('?x'), 1, 4)), 1, 1));
    assertCaps(p, new Annotated(record('a', new Annotated(5, ['note'])), ['c']), { x: 5 });
    assert.equal(p.pos?.line, 1);
  });

  it('rejects a capture name used twice', () => {
    assert.throws(
      () => compilePattern(record('a', sym('?x'), pos(sym('?x'), 2, 9))),
      /net\.pr:2:9: \?x is captured twice/,
    );
  });

  it('matches exact arity when compiled for attenuation', () => {
    const p = compilePattern(record('a', sym('_'), [sym('_')]), { exact: true });
    assert.equal(matches(p, record('a', 1, [2])), true);
    assert.equal(matches(p, record('a', 1, [2], 3)), false);
    assert.equal(matches(p, record('a', 1, [2, 3])), false);
  });

  it('keeps captures in pattern order', () => {
    const p = compilePattern(record('?all', record('a', sym('?x'), [sym('?y')])));
    assert.deepEqual(captureNames(p), ['all', 'x', 'y']);
    assert.deepEqual([...match(p, record('a', 1, [2]))!.keys()], ['all', 'x', 'y']);
  });
});

describe('P (builder)', () => {
  it('builds the same patterns as the compiler', () => {
    const built = P.rec('interface', P.bind('name'), P._, 'up');
    const compiled = compilePattern(record('interface', sym('?name'), sym('_'), 'up'));
    for (const v of [
      record('interface', 'eth0', 1, 'up'),
      record('interface', 'eth0', 1, 'down'),
      record('interface', 'eth0', 1, 'up', 'extra'),
      record('interface', 'eth0'),
    ])
      assert.deepEqual(caps(built, v), caps(compiled, v));
  });

  it('supports capture with a sub-pattern, literals, sequences and dictionaries', () => {
    const p = P.capture('r', P.rec('route', P.lit(sym('default')), P.seq(P.bind('gw'))));
    assertCaps(p, record('route', sym('default'), ['10.0.0.1']), {
      r: record('route', sym('default'), ['10.0.0.1']),
      gw: '10.0.0.1',
    });
    const d = P.dict({ name: P.bind('n') });
    assertCaps(d, dict({ name: 'x', other: 1 }), { n: 'x' });
    const d2 = P.dict([['k', P.bind('v')]]);
    assertCaps(d2, new Dict([['k', 1]]), { v: 1 });
    assert.equal(matches(P.rec(P._, 1), record('anything', 1)), true);
    assert.equal(matches(P.lit(sym('_')), sym('_')), true);
    assert.equal(matches(P.lit(sym('_')), 1), false);
    assert.throws(() => P.bind(''), PatternError);
    assert.throws(() => captureNames(P.rec('a', P.bind('x'), P.bind('x'))), PatternError);
  });

  it('makes exact patterns', () => {
    const p = P.exact(P.rec('a', P.seq(P._)));
    assert.equal(matches(p, record('a', [1])), true);
    assert.equal(matches(p, record('a', [1, 2])), false);
    assert.equal(matches(p, record('a', [1], 2)), false);
  });
});

describe('instantiate', () => {
  it('replaces $x at every depth and drops annotations', () => {
    const b = new Map<string, Value>([
      ['x', 1],
      ['l', sym('lbl')],
      ['k', 'key'],
    ]);
    const t = new Annotated(
      record(
        sym('$l'),
        sym('$x'),
        [sym('$x'), 'lit'],
        new PSet([sym('$x')]),
        new Dict([[sym('$k'), sym('$x')]]),
      ),
      ['note'],
    );
    const v = instantiate(t, b);
    assert.ok(is(v, record(sym('lbl'), 1, [1, 'lit'], new PSet([1]), new Dict([['key', 1]]))));
    assert.ok(!(v instanceof Annotated));
    // ?x and _ are literal symbols in templates.
    assert.ok(
      is(instantiate(record('a', sym('?x'), sym('_')), b), record('a', sym('?x'), sym('_'))),
    );
  });

  it('reports an unbound variable with its position', () => {
    assert.throws(
      () => instantiate(record('a', pos(sym('$nope'), 5, 6)), new Map()),
      (e: unknown) =>
        e instanceof UnboundVariableError &&
        e.variable === 'nope' &&
        e.message === 'net.pr:5:6: unbound variable $nope',
    );
    assert.throws(() => instantiate(sym('$'), new Map()), PatternError);
  });

  it('leaves unresolved variables in place with substitute', () => {
    const v = substitute(record('a', sym('$x'), sym('$y')), (n) => (n === 'x' ? 1 : undefined));
    assert.ok(is(v, record('a', 1, sym('$y'))));
  });

  it('round-trips captures through a template', () => {
    const m = match(
      compilePattern(record('lease', sym('?ip'), sym('?gw'))),
      record('lease', 'a', 'b'),
    )!;
    assert.ok(
      is(instantiate(record('route', sym('$gw'), sym('$ip')), m), record('route', 'b', 'a')),
    );
  });
});
