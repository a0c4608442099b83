// IPv6 prefixes for LAN interfaces, pure: reading `<lan-ipv6 IF {subnet: N ula: B}>`,
// carving the /64 with subnet id N out of a delegated prefix (or the ULA /48), and
// making a ULA prefix from random bytes (RFC 4193). Every check returns the problems
// it found (a whole spec's at once) and never throws.

import { peel, showValue, type Value } from '../preserves/index.ts';
import { isInterfaceName } from '../base/interface-name.ts';
import { formatIpv6Bits, ipv6Bits } from './inet-values.ts';
import { SpecOptions } from './spec-options.ts';

/** A validated `<lan-ipv6 IF {…}>`. */
export interface LanIpv6Config {
  readonly ifname: string;
  /** The subnet id: the bits between the delegated prefix's length and /64. */
  readonly subnet: number;
  /** Whether IF also gets a /64 of the router's ULA /48. */
  readonly ula: boolean;
}

export type LanIpv6ReadResult =
  | { readonly ok: true; readonly config: LanIpv6Config }
  | { readonly ok: false; readonly problems: readonly string[] };

export const LAN_IPV6_KEYS = ['subnet', 'ula'] as const;
/** A /48 (the ULA's, and the largest delegation seen in practice) has 16 bits of subnet id. */
export const MAX_SUBNET_ID = 0xffff;

/** Validates `<lan-ipv6 IF SPEC>`'s fields, collecting every problem. */
export function readLanIpv6(ifnameValue: Value, specValue: Value): LanIpv6ReadResult {
  const problems: string[] = [];
  const ifname = peel(ifnameValue);
  if (!isInterfaceName(ifname))
    problems.push(`IF must be an interface name as a string, got ${showValue(ifnameValue)}`);
  const o = new SpecOptions(specValue, LAN_IPV6_KEYS, problems);
  const subnet = o.integer('subnet', 0, MAX_SUBNET_ID, true);
  let ula = true;
  const u = o.get('ula');
  if (typeof u === 'boolean') ula = u;
  else if (u !== undefined) o.problem(`ula must be #t or #f, not ${showValue(u, 40)}`);
  if (problems.length > 0 || subnet === undefined || typeof ifname !== 'string')
    return { ok: false, problems };
  return { ok: true, config: { ifname, subnet, ula } };
}

/** A LAN's /64 and the router's address in it. */
export interface LanSubnet {
  /** "P::/64". */
  readonly network: string;
  /** "P::1/64": the router's address on the LAN. */
  readonly router: string;
}

/**
 * The /64 with id `subnet` inside `prefix` ("P/LEN", LEN at most 64, no host bits), or
 * why there is none: an id that needs more bits than LEN leaves (a /60 has ids 0 to 15)
 * is refused, never truncated.
 */
export function carveSubnet(prefix: string, subnet: number): LanSubnet | { problem: string } {
  const m = /^([^/]+)\/([0-9]{1,3})$/.exec(prefix);
  const bits = m === null ? undefined : ipv6Bits(m[1]!);
  const len = m === null ? NaN : Number(m[2]);
  if (bits === undefined || !(len >= 0 && len <= 64))
    return { problem: `${prefix} is not an IPv6 prefix of length 0 to 64` };
  if ((bits & ((1n << BigInt(128 - len)) - 1n)) !== 0n)
    return { problem: `${prefix} has bits set beyond its length` };
  if (!Number.isInteger(subnet) || subnet < 0)
    return { problem: `subnet ${subnet} is not a subnet id` };
  const room = 64 - len;
  if (BigInt(subnet) >= 1n << BigInt(room))
    return {
      problem:
        `subnet ${subnet} does not fit ${prefix}: a /${len} has ` +
        (room === 0 ? 'only subnet 0' : `subnets 0 to ${(1n << BigInt(room)) - 1n}`),
    };
  const network = bits | (BigInt(subnet) << 64n);
  return {
    network: `${formatIpv6Bits(network)}/64`,
    router: `${formatIpv6Bits(network | 1n)}/64`,
  };
}

/** The ULA /48 with global id `random` (5 bytes, RFC 4193 section 3.2): "fdXX:XXXX:XXXX::/48". */
export function ulaPrefixFrom(random: Uint8Array): string {
  if (random.length < 5) throw new RangeError('a ULA global id takes 5 random bytes');
  let bits = 0xfdn;
  for (const b of random.subarray(0, 5)) bits = (bits << 8n) | BigInt(b);
  return `${formatIpv6Bits(bits << 80n)}/48`;
}

/** The ULA /48 in a file's text, or undefined if it is not one (fd00::/8, /48, no host bits). */
export function parseUlaPrefix(text: string): string | undefined {
  const m = /^([0-9a-fA-F:]+)\/48$/.exec(text.trim());
  const bits = m === null ? undefined : ipv6Bits(m[1]!);
  if (bits === undefined || bits >> 120n !== 0xfdn || (bits & ((1n << 80n) - 1n)) !== 0n)
    return undefined;
  return `${formatIpv6Bits(bits)}/48`;
}
