// The failure collector on a bare engine: how a failure assertion is read
// (kind, subject, message, readable text, level), and what the log says when
// failures come, go, flap, or are replaced across turns.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Dataspace, Engine, compilePattern, type Handle } from '../../../src/dataspace/index.ts';
import { parse } from '../../../src/preserves/index.ts';
import { plainText } from '../../../src/script/index.ts';
import { describeFailure, startFailureCollector } from '../../../src/daemon/failures.ts';
import { createDaemonLog } from '../../../src/daemon/log.ts';
import { until } from '../../support/until.ts';

const read = (value: string, shape: string) =>
  describeFailure(parse(value), compilePattern(parse(shape)), 0);

describe('failure collector', () => {
  it('reads kind, subject, message and text through the shape', () => {
    const c = read(
      '<config-error "/etc/limen/x.pr" {line: 3 column: 7 message: "oops"}>',
      '<config-error _ _>',
    );
    assert.deepEqual(
      [c.kind, c.subject, c.message, c.text, c.level, c.line, c.column],
      ['config-error', '/etc/limen/x.pr', 'oops', '/etc/limen/x.pr:3:7: oops', 'error', 3, 7],
    );
    const a = read(
      '<ip-address-state "wan0" "10.0.0.1/33" failed "bad prefix">',
      '<ip-address-state _ _ failed _>',
    );
    assert.deepEqual(
      [a.kind, a.subject, a.message, a.text],
      ['ip-address-state failed', 'wan0 10.0.0.1/33', 'bad prefix', 'wan0 10.0.0.1/33: bad prefix'],
    );
    const s = read('<service-error <daemon web> "no argv">', '<service-error>');
    assert.deepEqual(
      [s.kind, s.subject, s.text],
      ['service-error', '<daemon web>', '<daemon web>: no argv'],
    );
    const f = read('<firewall-warning "zone wna is not defined">', '<firewall-warning _>');
    assert.deepEqual(
      [f.kind, f.subject, f.text, f.level],
      ['firewall-warning', '', 'zone wna is not defined', 'warn'],
    );
    const long = read(`<my-error "${'x'.repeat(5000)}">`, '<my-error>');
    assert.equal(long.message.length, 2001);
    assert.ok(long.message.endsWith('…'));
  });

  interface Line {
    level: string;
    msg: string;
    subject?: string;
    message?: string;
  }

  const setup = () => {
    const engine = new Engine();
    const config = new Dataspace(engine, 'config');
    const lines: Line[] = [];
    const logger = createDaemonLog('json', (l) => void lines.push(JSON.parse(l) as Line));
    let collector!: ReturnType<typeof startFailureCollector>;
    engine.turn(
      () => (collector = startFailureCollector(engine.root, { config: config.ref, logger })),
    );
    const assertText = (text: string): Handle => {
      let h: Handle | undefined;
      engine.turn(() => (h = engine.root.assert(config.ref, parse(text))));
      return h!;
    };
    const retract = (h: Handle) => engine.turn(() => engine.root.retract(h));
    const waitLog = (what: string, pred: (l: Line) => boolean) =>
      until(() => lines.find(pred), { describe: () => `${what}: ${JSON.stringify(lines)}` });
    return { engine, config, lines, collector, assertText, retract, waitLog };
  };

  it('a failure replaced in a later turn of the same burst is no fix; the fix is, once', async () => {
    const t = setup();
    t.assertText('<failure-shape <disk-error _ _>>');
    const a = t.assertText('<disk-error "sda" "read error">');
    await t.waitLog('first', (l) => l.msg === 'disk-error' && l.message === 'read error');
    // Retracted first, and replaced by a turn queued behind that one: one burst.
    let b: Handle | undefined;
    t.engine.turn(() => {
      t.engine.root.retract(a);
      t.engine.root.turn(
        () => (b = t.engine.root.assert(t.config.ref, parse('<disk-error "sda" "write error">'))),
      );
    });
    await t.waitLog('second', (l) => l.msg === 'disk-error' && l.message === 'write error');
    assert.deepEqual(
      t.lines.filter((l) => l.msg === 'disk-error fixed'),
      [],
    );
    assert.deepEqual(
      t.collector.current().map((f) => f.message),
      ['write error'],
    );
    t.retract(b!);
    const fixed = await t.waitLog('fixed', (l) => l.msg === 'disk-error fixed');
    assert.deepEqual([fixed.level, fixed.subject], ['info', 'sda']);
    assert.deepEqual(t.collector.current(), []);
  });

  it('publishes each current failure as <current-failure {…}> for watchers, and withdraws it', async () => {
    const t = setup();
    const seen = new Map<string, string>();
    t.engine.turn(() =>
      t.engine.root.observe(t.config.ref, compilePattern(parse('<current-failure ?f>')), {
        onAdd: (v) => void seen.set(plainText(v), plainText(v)),
        onRemove: (v) => void seen.delete(plainText(v)),
      }),
    );
    t.assertText('<failure-shape <disk-error _ _>>');
    const a = t.assertText('<disk-error "sda" "read error">');
    await until(() => seen.size === 1 || undefined, {
      describe: () => `current failures: ${[...seen.keys()].join(', ')}`,
    });
    const text = [...seen.keys()][0]!;
    for (const part of [
      'kind: "disk-error"',
      'subject: "sda"',
      'message: "read error"',
      'level: "error"',
    ])
      assert.ok(text.includes(part), `${part} in ${text}`);
    t.retract(a);
    await until(() => seen.size === 0 || undefined, {
      describe: () => `current failures: ${[...seen.keys()].join(', ')}`,
    });
  });

  it('a failure of another subject going is that subject fixed, not this one', async () => {
    const t = setup();
    t.assertText('<failure-shape <disk-error _ _>>');
    t.assertText('<disk-error "sda" "read error">');
    const b = t.assertText('<disk-error "sdb" "read error">');
    await t.waitLog('sdb', (l) => l.msg === 'disk-error' && l.subject === 'sdb');
    t.retract(b);
    await t.waitLog('sdb fixed', (l) => l.msg === 'disk-error fixed' && l.subject === 'sdb');
    assert.equal(t.lines.filter((l) => l.msg === 'disk-error fixed').length, 1);
  });

  it('a failure withdrawn and asserted again in one burst is logged once', async () => {
    const t = setup();
    t.assertText('<failure-shape <disk-error _ _>>');
    const a = t.assertText('<disk-error "sda" "read error">');
    await t.waitLog('first', (l) => l.msg === 'disk-error');
    t.engine.turn(() => {
      t.engine.root.retract(a);
      t.engine.root.turn(() =>
        t.engine.root.assert(t.config.ref, parse('<disk-error "sda" "read error">')),
      );
    });
    // Something else, logged by the comparison that follows the flap.
    t.assertText('<disk-error "sdc" "gone">');
    await t.waitLog('sdc', (l) => l.subject === 'sdc');
    assert.equal(t.lines.filter((l) => l.msg === 'disk-error' && l.subject === 'sda').length, 1);
    assert.equal(t.lines.filter((l) => l.msg === 'disk-error fixed').length, 0);
  });

  it('two shapes matching one value make one failure; it goes with the last shape', async () => {
    const t = setup();
    const wide = t.assertText('<failure-shape <disk-error>>');
    const narrow = t.assertText('<failure-shape <disk-error "sda" _>>');
    t.assertText('<disk-error "sda" "read error">');
    await t.waitLog('logged', (l) => l.msg === 'disk-error');
    assert.equal(t.collector.current().length, 1);
    t.retract(wide);
    t.assertText('<disk-error "sdz" "marker">'); // matched by no shape now: never logged
    t.assertText('<failure-shape <other-error>>');
    t.assertText('<other-error "x">');
    await t.waitLog('marker', (l) => l.msg === 'other-error');
    assert.equal(t.collector.current().filter((f) => f.kind.startsWith('disk-error')).length, 1);
    assert.equal(t.lines.filter((l) => l.msg.startsWith('disk-error')).length, 1);
    t.retract(narrow);
    await t.waitLog('fixed', (l) => l.msg.startsWith('disk-error') && l.msg.endsWith(' fixed'));
    assert.deepEqual(
      t.collector.current().map((f) => f.kind),
      ['other-error'],
    );
  });

  it('once stopped, logs nothing', async () => {
    const t = setup();
    t.assertText('<failure-shape <disk-error _ _>>');
    const a = t.assertText('<disk-error "sda" "read error">');
    await t.waitLog('first', (l) => l.msg === 'disk-error');
    t.engine.turn(() => t.collector.stop());
    t.retract(a);
    await t.engine.sync();
    await new Promise((r) => setImmediate(r)); // the comparison would have run by now
    assert.equal(t.lines.length, 1);
  });
});
