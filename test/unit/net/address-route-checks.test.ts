import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { checkIpAddress, checkIpRoute } from '../../../src/net/address-route.ts';
import { parse } from '../../../src/preserves/index.ts';

describe('address/route: desired values', () => {
  it('reads an ip-address, canonically, with lifetimes', () => {
    const s = checkIpAddress(
      parse('<ip-address "wan0" "2001:DB8:0::1/64" {valid: 600 renewed: 3}>'),
    );
    assert.ok(!Array.isArray(s));
    assert.equal(s.text, '2001:db8::1/64');
    assert.equal(s.valid, 600);
    assert.equal(s.preferred, 600, 'preferred defaults to valid');
    const forever = checkIpAddress(parse('<ip-address "lan0" "192.168.8.1/24">'));
    assert.ok(!Array.isArray(forever) && forever.valid === undefined);
  });

  it('collects every problem of an ip-address', () => {
    const errs = checkIpAddress(
      parse(
        '<ip-address "a very long interface name" "1.2.3/24" {valid: -4 preferred: forever colour: 1}>',
      ),
    );
    assert.ok(Array.isArray(errs));
    assert.equal(errs.length, 4, errs.join('\n'));
    assert.match(errs.join('\n'), /interface name/);
    assert.match(errs.join('\n'), /not an IPv4 or IPv6 address/);
    assert.match(errs.join('\n'), /unknown option colour/);
    assert.match(errs.join('\n'), /valid must be/);
    const order = checkIpAddress(
      parse('<ip-address "eth0" "10.0.0.1/8" {valid: 10 preferred: 20}>'),
    );
    assert.ok(Array.isArray(order) && /must not exceed/.test(order[0]!));
  });

  it('reads an ip-route; IPv6 metric 0 is what the kernel stores as 1024', () => {
    const r = checkIpRoute(parse('<ip-route ipv4 "default" {via: "198.51.100.1" metric: 100}>'));
    assert.ok(!Array.isArray(r));
    assert.equal(r.dstLen, 0);
    assert.equal(r.priority, 100);
    const v6 = checkIpRoute(parse('<ip-route ipv6 "2001:db8::/32" {dev: "wan0"}>'));
    assert.ok(!Array.isArray(v6) && v6.priority === 1024 && v6.metric === 0);
  });

  it('collects every problem of an ip-route', () => {
    const errs = checkIpRoute(parse('<ip-route ipv5 "203.0.113.1/24" {metric: -1 gateway: "x"}>'));
    assert.ok(Array.isArray(errs));
    assert.match(errs.join('\n'), /FAMILY must be ipv4 or ipv6/);
    assert.match(errs.join('\n'), /unknown option gateway/);
    assert.match(errs.join('\n'), /metric must be/);
    assert.match(errs.join('\n'), /needs via, dev, or both/);
    const bits = checkIpRoute(parse('<ip-route ipv4 "203.0.113.1/24" {dev: "eth0"}>'));
    assert.ok(Array.isArray(bits) && /bits set beyond/.test(bits[0]!));
    const fam = checkIpRoute(parse('<ip-route ipv6 "default" {via: "198.51.100.1"}>'));
    assert.ok(Array.isArray(fam) && /not an IPv6 address/.test(fam[0]!));
  });

  it('reads a route that drops (unreachable, blackhole, prohibit), which has no next hop', () => {
    const u = checkIpRoute(parse('<ip-route ipv6 "2001:db8:8000::/56" {type: unreachable}>'));
    assert.ok(!Array.isArray(u) && u.type === 'unreachable' && u.via === undefined);
    const plain = checkIpRoute(parse('<ip-route ipv6 "2001:db8::/32" {dev: "wan0"}>'));
    assert.ok(!Array.isArray(plain) && plain.type === 'unicast');
    for (const [text, problem] of [
      [
        '<ip-route ipv6 "2001:db8::/32" {type: unreachable via: "2001:db8::1"}>',
        /type unreachable has no via or dev/,
      ],
      [
        '<ip-route ipv4 "198.51.100.0/24" {type: blackhole dev: "lo"}>',
        /type blackhole has no via or dev/,
      ],
      [
        '<ip-route ipv6 "2001:db8::/32" {type: "unreachable"}>',
        /type must be one of unicast, unreachable/,
      ],
      ['<ip-route ipv6 "2001:db8::/32" {type: throw}>', /type must be one of/],
    ] as const) {
      const errs = checkIpRoute(parse(text));
      assert.ok(Array.isArray(errs), text);
      assert.match(errs.join('\n'), problem, text);
    }
  });
});
