// The LAN's IPv6 prefixes, pure: reading <lan-ipv6 IF {…}>, carving a /64 by subnet
// id out of delegations of every size (refusing ids that do not fit), and the ULA
// prefix made from random bytes.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parse } from '../../../src/preserves/index.ts';
import {
  carveSubnet,
  parseUlaPrefix,
  readLanIpv6,
  ulaPrefixFrom,
} from '../../../src/net/lan-prefix.ts';

describe('carving a LAN /64 out of a delegated prefix', () => {
  it('puts the subnet id in the bits between the prefix and /64, router at ::1', () => {
    assert.deepEqual(carveSubnet('2001:db8:0:100::/56', 0), {
      network: '2001:db8:0:100::/64',
      router: '2001:db8:0:100::1/64',
    });
    assert.deepEqual(carveSubnet('2001:db8:0:100::/56', 1), {
      network: '2001:db8:0:101::/64',
      router: '2001:db8:0:101::1/64',
    });
    assert.deepEqual(carveSubnet('2001:db8:0:100::/56', 255), {
      network: '2001:db8:0:1ff::/64',
      router: '2001:db8:0:1ff::1/64',
    });
  });

  it('handles a /48, a /60 and a /64 delegation', () => {
    assert.equal(
      (carveSubnet('2001:db8:aa::/48', 0xbeef) as { router: string }).router,
      '2001:db8:aa:beef::1/64',
    );
    assert.equal(
      (carveSubnet('2001:db8:0:10::/60', 15) as { network: string }).network,
      '2001:db8:0:1f::/64',
    );
    assert.deepEqual(carveSubnet('2001:db8:0:7::/64', 0), {
      network: '2001:db8:0:7::/64',
      router: '2001:db8:0:7::1/64',
    });
  });

  it('refuses an id that does not fit, saying which ids do', () => {
    assert.deepEqual(carveSubnet('2001:db8:0:100::/56', 256), {
      problem: 'subnet 256 does not fit 2001:db8:0:100::/56: a /56 has subnets 0 to 255',
    });
    assert.deepEqual(carveSubnet('2001:db8:0:10::/60', 16), {
      problem: 'subnet 16 does not fit 2001:db8:0:10::/60: a /60 has subnets 0 to 15',
    });
    assert.deepEqual(carveSubnet('2001:db8:0:7::/64', 1), {
      problem: 'subnet 1 does not fit 2001:db8:0:7::/64: a /64 has only subnet 0',
    });
  });

  it('refuses what is not a prefix of length up to 64', () => {
    assert.ok('problem' in carveSubnet('2001:db8::/65', 0));
    assert.ok('problem' in carveSubnet('2001:db8::1/56', 0));
    assert.ok('problem' in carveSubnet('192.168.0.0/16', 0));
    assert.ok('problem' in carveSubnet('2001:db8::', 0));
  });
});

describe('the ULA prefix', () => {
  it('is fd followed by the 40-bit random global id, a /48', () => {
    assert.equal(ulaPrefixFrom(Uint8Array.of(0x12, 0x34, 0x56, 0x78, 0x9a)), 'fd12:3456:789a::/48');
    assert.equal(ulaPrefixFrom(Uint8Array.of(0, 0, 0, 0, 1)), 'fd00:0:1::/48');
    const p = ulaPrefixFrom(Uint8Array.of(0xab, 0xcd, 0xef, 0x01, 0x23));
    assert.equal((carveSubnet(p, 1) as { router: string }).router, 'fdab:cdef:123:1::1/64');
  });

  it('is read back only if it is a ULA /48', () => {
    assert.equal(parseUlaPrefix('fd12:3456:789a::/48\n'), 'fd12:3456:789a::/48');
    assert.equal(parseUlaPrefix('FD12:3456:789A:0::/48'), 'fd12:3456:789a::/48');
    assert.equal(parseUlaPrefix('2001:db8::/48'), undefined);
    assert.equal(parseUlaPrefix('fd12:3456:789a::/56'), undefined);
    assert.equal(parseUlaPrefix('fd12:3456:789a:1::/48'), undefined);
    assert.equal(parseUlaPrefix(''), undefined);
  });
});

describe('<lan-ipv6 IF {…}>', () => {
  const read = (i: string, s: string) => readLanIpv6(parse(i), parse(s));

  it('takes a subnet id and whether to add the ULA (default yes)', () => {
    assert.deepEqual(read('"lan0"', '{subnet: 1}'), {
      ok: true,
      config: { ifname: 'lan0', subnet: 1, ula: true },
    });
    assert.deepEqual(read('"lan0"', '{subnet: 0 ula: #f}'), {
      ok: true,
      config: { ifname: 'lan0', subnet: 0, ula: false },
    });
  });

  it('reports every problem together', () => {
    assert.deepEqual(read('"a very long interface name"', '{subnt: 1 ula: 3}'), {
      ok: false,
      problems: [
        'IF must be an interface name as a string, got "a very long interface name"',
        "unknown option subnt (did you mean 'subnet'?) (known: subnet, ula)",
        'subnet is required',
        'ula must be #t or #f, not 3',
      ],
    });
    assert.deepEqual(read('"lan0"', '{subnet: 65536}'), {
      ok: false,
      problems: ['subnet must be a whole number from 0 to 65535, not 65536'],
    });
    assert.equal(read('"lan0"', '[]').ok, false);
  });
});
