// The Preserves binary syntax (preserves.dev/preserves-binary.html), both ways.
// Invariants: `canonicalBytes(v)` is the spec's canonical form (no annotations; set
// elements and dictionary keys sorted by their canonical encodings), so equal values
// always give equal bytes; the decoder never allocates more than the input holds,
// never recurses deeper than `maxDepth`, and accepts only minimal encodings.

import { LimenError } from '../base/errors.ts';
import { compareBytes } from './compare.ts';
import {
  DEFAULT_MAX_DEPTH,
  PreservesEofError,
  PreservesShortError,
  PreservesSyntaxError,
  PreservesTooDeepError,
} from './errors.ts';
import {
  Annotated,
  Bytes,
  Dict,
  Double,
  Embedded,
  PSet,
  Record,
  Sym,
  int,
  isValue,
  sym,
  type Position,
  type Value,
} from './values.ts';

export type BinaryEncoding = 'canonical' | 'annotated' | 'loose';

export interface EncodeOptions {
  /** 'canonical' (default): sorted, no annotations; 'annotated': sorted, with
   *  annotations; 'loose': iteration order, with annotations. */
  encoding?: BinaryEncoding;
  /** How to write an embedded payload that is not itself a Value. */
  embedded?: (x: unknown) => Value;
}

export interface DecodeOptions {
  /** Keep annotations (default: read and drop them). */
  annotations?: boolean;
  /** Wrap every value in an Annotated carrying its byte offset. */
  positions?: boolean;
  /** Names the input in positions and error messages. */
  source?: string;
  maxDepth?: number;
  /** Turns the Value inside `#:…` into the embedded payload (default: keep the Value). */
  embedded?: (v: Value) => unknown;
}

/** A value that cannot be written in binary: a bug in the caller, not bad input. */
export class PreservesEncodeError extends LimenError {
  readonly code = 'LIMEN_PRESERVES_ENCODE';
}

const Tag = {
  False: 0x80,
  True: 0x81,
  End: 0x84,
  Annotation: 0x85,
  Embedded: 0x86,
  Ieee754: 0x87,
  SignedInteger: 0xb0,
  String: 0xb1,
  ByteString: 0xb2,
  Symbol: 0xb3,
  Record: 0xb4,
  Sequence: 0xb5,
  Set: 0xb6,
  Dictionary: 0xb7,
} as const;

// ---- Encoding ----------------------------------------------------------------------------

const utf8Encoder = new TextEncoder();

function varintSize(n: number): number {
  let size = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

const TWO_32 = 4294967296;

// TextEncoder would silently turn these into U+FFFD, making two strings encode alike.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

// Where reorder() copies a collection's bytes while permuting them (reused across calls).
let scratch = new Uint8Array(4096);

class Encoder {
  buf: Uint8Array;
  view: DataView;
  pos = 0;
  /** Sets and dictionaries in canonical order. */
  sorted = true;
  /** Write annotations (otherwise skip them). */
  annotations = false;
  embedded: ((x: unknown) => Value) | undefined = undefined;

  constructor(size: number) {
    this.buf = new Uint8Array(size);
    this.view = new DataView(this.buf.buffer);
  }

  reset(encoding: BinaryEncoding, embedded: ((x: unknown) => Value) | undefined): void {
    this.pos = 0;
    this.sorted = encoding !== 'loose';
    this.annotations = encoding !== 'canonical';
    this.embedded = embedded;
  }

  /** The bytes written so far, copied out (the buffer is reused). */
  result(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }

  grow(n: number): void {
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  byte(b: number): void {
    if (this.pos >= this.buf.length) this.grow(1);
    this.buf[this.pos++] = b;
  }

  varint(n: number): void {
    if (this.pos + 8 > this.buf.length) this.grow(8);
    const buf = this.buf;
    let pos = this.pos;
    while (n >= 128) {
      buf[pos++] = (n % 128) | 0x80;
      n = Math.floor(n / 128);
    }
    buf[pos++] = n;
    this.pos = pos;
  }

  value(v: Value): void {
    switch (typeof v) {
      case 'boolean':
        this.byte(v ? Tag.True : Tag.False);
        return;
      case 'number':
        this.number(v);
        return;
      case 'bigint':
        this.bigint(v);
        return;
      case 'string':
        this.text(Tag.String, v);
        return;
      default:
        break;
    }
    if (Array.isArray(v)) {
      this.byte(Tag.Sequence);
      for (let i = 0; i < v.length; i++) this.value(v[i] as Value);
      this.byte(Tag.End);
    } else if (v instanceof Record) {
      this.byte(Tag.Record);
      this.value(v.label);
      const fields = v.fields;
      for (let i = 0; i < fields.length; i++) this.value(fields[i]!);
      this.byte(Tag.End);
    } else if (v instanceof Sym) {
      this.text(Tag.Symbol, v.name);
    } else if (v instanceof Annotated) {
      if (this.annotations) {
        for (const a of v.annotations) {
          this.byte(Tag.Annotation);
          this.value(a);
        }
      }
      this.value(v.item);
    } else if (v instanceof Dict) {
      this.dict(v);
    } else if (v instanceof Double) {
      if (this.pos + 10 > this.buf.length) this.grow(10);
      this.buf[this.pos] = Tag.Ieee754;
      this.buf[this.pos + 1] = 8;
      if (v.nanBits !== undefined) this.view.setBigUint64(this.pos + 2, v.nanBits);
      else this.view.setFloat64(this.pos + 2, v.value);
      this.pos += 10;
    } else if (v instanceof Bytes) {
      const n = v.bytes.length;
      this.byte(Tag.ByteString);
      this.varint(n);
      if (this.pos + n > this.buf.length) this.grow(n);
      this.buf.set(v.bytes, this.pos);
      this.pos += n;
    } else if (v instanceof PSet) {
      this.set(v);
    } else if (v instanceof Embedded) {
      this.byte(Tag.Embedded);
      const x = v.value;
      if (isValue(x)) this.value(x);
      else if (this.embedded !== undefined) this.value(this.embedded(x));
      else {
        throw new PreservesEncodeError(
          'cannot encode an embedded reference that is not a Preserves value: pass `embedded` in the encode options',
        );
      }
    } else {
      throw new PreservesEncodeError(`not a Preserves value: ${describeNonValue(v)}`);
    }
  }

  number(n: number): void {
    if (!Number.isSafeInteger(n)) {
      if (!Number.isInteger(n)) {
        throw new PreservesEncodeError(
          `not a Preserves value: ${n} (write a Double for non-integers)`,
        );
      }
      this.bigint(BigInt(n));
      return;
    }
    if (this.pos + 9 > this.buf.length) this.grow(9);
    const buf = this.buf;
    let p = this.pos;
    buf[p++] = Tag.SignedInteger;
    // The shortest two's-complement form: n must fit in `len` signed bytes.
    if (n === 0) {
      buf[p++] = 0;
    } else if (n >= -0x80 && n < 0x80) {
      buf[p++] = 1;
      buf[p++] = n & 0xff;
    } else if (n >= -0x8000 && n < 0x8000) {
      buf[p++] = 2;
      buf[p++] = (n >> 8) & 0xff;
      buf[p++] = n & 0xff;
    } else if (n >= -0x800000 && n < 0x800000) {
      buf[p++] = 3;
      buf[p++] = (n >> 16) & 0xff;
      buf[p++] = (n >> 8) & 0xff;
      buf[p++] = n & 0xff;
    } else if (n >= -0x80000000 && n < 0x80000000) {
      buf[p++] = 4;
      buf[p++] = (n >>> 24) & 0xff;
      buf[p++] = (n >> 16) & 0xff;
      buf[p++] = (n >> 8) & 0xff;
      buf[p++] = n & 0xff;
    } else {
      // Above 32 bits bitwise operators truncate, so split into a signed high part and an
      // unsigned low 32 bits; |hi| < 2^21 for safe integers.
      const hi = Math.floor(n / TWO_32);
      const lo = n - hi * TWO_32;
      const len =
        n >= -0x8000000000 && n < 0x8000000000
          ? 5
          : n >= -0x800000000000 && n < 0x800000000000
            ? 6
            : 7;
      buf[p++] = len;
      for (let i = len - 5; i >= 0; i--) buf[p++] = (hi >> (8 * i)) & 0xff;
      buf[p++] = (lo >>> 24) & 0xff;
      buf[p++] = (lo >>> 16) & 0xff;
      buf[p++] = (lo >>> 8) & 0xff;
      buf[p++] = lo & 0xff;
    }
    this.pos = p;
  }

  bigint(n: bigint): void {
    if (n >= -9007199254740991n && n <= 9007199254740991n) {
      this.number(Number(n));
      return;
    }
    // Two's complement of a negative n is the bitwise complement of -n-1, which is >= 0.
    const neg = n < 0n;
    let hex = (neg ? -n - 1n : n).toString(16);
    if (hex.length % 2 === 1) hex = '0' + hex;
    const pad = parseInt(hex.slice(0, 2), 16) >= 0x80 ? 1 : 0;
    const len = hex.length / 2 + pad;
    const flip = neg ? 0xff : 0;
    this.byte(Tag.SignedInteger);
    this.varint(len);
    if (this.pos + len > this.buf.length) this.grow(len);
    const buf = this.buf;
    let p = this.pos;
    if (pad) buf[p++] = flip;
    for (let i = 0; i < hex.length; i += 2) buf[p++] = parseInt(hex.slice(i, i + 2), 16) ^ flip;
    this.pos = p;
  }

  text(tag: number, s: string): void {
    const n = s.length;
    if (n < 128) {
      // Fast path: short ASCII, one byte per char, so the length is n.
      if (this.pos + 2 + n > this.buf.length) this.grow(2 + n);
      const buf = this.buf;
      const start = this.pos;
      let p = start + 2;
      let i = 0;
      for (; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) break;
        buf[p++] = c;
      }
      if (i === n) {
        buf[start] = tag;
        buf[start + 1] = n;
        this.pos = p;
        return;
      }
    }
    if (LONE_SURROGATE.test(s)) {
      throw new PreservesEncodeError(
        `${tag === Tag.String ? 'string' : 'symbol'} contains a lone UTF-16 surrogate, which is not Unicode text`,
      );
    }
    // UTF-8 takes at most 3 bytes per UTF-16 unit; reserve room for the longest length
    // prefix, encode in place, then close the gap if the prefix turned out shorter.
    const max = n * 3;
    const reserve = varintSize(max);
    if (this.pos + 1 + reserve + max > this.buf.length) this.grow(1 + reserve + max);
    const buf = this.buf;
    const start = this.pos;
    const bodyAt = start + 1 + reserve;
    const { written } = utf8Encoder.encodeInto(s, buf.subarray(bodyAt, bodyAt + max));
    const actual = varintSize(written);
    if (actual !== reserve) buf.copyWithin(start + 1 + actual, bodyAt, bodyAt + written);
    buf[start] = tag;
    this.pos = start + 1;
    this.varint(written);
    this.pos += written;
  }

  set(s: PSet): void {
    this.byte(Tag.Set);
    if (!this.sorted || s.size < 2) {
      s.forEach((x) => this.value(x));
    } else if (this.annotations) {
      const items = [...s].map((x) => ({ key: run(x, 'canonical', this.embedded), x }));
      items.sort((a, b) => compareBytes(a.key, b.key));
      for (const { x } of items) this.value(x);
    } else {
      // Canonical: each element's bytes are its sort key, so write them all, then
      // reorder the written ranges in place.
      const bounds: number[] = [];
      s.forEach((x) => {
        bounds.push(this.pos);
        this.value(x);
      });
      bounds.push(this.pos);
      this.reorder(bounds, bounds, 1);
    }
    this.byte(Tag.End);
  }

  dict(d: Dict): void {
    this.byte(Tag.Dictionary);
    if (!this.sorted || d.size < 2) {
      d.forEach((x, k) => {
        this.value(k);
        this.value(x);
      });
    } else if (this.annotations) {
      const items = [...d].map(([k, x]) => ({ key: run(k, 'canonical', this.embedded), k, x }));
      items.sort((a, b) => compareBytes(a.key, b.key));
      for (const { k, x } of items) {
        this.value(k);
        this.value(x);
      }
    } else {
      // bounds: start of each entry; keyEnds: where its key's bytes end.
      const bounds: number[] = [];
      const keyEnds: number[] = [];
      d.forEach((x, k) => {
        bounds.push(this.pos);
        this.value(k);
        keyEnds.push(this.pos);
        this.value(x);
      });
      bounds.push(this.pos);
      this.reorder(bounds, keyEnds, 0);
    }
    this.byte(Tag.End);
  }

  /** Sorts the entries [bounds[i], bounds[i+1]) by the bytes [bounds[i], keyEnds[i+shift]). */
  reorder(bounds: number[], keyEnds: number[], shift: number): void {
    const count = bounds.length - 1;
    const order: number[] = [];
    for (let i = 0; i < count; i++) order.push(i);
    let moved = false;
    if (count <= 16) {
      // Insertion sort: small collections are the common case, and often already sorted.
      for (let i = 1; i < count; i++) {
        const x = order[i]!;
        const xs = bounds[x]!;
        const xe = keyEnds[x + shift]!;
        let j = i - 1;
        while (j >= 0) {
          const y = order[j]!;
          if (this.compareRanges(bounds[y]!, keyEnds[y + shift]!, xs, xe) <= 0) break;
          order[j + 1] = y;
          j--;
          moved = true;
        }
        order[j + 1] = x;
      }
    } else {
      order.sort((x, y) =>
        this.compareRanges(bounds[x]!, keyEnds[x + shift]!, bounds[y]!, keyEnds[y + shift]!),
      );
      moved = order.some((x, i) => x !== i);
    }
    if (!moved) return;
    const buf = this.buf;
    const base = bounds[0]!;
    const len = bounds[count]! - base;
    if (scratch.length < len) scratch = new Uint8Array(Math.max(len, scratch.length * 2));
    const tmp = scratch;
    // Byte loops: entries are usually a few bytes, where subarray() objects cost more.
    if (len > 256) tmp.set(buf.subarray(base, base + len));
    else for (let i = 0; i < len; i++) tmp[i] = buf[base + i]!;
    let p = base;
    for (const k of order) {
      const from = bounds[k]! - base;
      const to = bounds[k + 1]! - base;
      if (to - from > 256) {
        buf.set(tmp.subarray(from, to), p);
        p += to - from;
      } else {
        for (let i = from; i < to; i++) buf[p++] = tmp[i]!;
      }
    }
    if (scratch.length > 1 << 16) scratch = new Uint8Array(4096);
  }

  compareRanges(i: number, ie: number, j: number, je: number): number {
    const buf = this.buf;
    for (; i < ie && j < je; i++, j++) {
      if (buf[i] !== buf[j]) return buf[i]! < buf[j]! ? -1 : 1;
    }
    return ie - i - (je - j);
  }
}

// One shared encoder serves every call; a re-entrant call (from an `embedded` callback,
// or canonical sort keys while writing annotations) gets a fresh one.
const shared = new Encoder(4096);
let sharedBusy = false;

function run(
  v: Value,
  encoding: BinaryEncoding,
  embedded: ((x: unknown) => Value) | undefined,
): Uint8Array {
  const nested = sharedBusy;
  const e = nested ? new Encoder(256) : shared;
  if (!nested) sharedBusy = true;
  try {
    e.reset(encoding, embedded);
    e.value(v);
    return e.result();
  } finally {
    if (!nested) {
      sharedBusy = false;
      // Do not keep a huge buffer alive after one large value.
      if (shared.buf.length > 1 << 21) {
        shared.buf = new Uint8Array(4096);
        shared.view = new DataView(shared.buf.buffer);
      }
    }
  }
}

export function encode(v: Value, opts?: EncodeOptions): Uint8Array {
  return run(v, opts?.encoding ?? 'canonical', opts?.embedded);
}

/** The canonical binary form: what is hashed and compared byte-for-byte. */
export function canonicalBytes(v: Value): Uint8Array {
  return run(v, 'canonical', undefined);
}

// ---- Decoding ----------------------------------------------------------------------------

const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

const SHORT_STRING = 64;
const charCodes: number[][] = Array.from({ length: SHORT_STRING + 1 }, (_, n) =>
  new Array<number>(n).fill(0),
);

const HEX: readonly string[] = Array.from({ length: 256 }, (_, i) =>
  i.toString(16).padStart(2, '0'),
);

// Symbols are few and repeat constantly (record labels, dictionary keys), so short ASCII
// symbols are looked up by their bytes without building a string first.
const SYM_CACHE_SIZE = 1024;
const symCacheBytes: (Uint8Array | undefined)[] = new Array<Uint8Array | undefined>(SYM_CACHE_SIZE);
const symCacheSyms: (Sym | undefined)[] = new Array<Sym | undefined>(SYM_CACHE_SIZE);

/** Reads Preserves binary values one after another from a byte array. */
export class BinaryDecoder {
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  #pos = 0;
  readonly #annotations: boolean;
  readonly #positions: boolean;
  readonly #source: string | undefined;
  readonly #maxDepth: number;
  readonly #embedded: ((v: Value) => unknown) | undefined;
  // Elements of the compounds being read, so that each array is allocated once at its
  // exact size (`slice`) instead of growing by `push`.
  readonly #stack: Value[] = [];
  #top = 0;

  constructor(bytes: Uint8Array, opts?: DecodeOptions) {
    // A Buffer's slice() shares memory; view it as a plain Uint8Array so that decoded
    // byte strings are copies and never pin the input.
    this.#bytes =
      bytes.constructor === Uint8Array
        ? bytes
        : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.#annotations = opts?.annotations ?? false;
    this.#positions = opts?.positions ?? false;
    this.#source = opts?.source;
    this.#maxDepth = opts?.maxDepth ?? DEFAULT_MAX_DEPTH;
    this.#embedded = opts?.embedded;
  }

  /** The offset of the next unread byte; after a failed next(), where that value began. */
  get offset(): number {
    return this.#pos;
  }

  /** The next value, or undefined if the input ends cleanly before one begins. On a
   *  PreservesShortError nothing is consumed, so a stream reader can wait for more bytes
   *  and decode again from `offset`. */
  next(): Value | undefined {
    const start = this.#pos;
    if (start >= this.#bytes.length) return undefined;
    this.#top = 0;
    try {
      return this.#read(0);
    } catch (e) {
      const at = this.#pos;
      this.#pos = start;
      // Only reachable when a caller raises maxDepth beyond what the stack can hold.
      if (e instanceof RangeError && /call stack/i.test(e.message)) {
        throw new PreservesTooDeepError('nesting too deep for the stack', this.#at(at));
      }
      throw e;
    } finally {
      // Drop references to what was read so a long-lived decoder does not retain it.
      this.#stack.length = 0;
    }
  }

  #at(offset: number): Position {
    return { source: this.#source, line: 0, column: 0, offset };
  }

  #syntax(detail: string, offset: number): PreservesSyntaxError {
    return new PreservesSyntaxError(detail, this.#at(offset));
  }

  #short(expected: string): PreservesShortError {
    return new PreservesShortError(
      `input ended; expected ${expected}`,
      this.#at(this.#bytes.length),
    );
  }

  /** Checked on entering anything that contains values, so recursion stays bounded. */
  #enter(depth: number, start: number): void {
    if (depth >= this.#maxDepth) {
      throw new PreservesTooDeepError(
        `values nested more than ${this.#maxDepth} deep`,
        this.#at(start),
      );
    }
  }

  #read(depth: number): Value {
    const start = this.#pos;
    if (start >= this.#bytes.length) throw this.#short('a value');
    if (this.#bytes[start] === Tag.Annotation) return this.#readAnnotated(depth);
    const v = this.#readItem(depth);
    return this.#positions ? new Annotated(v, [], this.#at(start)) : v;
  }

  #readAnnotated(depth: number): Value {
    const bytes = this.#bytes;
    const annotations: Value[] = [];
    this.#enter(depth, this.#pos);
    while (this.#pos < bytes.length && bytes[this.#pos] === Tag.Annotation) {
      this.#pos++;
      if (this.#pos < bytes.length && bytes[this.#pos] === Tag.End) {
        throw this.#syntax('annotation has no value (found end marker 0x84)', this.#pos);
      }
      const a = this.#read(depth + 1);
      if (this.#annotations) annotations.push(a);
    }
    const start = this.#pos;
    if (start >= bytes.length) throw this.#short('the value after an annotation');
    if (bytes[start] === Tag.End) {
      throw this.#syntax('annotation has no underlying value (found end marker 0x84)', start);
    }
    const item = this.#readItem(depth);
    if (annotations.length === 0 && !this.#positions) return item;
    return new Annotated(item, annotations, this.#positions ? this.#at(start) : undefined);
  }

  /** A varint; the caller checks it against what remains. */
  #readVarint(what: string): number {
    const bytes = this.#bytes;
    const start = this.#pos;
    let pos = start;
    let result = 0;
    let scale = 1;
    for (;;) {
      if (pos >= bytes.length) throw this.#short(`the length of ${what}`);
      const b = bytes[pos++]!;
      result += (b & 0x7f) * scale;
      if (b < 0x80) {
        if (b === 0 && pos - start > 1) {
          throw this.#syntax(`non-minimal length varint for ${what}`, start);
        }
        break;
      }
      scale *= 128;
    }
    this.#pos = pos;
    // Nine or more groups mean at least 2^56: more than any input can hold.
    return pos - start > 8 ? Infinity : result;
  }

  /** A length that must fit in the rest of the input (checked before any allocation). */
  #readLength(what: string): number {
    const bytes = this.#bytes;
    const pos = this.#pos;
    // One-byte lengths are by far the most common.
    const n = pos < bytes.length && bytes[pos]! < 0x80 ? bytes[pos]! : -1;
    if (n >= 0) this.#pos = pos + 1;
    const len = n >= 0 ? n : this.#readVarint(what);
    const remaining = bytes.length - this.#pos;
    if (len > remaining) {
      const declared = len === Infinity ? 'more than 2^56' : String(len);
      throw new PreservesShortError(
        `input ended; ${what} declares ${declared} bytes but only ${remaining} remain`,
        this.#at(bytes.length),
      );
    }
    return len;
  }

  #readUtf8(what: string): string {
    const n = this.#readLength(what);
    const start = this.#pos;
    this.#pos = start + n;
    return this.#utf8(what, start, start + n);
  }

  #utf8(what: string, start: number, end: number): string {
    const n = end - start;
    if (n <= SHORT_STRING) {
      // Short ASCII (most strings and symbols): one fromCharCode over a reused array is
      // much cheaper than a TextDecoder call or building the string a char at a time.
      const bytes = this.#bytes;
      const codes = charCodes[n]!;
      for (let i = 0; i < n; i++) {
        const b = bytes[start + i]!;
        if (b >= 0x80) return this.#decodeUtf8(what, start, end);
        codes[i] = b;
      }
      return String.fromCharCode.apply(null, codes);
    }
    return this.#decodeUtf8(what, start, end);
  }

  #decodeUtf8(what: string, start: number, end: number): string {
    try {
      return utf8Decoder.decode(this.#bytes.subarray(start, end));
    } catch {
      throw this.#syntax(`invalid UTF-8 in ${what}`, start);
    }
  }

  #readSymbol(): Sym {
    const n = this.#readLength('a symbol');
    const bytes = this.#bytes;
    const start = this.#pos;
    const end = start + n;
    this.#pos = end;
    if (n > 24) return sym(this.#utf8('a symbol', start, end));
    let h = n;
    for (let i = start; i < end; i++) h = (Math.imul(h, 31) + bytes[i]!) | 0;
    const slot = h & (SYM_CACHE_SIZE - 1);
    const cached = symCacheBytes[slot];
    if (cached !== undefined && cached.length === n) {
      let i = 0;
      while (i < n && cached[i] === bytes[start + i]) i++;
      if (i === n) return symCacheSyms[slot]!;
    }
    const s = sym(this.#utf8('a symbol', start, end));
    symCacheBytes[slot] = bytes.slice(start, end);
    symCacheSyms[slot] = s;
    return s;
  }

  #readInteger(): number | bigint {
    const start = this.#pos - 1;
    const n = this.#readLength('an integer');
    if (n === 0) return 0;
    const bytes = this.#bytes;
    const p = this.#pos;
    const first = bytes[p]!;
    // intbytes must be the shortest two's-complement form (so canonical bytes are unique).
    if (
      n === 1
        ? first === 0
        : (first === 0 && bytes[p + 1]! < 0x80) || (first === 0xff && bytes[p + 1]! >= 0x80)
    ) {
      throw this.#syntax('non-minimal integer encoding', start);
    }
    this.#pos = p + n;
    if (n <= 6) {
      let v = first >= 0x80 ? first - 256 : first;
      for (let i = 1; i < n; i++) v = v * 256 + bytes[p + i]!;
      return v;
    }
    let hex = '0x';
    for (let i = 0; i < n; i++) hex += HEX[bytes[p + i]!]!;
    let v = BigInt(hex);
    if (first >= 0x80) v -= 1n << BigInt(8 * n);
    return int(v);
  }

  #readDouble(): Double {
    const start = this.#pos - 1;
    const n = this.#readVarint('a double');
    if (n !== 8) {
      const declared = n === Infinity ? 'more than 2^56' : String(n);
      throw this.#syntax(`a double must have 8 bytes, not ${declared} (tag 0x87)`, start);
    }
    if (this.#bytes.length - this.#pos < 8) throw this.#short('the 8 bytes of a double');
    const p = this.#pos;
    this.#pos = p + 8;
    const d = this.#view.getFloat64(p);
    // Reading a NaN through a float may canonicalise its payload; keep the exact bits.
    return Number.isNaN(d) ? Double.fromBits(this.#view.getBigUint64(p)) : new Double(d);
  }

  /** Reads the value at the current offset, which is not an annotation. */
  #readItem(depth: number): Value {
    const bytes = this.#bytes;
    const start = this.#pos;
    const tag = bytes[start]!;
    this.#pos = start + 1;
    switch (tag) {
      case Tag.False:
        return false;
      case Tag.True:
        return true;
      case Tag.SignedInteger:
        return this.#readInteger();
      case Tag.String:
        return this.#readUtf8('a string');
      case Tag.Symbol:
        return this.#readSymbol();
      case Tag.ByteString: {
        const n = this.#readLength('a byte string');
        const p = this.#pos;
        this.#pos = p + n;
        return new Bytes(bytes.slice(p, p + n));
      }
      case Tag.Ieee754:
        return this.#readDouble();
      case Tag.Record: {
        this.#enter(depth, start);
        if (this.#pos >= bytes.length) throw this.#short('a record label');
        if (bytes[this.#pos] === Tag.End) throw this.#syntax('record has no label', start);
        const base = this.#top;
        this.#readElements(depth, 'record');
        const stack = this.#stack;
        const r = new Record(stack[base]!, stack.slice(base + 1, this.#top));
        this.#top = base;
        return r;
      }
      case Tag.Sequence: {
        this.#enter(depth, start);
        const base = this.#top;
        this.#readElements(depth, 'sequence');
        const out = this.#stack.slice(base, this.#top);
        this.#top = base;
        return out;
      }
      case Tag.Set: {
        this.#enter(depth, start);
        const s = new PSet();
        for (;;) {
          if (this.#pos >= bytes.length) throw this.#short('a set element or end marker');
          const at = this.#pos;
          if (bytes[at] === Tag.End) break;
          const before = s.size;
          s.add(this.#read(depth + 1));
          if (s.size === before) throw this.#syntax('duplicate set element', at);
        }
        this.#pos++;
        return s;
      }
      case Tag.Dictionary: {
        this.#enter(depth, start);
        const d = new Dict();
        for (;;) {
          if (this.#pos >= bytes.length) throw this.#short('a dictionary key or end marker');
          const at = this.#pos;
          if (bytes[at] === Tag.End) break;
          const k = this.#read(depth + 1);
          if (this.#pos >= bytes.length) throw this.#short('a dictionary value');
          if (bytes[this.#pos] === Tag.End) {
            throw this.#syntax('dictionary key has no value (odd number of elements)', at);
          }
          const before = d.size;
          d.set(k, this.#read(depth + 1));
          if (d.size === before) throw this.#syntax('duplicate dictionary key', at);
        }
        this.#pos++;
        return d;
      }
      case Tag.Embedded: {
        this.#enter(depth, start);
        if (this.#pos < bytes.length && bytes[this.#pos] === Tag.End) {
          throw this.#syntax('embedded value is missing (found end marker 0x84)', this.#pos);
        }
        const v = this.#read(depth + 1);
        return new Embedded(this.#embedded ? this.#embedded(v) : v);
      }
      case Tag.End:
        throw this.#syntax('unexpected end marker 0x84; expected a value', start);
      default:
        throw this.#syntax(`invalid tag 0x${HEX[tag] ?? '??'}; expected a value`, start);
    }
  }

  /** Pushes values onto the stack up to and including the end marker. */
  #readElements(depth: number, what: string): void {
    const bytes = this.#bytes;
    const stack = this.#stack;
    for (;;) {
      const pos = this.#pos;
      if (pos >= bytes.length) throw this.#short(`a ${what} element or end marker`);
      const tag = bytes[pos]!;
      if (tag === Tag.End) break;
      // Nested reads use the slots above #top, so claim this one only after reading.
      const v = this.#read(depth + 1);
      stack[this.#top++] = v;
    }
    this.#pos++;
  }
}

/** Decodes exactly one value; trailing bytes are a syntax error. */
export function decode(bytes: Uint8Array, opts?: DecodeOptions): Value {
  const d = new BinaryDecoder(bytes, opts);
  const v = d.next();
  if (v === undefined) {
    throw new PreservesEofError('no input; expected a value', {
      source: opts?.source,
      line: 0,
      column: 0,
      offset: 0,
    });
  }
  if (d.offset < bytes.length) {
    throw new PreservesSyntaxError(`trailing bytes after the value`, {
      source: opts?.source,
      line: 0,
      column: 0,
      offset: d.offset,
    });
  }
  return v;
}

function describeNonValue(x: unknown): string {
  if (typeof x !== 'object' || x === null) return `${typeof x} ${String(x)}`;
  const name = (x as { constructor?: { name?: unknown } }).constructor?.name;
  return `an object of class ${typeof name === 'string' ? name : '?'}`;
}
