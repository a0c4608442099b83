// Plans (src/safety/plan.ts): an evaluation read from a sandbox's $config, and two
// evaluations compared into assertions that appear and disappear and services that
// start, stop or restart.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parse, stringify, type Value } from '../../../src/preserves/index.ts';
import { comparePlans, evaluationOf, isEmptyPlan, specChanges } from '../../../src/safety/plan.ts';

const values = (...texts: string[]): Value[] => texts.map((t) => parse(t));
const shown = (vs: readonly Value[]) => vs.map((v) => stringify(v));

describe('plans', () => {
  const base = values(
    '<daemon web {argv: ["sleep" "1"] restart: always}>',
    '<require-service <daemon web>>',
    '<run-service <daemon web>>',
    '<service-state <daemon web> ready>',
    '<run-service <config-watcher "/etc/limen/core" {}>>',
    '<run-service <milestone core>>',
    '<output <daemon web> "k" "v">',
    '<limen-paths {}>',
    '<firewall-zone wan ["wan0"]>',
  );

  it('leaves runtime state out of the assertions, and loaders out of the services', () => {
    const e = evaluationOf(base);
    assert.deepEqual(shown([...e.assertions].map(([v]) => v)).sort(), [
      '<daemon web {argv: ["sleep" "1"] restart: always}>',
      '<firewall-zone wan ["wan0"]>',
      '<require-service <daemon web>>',
    ]);
    assert.deepEqual(shown([...e.services].map(([s]) => s)).sort(), [
      '<daemon web>',
      '<milestone core>',
    ]);
  });

  it('the same configuration is an empty plan', () => {
    assert.ok(isEmptyPlan(comparePlans(evaluationOf(base), evaluationOf(base))));
  });

  it('an added assertion appears, and nothing else changes', () => {
    const after = [...base, ...values('<port-forward wan tcp 2222 "192.168.8.10" 22>')];
    const p = comparePlans(evaluationOf(base), evaluationOf(after));
    assert.deepEqual(shown(p.appear), ['<port-forward wan tcp 2222 "192.168.8.10" 22>']);
    assert.deepEqual([p.disappear, p.start, p.stop, p.restart], [[], [], [], []]);
  });

  it('a daemon whose spec changed restarts, with the fields that changed', () => {
    const after = base.map((v) =>
      stringify(v).startsWith('<daemon web')
        ? parse('<daemon web {argv: ["sleep" "2"] restart: always user: "nobody"}>')
        : v,
    );
    const p = comparePlans(evaluationOf(base), evaluationOf(after));
    assert.equal(p.restart.length, 1);
    assert.equal(stringify(p.restart[0]!.service), '<daemon web>');
    assert.deepEqual(
      p.restart[0]!.changes.map((c) => [
        c.key,
        c.from && stringify(c.from),
        c.to && stringify(c.to),
      ]),
      [
        ['argv', '["sleep" "1"]', '["sleep" "2"]'],
        ['user', undefined, '"nobody"'],
      ],
    );
    assert.deepEqual(shown(p.appear), [
      '<daemon web {argv: ["sleep" "2"] restart: always user: "nobody"}>',
    ]);
    assert.deepEqual(shown(p.disappear), ['<daemon web {argv: ["sleep" "1"] restart: always}>']);
  });

  it('services that start and stop, sorted', () => {
    const after = [
      ...base.filter((v) => !stringify(v).includes('<daemon web>')),
      ...values('<run-service <daemon b>>', '<run-service <daemon a>>'),
    ];
    const p = comparePlans(evaluationOf(base), evaluationOf(after));
    assert.deepEqual(shown(p.start), ['<daemon a>', '<daemon b>']);
    assert.deepEqual(shown(p.stop), ['<daemon web>']);
  });

  it('specs that are not dictionaries change as a whole; no spec on either side is no change', () => {
    assert.deepEqual(specChanges(undefined, undefined), []);
    assert.deepEqual(specChanges(parse('1'), parse('1')), []);
    assert.equal(specChanges(parse('<one-shot ["a"]>'), parse('<one-shot ["b"]>'))[0]!.key, 'spec');
  });
});
