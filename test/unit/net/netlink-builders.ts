// Hand-built rtnetlink payloads for the unit tests of the codec, the model and the
// monitor's derivations: what the kernel would send, field by field.

import {
  AF,
  NDA,
  NDUSEROPT_SRCADDR,
  NUD,
  PayloadWriter,
  parseIp,
} from '../../../src/net/netlink-codec.ts';

const ip = (s: string) => parseIp(s)!.bytes;

/** An ndmsg (family, ifindex, state, flags) with NDA_DST and NDA_LLADDR. */
export function neighbourPayload(
  o: {
    family?: number;
    index?: number;
    state?: number;
    flags?: number;
    dst?: string;
    lladdr?: readonly number[];
  } = {},
): Uint8Array {
  const h = new Uint8Array(12);
  const dv = new DataView(h.buffer);
  h[0] = o.family ?? AF.INET6;
  dv.setInt32(4, o.index ?? 2, true);
  dv.setUint16(8, o.state ?? NUD.REACHABLE, true);
  h[10] = o.flags ?? 0;
  const w = new PayloadWriter(h);
  if (o.dst !== undefined) w.attr(NDA.DST, ip(o.dst));
  if (o.lladdr !== undefined) w.attr(NDA.LLADDR, Uint8Array.from(o.lladdr));
  return w.bytes();
}

/** An nduseroptmsg carrying `option`, and NDUSEROPT_SRCADDR when `source` is given. */
export function ndUserOptPayload(option: Uint8Array, source?: string, index = 2): Uint8Array {
  const h = new Uint8Array(16 + option.length);
  const dv = new DataView(h.buffer);
  h[0] = AF.INET6;
  dv.setUint16(2, option.length, true);
  dv.setInt32(4, index, true);
  h[8] = 134;
  h.set(option, 16);
  const w = new PayloadWriter(h);
  if (source !== undefined) w.attr(NDUSEROPT_SRCADDR, ip(source));
  return w.bytes();
}
