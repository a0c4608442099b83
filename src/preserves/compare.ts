// Equality, the total order and hashing, exactly as preserves.dev defines them:
// kinds order Boolean < Double < SignedInteger < String < ByteString < Symbol <
// Record < Sequence < Set < Dictionary < Embedded; annotations are ignored.
// Invariant: is(a, b) implies hash(a) === hash(b), and compare(a, b) === 0 iff is(a, b).

import {
  Annotated,
  Bytes,
  Dict,
  Double,
  Embedded,
  Kind,
  PSet,
  Record,
  Sym,
  isValue,
  kindOf,
  registerValueOps,
  type Value,
} from './values.ts';

// Embedded references that are not Preserves values are ordered by first sight.
const embeddedIds = new WeakMap<object, number>();
let nextEmbeddedId = 1;
function embeddedId(x: unknown): number {
  if (typeof x !== 'object' || x === null) return 0;
  let id = embeddedIds.get(x);
  if (id === undefined) {
    id = nextEmbeddedId++;
    embeddedIds.set(x, id);
  }
  return id;
}

function isInt(v: unknown): v is number | bigint {
  return typeof v === 'number' || typeof v === 'bigint';
}

/** Equality per the specification (annotations ignored). */
export function is(a: Value, b: Value): boolean {
  if (a === b) return true;
  if (a instanceof Annotated) a = a.item;
  if (b instanceof Annotated) b = b.item;
  if (a === b) return true;
  switch (typeof a) {
    case 'boolean':
    case 'string':
      return false;
    case 'number':
      return typeof b === 'bigint' && BigInt(a) === b;
    case 'bigint':
      return typeof b === 'number' ? Number.isInteger(b) && a === BigInt(b) : a === b;
    default:
      break;
  }
  if (typeof b !== 'object') return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!is(a[i] as Value, b[i] as Value)) return false;
    return true;
  }
  if (a instanceof Record) {
    if (!(b instanceof Record) || a.fields.length !== b.fields.length) return false;
    if (a.hashCache !== -1 && b.hashCache !== -1 && a.hashCache !== b.hashCache) return false;
    if (!is(a.label, b.label)) return false;
    const af = a.fields;
    const bf = b.fields;
    for (let i = 0; i < af.length; i++) if (!is(af[i]!, bf[i]!)) return false;
    return true;
  }
  if (a instanceof Sym) return b instanceof Sym && a.name === b.name;
  if (a instanceof Double) return b instanceof Double && a.bits() === b.bits();
  if (a instanceof Bytes) {
    if (!(b instanceof Bytes) || a.bytes.length !== b.bytes.length) return false;
    const x = a.bytes;
    const y = b.bytes;
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
    return true;
  }
  if (a instanceof PSet) {
    if (!(b instanceof PSet) || a.size !== b.size) return false;
    for (const v of a) if (!b.has(v)) return false;
    return true;
  }
  if (a instanceof Dict) {
    if (!(b instanceof Dict) || a.size !== b.size) return false;
    for (const [k, v] of a) {
      const w = b.get(k);
      if (w === undefined || !is(v, w)) return false;
    }
    return true;
  }
  if (a instanceof Embedded) {
    if (!(b instanceof Embedded)) return false;
    if (a.value === b.value) return true;
    return isValue(a.value) && isValue(b.value) && is(a.value, b.value);
  }
  return false;
}

// ---- Hashing -----------------------------------------------------------------------------

function mix(h: number, x: number): number {
  h = Math.imul(h ^ x, 0x5bd1e995);
  return (h ^ (h >>> 15)) | 0;
}

function hashString(s: string, seed: number): number {
  let h = seed;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h | 0;
}

function hashInt(n: number | bigint): number {
  if (typeof n === 'number' && !Number.isSafeInteger(n)) n = BigInt(n);
  if (typeof n === 'bigint') {
    if (n >= -9007199254740991n && n <= 9007199254740991n) return hashInt(Number(n));
    return hashString(n.toString(16), 0x2f1);
  }
  const lo = n | 0;
  const hi = (n - lo) / 4294967296;
  return mix(mix(0x2f1, lo), hi | 0);
}

/** A 32-bit structural hash, consistent with is(). Compound hashes are cached where possible. */
export function hash(v: Value): number {
  switch (typeof v) {
    case 'boolean':
      return v ? 0x51 : 0x50;
    case 'number':
    case 'bigint':
      return hashInt(v);
    case 'string':
      return hashString(v, 0x3c1);
    default:
      break;
  }
  if (Array.isArray(v)) {
    let h = 0x7a1 ^ v.length;
    for (let i = 0; i < v.length; i++) h = mix(h, hash(v[i] as Value));
    return h;
  }
  if (v instanceof Record) {
    if (v.hashCache !== -1) return v.hashCache;
    let h = mix(0x6b1 ^ v.fields.length, hash(v.label));
    for (const f of v.fields) h = mix(h, hash(f));
    if (h === -1) h = 0;
    v.hashCache = h;
    return h;
  }
  if (v instanceof Sym) {
    if (v.hashCache === -1)
      v.hashCache = hashString(v.name, 0x5d3) === -1 ? 0 : hashString(v.name, 0x5d3);
    return v.hashCache;
  }
  if (v instanceof Annotated) return hash(v.item);
  if (v instanceof Double) {
    const b = v.bits();
    return mix(mix(0x1d1, Number(b & 0xffffffffn)), Number(b >> 32n));
  }
  if (v instanceof Bytes) return v.hash();
  if (v instanceof PSet) {
    if (v.hashCache !== -1) return v.hashCache;
    // Order-independent: sum of element hashes.
    let s = 0;
    for (const x of v) s = (s + mix(0x8b, hash(x))) | 0;
    const h = mix(0x8b1, s) === -1 ? 0 : mix(0x8b1, s);
    v.hashCache = h;
    return h;
  }
  if (v instanceof Dict) {
    if (v.hashCache !== -1) return v.hashCache;
    let s = 0;
    for (const [k, x] of v) s = (s + mix(hash(k), hash(x))) | 0;
    const h = mix(0x9d1, s) === -1 ? 0 : mix(0x9d1, s);
    v.hashCache = h;
    return h;
  }
  if (v instanceof Embedded) {
    return isValue(v.value) ? mix(0xae1, hash(v.value)) : mix(0xae2, embeddedId(v.value));
  }
  throw new TypeError(`not a Preserves value: ${Object.prototype.toString.call(v)}`);
}

registerValueOps({ hash, is });

// ---- Total order -------------------------------------------------------------------------

/** IEEE 754 totalOrder key: negative values have all bits flipped, positive ones the sign bit. */
function doubleKey(d: Double): bigint {
  const b = d.bits();
  return b & 0x8000000000000000n ? ~b & 0xffffffffffffffffn : b | 0x8000000000000000n;
}

/** Compares strings by Unicode code point (not UTF-16 code unit). */
export function compareStrings(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x !== y) {
      // Surrogates (D800-DFFF) encode code points above FFFF: move them above E000-FFFF.
      if (x >= 0xd800) x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
      if (y >= 0xd800) y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
      return x < y ? -1 : 1;
    }
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}

export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x !== y) return x < y ? -1 : 1;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}

function compareSeqs(a: readonly Value[], b: readonly Value[]): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const c = compare(a[i]!, b[i]!);
    if (c !== 0) return c;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}

/** The elements of a set in the total order. */
export function sortedValues(s: Iterable<Value>): Value[] {
  return [...s].sort(compare);
}

/** The entries of a dictionary, sorted by key in the total order. */
export function sortedEntries(d: Dict): [Value, Value][] {
  return [...d].sort((x, y) => compare(x[0], y[0]));
}

/** The total order over values (annotations ignored): negative, zero or positive. */
export function compare(a: Value, b: Value): number {
  if (a === b) return 0;
  if (a instanceof Annotated) a = a.item;
  if (b instanceof Annotated) b = b.item;
  const ka = kindOf(a);
  const kb = kindOf(b);
  if (ka !== kb) return ka < kb ? -1 : 1;
  switch (ka) {
    case Kind.Boolean:
      return a === b ? 0 : a === false ? -1 : 1;
    case Kind.Double: {
      const x = doubleKey(a as Double);
      const y = doubleKey(b as Double);
      return x === y ? 0 : x < y ? -1 : 1;
    }
    case Kind.SignedInteger: {
      if (!isInt(a) || !isInt(b)) return 0;
      if (typeof a === typeof b) return a === b ? 0 : a < b ? -1 : 1;
      const x = BigInt(a);
      const y = BigInt(b);
      return x === y ? 0 : x < y ? -1 : 1;
    }
    case Kind.String:
      return compareStrings(a as string, b as string);
    case Kind.ByteString:
      return compareBytes((a as Bytes).bytes, (b as Bytes).bytes);
    case Kind.Symbol:
      return compareStrings((a as Sym).name, (b as Sym).name);
    case Kind.Record: {
      const ra = a as Record;
      const rb = b as Record;
      const c = compare(ra.label, rb.label);
      return c !== 0 ? c : compareSeqs(ra.fields, rb.fields);
    }
    case Kind.Sequence:
      return compareSeqs(a as Value[], b as Value[]);
    case Kind.Set:
      return compareSeqs(sortedValues(a as PSet), sortedValues(b as PSet));
    case Kind.Dictionary: {
      const ea = sortedEntries(a as Dict);
      const eb = sortedEntries(b as Dict);
      const n = Math.min(ea.length, eb.length);
      for (let i = 0; i < n; i++) {
        const c = compare(ea[i]![0], eb[i]![0]) || compare(ea[i]![1], eb[i]![1]);
        if (c !== 0) return c;
      }
      return ea.length === eb.length ? 0 : ea.length < eb.length ? -1 : 1;
    }
    case Kind.Embedded: {
      const x = (a as Embedded).value;
      const y = (b as Embedded).value;
      if (x === y) return 0;
      const vx = isValue(x);
      const vy = isValue(y);
      if (vx && vy) return compare(x, y);
      if (vx !== vy) return vx ? -1 : 1;
      const ix = embeddedId(x);
      const iy = embeddedId(y);
      return ix === iy ? 0 : ix < iy ? -1 : 1;
    }
    default:
      return 0;
  }
}

/** The value with every annotation removed, at every depth. Returns v itself if it had none. */
export function strip(v: Value): Value {
  if (v instanceof Annotated) return strip(v.item);
  if (typeof v !== 'object') return v;
  if (Array.isArray(v)) {
    const seq = v as readonly Value[];
    let out: Value[] | undefined;
    for (let i = 0; i < seq.length; i++) {
      const x = seq[i]!;
      const s = strip(x);
      if (s !== x && out === undefined) out = seq.slice(0, i);
      if (out !== undefined) out.push(s);
    }
    return out ?? seq;
  }
  if (v instanceof Record) {
    const label = strip(v.label);
    let fields: Value[] | undefined;
    for (let i = 0; i < v.fields.length; i++) {
      const x = v.fields[i]!;
      const s = strip(x);
      if (s !== x && fields === undefined) fields = v.fields.slice(0, i);
      if (fields !== undefined) fields.push(s);
    }
    return label === v.label && fields === undefined ? v : new Record(label, fields ?? v.fields);
  }
  if (v instanceof PSet) {
    let changed = false;
    const items: Value[] = [];
    for (const x of v) {
      const s = strip(x);
      if (s !== x) changed = true;
      items.push(s);
    }
    return changed ? new PSet(items) : v;
  }
  if (v instanceof Dict) {
    let changed = false;
    const items: [Value, Value][] = [];
    for (const [k, x] of v) {
      const sk = strip(k);
      const sx = strip(x);
      if (sk !== k || sx !== x) changed = true;
      items.push([sk, sx]);
    }
    return changed ? new Dict(items) : v;
  }
  if (v instanceof Embedded && isValue(v.value)) {
    const s = strip(v.value);
    return s === v.value ? v : new Embedded(s);
  }
  return v;
}
