import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  AF,
  IFA,
  IFLA,
  IFLA_INFO_KIND,
  INFINITY_LIFE_TIME,
  NLM_F,
  NTF,
  NUD,
  NetlinkFormatError,
  PayloadWriter,
  RTA,
  RTM,
  broadcastOf,
  delRoutePayload,
  formatIp,
  formatMessage,
  isNetworkPrefix,
  newAddressPayload,
  newRoutePayload,
  parseAddress,
  parseAttrs,
  parseErrorMessage,
  parseIp,
  parseLink,
  parseMessages,
  parseNdUserOpt,
  parseNeighbour,
  parsePrefix,
  parseRoute,
} from '../../../src/net/netlink-codec.ts';
import { ndUserOptPayload, neighbourPayload } from './netlink-builders.ts';

const ip = (s: string) => parseIp(s)!.bytes;

describe('netlink codec: IP text', () => {
  it('formats IPv6 in RFC 5952 form', () => {
    const cases: [string, string][] = [
      ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
      ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
      ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
      ['0:0:0:0:0:0:0:0', '::'],
      ['0:0:0:0:0:0:0:1', '::1'],
      ['fe80::a00b:87ff:fe63:76fd', 'fe80::a00b:87ff:fe63:76fd'],
      ['1:0:0:2:0:0:0:3', '1:0:0:2::3'],
      ['::ffff:1.2.3.4', '::ffff:102:304'],
    ];
    for (const [input, want] of cases) assert.equal(formatIp(ip(input)), want, input);
  });

  it('parses IPv4 and IPv6 and rejects what is neither', () => {
    assert.deepEqual([...ip('198.51.100.7')], [198, 51, 100, 7]);
    assert.equal(parseIp('2001:db8::1')!.version, 6);
    for (const bad of [
      '1.2.3',
      '1.2.3.4.5',
      '256.1.1.1',
      '01.2.3.4',
      '1::2::3',
      'fe80::1%eth0',
      'g::1',
      '1:2:3:4:5:6:7:8:9',
      '',
    ])
      assert.equal(parseIp(bad), undefined, bad);
  });

  it('parses prefixes and tells network prefixes', () => {
    const p = parsePrefix('203.0.113.0/24');
    assert.ok(typeof p !== 'string' && p.length === 24 && isNetworkPrefix(p));
    const q = parsePrefix('203.0.113.1/24');
    assert.ok(typeof q !== 'string' && !isNetworkPrefix(q));
    assert.match(parsePrefix('203.0.113.1/33') as string, /prefix length for IPv4/);
    assert.match(parsePrefix('203.0.113.1') as string, /no prefix length/);
    const host = parsePrefix('2001:db8::1', 'host');
    assert.ok(typeof host !== 'string' && host.length === 128);
    assert.equal(formatIp(broadcastOf(ip('192.168.1.7'), 24)), '192.168.1.255');
  });
});

describe('netlink codec: messages', () => {
  it('frames and splits messages with 4-byte alignment', () => {
    const a = formatMessage(RTM.GETLINK, NLM_F.REQUEST | NLM_F.DUMP, 7, new Uint8Array(5));
    const b = formatMessage(RTM.GETADDR, 0, 8, new Uint8Array(8));
    const both = new Uint8Array(24 + b.length);
    both.set(a);
    both.set(b, 24);
    const msgs = parseMessages(both);
    assert.equal(msgs.length, 2);
    assert.equal(msgs[0]!.type, RTM.GETLINK);
    assert.equal(msgs[0]!.seq, 7);
    assert.equal(msgs[0]!.payload.length, 5);
    assert.equal(msgs[1]!.flags, 0);
    assert.throws(
      () => parseMessages(Uint8Array.of(200, 0, 0, 0, ...new Array<number>(12).fill(0))),
      NetlinkFormatError,
    );
  });

  it('reads the errno of an NLMSG_ERROR', () => {
    const p = new Uint8Array(20);
    new DataView(p.buffer).setInt32(0, -17, true);
    const [m] = parseMessages(formatMessage(2, 0, 1, p));
    assert.equal(parseErrorMessage(m!), 17);
  });

  it('parses a link with nested link info', () => {
    const hdr = new Uint8Array(16);
    const dv = new DataView(hdr.buffer);
    dv.setUint16(2, 1, true);
    dv.setInt32(4, 3, true);
    dv.setUint32(8, 0x1 | 0x10000, true);
    const info = new PayloadWriter(new Uint8Array(0))
      .attr(IFLA_INFO_KIND, new TextEncoder().encode('veth\0'))
      .bytes();
    const payload = new PayloadWriter(hdr)
      .attr(IFLA.IFNAME, new TextEncoder().encode('v0\0'))
      .attr(IFLA.ADDRESS, Uint8Array.of(0xa2, 0x0b, 0x87, 0x63, 0x76, 0xfd))
      .u32(IFLA.MTU, 1500)
      .u8(IFLA.OPERSTATE, 6)
      .u8(IFLA.CARRIER, 1)
      .u32(IFLA.MASTER, 9)
      .attr(IFLA.LINKINFO | 0x8000, info)
      .bytes();
    const l = parseLink(payload);
    assert.deepEqual(
      { ...l },
      {
        family: 0,
        arphrd: 1,
        index: 3,
        flags: 0x10001,
        name: 'v0',
        mac: 'a2:0b:87:63:76:fd',
        mtu: 1500,
        master: 9,
        operstate: 6,
        carrier: true,
        kind: 'veth',
      },
    );
  });

  it('builds address requests that parse back, with IFA_PROTO and lifetimes', () => {
    const payload = newAddressPayload({
      index: 4,
      version: 4,
      bytes: ip('192.168.8.1'),
      prefixlen: 24,
      valid: 600,
      preferred: 300,
      proto: 76,
    });
    const attrs = parseAttrs(payload, 8);
    assert.equal(formatIp(attrs.get(IFA.BROADCAST)!), '192.168.8.255');
    const a = parseAddress(payload)!;
    assert.equal(a.family, AF.INET);
    assert.equal(a.index, 4);
    assert.equal(a.address, '192.168.8.1');
    assert.equal(a.prefixlen, 24);
    assert.equal(a.valid, 600);
    assert.equal(a.preferred, 300);
    assert.equal(a.proto, 76);
    const forever = parseAddress(
      newAddressPayload({
        index: 1,
        version: 6,
        bytes: ip('2001:db8::1'),
        prefixlen: 64,
        proto: 0,
      }),
    )!;
    assert.equal(forever.valid, INFINITY_LIFE_TIME);
    assert.equal(forever.proto, 0);
    assert.equal(forever.address, '2001:db8::1');
  });

  it('builds route requests that parse back, and reads multipath routes', () => {
    const req = {
      version: 4 as const,
      dst: ip('203.0.113.0'),
      dstLen: 24,
      table: 254,
      protocol: 76,
      priority: 5,
      gateway: ip('198.51.100.2'),
      oif: 3,
    };
    const r = parseRoute(newRoutePayload(req));
    assert.equal(r.dst, '203.0.113.0');
    assert.equal(r.dstLen, 24);
    assert.equal(r.protocol, 76);
    assert.equal(r.priority, 5);
    assert.equal(r.table, 254);
    assert.equal(r.type, 1);
    assert.deepEqual(r.nexthops, [{ oif: 3, gateway: '198.51.100.2' }]);
    const big = parseRoute(newRoutePayload({ ...req, table: 1000, gateway: undefined }));
    assert.equal(big.table, 1000);
    assert.equal(big.scope, 253, 'a route without a gateway has link scope');
    const del = parseRoute(delRoutePayload(req));
    assert.equal(del.type, 0);

    // RTA_MULTIPATH: two rtnexthop entries, each with a gateway.
    const nh = (oif: number, gw: string) => {
      const sub = new PayloadWriter(new Uint8Array(8)).attr(RTA.GATEWAY, ip(gw)).bytes();
      const dv = new DataView(sub.buffer);
      dv.setUint16(0, sub.length, true);
      dv.setInt32(4, oif, true);
      return sub;
    };
    const a = nh(3, '198.51.100.2');
    const b = nh(4, '198.51.100.3');
    const mp = new Uint8Array(a.length + b.length);
    mp.set(a);
    mp.set(b, a.length);
    const hdr = new Uint8Array(12);
    hdr[0] = AF.INET;
    hdr[4] = 254;
    hdr[7] = 1;
    const m = parseRoute(new PayloadWriter(hdr).attr(RTA.MULTIPATH, mp).bytes());
    assert.equal(m.dst, '');
    assert.deepEqual(m.nexthops, [
      { oif: 3, gateway: '198.51.100.2' },
      { oif: 4, gateway: '198.51.100.3' },
    ]);
  });
});

describe('netlink codec: neighbours and RA options', () => {
  it('parses a neighbour with its address, hardware address, state and flags', () => {
    const n = parseNeighbour(
      neighbourPayload({
        index: 7,
        state: NUD.STALE,
        flags: NTF.ROUTER,
        dst: '2001:db8::5',
        lladdr: [0x02, 0, 0x5e, 0x10, 0, 0xab],
      }),
    );
    assert.deepEqual(n, {
      family: AF.INET6,
      index: 7,
      state: NUD.STALE,
      flags: NTF.ROUTER,
      address: '2001:db8::5',
      lladdr: '02:00:5e:10:00:ab',
    });
    // A bridge's forwarding entry has a hardware address and no NDA_DST.
    const fdb = parseNeighbour(neighbourPayload({ family: AF.BRIDGE, lladdr: [2, 0, 0, 0, 0, 1] }));
    assert.equal(fdb.address, undefined);
    assert.equal(parseNeighbour(neighbourPayload({ dst: '192.0.2.9' })).lladdr, '');
    assert.throws(() => parseNeighbour(new Uint8Array(8)), NetlinkFormatError);
  });

  it('parses an RA option message: the option, the interface and the router', () => {
    const opt = Uint8Array.of(25, 3, 0, 0, 0, 0, 1, 44, ...ip('2001:db8::53'));
    const m = parseNdUserOpt(ndUserOptPayload(opt, 'fe80::1', 9));
    assert.equal(m.index, 9);
    assert.equal(m.icmpType, 134);
    assert.equal(m.source, 'fe80::1');
    assert.deepEqual([...m.option], [...opt]);
    assert.equal(parseNdUserOpt(ndUserOptPayload(opt)).source, undefined);
    // An option length past the end of the message is a malformed frame.
    const bad = ndUserOptPayload(opt);
    new DataView(bad.buffer).setUint16(2, 4000, true);
    assert.throws(() => parseNdUserOpt(bad), NetlinkFormatError);
    assert.throws(() => parseNdUserOpt(new Uint8Array(10)), NetlinkFormatError);
  });
});
