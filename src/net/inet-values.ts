// Checks for the network values that arrive as text from untrusted places (a
// DHCP server, a hand-written configuration): IPv4 and IPv6 addresses, prefix
// lengths, netmasks, domain names. Pure; every check returns a reason (a phrase
// fit for "X is not usable: REASON") or the parsed value, and never throws.

import { isIPv6 } from 'node:net';

export type IpFamily = 'ipv4' | 'ipv6';

/** An IPv4 address in strict dotted-quad form ("10.0.0.1"; no leading zeros), as a 32-bit number. */
export function parseIpv4(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let n = 0;
  for (const p of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return undefined;
    const octet = Number(p);
    if (octet > 255) return undefined;
    n = n * 256 + octet;
  }
  return n;
}

export function formatIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export function isIpv4(text: string): boolean {
  return parseIpv4(text) !== undefined;
}

/** An IPv6 address (a zone, as in "fe80::1%eth0", is allowed). */
export function isIpv6(text: string): boolean {
  return isIPv6(text);
}

/** 128 bits of an IPv6 address (no zone), or undefined. */
export function ipv6Bits(text: string): bigint | undefined {
  if (text.includes('%') || !isIPv6(text)) return undefined;
  let t = text;
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(t);
  if (v4 !== null) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    t = `${t.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = t.includes('::') ? t.split('::') : [t, undefined];
  const h = head === '' || head === undefined ? [] : head.split(':');
  const tl = tail === undefined ? [] : tail === '' ? [] : tail.split(':');
  const groups =
    tail === undefined
      ? h
      : [...h, ...(Array(8 - h.length - tl.length).fill('0') as string[]), ...tl];
  if (groups.length !== 8) return undefined;
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}

/** The canonical text (RFC 5952) of 128 bits. */
export function formatIpv6Bits(bits: bigint): string {
  const groups: string[] = [];
  for (let i = 7; i >= 0; i--) groups.push(((bits >> BigInt(i * 16)) & 0xffffn).toString(16));
  return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1);
}

export function ipFamily(text: string): IpFamily | undefined {
  if (isIpv4(text)) return 'ipv4';
  if (isIpv6(text)) return 'ipv6';
  return undefined;
}

/**
 * Why an IPv4 address cannot be a host's or a gateway's address, or undefined if
 * it can: "this network" (0/8), loopback (127/8), multicast (224/4) and the
 * reserved block with the limited broadcast address (240/4) cannot.
 */
export function ipv4HostProblem(text: string): string | undefined {
  const n = parseIpv4(text);
  if (n === undefined) return 'not an IPv4 address';
  const first = n >>> 24;
  if (first === 0) return 'in 0.0.0.0/8 ("this network")';
  if (first === 127) return 'a loopback address';
  if (first >= 224 && first < 240) return 'a multicast address';
  if (first >= 240) return 'a reserved or broadcast address';
  return undefined;
}

/** Why an IPv6 address cannot be a host's or a gateway's address, or undefined if it can. */
export function ipv6HostProblem(text: string): string | undefined {
  if (!isIpv6(text)) return 'not an IPv6 address';
  const bare = (text.split('%')[0] ?? '').toLowerCase();
  if (/^[0:]+$/.test(bare)) return 'the unspecified address';
  if (/^[0:]+1$/.test(bare)) return 'the loopback address';
  if (bare.startsWith('ff')) return 'a multicast address';
  return undefined;
}

/** Why an address cannot be a global unicast address (a host's, a DNS server's), or undefined. */
export function ipv6UnicastProblem(text: string): string | undefined {
  // dhcpcd writes a link-local DNS server with its zone ("fe80::1%wan0"): say so.
  const zone = text.indexOf('%');
  if (zone >= 0) {
    const address = text.slice(0, zone);
    if (ipv6Bits(address) === undefined) return 'not an IPv6 address';
    return `${ipv6UnicastProblem(address) ?? 'an address'} with a zone`;
  }
  const bits = ipv6Bits(text);
  if (bits === undefined) return 'not an IPv6 address';
  if (bits === 0n) return 'the unspecified address';
  if (bits === 1n) return 'the loopback address';
  if (bits >> 120n === 0xffn) return 'a multicast address';
  if (bits >> 118n === 0x3fan) return 'a link-local address';
  if (bits >> 32n === 0xffffn) return 'an IPv4-mapped address';
  return undefined;
}

/** Why the text cannot be a host's or gateway's address of either family, or undefined. */
export function ipHostProblem(text: string): string | undefined {
  if (isIpv4(text)) return ipv4HostProblem(text);
  if (isIpv6(text)) return ipv6HostProblem(text);
  return 'not an IP address';
}

/** The prefix length of a dotted netmask ("255.255.255.0" is 24), if it is one. */
export function prefixFromMask(mask: string): number | undefined {
  const n = parseIpv4(mask);
  if (n === undefined) return undefined;
  const inverted = ~n >>> 0;
  // A netmask is ones then zeros: its complement plus one is a power of two.
  if ((inverted & (inverted + 1)) !== 0) return undefined;
  return 32 - countBits(inverted);
}

function countBits(n: number): number {
  let c = 0;
  for (let x = n >>> 0; x !== 0; x >>>= 1) c += x & 1;
  return c;
}

/** A prefix length written as text: digits only, in 0..max. */
export function parsePrefix(text: string, max: number): number | undefined {
  if (!/^(0|[1-9][0-9]{0,2})$/.test(text)) return undefined;
  const n = Number(text);
  return n <= max ? n : undefined;
}

export interface Cidr {
  readonly family: IpFamily;
  readonly address: string;
  readonly prefix: number;
}

/** "ADDR/LEN" for a host address: the parsed parts, or why it is not usable. */
export function parseHostCidr(text: string): Cidr | string {
  const slash = text.indexOf('/');
  if (slash < 0) return 'needs a prefix length, as in "192.168.8.1/24"';
  const address = text.slice(0, slash);
  const lenText = text.slice(slash + 1);
  const family = ipFamily(address);
  if (family === undefined) return `${JSON.stringify(address)} is not an IP address`;
  const max = family === 'ipv4' ? 32 : 128;
  const prefix = parsePrefix(lenText, max);
  if (prefix === undefined || prefix === 0)
    return `the prefix length ${JSON.stringify(lenText)} is not a number from 1 to ${max}`;
  const problem = family === 'ipv4' ? ipv4HostProblem(address) : ipv6HostProblem(address);
  if (problem !== undefined) return `${address} is ${problem}`;
  return { family, address, prefix };
}

/**
 * A DNS domain name ("example.com", "lan"): labels of letters, digits, '-' and
 * '_' (not starting or ending with '-'), at most 63 characters each and 253 in
 * all; a trailing dot is allowed. Returns the name without the trailing dot.
 */
export function parseDomainName(text: string): string | undefined {
  const name = text.endsWith('.') ? text.slice(0, -1) : text;
  if (name.length === 0 || name.length > 253) return undefined;
  for (const label of name.split('.')) {
    if (!/^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/.test(label)) return undefined;
  }
  return name;
}
