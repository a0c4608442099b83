// DNS from router advertisements: the RDNSS (type 25) and DNSSL (type 31) options
// of RFC 8106, which the kernel hands to user space as RTM_NEWNDUSEROPT, decoded
// from their raw bytes, and kept per interface and router with their lifetimes.
// Pure: times are passed in, and the caller runs the timer that expire() wants.
//
// Invariants: the decoders never throw and say what is wrong with a malformed
// option (zero or inconsistent length, a name past the end, a compression pointer,
// a label that is not printable); the table holds at most `limit` servers and
// `limit` domains per interface, whatever routers send, and a lifetime of 0
// withdraws at once.

import { formatIp } from './netlink-codec.ts';

export const ND_OPT = { RDNSS: 25, DNSSL: 31 } as const;
/** An RA option lifetime of all ones: for ever. */
export const ND_INFINITE_LIFETIME = 0xffffffff;
/** Servers and search domains kept per interface (from every router together). */
export const RA_DNS_LIMIT = 8;

export type NdDnsOption =
  | { readonly kind: 'rdnss'; readonly lifetime: number; readonly servers: readonly string[] }
  | {
      readonly kind: 'dnssl';
      readonly lifetime: number;
      readonly domains: readonly string[];
      /** Names left out: not printable, or malformed after a well-formed start. */
      readonly problems: readonly string[];
    }
  /** Another option type: not limen's to read. */
  | { readonly kind: 'other'; readonly type: number }
  | { readonly kind: 'invalid'; readonly problem: string };

/** A label's bytes as text, with `\xNN` for anything that is not printable ASCII. */
function shown(b: Uint8Array): string {
  let s = '';
  for (const x of b.subarray(0, 63))
    s +=
      x > 0x20 && x < 0x7f && x !== 0x5c
        ? String.fromCharCode(x)
        : `\\x${x.toString(16).padStart(2, '0')}`;
  return s;
}

/** True for a label made of printable ASCII other than '.' and '\'. */
function printableLabel(b: Uint8Array): boolean {
  for (const x of b) if (x <= 0x20 || x >= 0x7f || x === 0x2e || x === 0x5c) return false;
  return true;
}

/**
 * The domain names of a DNSSL option's body (RFC 1035 wire form, no compression,
 * zero padding after the last one): the printable ones as text, and what is wrong
 * with the others.
 */
function decodeNames(b: Uint8Array): { domains: string[]; problems: string[] } {
  const domains: string[] = [];
  const problems: string[] = [];
  let off = 0;
  while (off < b.length) {
    // A zero where a name would start: the padding (or an empty name): the end.
    if (b[off] === 0) break;
    const labels: Uint8Array[] = [];
    let length = 0;
    let fatal: string | undefined;
    for (;;) {
      if (off >= b.length) {
        fatal = 'a name runs past the end of the option';
        break;
      }
      const n = b[off]!;
      off++;
      if (n === 0) break;
      if (n > 63) {
        fatal = `a label length of ${n} (compression is not allowed; labels are at most 63 bytes)`;
        break;
      }
      if (off + n > b.length) {
        fatal = 'a label runs past the end of the option';
        break;
      }
      labels.push(b.subarray(off, off + n));
      length += n + 1;
      off += n;
    }
    if (fatal !== undefined) {
      // The rest cannot be read: where the next name starts is unknown.
      problems.push(fatal);
      break;
    }
    const name = labels.map(shown).join('.');
    if (length + 1 > 255) problems.push(`"${name.slice(0, 80)}…" is longer than 255 bytes`);
    else if (!labels.every(printableLabel))
      problems.push(`"${name}" holds characters that are not printable`);
    else domains.push(name.toLowerCase());
  }
  return { domains, problems };
}

/** Decodes one ND option as the kernel passed it (type, length in 8-octet units, body). */
export function decodeNdOption(option: Uint8Array): NdDnsOption {
  if (option.length < 2) return { kind: 'invalid', problem: 'an option shorter than 2 bytes' };
  const type = option[0]!;
  const units = option[1]!;
  if (units === 0) return { kind: 'invalid', problem: `an option of type ${type} with length 0` };
  if (units * 8 !== option.length)
    return {
      kind: 'invalid',
      problem: `an option of type ${type} says ${units * 8} bytes but holds ${option.length}`,
    };
  if (type !== ND_OPT.RDNSS && type !== ND_OPT.DNSSL) return { kind: 'other', type };
  const lifetime = new DataView(option.buffer, option.byteOffset, option.byteLength).getUint32(
    4,
    false,
  );
  if (type === ND_OPT.RDNSS) {
    if (units < 3 || units % 2 === 0)
      return {
        kind: 'invalid',
        problem: `an RDNSS option of length ${units} (it must be odd and at least 3)`,
      };
    const servers: string[] = [];
    for (let off = 8; off + 16 <= option.length; off += 16)
      servers.push(formatIp(option.subarray(off, off + 16)));
    return { kind: 'rdnss', lifetime, servers };
  }
  if (units < 2)
    return { kind: 'invalid', problem: 'a DNSSL option of length 1 (it must be at least 2)' };
  return { kind: 'dnssl', lifetime, ...decodeNames(option.subarray(8)) };
}

// ---- The table of what routers advertised ------------------------------------------------

export type RaDnsKind = 'dns' | 'search';

export interface RaDnsEntry {
  readonly key: string;
  readonly index: number;
  readonly kind: RaDnsKind;
  /** A server's address, or a search domain (lower-cased). */
  readonly value: string;
  /** The router that advertised it (its link-local address), or "" when the kernel did not say. */
  readonly router: string;
  /** When it expires (milliseconds since the epoch), or undefined: never. */
  readonly expires: number | undefined;
}

export interface RaDnsChange {
  readonly before: RaDnsEntry | undefined;
  readonly after: RaDnsEntry | undefined;
}

export interface RaDnsUpdate {
  readonly changes: RaDnsChange[];
  /** What was wrong or left out, for the log. */
  readonly problems: string[];
}

export class RaDnsTable {
  readonly entries = new Map<string, RaDnsEntry>();
  readonly #limit: number;

  constructor(limit = RA_DNS_LIMIT) {
    this.#limit = limit;
  }

  #count(index: number, kind: RaDnsKind): number {
    let n = 0;
    for (const e of this.entries.values()) if (e.index === index && e.kind === kind) n++;
    return n;
  }

  /** Applies one option that router `router` sent on interface `index`, at time `now` (ms). */
  apply(index: number, router: string, option: Uint8Array, now: number): RaDnsUpdate {
    const changes: RaDnsChange[] = [];
    const problems: string[] = [];
    const o = decodeNdOption(option);
    switch (o.kind) {
      case 'other':
        return { changes, problems };
      case 'invalid':
        return { changes, problems: [o.problem] };
      case 'rdnss':
        this.#put(index, router, 'dns', o.servers, o.lifetime, now, changes, problems);
        return { changes, problems };
      case 'dnssl':
        problems.push(...o.problems.map((p) => `DNSSL: ${p}`));
        this.#put(index, router, 'search', o.domains, o.lifetime, now, changes, problems);
        return { changes, problems };
    }
  }

  #put(
    index: number,
    router: string,
    kind: RaDnsKind,
    values: readonly string[],
    lifetime: number,
    now: number,
    changes: RaDnsChange[],
    problems: string[],
  ): void {
    const expires = lifetime === ND_INFINITE_LIFETIME ? undefined : now + lifetime * 1000;
    let count = this.#count(index, kind);
    let left = 0;
    for (const value of new Set(values)) {
      const key = `${index}|${kind}|${router}|${value}`;
      const before = this.entries.get(key);
      if (lifetime === 0) {
        if (before === undefined) continue;
        this.entries.delete(key);
        count--;
        changes.push({ before, after: undefined });
        continue;
      }
      if (before === undefined && count >= this.#limit) {
        left++;
        continue;
      }
      const after: RaDnsEntry = { key, index, kind, value, router, expires };
      if (before !== undefined && before.expires === expires) continue;
      this.entries.set(key, after);
      if (before === undefined) count++;
      changes.push({ before, after });
    }
    if (left > 0)
      problems.push(
        `${left} more ${kind === 'dns' ? 'DNS servers' : 'search domains'} left out: at most ${this.#limit} are kept per interface`,
      );
  }

  /** Removes what expired by `now`. */
  expire(now: number): RaDnsChange[] {
    const changes: RaDnsChange[] = [];
    for (const e of [...this.entries.values()])
      if (e.expires !== undefined && e.expires <= now) {
        this.entries.delete(e.key);
        changes.push({ before: e, after: undefined });
      }
    return changes;
  }

  /** When the next entry expires (ms since the epoch), or undefined. */
  nextExpiry(): number | undefined {
    let next: number | undefined;
    for (const e of this.entries.values())
      if (e.expires !== undefined && (next === undefined || e.expires < next)) next = e.expires;
    return next;
  }

  /** Removes everything of an interface (it went away). */
  dropInterface(index: number): RaDnsChange[] {
    const changes: RaDnsChange[] = [];
    for (const e of [...this.entries.values()])
      if (e.index === index) {
        this.entries.delete(e.key);
        changes.push({ before: e, after: undefined });
      }
    return changes;
  }
}
