// `ping-check` in <lan-dhcp IF {…}>: #t (dnsmasq's default ping before a first
// offer) or #f (`no-ping` in the generated file); anything else is reported.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parse } from '../../../src/preserves/index.ts';
import { readLanDhcp, renderDnsmasqConf } from '../../../src/net/lan-dhcp.ts';

const paths = { resolvFile: '/r/resolv.conf', leaseFile: '/r/leases' };
const read = (extra: string) =>
  readLanDhcp(parse('"lan0"'), parse(`{range: ["10.0.0.10" "10.0.0.20"] ${extra}}`));

describe('lan-dhcp: ping-check', () => {
  it('is on by default, and #f writes no-ping', () => {
    for (const [extra, noPing] of [
      ['', false],
      ['ping-check: #t', false],
      ['ping-check: #f', true],
    ] as const) {
      const r = read(extra);
      assert.ok(r.ok, extra);
      assert.equal(r.config.pingCheck, !noPing, extra);
      const conf = renderDnsmasqConf(r.config, paths);
      assert.equal(/^no-ping$/m.test(conf), noPing, `${extra}:\n${conf}`);
    }
  });

  it('reports a value that is not a boolean, and a misspelt key', () => {
    const bad = read('ping-check: "no"');
    assert.deepEqual(bad.ok ? [] : bad.problems, ['ping-check must be #t or #f, got "no"']);
    const typo = read('ping-chek: #f');
    assert.deepEqual(typo.ok ? [] : typo.problems, [
      "unknown key 'ping-chek' (did you mean 'ping-check'?)",
    ]);
  });
});
