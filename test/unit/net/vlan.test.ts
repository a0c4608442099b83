// `<vlan NAME {parent id}>`: every problem reported, and the iproute2 arguments.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parse } from '../../../src/preserves/index.ts';
import { readVlan, vlanAddArgs } from '../../../src/net/vlan.ts';
import { linkAddArgs, linkMatches } from '../../../src/net/virtual-links.ts';

const problems = (text: string): string => {
  const r = readVlan(parse(text));
  assert.equal(r.ok, false, text);
  return r.ok ? '' : r.problems.join('; ');
};

describe('vlan spec', () => {
  it('reads a VLAN and builds the command that creates it', () => {
    const r = readVlan(parse('<vlan "wan0.7" {parent: "wan0" id: 7}>'));
    assert.deepEqual(r, {
      ok: true,
      spec: { kind: 'vlan', name: 'wan0.7', parent: 'wan0', id: 7 },
    });
    if (!r.ok) return;
    const args = ['link', 'add', 'link', 'wan0', 'name', 'wan0.7', 'type', 'vlan', 'id', '7'];
    assert.deepEqual(vlanAddArgs(r.spec), args);
    assert.deepEqual(linkAddArgs(r.spec), args);
  });

  it('takes ids 1 to 4094 only', () => {
    for (const id of ['0', '4095', '-1', '7.5', '"7"'])
      assert.match(
        problems(`<vlan "v" {parent: "eth0" id: ${id}}>`),
        /id must be a whole number from 1 to 4094/,
      );
    assert.equal(readVlan(parse('<vlan "v" {parent: "eth0" id: 4094}>')).ok, true);
  });

  it('reports every problem at once, with a suggestion for a misspelt key', () => {
    const p = problems('<vlan "a/b" {parnet: "eth0"}>');
    assert.match(p, /the name "a\/b" has a character/);
    assert.match(p, /unknown option parnet \(did you mean 'parent'\?\)/);
    assert.match(p, /parent is required/);
    assert.match(p, /id is required/);
  });

  it('refuses hostile names and shapes', () => {
    assert.match(problems('<vlan "x" {parent: "x" id: 2}>'), /another interface/);
    assert.match(
      problems('<vlan "averyveryverylongname" {parent: "eth0" id: 2}>'),
      /longer than 15/,
    );
    assert.match(problems('<vlan "v" {parent: "eth 0" id: 2}>'), /parent must be a non-empty/);
    assert.match(problems('<vlan 7 {parent: "eth0" id: 2}>'), /NAME must be a string/);
    assert.match(problems('<vlan "v">'), /expected <vlan NAME/);
    assert.match(problems('<vlan "v" [1 2]>'), /expected a dictionary/);
  });

  it('knows its link when it sees it', () => {
    const spec = { kind: 'vlan', name: 'wan0.7', parent: 'wan0', id: 7 } as const;
    const link = {
      name: 'wan0.7',
      index: 9,
      kind: 'vlan',
      parent: 'wan0',
      vlanId: 7,
      alias: 'limen',
    };
    assert.equal(linkMatches(spec, link), true);
    assert.equal(linkMatches(spec, { ...link, vlanId: 8 }), false);
    assert.equal(linkMatches(spec, { ...link, parent: 'wan1' }), false);
    assert.equal(linkMatches(spec, { ...link, kind: 'wireguard' }), false);
  });
});
