// The pppoe protocol's pure parts (src/net/pppoe.ts): its options read with every
// problem, pppd's argv (the secret only through descriptor 3, never on the command
// line), and the hook's outputs turned into the provider contract's desired state,
// hostile values refused.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parse, stringify, type Value } from '../../../src/preserves/index.ts';
import { authFailure, interpretPppLink, pppdArgv, readPppoe } from '../../../src/net/pppoe.ts';

const v = (t: string): Value => parse(t);

describe('pppoe', () => {
  it('reads its options with defaults, and reports every problem', () => {
    const r = readPppoe(
      'wan0',
      v('<pppoe {user: "alice" password-file: "/etc/limen/isp.secret"}>'),
    );
    assert.ok(r.ok);
    assert.equal(r.options.ifname, 'ppp-wan0');
    assert.equal(r.options.mtu, 1492);
    assert.equal(r.options.authRetry, 300);
    const bad = readPppoe('wan0', v('<pppoe {user: "a b" password-file: "rel" mtu: 9000 usr: 1}>'));
    assert.ok(!bad.ok);
    assert.deepEqual(bad.problems, [
      'unknown option usr (known: user, password-file, service, ac, mtu, mru, lcp-echo-interval, lcp-echo-failure, holdoff, auth-retry, ifname)',
      'user must be a non-empty string of printable characters without spaces',
      'password-file must be an absolute path without quotes',
      'mtu must be a whole number from 576 to 1500',
    ]);
  });

  it('gives pppd the password through descriptor 3 and the outputs directory as ipparam', () => {
    const r = readPppoe('wan0', v('<pppoe {user: "alice" password-file: "/s/pw" service: "isp"}>'));
    assert.ok(r.ok);
    const argv = pppdArgv('wan0', r.options);
    assert.deepEqual(argv.slice(0, 5), [
      'sh',
      '-c',
      'file=$1; shift; exec pppd "$@" ipparam "limen:$LIMEN_OUTPUTS" 3<"$file"',
      'pppd',
      '/s/pw',
    ]);
    const args = argv.slice(5).join(' ');
    assert.match(args, /plugin pppoe\.so nic-wan0 nodetach/);
    assert.match(args, /plugin passwordfd\.so passwordfd 3$/);
    assert.match(args, /rp_pppoe_service isp/);
    assert.match(args, / \+ipv6 /);
    assert.doesNotMatch(args, /password /);
  });

  it('turns the link into an address, a default route through it and its DNS; refuses hostile values', () => {
    const out = (o: { [k: string]: string }) =>
      new Map(Object.entries(o).map(([k, x]) => [k, v(x)]));
    const r = interpretPppLink(
      'wan0',
      out({
        event: '"up 1"',
        ifname: '"ppp-wan0"',
        local: '"100.64.0.10"',
        remote: '"100.64.0.1"',
        dns: '["100.64.0.1" "100.64.0.1" "not-an-ip"]',
      }),
    );
    assert.deepEqual(r.problems, []);
    const shown = r.assertions.map((a) => stringify(a));
    assert.ok(shown.includes('<ip-address "ppp-wan0" "100.64.0.10/32" {}>'), shown.join('\n'));
    assert.ok(
      shown.includes('<ip-route ipv4 "default" {dev: "ppp-wan0" metric: 100}>'),
      shown.join('\n'),
    );
    assert.ok(shown.includes('<dns-server "100.64.0.1" <pppoe "wan0">>'), shown.join('\n'));
    assert.ok(shown.includes('<interface-over "ppp-wan0" "wan0">'), shown.join('\n'));
    assert.equal(shown.filter((s) => s.startsWith('<dns-server')).length, 1);
    assert.deepEqual(
      interpretPppLink('wan0', out({ ifname: '"ppp-wan0"' })).assertions,
      [],
      'no event: nothing',
    );
    const hostile = interpretPppLink(
      'wan0',
      out({ event: '"up 2"', ifname: '"ppp/0"', local: '"0.0.0.0"' }),
    );
    assert.equal(hostile.problems.length, 2);
    assert.ok(hostile.assertions.every((a) => stringify(a).startsWith('<ppp-error "wan0"')));
  });

  it("knows pppd's words for credentials the ISP refused", () => {
    assert.equal(authFailure('CHAP authentication failed'), 'CHAP');
    assert.equal(authFailure('PAP authentication failed'), 'PAP');
    assert.equal(authFailure('MS-CHAP-v2 authentication failed: E=691'), 'MS-CHAP-v2');
    assert.equal(authFailure('CHAP authentication succeeded'), undefined);
    // What the ISP says is quoted by pppd after "Remote message:": it proves nothing.
    assert.equal(authFailure('Remote message: CHAP authentication failed'), undefined);
  });
});
