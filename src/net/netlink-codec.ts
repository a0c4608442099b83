// The rtnetlink wire format, as far as limen needs it: framing (nlmsghdr),
// attributes, the link, address and route messages (parse and build), neighbours
// and the router advertisement options the kernel hands on (parse), plus IP
// address text <-> bytes. Pure: no sockets, no node:* imports, host byte
// order (netlink is always host order; addresses inside attributes are network order).
//
// Invariant: parsers never throw on a well-framed message with unknown or short
// attributes (they are skipped); a malformed frame throws NetlinkFormatError.

import { LimenError } from '../base/errors.ts';

export class NetlinkFormatError extends LimenError {
  readonly code = 'LIMEN_NETLINK_FORMAT';
}

const LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

// ---- Constants (linux/netlink.h, linux/rtnetlink.h, linux/if_link.h, linux/if_addr.h) ----

export const NLMSG = { NOOP: 1, ERROR: 2, DONE: 3, OVERRUN: 4 } as const;
export const RTM = {
  NEWLINK: 16,
  DELLINK: 17,
  GETLINK: 18,
  NEWADDR: 20,
  DELADDR: 21,
  GETADDR: 22,
  NEWROUTE: 24,
  DELROUTE: 25,
  GETROUTE: 26,
  NEWNEIGH: 28,
  DELNEIGH: 29,
  GETNEIGH: 30,
  NEWNDUSEROPT: 68,
} as const;
export const NLM_F = {
  REQUEST: 0x1,
  MULTI: 0x2,
  ACK: 0x4,
  ECHO: 0x8,
  DUMP_INTR: 0x10,
  DUMP: 0x300,
  REPLACE: 0x100,
  EXCL: 0x200,
  CREATE: 0x400,
  APPEND: 0x800,
} as const;
/** Multicast groups (RTNLGRP_*): numbers for NETLINK_ADD_MEMBERSHIP. */
export const RTNLGRP = {
  LINK: 1,
  NEIGH: 3,
  IPV4_IFADDR: 5,
  IPV4_ROUTE: 7,
  IPV6_IFADDR: 9,
  IPV6_ROUTE: 11,
  ND_USEROPT: 20,
} as const;
export const AF = { UNSPEC: 0, INET: 2, BRIDGE: 7, INET6: 10 } as const;
export const IFF = { UP: 0x1, LOOPBACK: 0x8, RUNNING: 0x40, LOWER_UP: 0x10000 } as const;
export const ARPHRD_LOOPBACK = 772;
export const IF_OPER = {
  UNKNOWN: 0,
  NOTPRESENT: 1,
  DOWN: 2,
  LOWERLAYERDOWN: 3,
  TESTING: 4,
  DORMANT: 5,
  UP: 6,
} as const;
export const IFLA = {
  ADDRESS: 1,
  IFNAME: 3,
  MTU: 4,
  MASTER: 10,
  OPERSTATE: 16,
  LINKINFO: 18,
  CARRIER: 33,
} as const;
export const IFLA_INFO_KIND = 1;
export const IFA = {
  ADDRESS: 1,
  LOCAL: 2,
  LABEL: 3,
  BROADCAST: 4,
  CACHEINFO: 6,
  FLAGS: 8,
  PROTO: 11,
} as const;
export const IFA_F = {
  SECONDARY: 0x01,
  NODAD: 0x02,
  DADFAILED: 0x08,
  DEPRECATED: 0x20,
  TENTATIVE: 0x40,
  PERMANENT: 0x80,
} as const;
export const RTA = {
  DST: 1,
  OIF: 4,
  GATEWAY: 5,
  PRIORITY: 6,
  PREFSRC: 7,
  MULTIPATH: 9,
  TABLE: 15,
  VIA: 18,
} as const;
export const NDA = { DST: 1, LLADDR: 2 } as const;
/** ndm_state bits (linux/neighbour.h). */
export const NUD = {
  INCOMPLETE: 0x01,
  REACHABLE: 0x02,
  STALE: 0x04,
  DELAY: 0x08,
  PROBE: 0x10,
  FAILED: 0x20,
  NOARP: 0x40,
  PERMANENT: 0x80,
} as const;
/** ndm_flags bits. */
export const NTF = { PROXY: 0x08, ROUTER: 0x80 } as const;
export const NDUSEROPT_SRCADDR = 1;
export const RTN = {
  UNSPEC: 0,
  UNICAST: 1,
  LOCAL: 2,
  BROADCAST: 3,
  MULTICAST: 5,
  BLACKHOLE: 6,
  UNREACHABLE: 7,
  PROHIBIT: 8,
} as const;
export const RT_SCOPE = { UNIVERSE: 0, SITE: 200, LINK: 253, HOST: 254, NOWHERE: 255 } as const;
export const RT_TABLE = { UNSPEC: 0, DEFAULT: 253, MAIN: 254, LOCAL: 255 } as const;
export const RTM_F_CLONED = 0x200;
/** "forever" in ifa_cacheinfo. */
export const INFINITY_LIFE_TIME = 0xffffffff;

const HDR = 16;
const align4 = (n: number) => (n + 3) & ~3;

// ---- Framing ----------------------------------------------------------------------------

export interface NetlinkMessage {
  readonly type: number;
  readonly flags: number;
  readonly seq: number;
  readonly pid: number;
  /** The payload after the 16-byte header. */
  readonly payload: Uint8Array;
}

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/** Splits a datagram into messages. Throws NetlinkFormatError on a bad length. */
export function parseMessages(data: Uint8Array): NetlinkMessage[] {
  const out: NetlinkMessage[] = [];
  const dv = view(data);
  let off = 0;
  while (off + HDR <= data.length) {
    const len = dv.getUint32(off, LE);
    if (len < HDR || off + len > data.length)
      throw new NetlinkFormatError(
        `netlink message length ${len} at offset ${off} is out of range`,
      );
    out.push({
      type: dv.getUint16(off + 4, LE),
      flags: dv.getUint16(off + 6, LE),
      seq: dv.getUint32(off + 8, LE),
      pid: dv.getUint32(off + 12, LE),
      payload: data.subarray(off + HDR, off + len),
    });
    off += align4(len);
  }
  return out;
}

export function formatMessage(
  type: number,
  flags: number,
  seq: number,
  payload: Uint8Array,
): Uint8Array {
  const out = new Uint8Array(HDR + payload.length);
  const dv = view(out);
  dv.setUint32(0, out.length, LE);
  dv.setUint16(4, type, LE);
  dv.setUint16(6, flags, LE);
  dv.setUint32(8, seq, LE);
  dv.setUint32(12, 0, LE);
  out.set(payload, HDR);
  return out;
}

/** The errno of an NLMSG_ERROR message (0 for an ACK), as a positive number. */
export function parseErrorMessage(m: NetlinkMessage): number {
  if (m.payload.length < 4) throw new NetlinkFormatError('short NLMSG_ERROR');
  return -view(m.payload).getInt32(0, LE);
}

// ---- Attributes -------------------------------------------------------------------------

export type Attrs = Map<number, Uint8Array>;

/** Attributes from `offset` to the end of `b`; the last one of a type wins. */
export function parseAttrs(b: Uint8Array, offset = 0): Attrs {
  const out: Attrs = new Map();
  const dv = view(b);
  let off = offset;
  while (off + 4 <= b.length) {
    const len = dv.getUint16(off, LE);
    const type = dv.getUint16(off + 2, LE) & 0x3fff;
    if (len < 4 || off + len > b.length) break;
    out.set(type, b.subarray(off + 4, off + len));
    off += align4(len);
  }
  return out;
}

const u8 = (b: Uint8Array | undefined) => (b !== undefined && b.length >= 1 ? b[0] : undefined);
const u32 = (b: Uint8Array | undefined) =>
  b !== undefined && b.length >= 4 ? view(b).getUint32(0, LE) : undefined;
function cstring(b: Uint8Array | undefined): string | undefined {
  if (b === undefined) return undefined;
  const end = b.indexOf(0);
  return new TextDecoder().decode(end < 0 ? b : b.subarray(0, end));
}

/** Builds a payload: a fixed header followed by attributes. */
export class PayloadWriter {
  readonly #parts: Uint8Array[] = [];
  #length = 0;
  constructor(header: Uint8Array) {
    this.#push(header);
  }
  #push(b: Uint8Array): void {
    const padded = align4(b.length);
    const p = padded === b.length ? b : new Uint8Array(padded);
    if (p !== b) p.set(b);
    this.#parts.push(p);
    this.#length += padded;
  }
  attr(type: number, data: Uint8Array): this {
    const a = new Uint8Array(4 + data.length);
    const dv = view(a);
    dv.setUint16(0, 4 + data.length, LE);
    dv.setUint16(2, type, LE);
    a.set(data, 4);
    this.#push(a);
    return this;
  }
  u8(type: number, v: number): this {
    return this.attr(type, Uint8Array.of(v));
  }
  u32(type: number, v: number): this {
    const b = new Uint8Array(4);
    view(b).setUint32(0, v >>> 0, LE);
    return this.attr(type, b);
  }
  bytes(): Uint8Array {
    const out = new Uint8Array(this.#length);
    let off = 0;
    for (const p of this.#parts) {
      out.set(p, off);
      off += p.length;
    }
    return out;
  }
}

// ---- IP addresses -----------------------------------------------------------------------

export type IpVersion = 4 | 6;

/** Text of a 4- or 16-byte address (IPv6 in RFC 5952 form); hex for anything else. */
export function formatIp(b: Uint8Array): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  if (b.length !== 16) return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((b[i]! << 8) | b[i + 1]!);
  // The longest run of two or more zero groups (the first, on a tie) becomes "::".
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (gs: number[]) => gs.map((g) => g.toString(16)).join(':');
  if (best < 0) return hex(groups);
  return `${hex(groups.slice(0, best))}::${hex(groups.slice(best + bestLen))}`;
}

function parseIpv4Bytes(s: string): Uint8Array | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p) || Number(p) > 255) return undefined;
    out[i] = Number(p);
  }
  return out;
}

function parseIpv6Bytes(s: string): Uint8Array | undefined {
  if (s.includes('%')) return undefined;
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  const groupsOf = (t: string): number[] | undefined => {
    if (t === '') return [];
    const out: number[] = [];
    const items = t.split(':');
    for (let i = 0; i < items.length; i++) {
      const it = items[i]!;
      if (i === items.length - 1 && it.includes('.')) {
        const v4 = parseIpv4Bytes(it);
        if (v4 === undefined) return undefined;
        out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(it)) return undefined;
        out.push(parseInt(it, 16));
      }
    }
    return out;
  };
  const head = groupsOf(halves[0]!);
  const tail = halves.length === 2 ? groupsOf(halves[1]!) : [];
  if (head === undefined || tail === undefined) return undefined;
  const n = head.length + tail.length;
  if (halves.length === 2 ? n > 7 : n !== 8) return undefined;
  const groups = [...head, ...new Array<number>(8 - n).fill(0), ...tail];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  return out;
}

/** The bytes of an IPv4 or IPv6 address, or undefined if the text is not one. */
export function parseIp(s: string): { version: IpVersion; bytes: Uint8Array } | undefined {
  if (s.includes(':')) {
    const b = parseIpv6Bytes(s);
    return b === undefined ? undefined : { version: 6, bytes: b };
  }
  const b = parseIpv4Bytes(s);
  return b === undefined ? undefined : { version: 4, bytes: b };
}

export interface Prefix {
  readonly version: IpVersion;
  readonly bytes: Uint8Array;
  readonly length: number;
}

/** "ADDR/LEN" (LEN required unless `defaultLength` says what to use). */
export function parsePrefix(s: string, defaultLength?: 'host'): Prefix | string {
  const slash = s.indexOf('/');
  const addrText = slash < 0 ? s : s.slice(0, slash);
  const ip = parseIp(addrText);
  if (ip === undefined) return `"${addrText}" is not an IPv4 or IPv6 address`;
  const max = ip.version === 4 ? 32 : 128;
  if (slash < 0) {
    if (defaultLength === 'host') return { ...ip, length: max };
    return `"${s}" has no prefix length (write ADDR/LEN)`;
  }
  const lenText = s.slice(slash + 1);
  if (!/^(0|[1-9][0-9]{0,2})$/.test(lenText) || Number(lenText) > max)
    return `"${lenText}" is not a prefix length for IPv${ip.version} (0 to ${max})`;
  return { ...ip, length: Number(lenText) };
}

/** True if no bit beyond the prefix length is set. */
export function isNetworkPrefix(p: Prefix): boolean {
  for (let bit = p.length; bit < p.bytes.length * 8; bit++)
    if ((p.bytes[bit >> 3]! >> (7 - (bit & 7))) & 1) return false;
  return true;
}

/** The IPv4 broadcast address of ADDR/LEN (every host bit set). */
export function broadcastOf(bytes: Uint8Array, length: number): Uint8Array {
  const out = Uint8Array.from(bytes);
  for (let bit = length; bit < out.length * 8; bit++) out[bit >> 3]! |= 1 << (7 - (bit & 7));
  return out;
}

// ---- Links ------------------------------------------------------------------------------

export interface LinkMessage {
  readonly family: number;
  readonly index: number;
  readonly arphrd: number;
  readonly flags: number;
  readonly name: string | undefined;
  /** Colon-separated hex, "" when the link has no hardware address. */
  readonly mac: string;
  readonly mtu: number | undefined;
  /** 0 when the link has no master. */
  readonly master: number;
  readonly operstate: number | undefined;
  readonly carrier: boolean | undefined;
  readonly kind: string | undefined;
}

export function parseLink(payload: Uint8Array): LinkMessage {
  if (payload.length < 16) throw new NetlinkFormatError('short ifinfomsg');
  const dv = view(payload);
  const a = parseAttrs(payload, 16);
  const mac = a.get(IFLA.ADDRESS);
  const info = a.get(IFLA.LINKINFO);
  const carrier = u8(a.get(IFLA.CARRIER));
  return {
    family: payload[0]!,
    arphrd: dv.getUint16(2, LE),
    index: dv.getInt32(4, LE),
    flags: dv.getUint32(8, LE),
    name: cstring(a.get(IFLA.IFNAME)),
    mac: mac === undefined ? '' : formatMac(mac),
    mtu: u32(a.get(IFLA.MTU)),
    master: u32(a.get(IFLA.MASTER)) ?? 0,
    operstate: u8(a.get(IFLA.OPERSTATE)),
    carrier: carrier === undefined ? undefined : carrier !== 0,
    kind: info === undefined ? undefined : cstring(parseAttrs(info).get(IFLA_INFO_KIND)),
  };
}

// ---- Addresses --------------------------------------------------------------------------

export interface AddressMessage {
  readonly family: number;
  readonly prefixlen: number;
  readonly flags: number;
  readonly scope: number;
  readonly index: number;
  /** IFA_LOCAL if present (the interface's own address), else IFA_ADDRESS. */
  readonly address: string;
  /** Remaining seconds when the kernel sent the message; INFINITY_LIFE_TIME for forever. */
  readonly valid: number;
  readonly preferred: number;
  /** IFA_PROTO (Linux 6.3+): who installed the address; 0 when unset. */
  readonly proto: number;
}

export function parseAddress(payload: Uint8Array): AddressMessage | undefined {
  if (payload.length < 8) throw new NetlinkFormatError('short ifaddrmsg');
  const dv = view(payload);
  const a = parseAttrs(payload, 8);
  const addr = a.get(IFA.LOCAL) ?? a.get(IFA.ADDRESS);
  if (addr === undefined) return undefined;
  const ci = a.get(IFA.CACHEINFO);
  const cdv = ci !== undefined && ci.length >= 8 ? view(ci) : undefined;
  return {
    family: payload[0]!,
    prefixlen: payload[1]!,
    flags: u32(a.get(IFA.FLAGS)) ?? payload[2]!,
    scope: payload[3]!,
    index: dv.getUint32(4, LE),
    address: formatIp(addr),
    preferred: cdv?.getUint32(0, LE) ?? INFINITY_LIFE_TIME,
    valid: cdv?.getUint32(4, LE) ?? INFINITY_LIFE_TIME,
    proto: u8(a.get(IFA.PROTO)) ?? 0,
  };
}

function ifaddrmsg(family: number, prefixlen: number, index: number): Uint8Array {
  const h = new Uint8Array(8);
  h[0] = family;
  h[1] = prefixlen;
  view(h).setUint32(4, index, LE);
  return h;
}

export interface AddressRequest {
  readonly index: number;
  readonly version: IpVersion;
  readonly bytes: Uint8Array;
  readonly prefixlen: number;
  /** Seconds; undefined for forever. */
  readonly valid?: number | undefined;
  readonly preferred?: number | undefined;
  /** IFA_PROTO; 0 to leave unset. */
  readonly proto: number;
}

/** RTM_NEWADDR payload (create or replace, so that lifetimes are refreshed in place). */
export function newAddressPayload(r: AddressRequest): Uint8Array {
  const family = r.version === 4 ? AF.INET : AF.INET6;
  const w = new PayloadWriter(ifaddrmsg(family, r.prefixlen, r.index));
  if (r.version === 4) w.attr(IFA.LOCAL, r.bytes);
  w.attr(IFA.ADDRESS, r.bytes);
  if (r.version === 4 && r.prefixlen < 31) w.attr(IFA.BROADCAST, broadcastOf(r.bytes, r.prefixlen));
  if (r.valid !== undefined || r.preferred !== undefined) {
    const ci = new Uint8Array(16);
    const dv = view(ci);
    dv.setUint32(0, r.preferred ?? INFINITY_LIFE_TIME, LE);
    dv.setUint32(4, r.valid ?? INFINITY_LIFE_TIME, LE);
    w.attr(IFA.CACHEINFO, ci);
  }
  if (r.proto !== 0) w.u8(IFA.PROTO, r.proto);
  return w.bytes();
}

export function delAddressPayload(r: Omit<AddressRequest, 'valid' | 'preferred'>): Uint8Array {
  const family = r.version === 4 ? AF.INET : AF.INET6;
  const w = new PayloadWriter(ifaddrmsg(family, r.prefixlen, r.index));
  if (r.version === 4) w.attr(IFA.LOCAL, r.bytes);
  w.attr(IFA.ADDRESS, r.bytes);
  return w.bytes();
}

// ---- Routes -----------------------------------------------------------------------------

export interface NextHop {
  readonly oif: number;
  readonly gateway: string | undefined;
}

export interface RouteMessage {
  readonly family: number;
  readonly dstLen: number;
  readonly tos: number;
  readonly table: number;
  readonly protocol: number;
  readonly scope: number;
  readonly type: number;
  readonly flags: number;
  /** Destination address text; "" for the default route. */
  readonly dst: string;
  readonly priority: number;
  /** One entry, or several for a multipath route. */
  readonly nexthops: readonly NextHop[];
}

function gatewayOf(a: Attrs): string | undefined {
  const gw = a.get(RTA.GATEWAY);
  if (gw !== undefined) return formatIp(gw);
  const via = a.get(RTA.VIA);
  if (via !== undefined && via.length > 2) return formatIp(via.subarray(2));
  return undefined;
}

export function parseRoute(payload: Uint8Array): RouteMessage {
  if (payload.length < 12) throw new NetlinkFormatError('short rtmsg');
  const dv = view(payload);
  const a = parseAttrs(payload, 12);
  const dst = a.get(RTA.DST);
  const nexthops: NextHop[] = [];
  const mp = a.get(RTA.MULTIPATH);
  if (mp !== undefined) {
    const mdv = view(mp);
    let off = 0;
    while (off + 8 <= mp.length) {
      const len = mdv.getUint16(off, LE);
      if (len < 8 || off + len > mp.length) break;
      const sub = parseAttrs(mp.subarray(off, off + len), 8);
      nexthops.push({ oif: mdv.getInt32(off + 4, LE), gateway: gatewayOf(sub) });
      off += align4(len);
    }
  } else {
    nexthops.push({ oif: u32(a.get(RTA.OIF)) ?? 0, gateway: gatewayOf(a) });
  }
  return {
    family: payload[0]!,
    dstLen: payload[1]!,
    tos: payload[3]!,
    table: u32(a.get(RTA.TABLE)) ?? payload[4]!,
    protocol: payload[5]!,
    scope: payload[6]!,
    type: payload[7]!,
    flags: dv.getUint32(8, LE),
    dst: dst === undefined ? '' : formatIp(dst),
    priority: u32(a.get(RTA.PRIORITY)) ?? 0,
    nexthops,
  };
}

export interface RouteRequest {
  readonly version: IpVersion;
  /** Destination network bytes; length 0 prefix for the default route. */
  readonly dst: Uint8Array;
  readonly dstLen: number;
  readonly table: number;
  readonly protocol: number;
  readonly priority: number;
  readonly gateway?: Uint8Array | undefined;
  /** 0 for none. */
  readonly oif: number;
  /** RTN.UNICAST (the default), or RTN.UNREACHABLE, BLACKHOLE, PROHIBIT (no next hop). */
  readonly type?: number;
}

function rtmsg(r: RouteRequest, scope: number, type: number): Uint8Array {
  const h = new Uint8Array(12);
  h[0] = r.version === 4 ? AF.INET : AF.INET6;
  h[1] = r.dstLen;
  h[4] = r.table < 256 ? r.table : RT_TABLE.UNSPEC;
  h[5] = r.protocol;
  h[6] = scope;
  h[7] = type;
  return h;
}

function routeAttrs(w: PayloadWriter, r: RouteRequest): PayloadWriter {
  if (r.dstLen > 0) w.attr(RTA.DST, r.dst);
  if (r.table >= 256) w.u32(RTA.TABLE, r.table);
  w.u32(RTA.PRIORITY, r.priority);
  if (r.gateway !== undefined) w.attr(RTA.GATEWAY, r.gateway);
  if (r.oif !== 0) w.u32(RTA.OIF, r.oif);
  return w;
}

/**
 * RTM_NEWROUTE payload: a unicast route (scope link when it has no gateway), or an
 * unreachable, blackhole or prohibit one (scope universe, no next hop).
 */
export function newRoutePayload(r: RouteRequest): Uint8Array {
  const type = r.type ?? RTN.UNICAST;
  const scope = type === RTN.UNICAST && r.gateway === undefined ? RT_SCOPE.LINK : RT_SCOPE.UNIVERSE;
  return routeAttrs(new PayloadWriter(rtmsg(r, scope, type)), r).bytes();
}

/** RTM_DELROUTE payload; the kernel deletes only a route with the same protocol. */
export function delRoutePayload(r: RouteRequest): Uint8Array {
  return routeAttrs(new PayloadWriter(rtmsg(r, RT_SCOPE.NOWHERE, RTN.UNSPEC)), r).bytes();
}

// ---- Neighbours ------------------------------------------------------------------------

export interface NeighbourMessage {
  readonly family: number;
  readonly index: number;
  /** ndm_state: NUD_* bits. */
  readonly state: number;
  /** ndm_flags: NTF_* bits. */
  readonly flags: number;
  /** NDA_DST as text; undefined when absent (a bridge's forwarding entry has none). */
  readonly address: string | undefined;
  /** NDA_LLADDR as colon-separated hex; "" when absent. */
  readonly lladdr: string;
}

/** Colon-separated lower-case hex of a hardware address. */
export function formatMac(b: Uint8Array): string {
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/** An RTM_NEWNEIGH or RTM_DELNEIGH payload (struct ndmsg, 12 bytes, then attributes). */
export function parseNeighbour(payload: Uint8Array): NeighbourMessage {
  if (payload.length < 12) throw new NetlinkFormatError('short ndmsg');
  const dv = view(payload);
  const a = parseAttrs(payload, 12);
  const dst = a.get(NDA.DST);
  const ll = a.get(NDA.LLADDR);
  return {
    family: payload[0]!,
    index: dv.getInt32(4, LE),
    state: dv.getUint16(8, LE),
    flags: payload[10]!,
    address:
      dst === undefined || (dst.length !== 4 && dst.length !== 16) ? undefined : formatIp(dst),
    lladdr: ll === undefined ? '' : formatMac(ll),
  };
}

// ---- Router advertisement options the kernel hands on --------------------------------------

export interface NdUserOptMessage {
  readonly family: number;
  readonly index: number;
  readonly icmpType: number;
  readonly icmpCode: number;
  /** The raw ND option (type, length in units of 8 octets, body), as the router sent it. */
  readonly option: Uint8Array;
  /** NDUSEROPT_SRCADDR: the router that sent it; undefined when absent. */
  readonly source: string | undefined;
}

/**
 * An RTM_NEWNDUSEROPT payload: struct nduseroptmsg (16 bytes), the option
 * (nduseropt_opts_len bytes), then attributes. Throws NetlinkFormatError when the
 * option's length does not fit the message.
 */
export function parseNdUserOpt(payload: Uint8Array): NdUserOptMessage {
  if (payload.length < 16) throw new NetlinkFormatError('short nduseroptmsg');
  const dv = view(payload);
  const optsLen = dv.getUint16(2, LE);
  if (16 + optsLen > payload.length)
    throw new NetlinkFormatError(
      `nduseroptmsg: option length ${optsLen} is past the end of the message (${payload.length - 16} bytes)`,
    );
  const src = parseAttrs(payload, align4(16 + optsLen)).get(NDUSEROPT_SRCADDR);
  return {
    family: payload[0]!,
    index: dv.getInt32(4, LE),
    icmpType: payload[8]!,
    icmpCode: payload[9]!,
    option: payload.subarray(16, 16 + optsLen),
    source: src === undefined || src.length !== 16 ? undefined : formatIp(src),
  };
}

// ---- Dump requests ----------------------------------------------------------------------

export type DumpKind = 'links' | 'addresses' | 'routes' | 'neighbours';

/** The message type and payload of a dump of every object of a kind, both families. */
export function dumpRequest(kind: DumpKind): { type: number; payload: Uint8Array } {
  switch (kind) {
    case 'links':
      return { type: RTM.GETLINK, payload: new Uint8Array(16) };
    case 'addresses':
      return { type: RTM.GETADDR, payload: new Uint8Array(8) };
    case 'routes':
      return { type: RTM.GETROUTE, payload: new Uint8Array(12) };
    case 'neighbours':
      return { type: RTM.GETNEIGH, payload: new Uint8Array(12) };
  }
}
