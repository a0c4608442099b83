// The l2tp protocol's pure parts (src/net/l2tp.ts): its options read with every
// problem, xl2tpd's argv (the secret never on it: only the password file's path,
// which pppd's passprompt program reads), the route that pins the LNS to the
// underlying WAN, and its PPP link published at a metric below a DHCP lease's.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parse, stringify, type Value } from '../../../src/preserves/index.ts';
import { L2TP_LINK, lnsRoute, readL2tp, xl2tpdArgv } from '../../../src/net/l2tp.ts';
import { interpretPppLink } from '../../../src/net/ppp-link.ts';

const v = (t: string): Value => parse(t);
const GOOD =
  '<l2tp {server: "198.51.100.10" via: "wan0" user: "alice" password-file: "/etc/limen/l2tp.secret"}>';

describe('l2tp', () => {
  it('reads its options with defaults, and reports every problem', () => {
    const r = readL2tp('l2tp0', v(GOOD));
    assert.ok(r.ok);
    assert.equal(r.options.mtu, 1400);
    assert.equal(r.options.redialTimeout, 5);
    assert.equal(r.options.authRetry, 300);
    const bad = readL2tp(
      'l2tp0',
      v(
        `<l2tp {server: "lns.example" via: "l2tp0" user: "a" password-file: "/x'y" mtu: 9000 lns: 1}>`,
      ),
    );
    assert.ok(!bad.ok);
    assert.deepEqual(bad.problems, [
      'unknown option lns (known: server, via, user, password-file, mtu, lcp-echo-interval, lcp-echo-failure, redial-timeout, auth-retry)',
      'server lns.example: not an IPv4 address (an IPv4 address)',
      'via must be another interface: the tunnel runs over it',
      'password-file must be an absolute path without quotes',
      'mtu must be a whole number from 576 to 1460',
    ]);
    assert.deepEqual(readL2tp('l2tp0', v('<l2tp>')), {
      ok: false,
      problems: [
        'expected <l2tp {server: "ADDRESS" via: "wan0" user: "NAME" password-file: "/PATH" …}>',
      ],
    });
  });

  it('gives xl2tpd the password file’s path only (the shell copies the secret into pppd’s private options), and pppd the outputs directory as ipparam', () => {
    const r = readL2tp('l2tp0', v(GOOD));
    assert.ok(r.ok);
    const argv = xl2tpdArgv('l2tp0', r.options);
    assert.equal(argv[0], 'sh');
    assert.ok(argv.includes('/etc/limen/l2tp.secret'));
    assert.match(argv[2]!, /printf .password "%s"/);
    assert.doesNotMatch(argv.join(' '), /alice-secret/);
    assert.match(argv[2]!, /ipparam limen:\$LIMEN_OUTPUTS/);
    assert.match(argv[2]!, /pass peer = no/);
    assert.match(argv[2]!, /exec xl2tpd -D /);
  });

  it('pins the LNS to the underlying WAN, and publishes its link at metric 50', () => {
    const r = readL2tp('l2tp0', v(GOOD));
    assert.ok(r.ok);
    assert.deepEqual(
      lnsRoute('l2tp0', r.options, '100.64.0.1').map((a) => stringify(a)),
      ['<ip-route ipv4 "198.51.100.10/32" {dev: "wan0" metric: 0 via: "100.64.0.1"}>'],
    );
    const outputs = new Map(
      Object.entries({
        event: '"up 1"',
        ifname: '"l2tp0"',
        local: '"10.70.0.10"',
        remote: '"10.70.0.1"',
        dns: '["10.70.0.1"]',
      }).map(([k, x]) => [k, v(x)]),
    );
    const shown = interpretPppLink('l2tp0', outputs, L2TP_LINK).assertions.map((a) => stringify(a));
    assert.ok(
      shown.includes('<ip-route ipv4 "default" {dev: "l2tp0" metric: 50}>'),
      shown.join('\n'),
    );
    assert.ok(shown.includes('<dns-server "10.70.0.1" <l2tp "l2tp0">>'), shown.join('\n'));
    assert.ok(!shown.some((s) => s.startsWith('<interface-over')), 'l2tp0 is its own interface');
  });
});
