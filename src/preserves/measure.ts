// How big a value is written out, and how deeply it nests, without writing it.
// Values share structure (`<pair $x $x>` holds $x once in memory, twice in its
// text), so a value built by doubling what it was given is a few objects in
// memory and 2^n bytes in every reply, log line and comparison. The measure is
// of the value as written: a shared part counts every time it appears.
//
// Linear in the distinct objects: each container's figures are remembered
// (weakly, and only for containers big enough for it to matter), so measuring
// `<pair $x $x>` after $x costs two lookups. Sizes saturate at MAX_SIZE rather
// than lose precision.

import {
  Annotated,
  Bytes,
  Dict,
  Double,
  Embedded,
  PSet,
  Record,
  Sym,
  type Value,
} from './values.ts';

export interface ValueMeasure {
  /** About the length of the value's text form, in bytes (annotations not counted). */
  readonly size: number;
  /** Containers nested inside each other at the deepest point (an atom is 0). */
  readonly depth: number;
}

/** Sizes stop growing here: far past any limit, and still exact as a double. */
const MAX_SIZE = 2 ** 52;

/** Below this size a container is measured again rather than remembered. */
const REMEMBER_FROM = 256;

const remembered = new WeakMap<object, ValueMeasure>();

const add = (a: number, b: number) => Math.min(a + b, MAX_SIZE);

function atomSize(v: Value): number {
  if (typeof v === 'boolean') return 2;
  if (typeof v === 'number' || typeof v === 'bigint') return String(v).length;
  if (typeof v === 'string') return v.length + 2;
  if (v instanceof Sym) return v.name.length;
  if (v instanceof Bytes) return v.bytes.length * 2 + 3;
  if (v instanceof Double) return 24;
  if (v instanceof Embedded) return 16;
  return 0;
}

/** The value's written size and nesting depth (see ValueMeasure). */
export function measureValue(v: Value): ValueMeasure {
  const item = v instanceof Annotated ? v.item : v;
  if (typeof item !== 'object') return { size: atomSize(item), depth: 0 };
  const known = remembered.get(item);
  if (known !== undefined) return known;
  // Brackets, and a space between each two items.
  let size = 1;
  let depth = 0;
  const child = (c: Value) => {
    const m = measureValue(c);
    size = add(size, m.size + 1);
    if (m.depth + 1 > depth) depth = m.depth + 1;
  };
  if (item instanceof Record) {
    child(item.label);
    for (const f of item.fields) child(f);
  } else if (Array.isArray(item)) {
    for (const x of item as readonly Value[]) child(x);
  } else if (item instanceof PSet) {
    for (const x of item) child(x);
  } else if (item instanceof Dict) {
    for (const [k, x] of item) {
      child(k);
      child(x);
    }
  } else {
    return { size: atomSize(item), depth: 0 };
  }
  if (depth === 0) size++; // empty: both brackets
  const m = { size, depth };
  if (size >= REMEMBER_FROM) remembered.set(item, m);
  return m;
}
