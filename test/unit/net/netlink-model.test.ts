import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  AF,
  IFF,
  IFLA,
  NLM_F,
  NTF,
  NUD,
  PayloadWriter,
  RTA,
  RTM,
  formatMessage,
  newAddressPayload,
  parseIp,
  parseMessages,
  type NetlinkMessage,
} from '../../../src/net/netlink-codec.ts';
import { KernelModel, type Change } from '../../../src/net/netlink-model.ts';
import {
  Admission,
  addressValue,
  interfaceType,
  interfaceValue,
  linkDetailValue,
  neighbourValue,
  raDnsValue,
  routeValues,
} from '../../../src/net/interface-monitor.ts';
import { neighbourPayload } from './netlink-builders.ts';
import { stringify } from '../../../src/preserves/index.ts';

function msg(type: number, payload: Uint8Array, flags = 0): NetlinkMessage {
  return parseMessages(formatMessage(type, flags, 0, payload))[0]!;
}

function link(
  index: number,
  name: string,
  opts: { flags?: number; family?: number; master?: number } = {},
) {
  const hdr = new Uint8Array(16);
  const dv = new DataView(hdr.buffer);
  hdr[0] = opts.family ?? 0;
  dv.setUint16(2, 1, true);
  dv.setInt32(4, index, true);
  dv.setUint32(8, opts.flags ?? IFF.UP | IFF.LOWER_UP, true);
  const w = new PayloadWriter(hdr)
    .attr(IFLA.IFNAME, new TextEncoder().encode(`${name}\0`))
    .attr(IFLA.ADDRESS, Uint8Array.of(2, 0, 0, 0, 0, index))
    .u32(IFLA.MTU, 1500)
    .u8(IFLA.OPERSTATE, 6);
  if (opts.master !== undefined) w.u32(IFLA.MASTER, opts.master);
  return w.bytes();
}

function addr(index: number, cidr: string) {
  const [a, len] = cidr.split('/');
  const p = parseIp(a!)!;
  return newAddressPayload({
    index,
    version: p.version,
    bytes: p.bytes,
    prefixlen: Number(len),
    proto: 0,
  });
}

function route(
  dst: string,
  dstLen: number,
  oif: number,
  gw?: string,
  opts: { family?: number; table?: number } = {},
) {
  const family = opts.family ?? AF.INET;
  const hdr = new Uint8Array(12);
  hdr[0] = family;
  hdr[1] = dstLen;
  hdr[4] = opts.table ?? 254;
  hdr[5] = 4;
  hdr[7] = 1;
  const w = new PayloadWriter(hdr);
  if (dstLen > 0) w.attr(RTA.DST, parseIp(dst)!.bytes);
  w.u32(RTA.OIF, oif);
  if (gw !== undefined) w.attr(RTA.GATEWAY, parseIp(gw)!.bytes);
  return w.bytes();
}

function dump(
  m: KernelModel,
  kind: 'links' | 'addresses' | 'routes' | 'neighbours',
  parts: NetlinkMessage[],
  out: Change[],
) {
  m.beginDump(kind);
  for (const p of parts) m.applyDumpPart(p, out);
  m.endDump(out);
}

describe('kernel model', () => {
  it('applies events and reports before/after changes, once per real change', () => {
    const m = new KernelModel();
    const out: Change[] = [];
    m.applyEvent(msg(RTM.NEWLINK, link(2, 'eth0')), out);
    m.applyEvent(msg(RTM.NEWLINK, link(2, 'eth0')), out);
    assert.equal(out.length, 1, 'an unchanged NEWLINK is no change');
    m.applyEvent(msg(RTM.NEWADDR, addr(2, '198.51.100.1/24')), out);
    m.applyEvent(msg(RTM.NEWROUTE, route('203.0.113.0', 24, 2, '198.51.100.2')), out);
    assert.equal(m.addresses.size, 1);
    assert.equal(m.routes.size, 1);
    m.applyEvent(msg(RTM.DELADDR, addr(2, '198.51.100.1/24')), out);
    assert.equal(m.addresses.size, 0);
    assert.ok(m.routesSuspect, 'removing an IPv4 address may drop routes silently');
    assert.deepEqual(
      out.map((c) => `${c.kind} ${c.before ? 'had' : '-'} ${c.after ? 'has' : '-'}`),
      ['link - has', 'address - has', 'route - has', 'address had -'],
    );
  });

  it('ignores bridge-port messages, which are not about the link itself', () => {
    const m = new KernelModel();
    const out: Change[] = [];
    m.applyEvent(msg(RTM.NEWLINK, link(3, 'v1')), out);
    m.applyEvent(msg(RTM.DELLINK, link(3, 'v1', { family: AF.BRIDGE })), out);
    assert.ok(m.links.has(3));
  });

  it('drops the routes of a deleted link, and flags routes after a link goes down', () => {
    const m = new KernelModel();
    const out: Change[] = [];
    m.applyEvent(msg(RTM.NEWLINK, link(2, 'eth0')), out);
    m.applyEvent(msg(RTM.NEWROUTE, route('203.0.113.0', 24, 2, '198.51.100.2')), out);
    m.applyEvent(msg(RTM.NEWLINK, link(2, 'eth0', { flags: 0 })), out);
    assert.ok(m.routesSuspect);
    m.routesSuspect = false;
    m.applyEvent(msg(RTM.DELLINK, link(2, 'eth0', { flags: 0 })), out);
    assert.equal(m.routes.size, 0);
    assert.ok(m.routesSuspect);
  });

  it('a dump removes what it neither listed nor saw an event for', () => {
    const m = new KernelModel();
    const out: Change[] = [];
    dump(
      m,
      'links',
      [
        msg(RTM.NEWLINK, link(1, 'lo')),
        msg(RTM.NEWLINK, link(2, 'eth0')),
        msg(RTM.NEWLINK, link(3, 'eth1')),
      ],
      out,
    );
    assert.equal(m.links.size, 3);
    out.length = 0;
    // eth1 vanished while events were lost; eth2 appeared during the dump (an event).
    m.beginDump('links');
    m.applyDumpPart(msg(RTM.NEWLINK, link(1, 'lo')), out);
    m.applyEvent(msg(RTM.NEWLINK, link(4, 'eth2')), out);
    m.applyDumpPart(msg(RTM.NEWLINK, link(2, 'eth0')), out);
    m.endDump(out);
    assert.deepEqual([...m.links.keys()].sort(), [1, 2, 4]);
    assert.deepEqual(
      out.map((c) =>
        c.kind === 'link' ? `link ${c.before?.index ?? '-'} ${c.after?.index ?? '-'}` : c.kind,
      ),
      ['link - 4', 'link 3 -'],
      'unchanged links are not reported',
    );
  });

  it('splits IPv6 next hops and applies a replace of the whole route', () => {
    const m = new KernelModel();
    const out: Change[] = [];
    const v6 = { family: AF.INET6 };
    m.applyEvent(msg(RTM.NEWROUTE, route('2001:db8:9::', 48, 2, 'fe80::1', v6)), out);
    m.applyEvent(msg(RTM.NEWROUTE, route('2001:db8:9::', 48, 3, 'fe80::2', v6)), out);
    assert.equal(m.routes.size, 2);
    m.applyEvent(
      msg(RTM.NEWROUTE, route('2001:db8:9::', 48, 4, 'fe80::3', v6), NLM_F.REPLACE),
      out,
    );
    assert.deepEqual(
      [...m.routes.values()].map((r) => r.nexthops[0]!.gateway),
      ['fe80::3'],
    );
  });
});

const MAC = [0x02, 0, 0x5e, 0x10, 0, 0x01];
const neigh = (dst: string, state: number, o: { index?: number; flags?: number } = {}) =>
  neighbourPayload({ dst, state, lladdr: MAC, ...o });

describe('kernel model: neighbours', () => {
  it('keeps usable entries with a hardware address, and no reachability flip is a change', () => {
    const m = new KernelModel();
    const out: Change[] = [];
    m.applyEvent(msg(RTM.NEWNEIGH, neigh('2001:db8::10', NUD.REACHABLE)), out);
    m.applyEvent(msg(RTM.NEWNEIGH, neigh('2001:db8::10', NUD.STALE)), out);
    m.applyEvent(msg(RTM.NEWNEIGH, neigh('2001:db8::10', NUD.DELAY)), out);
    m.applyEvent(msg(RTM.NEWNEIGH, neigh('2001:db8::10', NUD.PROBE)), out);
    m.applyEvent(msg(RTM.NEWNEIGH, neigh('2001:db8::10', NUD.REACHABLE)), out);
    assert.equal(out.length, 1, 'REACHABLE, STALE, DELAY, PROBE are one state here');
    const n = m.neighbours.get('2|10|2001:db8::10')!;
    assert.deepEqual([n.address, n.mac, n.permanent], ['2001:db8::10', '02:00:5e:10:00:01', false]);
    // Set by hand: a change (to permanent).
    m.applyEvent(msg(RTM.NEWNEIGH, neigh('2001:db8::10', NUD.PERMANENT)), out);
    assert.equal(out.length, 2);
    assert.equal(m.neighbours.get('2|10|2001:db8::10')!.permanent, true);
    // FAILED: the host is gone, whatever the message still says.
    m.applyEvent(msg(RTM.NEWNEIGH, neigh('2001:db8::10', NUD.FAILED)), out);
    assert.equal(m.neighbours.size, 0);
    assert.equal(out.length, 3);
  });

  it('leaves out what is not a usable neighbour', () => {
    const m = new KernelModel();
    const out: Change[] = [];
    const cases = [
      neigh('2001:db8::11', NUD.INCOMPLETE),
      neigh('2001:db8::12', NUD.NOARP),
      neigh('2001:db8::13', 0),
      neighbourPayload({ dst: '2001:db8::14', state: NUD.REACHABLE }),
      neighbourPayload({
        dst: '2001:db8::15',
        state: NUD.STALE,
        lladdr: [0, 0, 0, 0, 0, 0],
      }),
      neigh('2001:db8::16', NUD.REACHABLE, { flags: NTF.PROXY }),
      neighbourPayload({
        family: AF.BRIDGE,
        state: NUD.PERMANENT,
        lladdr: MAC,
      }),
    ];
    for (const p of cases) m.applyEvent(msg(RTM.NEWNEIGH, p), out);
    assert.deepEqual(out, []);
    // IPv4 is kept too.
    m.applyEvent(
      msg(
        RTM.NEWNEIGH,
        neighbourPayload({
          family: AF.INET,
          dst: '192.0.2.7',
          state: NUD.STALE,
          lladdr: MAC,
        }),
      ),
      out,
    );
    assert.deepEqual([...m.neighbours.keys()], ['2|2|192.0.2.7']);
  });

  it('removes on DELNEIGH, with the link, and flags a dump after a link goes down', () => {
    const m = new KernelModel();
    const out: Change[] = [];
    m.applyEvent(msg(RTM.NEWLINK, link(2, 'lan0')), out);
    m.applyEvent(msg(RTM.NEWNEIGH, neigh('2001:db8::10', NUD.STALE)), out);
    m.applyEvent(msg(RTM.NEWNEIGH, neigh('2001:db8::11', NUD.STALE)), out);
    m.applyEvent(msg(RTM.DELNEIGH, neigh('2001:db8::10', NUD.STALE)), out);
    assert.deepEqual([...m.neighbours.keys()], ['2|10|2001:db8::11']);
    m.applyEvent(msg(RTM.NEWLINK, link(2, 'lan0', { flags: 0 })), out);
    assert.ok(m.neighboursSuspect, 'a link that goes down flushes its neighbours');
    m.applyEvent(msg(RTM.DELLINK, link(2, 'lan0', { flags: 0 })), out);
    assert.equal(m.neighbours.size, 0);
  });

  it('a dump of neighbours removes what it did not list', () => {
    const m = new KernelModel();
    const out: Change[] = [];
    m.applyEvent(msg(RTM.NEWNEIGH, neigh('2001:db8::10', NUD.STALE)), out);
    m.applyEvent(msg(RTM.NEWNEIGH, neigh('2001:db8::11', NUD.STALE)), out);
    m.neighboursSuspect = true;
    out.length = 0;
    dump(
      m,
      'neighbours',
      [
        msg(RTM.NEWNEIGH, neigh('2001:db8::11', NUD.REACHABLE), NLM_F.MULTI),
        msg(RTM.NEWNEIGH, neigh('2001:db8::12', NUD.INCOMPLETE), NLM_F.MULTI),
      ],
      out,
    );
    assert.ok(!m.neighboursSuspect);
    assert.deepEqual([...m.neighbours.keys()], ['2|10|2001:db8::11']);
    assert.deepEqual(
      out.map((c) => `${c.kind} ${c.before ? 'had' : '-'} ${c.after ? 'has' : '-'}`),
      ['neighbour had -'],
    );
  });
});

describe('the monitor: the neighbour cap and RA values', () => {
  it('admits the first N, and the first waiting one when an admitted one goes', () => {
    const a = new Admission<string>(2);
    assert.deepEqual(
      [a.add('x'), a.add('y'), a.add('z'), a.add('w'), a.add('x')],
      [true, true, false, false, true],
    );
    assert.equal(a.remove('z'), undefined, 'a waiting key goes quietly');
    assert.equal(a.remove('x'), 'w');
    assert.deepEqual([...a.admitted], ['y', 'w']);
    assert.equal(a.remove('y'), undefined);
    assert.equal(a.size, 1);
  });

  it('derives <neighbour …> with a coarse state', () => {
    const n = {
      key: 'k',
      index: 2,
      family: AF.INET6,
      address: '2001:db8::10',
      mac: '02:00:5e:10:00:01',
    };
    assert.equal(
      stringify(neighbourValue({ ...n, permanent: false }, 'lan0')),
      '<neighbour "lan0" ipv6 "2001:db8::10" "02:00:5e:10:00:01" dynamic>',
    );
    assert.equal(
      stringify(
        neighbourValue({ ...n, family: AF.INET, address: '192.0.2.7', permanent: true }, 'lan0'),
      ),
      '<neighbour "lan0" ipv4 "192.0.2.7" "02:00:5e:10:00:01" permanent>',
    );
  });

  it('derives <ra-dns …> and <ra-search …> with the expiry in seconds or never', () => {
    const base = { index: 2, router: 'fe80::1', key: 'k' };
    assert.equal(
      stringify(
        raDnsValue(
          {
            ...base,
            kind: 'dns',
            value: '2001:db8::53',
            expires: 1_700_000_000_500,
          },
          'wan0',
        ),
      ),
      '<ra-dns "wan0" "2001:db8::53" {expires: 1700000000 router: "fe80::1"}>',
    );
    assert.equal(
      stringify(
        raDnsValue(
          {
            ...base,
            router: '',
            kind: 'search',
            value: 'example.test',
            expires: undefined,
          },
          'wan0',
        ),
      ),
      '<ra-search "wan0" "example.test" {expires: never router: #f}>',
    );
  });
});

describe('monitor values', () => {
  it("derives Synit's interface shape and the details", () => {
    const m = new KernelModel();
    const out: Change[] = [];
    m.applyEvent(msg(RTM.NEWLINK, link(2, 'eth0')), out);
    m.applyEvent(msg(RTM.NEWLINK, link(5, 'v1', { flags: 0, master: 2 })), out);
    const eth0 = m.links.get(2)!;
    assert.equal(interfaceType(eth0, false), 'normal');
    assert.equal(interfaceType(eth0, true), 'wireless');
    assert.equal(
      stringify(interfaceValue(eth0, 'normal')),
      '<interface "eth0" 2 normal up up carrier "02:00:00:00:00:02">',
    );
    assert.equal(
      stringify(interfaceValue(m.links.get(5)!, 'normal')),
      '<interface "v1" 5 normal down up no-carrier "02:00:00:00:00:05">',
    );
    assert.equal(
      stringify(linkDetailValue(m.links.get(5)!, 'eth0')),
      '<link-detail "v1" {kind: #f master: "eth0" mtu: 1500}>',
    );
    m.applyEvent(msg(RTM.NEWADDR, addr(2, '2001:db8::1/64')), out);
    assert.equal(
      stringify(addressValue([...m.addresses.values()][0]!, 'eth0')),
      '<address "eth0" ipv6 "2001:db8::1" 64 {preferred: forever scope: global valid: forever}>',
    );
  });

  it('publishes unicast routes outside the local table, one per next hop', () => {
    const m = new KernelModel();
    const out: Change[] = [];
    m.applyEvent(msg(RTM.NEWROUTE, route('0.0.0.0', 0, 2, '198.51.100.1')), out);
    m.applyEvent(msg(RTM.NEWROUTE, route('198.51.100.7', 32, 2, undefined, { table: 255 })), out);
    m.applyEvent(msg(RTM.NEWROUTE, route('10.9.0.0', 16, 2, undefined, { table: 100 })), out);
    const names = (i: number) => (i === 2 ? 'eth0' : undefined);
    const published = [...m.routes.values()]
      .flatMap((r) => routeValues(r, names))
      .map((v) => stringify(v));
    assert.deepEqual(published, [
      '<route ipv4 "default" 0 main "eth0" "198.51.100.1">',
      '<route ipv4 "10.9.0.0/16" 0 100 "eth0" #f>',
    ]);
  });
});
