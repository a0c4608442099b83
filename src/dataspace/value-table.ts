// A hash table keyed by Preserves values, for the dataspace's hot paths.
// Open addressing with linear probing and backward-shift deletion: no
// tombstones, so asserting and retracting the same value over and over costs
// O(1). (JS Map and Set keep a deleted key's tombstone in its bucket chain
// until the next rehash, so the same key deleted and re-inserted repeatedly in
// a large Map costs O(size) per operation; ValueMap inherits that.)
//
// Invariants: capacity is a power of two and at least twice the size; keys are
// compared with `is` after their cached hashes; iteration order is unspecified.

import { hash, is, type Value } from '../preserves/index.ts';

const MIN_CAPACITY = 8;

export class ValueTable<V> {
  #keys: (Value | undefined)[];
  #vals: (V | undefined)[];
  #hashes: Int32Array;
  #used: Uint8Array;
  #mask: number;
  #size = 0;

  constructor() {
    this.#keys = new Array<Value | undefined>(MIN_CAPACITY);
    this.#vals = new Array<V | undefined>(MIN_CAPACITY);
    this.#hashes = new Int32Array(MIN_CAPACITY);
    this.#used = new Uint8Array(MIN_CAPACITY);
    this.#mask = MIN_CAPACITY - 1;
  }

  get size(): number {
    return this.#size;
  }

  #slot(key: Value, h: number): number {
    const mask = this.#mask;
    const used = this.#used;
    const hashes = this.#hashes;
    const keys = this.#keys;
    let i = mix(h) & mask;
    while (used[i] === 1) {
      if (hashes[i] === h) {
        const k = keys[i]!;
        if (k === key || is(k, key)) return i;
      }
      i = (i + 1) & mask;
    }
    return ~i;
  }

  /** The value stored for key; pass the key's hash if already known. */
  get(key: Value, h: number = hash(key)): V | undefined {
    const i = this.#slot(key, h);
    return i >= 0 ? this.#vals[i] : undefined;
  }

  has(key: Value, h: number = hash(key)): boolean {
    return this.#slot(key, h) >= 0;
  }

  set(key: Value, value: V, h: number = hash(key)): void {
    let i = this.#slot(key, h);
    if (i >= 0) {
      this.#vals[i] = value;
      return;
    }
    if ((this.#size + 1) * 2 > this.#mask + 1) {
      this.#resize((this.#mask + 1) * 2);
      i = this.#slot(key, h);
    }
    i = ~i;
    this.#used[i] = 1;
    this.#keys[i] = key;
    this.#vals[i] = value;
    this.#hashes[i] = h;
    this.#size++;
  }

  delete(key: Value, h: number = hash(key)): boolean {
    let i = this.#slot(key, h);
    if (i < 0) return false;
    const mask = this.#mask;
    const used = this.#used;
    const keys = this.#keys;
    const vals = this.#vals;
    const hashes = this.#hashes;
    // Backward-shift: move later members of the probe run into the hole.
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      if (used[j] === 0) break;
      const home = mix(hashes[j]!) & mask;
      // Move j to i unless its home lies cyclically in (i, j].
      if (i <= j ? home <= i || home > j : home <= i && home > j) {
        keys[i] = keys[j];
        vals[i] = vals[j];
        hashes[i] = hashes[j]!;
        i = j;
      }
    }
    used[i] = 0;
    keys[i] = undefined;
    vals[i] = undefined;
    this.#size--;
    const cap = mask + 1;
    if (cap > MIN_CAPACITY && this.#size * 8 < cap) this.#resize(cap / 2);
    return true;
  }

  clear(): void {
    const t = new ValueTable<V>();
    this.#keys = t.#keys;
    this.#vals = t.#vals;
    this.#hashes = t.#hashes;
    this.#used = t.#used;
    this.#mask = t.#mask;
    this.#size = 0;
  }

  *values(): IterableIterator<V> {
    const used = this.#used;
    const vals = this.#vals;
    for (let i = 0; i < used.length; i++) if (used[i] === 1) yield vals[i]!;
  }

  #resize(capacity: number): void {
    const keys = this.#keys;
    const vals = this.#vals;
    const hashes = this.#hashes;
    const used = this.#used;
    this.#keys = new Array<Value | undefined>(capacity);
    this.#vals = new Array<V | undefined>(capacity);
    this.#hashes = new Int32Array(capacity);
    this.#used = new Uint8Array(capacity);
    this.#mask = capacity - 1;
    const mask = this.#mask;
    for (let k = 0; k < used.length; k++) {
      if (used[k] !== 1) continue;
      const h = hashes[k]!;
      let i = mix(h) & mask;
      while (this.#used[i] === 1) i = (i + 1) & mask;
      this.#used[i] = 1;
      this.#keys[i] = keys[k];
      this.#vals[i] = vals[k];
      this.#hashes[i] = h;
    }
  }
}

/** Spreads the low bits (Preserves hashes of small integers differ mostly in high bits). */
function mix(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x45d9f3b);
  return h ^ (h >>> 16);
}
