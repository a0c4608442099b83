import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Dict, dict, is, record, sym, type Value } from '../../../src/preserves/index.ts';
import { P, compilePattern, type Pattern } from '../../../src/dataspace/index.ts';
import {
  AssertionEntry,
  IndexEvent,
  MatchIndex,
  analyze,
} from '../../../src/dataspace/match-index.ts';

interface Event {
  who: string;
  event: IndexEvent;
  value: Value;
  captures: Record<string, Value>;
}

function setup() {
  const events: Event[] = [];
  const index = new MatchIndex<string>((who, event, value, captures) =>
    events.push({ who, event, value, captures: Object.fromEntries(captures) }),
  );
  const entries: AssertionEntry<string>[] = [];
  const add = (v: Value) => {
    const e = new AssertionEntry<string>(v);
    index.addAssertion(e);
    entries.push(e);
    return e;
  };
  const observe = (who: string, p: Pattern) => index.addObserver(analyze(p), who);
  const take = () => events.splice(0);
  return { index, events, add, observe, take, entries };
}

const names = (es: Event[]) => es.map((e) => e.who).sort();

describe('MatchIndex', () => {
  it('notifies only the observers whose constants match', () => {
    const { add, observe, take, index } = setup();
    for (let i = 0; i < 100; i++) observe(`o${i}`, P.rec('interface', `eth${i}`, P.bind('state')));
    observe('all', P.rec('interface', P.bind('name')));
    observe('other', P.rec('address', P.bind('name')));
    take();
    add(record('interface', 'eth7', 'up'));
    const es = take();
    assert.deepEqual(names(es), ['all', 'o7']);
    assert.deepEqual(es.find((e) => e.who === 'o7')!.captures, { state: 'up' });
    // 100 observers with the same shape share one class; 'all' and 'other' add two more.
    assert.equal(index.stats().classes, 3);
  });

  it('hands a new observer the current matches, and only those', () => {
    const { add, observe, take } = setup();
    add(record('interface', 'eth0', 'up'));
    add(record('interface', 'eth1', 'down'));
    add(record('address', 'eth0', '10.0.0.1'));
    add([1, 2]);
    add('atom');
    observe('eth0', P.rec('interface', 'eth0', P._));
    assert.deepEqual(
      take().map((e) => [e.who, e.event]),
      [['eth0', IndexEvent.Added]],
    );
    observe('any', P.bind('v'));
    assert.equal(take().length, 5);
    observe('anyRecord', P.rec(P.bind('l'), 'eth0'));
    assert.deepEqual(
      take()
        .map((e) => (e.captures.l as ReturnType<typeof sym>).name)
        .sort(),
      ['address', 'interface'],
    );
  });

  it('matches structure: arity, nested records, sequences and dictionaries', () => {
    const { add, observe, take } = setup();
    observe('arity2', P.rec('a', P._, P._));
    observe('nested', P.rec('a', P.rec('b', P.bind('x'))));
    observe('seq', P.seq(1, P.bind('y')));
    observe('dict', P.dict({ k: P.bind('z') }));
    observe('lit', P.lit(record('a', 1)));
    take();
    add(record('a', 1));
    assert.deepEqual(names(take()), ['lit']);
    add(record('a', record('b', 5), 2));
    assert.deepEqual(names(take()), ['arity2', 'nested']);
    add(record('a', record('c', 5), 2));
    assert.deepEqual(names(take()), ['arity2']);
    add([1, 2, 3]);
    add([2, 2]);
    assert.deepEqual(names(take()), ['seq']);
    add(dict({ k: 1, j: 2 }));
    add(dict({ j: 2 }));
    add(new Dict([['k', 1]]));
    assert.deepEqual(
      take().map((e) => [e.who, e.captures.z]),
      [['dict', 1]],
    );
  });

  it('reports removal to the groups an entry was added to, without re-matching', () => {
    const { index, add, observe, take } = setup();
    observe('o', P.rec('x', P.bind('v')));
    const e = add(record('x', 1));
    take();
    index.removeAssertion(e);
    assert.deepEqual(
      take().map((x) => [x.who, x.event, x.captures.v]),
      [['o', IndexEvent.Removed, 1]],
    );
  });

  it('delivers messages without storing them', () => {
    const { index, observe, take } = setup();
    observe('o', P.rec('ping', P.bind('n')));
    observe('p', P.rec('pong'));
    index.deliver(record('ping', 1));
    assert.deepEqual(
      take().map((x) => [x.who, x.event, x.captures.n]),
      [['o', IndexEvent.Message, 1]],
    );
    observe('late', P.rec('ping', P._));
    assert.equal(take().length, 0);
  });

  it('computes captures once per capture group and separates different capture paths', () => {
    const { add, observe, take } = setup();
    observe('a', P.rec('r', P.bind('x'), P._));
    observe('b', P.rec('r', P._, P.bind('x')));
    observe('c', P.rec('r', P.bind('x'), P._));
    take();
    add(record('r', 1, 2));
    const es = take();
    const byWho = Object.fromEntries(es.map((e) => [e.who, e.captures.x]));
    assert.deepEqual(byWho, { a: 1, b: 2, c: 1 });
  });

  it('frees groups, classes and discriminators when observers and assertions go', () => {
    const { index, add, observe } = setup();
    const slots = [
      observe('a', P.rec('iface', 'eth0', P._)),
      observe('b', P.rec('iface', 'eth1', P._)),
      observe('c', P.rec('route', P._)),
      observe('d', P.rec('iface', P._, P._)),
    ];
    const e1 = add(record('iface', 'eth0', 1));
    const e2 = add(record('iface', 'eth9', 1));
    assert.equal(e1.groups.length, 2);
    assert.deepEqual(index.stats(), { discriminators: 2, classes: 3, groups: 5 });
    for (const s of slots) index.removeObserver(s);
    assert.deepEqual(index.stats(), { discriminators: 1, classes: 0, groups: 0 });
    assert.deepEqual(e1.groups, []);
    assert.deepEqual(e2.groups, []);
    index.removeAssertion(e1);
    index.removeAssertion(e2);
    assert.deepEqual(index.stats(), { discriminators: 0, classes: 0, groups: 0 });
  });

  it('re-creates a class from the current assertions', () => {
    const { index, add, observe, take } = setup();
    add(record('iface', 'eth0', 1));
    const s = observe('a', P.rec('iface', 'eth0', P._));
    index.removeObserver(s);
    take();
    observe('b', P.rec('iface', 'eth0', P._));
    assert.deepEqual(names(take()), ['b']);
  });

  it('answers queries from the index or by scanning', () => {
    const { index, add, observe } = setup();
    add(record('iface', 'eth0', 1));
    add(record('iface', 'eth1', 2));
    observe('x', P.rec('iface', 'eth0', P._));
    const q1 = index.query(P.rec('iface', 'eth0', P.bind('n')));
    assert.equal(q1.length, 1);
    assert.ok(is(q1[0]!.captures.get('n')!, 1));
    const q2 = index.query(P.rec('iface', P._, P.bind('n')));
    assert.equal(q2.length, 2);
    assert.equal(index.query(P.rec('none')).length, 0);
  });

  it('treats equal patterns from text and builder as one class', () => {
    const { index, observe } = setup();
    observe('a', compilePattern(record('iface', 'eth0', sym('?x'))));
    observe('b', P.rec('iface', 'eth1', P.bind('y')));
    observe('c', compilePattern(dict({ b: 1, a: sym('_') })));
    observe('d', P.dict({ a: P._, b: 1 }));
    assert.equal(index.stats().classes, 2);
  });
});
