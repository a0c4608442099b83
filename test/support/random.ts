// Seeded pseudo-random generation for property tests: a small PRNG and a
// generator of arbitrary Preserves values. A failing test prints its seed.

import {
  Annotated,
  Bytes,
  Dict,
  Double,
  Embedded,
  PSet,
  Record,
  int,
  sym,
  type Value,
} from '../../src/preserves/index.ts';

/** mulberry32: tiny, fast, good enough for tests. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface GenOptions {
  annotations?: boolean;
  embedded?: boolean;
}

export class ValueGen {
  readonly rand: () => number;
  readonly opts: GenOptions;
  constructor(seed: number, opts: GenOptions = {}) {
    this.rand = prng(seed);
    this.opts = opts;
  }
  int(n: number): number {
    return Math.floor(this.rand() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  string(): string {
    const alphabet = [
      'a',
      'b',
      'z',
      ' ',
      '"',
      '\\',
      '\n',
      '\t',
      '\u0000',
      'é',
      '\u2028',
      '水',
      '\u{1f600}',
      "'",
      '|',
    ];
    let s = '';
    const n = this.int(6);
    for (let i = 0; i < n; i++) s += this.pick(alphabet);
    return s;
  }
  symbolName(): string {
    return this.pick([
      'a',
      'interface',
      'eth0',
      '',
      'hello world',
      '1',
      '-',
      '+1',
      '?x',
      '$y',
      '_',
      'a:b',
      '#x',
      "it's",
      '|p|',
      '1.5',
      '\u{1f600}',
    ]);
  }
  atom(): Value {
    switch (this.int(9)) {
      case 0:
        return this.rand() < 0.5;
      case 1:
        return this.pick([
          new Double(0),
          new Double(-0),
          new Double(1.5),
          new Double(-1e300),
          new Double(5e-324),
          new Double(Infinity),
          new Double(-Infinity),
          Double.fromBits(0x7ff0000000000123n),
          Double.fromBits(0xfff8000000000001n),
          new Double(this.rand() * 1e6 - 5e5),
        ]);
      case 2:
        return this.int(1000) - 500;
      case 3:
        return int(
          BigInt(this.int(1 << 30)) ** BigInt(1 + this.int(4)) * (this.rand() < 0.5 ? -1n : 1n),
        );
      case 4:
        return this.string();
      case 5: {
        const b = new Uint8Array(this.int(8));
        for (let i = 0; i < b.length; i++) b[i] = this.int(256);
        return new Bytes(b);
      }
      case 6:
        return this.pick([0, -1, 1, 127, 128, -128, -129, 255, 256, 2 ** 53 - 1, int(-(2 ** 53))]);
      default:
        return sym(this.symbolName());
    }
  }
  value(depth = 3): Value {
    let v: Value;
    if (depth <= 0 || this.rand() < 0.4) v = this.atom();
    else {
      const n = this.int(4);
      const kids = () => Array.from({ length: n }, () => this.value(depth - 1));
      switch (this.int(this.opts.embedded ? 5 : 4)) {
        case 0:
          v = new Record(
            this.rand() < 0.8 ? sym(this.symbolName()) : this.value(depth - 1),
            kids(),
          );
          break;
        case 1:
          v = kids();
          break;
        case 2:
          v = new PSet(kids());
          break;
        case 3:
          v = new Dict(kids().map((k) => [k, this.value(depth - 1)] as const));
          break;
        default:
          v = new Embedded(this.value(depth - 1));
      }
    }
    if (this.opts.annotations && this.rand() < 0.15) {
      v = new Annotated(v, [this.atom()]);
    }
    return v;
  }
}

/** The same value rebuilt with every set and dictionary in a shuffled insertion order. */
export function shuffled(v: Value, rand: () => number): Value {
  const shuffle = <T>(xs: T[]): T[] => {
    for (let i = xs.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [xs[i], xs[j]] = [xs[j]!, xs[i]!];
    }
    return xs;
  };
  if (v instanceof Annotated) return new Annotated(shuffled(v.item, rand), v.annotations);
  if (Array.isArray(v)) return (v as readonly Value[]).map((x) => shuffled(x, rand));
  if (v instanceof Record)
    return new Record(
      shuffled(v.label, rand),
      v.fields.map((x) => shuffled(x, rand)),
    );
  if (v instanceof PSet) return new PSet(shuffle([...v].map((x) => shuffled(x, rand))));
  if (v instanceof Dict)
    return new Dict(
      shuffle([...v].map(([k, x]) => [shuffled(k, rand), shuffled(x, rand)] as const)),
    );
  return v;
}
