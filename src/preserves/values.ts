// The Preserves data model (preserves.dev): the value types, constructors and
// kind tests. Invariants: an integer is a JS `number` when it is a safe
// integer and a `bigint` otherwise (use `int()` to normalise); a double is
// always a `Double` (so 1 and 1.0 differ); a sequence is a plain array.
// Equality, order and hashing live in compare.ts.

export type Atom = boolean | Double | number | bigint | string | Bytes | Sym;
export type Compound = Record | Sequence | PSet | Dict;
export type Value = Atom | Compound | Embedded | Annotated;
export type Sequence = readonly Value[];

export const Kind = {
  Boolean: 0,
  Double: 1,
  SignedInteger: 2,
  String: 3,
  ByteString: 4,
  Symbol: 5,
  Record: 6,
  Sequence: 7,
  Set: 8,
  Dictionary: 9,
  Embedded: 10,
} as const;
export type Kind = (typeof Kind)[keyof typeof Kind];

/** Where a value was read from: 1-based line and column, 0-based offset. */
export interface Position {
  readonly source: string | undefined;
  readonly line: number;
  readonly column: number;
  readonly offset: number;
}

export function formatPosition(p: Position): string {
  if (p.line === 0) return `${p.source ?? '<input>'}:@${p.offset}`;
  return `${p.source ?? '<input>'}:${p.line}:${p.column}`;
}

const f64 = new Float64Array(1);
const u64 = new BigUint64Array(f64.buffer);

/** An IEEE 754 double. NaNs keep their exact bit pattern (payload and sign). */
export class Double {
  readonly value: number;
  /** The exact 64-bit pattern, kept only for NaNs (whose payload JS may not preserve). */
  readonly nanBits: bigint | undefined;
  constructor(value: number, nanBits?: bigint) {
    this.value = value;
    this.nanBits = Number.isNaN(value) ? (nanBits ?? 0x7ff8000000000000n) : undefined;
  }
  static fromBits(bits: bigint): Double {
    u64[0] = bits;
    const v = f64[0]!;
    return new Double(v, Number.isNaN(v) ? bits : undefined);
  }
  bits(): bigint {
    if (this.nanBits !== undefined) return this.nanBits;
    f64[0] = this.value;
    return u64[0]!;
  }
}

export class Bytes {
  readonly bytes: Uint8Array;
  #hash: number | undefined;
  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
  }
  static fromLatin1(s: string): Bytes {
    const b = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i) & 0xff;
    return new Bytes(b);
  }
  static fromUtf8(s: string): Bytes {
    return new Bytes(new TextEncoder().encode(s));
  }
  get length(): number {
    return this.bytes.length;
  }
  hash(): number {
    if (this.#hash === undefined) {
      let h = 0x811c9dc5;
      for (const b of this.bytes) h = Math.imul(h ^ b, 0x01000193);
      this.#hash = h | 0;
    }
    return this.#hash;
  }
}

export class Sym {
  readonly name: string;
  /** Cached hash (see compare.ts); -1 when not yet computed. */
  hashCache = -1;
  constructor(name: string) {
    this.name = name;
  }
}

const symbolCache = new Map<string, Sym>();
/** A symbol; commonly used names are shared so that equality is usually pointer equality. */
export function sym(name: string): Sym {
  let s = symbolCache.get(name);
  if (s === undefined) {
    s = new Sym(name);
    if (symbolCache.size < 100_000) symbolCache.set(name, s);
  }
  return s;
}

export class Record {
  readonly label: Value;
  readonly fields: readonly Value[];
  /** Cached hash (see compare.ts); -1 when not yet computed. */
  hashCache = -1;
  constructor(label: Value, fields: readonly Value[]) {
    this.label = label;
    this.fields = fields;
  }
  get arity(): number {
    return this.fields.length;
  }
}

export function record(label: Value | string, ...fields: Value[]): Record {
  return new Record(typeof label === 'string' ? sym(label) : label, fields);
}

/** An embedded value: a reference to something outside the data model (a dataspace, say),
 *  or, when read from text or binary without a decoder for embeddeds, a plain Value. */
export class Embedded {
  readonly value: unknown;
  constructor(value: unknown) {
    this.value = value;
  }
}

/** A value with annotations and, when read from text or binary, its source position. */
export class Annotated {
  readonly item: Value;
  readonly annotations: readonly Value[];
  readonly pos: Position | undefined;
  constructor(item: Value, annotations: readonly Value[] = [], pos?: Position) {
    if (item instanceof Annotated) {
      this.item = item.item;
      this.annotations = [...annotations, ...item.annotations];
      this.pos = pos ?? item.pos;
    } else {
      this.item = item;
      this.annotations = annotations;
      this.pos = pos;
    }
  }
}

export function int(n: number | bigint): number | bigint {
  if (typeof n === 'number') {
    if (!Number.isInteger(n)) throw new RangeError(`not an integer: ${n}`);
    return Number.isSafeInteger(n) ? n : BigInt(n);
  }
  return n >= -9007199254740991n && n <= 9007199254740991n ? Number(n) : n;
}

export function double(n: number): Double {
  return new Double(n);
}

export function isAnnotated(v: unknown): v is Annotated {
  return v instanceof Annotated;
}

/** The value without its outermost annotations (inner values keep theirs). */
export function peel(v: Value): Value {
  return v instanceof Annotated ? v.item : v;
}

/** The position of a value read with positions, if it has one. */
export function positionOf(v: Value): Position | undefined {
  return v instanceof Annotated ? v.pos : undefined;
}

export function kindOf(v: Value): Kind {
  switch (typeof v) {
    case 'boolean':
      return Kind.Boolean;
    case 'number':
    case 'bigint':
      return Kind.SignedInteger;
    case 'string':
      return Kind.String;
    default:
      if (Array.isArray(v)) return Kind.Sequence;
      if (v instanceof Record) return Kind.Record;
      if (v instanceof Sym) return Kind.Symbol;
      if (v instanceof Dict) return Kind.Dictionary;
      if (v instanceof PSet) return Kind.Set;
      if (v instanceof Double) return Kind.Double;
      if (v instanceof Bytes) return Kind.ByteString;
      if (v instanceof Embedded) return Kind.Embedded;
      if (v instanceof Annotated) return kindOf(v.item);
      throw new TypeError(`not a Preserves value: ${Object.prototype.toString.call(v)}`);
  }
}

export const kindNames: readonly string[] = [
  'boolean',
  'double',
  'integer',
  'string',
  'byte string',
  'symbol',
  'record',
  'sequence',
  'set',
  'dictionary',
  'embedded',
];

/** True for anything that is a Preserves value (used to tell plain embedded payloads from references). */
export function isValue(v: unknown): v is Value {
  switch (typeof v) {
    case 'boolean':
    case 'string':
    case 'bigint':
      return true;
    case 'number':
      return Number.isSafeInteger(v);
    case 'object':
      return (
        Array.isArray(v) ||
        v instanceof Record ||
        v instanceof Sym ||
        v instanceof Dict ||
        v instanceof PSet ||
        v instanceof Double ||
        v instanceof Bytes ||
        v instanceof Embedded ||
        v instanceof Annotated
      );
    default:
      return false;
  }
}

// ---- Hashing and equality hooks --------------------------------------------------------
// Sets and dictionaries need hashing and equality, which compare.ts defines; compare.ts
// registers them here at load time so that this module has no import cycle.

export interface ValueOps {
  hash(v: Value): number;
  is(a: Value, b: Value): boolean;
}
let ops: ValueOps | undefined;
export function registerValueOps(o: ValueOps): void {
  ops = o;
}
function theOps(): ValueOps {
  if (ops === undefined) throw new Error('compare.ts not loaded: import from preserves/index.ts');
  return ops;
}

interface Entry<V> {
  key: Value;
  value: V;
}

/** A hash map keyed by Preserves values (annotations ignored). Iterates in insertion order
 *  while small; small maps (the common case: record-like dictionaries) are a plain array
 *  searched with is(), which is cheaper than hashing every key. */
export class ValueMap<V> implements Iterable<[Value, V]> {
  #small: Entry<V>[] | undefined = [];
  #buckets: Map<number, Entry<V> | Entry<V>[]> | undefined;
  #size = 0;

  static readonly SMALL = 8;

  constructor(entries?: Iterable<readonly [Value, V]>) {
    if (entries) for (const [k, v] of entries) this.set(k, v);
  }

  get size(): number {
    return this.#size;
  }

  #find(key: Value): Entry<V> | undefined {
    const o = theOps();
    const small = this.#small;
    if (small !== undefined) {
      // Symbol keys (the usual case) compare by name without the general is().
      const keyName = key instanceof Sym ? key.name : undefined;
      for (let i = 0; i < small.length; i++) {
        const e = small[i]!;
        const k = e.key;
        if (k === key) return e;
        if (keyName !== undefined && k instanceof Sym) {
          if (k.name === keyName) return e;
        } else if (o.is(k, key)) return e;
      }
      return undefined;
    }
    const b = this.#buckets!.get(o.hash(key));
    if (b === undefined) return undefined;
    if (Array.isArray(b)) {
      for (const e of b) if (o.is(e.key, key)) return e;
      return undefined;
    }
    return o.is(b.key, key) ? b : undefined;
  }

  #insert(n: Entry<V>): void {
    this.#size++;
    if (this.#small !== undefined) {
      if (this.#small.length < ValueMap.SMALL) {
        this.#small.push(n);
        return;
      }
      const old = this.#small;
      this.#small = undefined;
      this.#buckets = new Map();
      for (const e of old) this.#bucketInsert(e);
    }
    this.#bucketInsert(n);
  }

  #bucketInsert(n: Entry<V>): void {
    const buckets = this.#buckets!;
    const h = theOps().hash(n.key);
    const b = buckets.get(h);
    if (b === undefined) buckets.set(h, n);
    else if (Array.isArray(b)) b.push(n);
    else buckets.set(h, [b, n]);
  }

  get(key: Value): V | undefined {
    return this.#find(key)?.value;
  }

  has(key: Value): boolean {
    return this.#find(key) !== undefined;
  }

  set(key: Value, value: V): this {
    const e = this.#find(key);
    if (e !== undefined) e.value = value;
    else this.#insert({ key, value });
    return this;
  }

  /** Returns the existing value for key, or stores and returns make(). */
  getOrCreate(key: Value, make: () => V): V {
    const e = this.#find(key);
    if (e !== undefined) return e.value;
    const value = make();
    this.#insert({ key, value });
    return value;
  }

  delete(key: Value): boolean {
    const o = theOps();
    const small = this.#small;
    if (small !== undefined) {
      const i = small.findIndex((e) => o.is(e.key, key));
      if (i < 0) return false;
      small.splice(i, 1);
      this.#size--;
      return true;
    }
    const buckets = this.#buckets!;
    const h = o.hash(key);
    const b = buckets.get(h);
    if (b === undefined) return false;
    if (Array.isArray(b)) {
      const i = b.findIndex((e) => o.is(e.key, key));
      if (i < 0) return false;
      b.splice(i, 1);
      if (b.length === 1) buckets.set(h, b[0]!);
    } else {
      if (!o.is(b.key, key)) return false;
      buckets.delete(h);
    }
    this.#size--;
    return true;
  }

  clear(): void {
    this.#small = [];
    this.#buckets = undefined;
    this.#size = 0;
  }

  *entries(): IterableIterator<[Value, V]> {
    if (this.#small !== undefined) {
      for (const e of this.#small) yield [e.key, e.value];
      return;
    }
    for (const b of this.#buckets!.values()) {
      if (Array.isArray(b)) for (const e of b) yield [e.key, e.value];
      else yield [b.key, b.value];
    }
  }

  *keys(): IterableIterator<Value> {
    for (const [k] of this.entries()) yield k;
  }

  *values(): IterableIterator<V> {
    for (const [, v] of this.entries()) yield v;
  }

  /** Like entries(), without a generator or per-entry arrays (for hot loops such as encoding). */
  forEach(fn: (value: V, key: Value) => void): void {
    if (this.#small !== undefined) {
      for (const e of this.#small) fn(e.value, e.key);
      return;
    }
    for (const b of this.#buckets!.values()) {
      if (Array.isArray(b)) for (const e of b) fn(e.value, e.key);
      else fn(b.value, b.key);
    }
  }

  [Symbol.iterator](): IterableIterator<[Value, V]> {
    return this.entries();
  }
}

/** A Preserves set. Mutable while being built; treat as immutable once shared. */
export class PSet implements Iterable<Value> {
  readonly #map: ValueMap<Value>;
  hashCache = -1;
  constructor(items?: Iterable<Value>) {
    this.#map = new ValueMap();
    if (items) for (const v of items) this.add(v);
  }
  get size(): number {
    return this.#map.size;
  }
  has(v: Value): boolean {
    return this.#map.has(v);
  }
  add(v: Value): this {
    if (!this.#map.has(v)) this.#map.set(v, v);
    this.hashCache = -1;
    return this;
  }
  delete(v: Value): boolean {
    this.hashCache = -1;
    return this.#map.delete(v);
  }
  /** Iterates without a generator (for hot loops such as encoding). */
  forEach(fn: (value: Value) => void): void {
    this.#map.forEach(fn);
  }
  [Symbol.iterator](): IterableIterator<Value> {
    return this.#map.values();
  }
}

/** A Preserves dictionary. Mutable while being built; treat as immutable once shared. */
export class Dict implements Iterable<[Value, Value]> {
  readonly #map: ValueMap<Value>;
  hashCache = -1;
  constructor(entries?: Iterable<readonly [Value, Value]>) {
    this.#map = new ValueMap();
    if (entries) for (const [k, v] of entries) this.#map.set(k, v);
  }
  get size(): number {
    return this.#map.size;
  }
  has(k: Value): boolean {
    return this.#map.has(k);
  }
  get(k: Value): Value | undefined {
    return this.#map.get(k);
  }
  set(k: Value, v: Value): this {
    this.hashCache = -1;
    this.#map.set(k, v);
    return this;
  }
  delete(k: Value): boolean {
    this.hashCache = -1;
    return this.#map.delete(k);
  }
  /** Iterates without a generator (for hot loops such as encoding). */
  forEach(fn: (value: Value, key: Value) => void): void {
    this.#map.forEach(fn);
  }
  keys(): IterableIterator<Value> {
    return this.#map.keys();
  }
  values(): IterableIterator<Value> {
    return this.#map.values();
  }
  entries(): IterableIterator<[Value, Value]> {
    return this.#map.entries();
  }
  [Symbol.iterator](): IterableIterator<[Value, Value]> {
    return this.#map.entries();
  }
}

/** A dictionary from string-keyed pairs; keys become symbols. */
export function dict(obj: { readonly [k: string]: Value }): Dict {
  return new Dict(Object.entries(obj).map(([k, v]) => [sym(k), v] as const));
}
