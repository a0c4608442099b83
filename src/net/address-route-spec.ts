// The address/route reconciler's desired state, checked (pure): `<ip-address IF
// "ADDR/LEN" {valid preferred renewed}>` and `<ip-route FAMILY DEST {via dev
// metric}>` into the specs the reconciler (address-route.ts) applies, or every
// problem with them.

import {
  Dict,
  Sym,
  Record as PRecord,
  peel,
  stringify,
  sym,
  type Value,
} from '../preserves/index.ts';
import {
  formatIp,
  isNetworkPrefix,
  parseIp,
  parsePrefix,
  type IpVersion,
} from './netlink-codec.ts';
import { INTERFACE_NAME_RULE, isInterfaceName } from '../base/interface-name.ts';

export type ReconcileState = 'installed' | 'pending' | 'failed';

export interface AddressSpec {
  readonly ifname: string;
  readonly version: IpVersion;
  readonly bytes: Uint8Array;
  readonly prefixlen: number;
  /** Canonical "ADDR/LEN". */
  readonly text: string;
  /** Seconds; undefined means forever. */
  readonly valid: number | undefined;
  readonly preferred: number | undefined;
}

export interface RouteSpec {
  readonly version: IpVersion;
  readonly dst: Uint8Array;
  readonly dstLen: number;
  /** Canonical destination address ("" for default). */
  readonly dstText: string;
  readonly via: Uint8Array | undefined;
  readonly viaText: string | undefined;
  readonly dev: string | undefined;
  /** As asserted (default 0). */
  readonly metric: number;
  /** What the kernel stores: IPv6 turns metric 0 into 1024. */
  readonly priority: number;
  /** `unicast` (the default), or a route that drops: `unreachable`, `blackhole`, `prohibit`. */
  readonly type: RouteType;
}

export const ROUTE_TYPES = ['unicast', 'unreachable', 'blackhole', 'prohibit'] as const;
export type RouteType = (typeof ROUTE_TYPES)[number];

const MAX_U32 = 0xffffffff;

function text(v: Value | undefined): string {
  return v === undefined ? 'nothing' : stringify(v);
}

function checkIfname(v: Value | undefined, what: string, errors: string[]): string | undefined {
  const s = v === undefined ? undefined : peel(v);
  if (isInterfaceName(s)) return s;
  errors.push(`${what} must be ${INTERFACE_NAME_RULE} as a string, not ${text(v)}`);
  return undefined;
}

function checkOptions(
  v: Value | undefined,
  known: readonly string[],
  what: string,
  errors: string[],
): Dict {
  if (v === undefined) return new Dict();
  const d = peel(v);
  if (!(d instanceof Dict)) {
    errors.push(`the options of ${what} must be a dictionary, not ${text(v)}`);
    return new Dict();
  }
  for (const k of d.keys()) {
    const key = peel(k);
    if (!(key instanceof Sym) || !known.includes(key.name))
      errors.push(`unknown option ${text(k)} in ${what} (known: ${known.join(', ')})`);
  }
  return d;
}

function lifetimeOf(d: Dict, key: string, errors: string[]): number | undefined {
  const raw = d.get(sym(key));
  if (raw === undefined) return undefined;
  const v = peel(raw);
  if (v instanceof Sym && v.name === 'forever') return undefined;
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < MAX_U32) return v;
  errors.push(
    `${key} must be a number of seconds (0 to ${MAX_U32 - 1}) or forever, not ${text(raw)}`,
  );
  return undefined;
}

/** Checks `<ip-address IF "ADDR/LEN" {valid preferred renewed}>`; collects every problem. */
export function checkIpAddress(v: Value): AddressSpec | string[] {
  const errors: string[] = [];
  const r = peel(v);
  if (!(r instanceof PRecord)) return ['not a record'];
  const fields = r.fields;
  if (fields.length < 2 || fields.length > 3)
    errors.push(`<ip-address IF "ADDR/LEN" {…}> takes 2 or 3 fields, not ${fields.length}`);
  const ifname = checkIfname(fields[0], 'IF', errors);
  const addrRaw = fields[1] === undefined ? undefined : peel(fields[1]);
  let prefix: ReturnType<typeof parsePrefix> = 'missing';
  if (typeof addrRaw !== 'string') errors.push(`ADDR/LEN must be a string, not ${text(fields[1])}`);
  else {
    prefix = parsePrefix(addrRaw);
    if (typeof prefix === 'string') errors.push(prefix);
  }
  const opts = checkOptions(fields[2], ['valid', 'preferred', 'renewed'], 'ip-address', errors);
  const valid = lifetimeOf(opts, 'valid', errors);
  let preferred = lifetimeOf(opts, 'preferred', errors);
  if (valid !== undefined && valid === 0) errors.push('valid must be at least 1 second');
  if (valid !== undefined && preferred !== undefined && preferred > valid)
    errors.push(`preferred (${preferred}) must not exceed valid (${valid})`);
  if (valid !== undefined && preferred === undefined) preferred = valid;
  if (errors.length > 0 || ifname === undefined || typeof prefix === 'string') return errors;
  return {
    ifname,
    version: prefix.version,
    bytes: prefix.bytes,
    prefixlen: prefix.length,
    text: `${formatIp(prefix.bytes)}/${prefix.length}`,
    valid,
    preferred,
  };
}

/** Checks `<ip-route FAMILY DEST {via dev metric}>`; collects every problem. */
export function checkIpRoute(v: Value): RouteSpec | string[] {
  const errors: string[] = [];
  const r = peel(v);
  if (!(r instanceof PRecord)) return ['not a record'];
  const fields = r.fields;
  if (fields.length < 2 || fields.length > 3)
    errors.push(`<ip-route FAMILY DEST {…}> takes 2 or 3 fields, not ${fields.length}`);
  const fam = fields[0] === undefined ? undefined : peel(fields[0]);
  let version: IpVersion | undefined;
  if (fam instanceof Sym && (fam.name === 'ipv4' || fam.name === 'ipv6'))
    version = fam.name === 'ipv4' ? 4 : 6;
  else errors.push(`FAMILY must be ipv4 or ipv6, not ${text(fields[0])}`);
  const destRaw = fields[1] === undefined ? undefined : peel(fields[1]);
  let dst: Uint8Array | undefined;
  let dstLen = 0;
  if (destRaw === 'default') {
    dst = new Uint8Array(version === 6 ? 16 : 4);
  } else if (typeof destRaw === 'string') {
    const p = parsePrefix(destRaw, 'host');
    if (typeof p === 'string') errors.push(p);
    else if (version !== undefined && p.version !== version)
      errors.push(`DEST ${destRaw} is not an IPv${version} prefix`);
    else if (!isNetworkPrefix(p))
      errors.push(`DEST ${destRaw} has bits set beyond its prefix length`);
    else {
      dst = p.bytes;
      dstLen = p.length;
    }
  } else errors.push(`DEST must be "default" or a string "ADDR/LEN", not ${text(fields[1])}`);
  const opts = checkOptions(fields[2], ['via', 'dev', 'metric', 'type'], 'ip-route', errors);
  const typeRaw = opts.get(sym('type'));
  let type: RouteType = 'unicast';
  if (typeRaw !== undefined) {
    const t = peel(typeRaw);
    if (t instanceof Sym && (ROUTE_TYPES as readonly string[]).includes(t.name))
      type = t.name as RouteType;
    else errors.push(`type must be one of ${ROUTE_TYPES.join(', ')}, not ${text(typeRaw)}`);
  }
  let via: Uint8Array | undefined;
  const viaRaw = opts.get(sym('via'));
  if (viaRaw !== undefined) {
    const s = peel(viaRaw);
    const ip = typeof s === 'string' ? parseIp(s) : undefined;
    if (ip === undefined) errors.push(`via must be an IP address, not ${text(viaRaw)}`);
    else if (version !== undefined && ip.version !== version)
      errors.push(`via ${text(viaRaw)} is not an IPv${version} address`);
    else via = ip.bytes;
  }
  const devRaw = opts.get(sym('dev'));
  const dev = devRaw === undefined ? undefined : checkIfname(devRaw, 'dev', errors);
  const metricRaw = opts.get(sym('metric'));
  let metric = 0;
  if (metricRaw !== undefined) {
    const m = peel(metricRaw);
    if (typeof m === 'number' && Number.isInteger(m) && m >= 0 && m <= MAX_U32) metric = m;
    else errors.push(`metric must be an integer from 0 to ${MAX_U32}, not ${text(metricRaw)}`);
  }
  if (type !== 'unicast') {
    if (viaRaw !== undefined || devRaw !== undefined)
      errors.push(`a route of type ${type} has no via or dev: it drops what it matches`);
  } else if (viaRaw === undefined && devRaw === undefined)
    errors.push('a route needs via, dev, or both');
  if (errors.length > 0 || version === undefined || dst === undefined) return errors;
  return {
    version,
    dst,
    dstLen,
    dstText: dstLen === 0 ? '' : formatIp(dst),
    via,
    viaText: via === undefined ? undefined : formatIp(via),
    dev,
    metric,
    priority: version === 6 && metric === 0 ? 1024 : metric,
    type,
  };
}
