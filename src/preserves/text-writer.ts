// Writes Values in the Preserves text syntax, compact by default or indented for people.
// Invariant: for every Value v (embedded payloads that are Values included),
// parse(stringify(v), { annotations: true }) is equal to v with its annotations; sets and
// dictionaries are written in the total order, so the output is deterministic.

import { sortedEntries, sortedValues } from './compare.ts';
import { PreservesWriteLimitError } from './errors.ts';
import { isBareSymbol } from './text-reader.ts';
import {
  Annotated,
  Bytes,
  Dict,
  Double,
  Embedded,
  PSet,
  Record,
  Sym,
  isValue,
  sym,
  type Value,
} from './values.ts';

export interface TextWriteOptions {
  /** Spaces per level (true: 2). Indented output keeps values that fit in 80 columns on one line. */
  indent?: number | boolean;
  /** Write annotations as `@ann value` (default true). Positions are never written. */
  annotations?: boolean;
  /**
   * How to write an embedded payload that is not a Preserves value (a live reference).
   * Default: `<ref "ClassName" N>`, N numbering references in order of first sight; such a
   * placeholder reads back as an ordinary value, not as the reference.
   */
  embedded?: (payload: unknown) => Value;
  /**
   * Compact output only: the longest text allowed, in UTF-16 code units. The writer
   * stops as soon as its output passes it (it never builds more than about this much)
   * and stringify throws PreservesWriteLimitError, or returns the cut text with
   * `ellipsis` appended when one is given.
   */
  maxLength?: number;
  /**
   * Compact output only: the deepest nesting allowed, counted as the text reader counts
   * it (each record, sequence, set, dictionary, embedded value and written annotation
   * is a level). Deeper values are treated as maxLength is.
   */
  maxDepth?: number;
  /** With maxLength or maxDepth: write values over a limit cut, ending with this text. */
  ellipsis?: string;
}

const WIDTH = 80;
/** Compact output is sealed into flat strings of about this many characters. */
const CHUNK = 16 * 1024;

// ---- Atoms ---------------------------------------------------------------------------------

const controlEscapes: { readonly [c: number]: string } = {
  8: '\\b',
  9: '\\t',
  10: '\\n',
  12: '\\f',
  13: '\\r',
};

function hex4(c: number): string {
  return '\\u' + c.toString(16).padStart(4, '0');
}

/** Quotes a string (q = '"') or a symbol (q = "'"). A lone surrogate is written as \uXXXX,
 *  which the reader rejects: such a JS string is not a sequence of Unicode scalar values. */
function quote(s: string, q: string): string {
  const qc = q.charCodeAt(0);
  let out = q;
  let chunk = 0;
  const n = s.length;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    let e: string;
    if (c === qc) e = '\\' + q;
    else if (c === 92) e = '\\\\';
    else if (c < 32 || c === 127) e = controlEscapes[c] ?? hex4(c);
    else if (c >= 0xd800 && c <= 0xdfff) {
      const d = s.charCodeAt(i + 1);
      if (c <= 0xdbff && d >= 0xdc00 && d <= 0xdfff) {
        i++;
        continue;
      }
      e = hex4(c);
    } else continue;
    out += s.slice(chunk, i) + e;
    chunk = i + 1;
  }
  return out + s.slice(chunk) + q;
}

export function formatDouble(d: Double): string {
  const x = d.value;
  if (Number.isFinite(x)) {
    if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
    // String() gives the shortest text that reads back to the same double.
    const t = String(x);
    return t.includes('.') || t.includes('e') ? t : t + '.0';
  }
  return '#xd"' + d.bits().toString(16).padStart(16, '0') + '"';
}

function formatSymbol(name: string): string {
  return isBareSymbol(name) ? name : quote(name, "'");
}

const hexDigits = '0123456789abcdef';
const base64Digits = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

function formatBytes(b: Uint8Array): string {
  let text = true;
  for (const x of b) {
    if ((x < 32 || x > 126) && x !== 9 && x !== 10 && x !== 13) {
      text = false;
      break;
    }
  }
  if (text) {
    let out = '#"';
    for (const x of b) {
      if (x === 34) out += '\\"';
      else if (x === 92) out += '\\\\';
      else out += controlEscapes[x] ?? String.fromCharCode(x);
    }
    return out + '"';
  }
  if (b.length <= 64) {
    let out = '#x"';
    for (const x of b) out += hexDigits[x >> 4]! + hexDigits[x & 15]!;
    return out + '"';
  }
  // Long binary data: base64 is a third shorter than hex.
  let out = '#[';
  let i = 0;
  for (; i + 2 < b.length; i += 3) {
    const w = (b[i]! << 16) | (b[i + 1]! << 8) | b[i + 2]!;
    out +=
      base64Digits[w >> 18]! +
      base64Digits[(w >> 12) & 63]! +
      base64Digits[(w >> 6) & 63]! +
      base64Digits[w & 63]!;
  }
  const rest = b.length - i;
  if (rest === 1) {
    const w = b[i]! << 16;
    out += base64Digits[w >> 18]! + base64Digits[(w >> 12) & 63]! + '==';
  } else if (rest === 2) {
    const w = (b[i]! << 16) | (b[i + 1]! << 8);
    out += base64Digits[w >> 18]! + base64Digits[(w >> 12) & 63]! + base64Digits[(w >> 6) & 63]!;
    out += '=';
  }
  return out + ']';
}

// Placeholders for references number them by first sight, so that one output tells them apart.
const refIds = new WeakMap<object, number>();
let nextRefId = 1;

function placeholder(x: unknown): Value {
  let name: string = typeof x;
  let id = 0;
  if ((typeof x === 'object' && x !== null) || typeof x === 'function') {
    const ctor = (x as { constructor?: { name?: unknown } }).constructor;
    if (typeof ctor?.name === 'string' && ctor.name !== '') name = ctor.name;
    id = refIds.get(x) ?? 0;
    if (id === 0) {
      id = nextRefId++;
      refIds.set(x, id);
    }
  }
  return new Record(sym('ref'), [name, id]);
}

function isCompound(v: Value): boolean {
  return Array.isArray(v) || v instanceof Record || v instanceof Dict || v instanceof PSet;
}

function columnAfter(col: number, text: string): number {
  const k = text.lastIndexOf('\n');
  return k < 0 ? col + text.length : text.length - k - 1;
}

// ---- Writer --------------------------------------------------------------------------------

class Writer {
  readonly annotations: boolean;
  readonly step: number;
  readonly embedded: ((payload: unknown) => Value) | undefined;
  /**
   * Compact output so far: sealed chunks, then `out`. Appending builds a rope (a tree of
   * cons strings) that every garbage collection must copy while it is alive; sealing it
   * into a flat string every CHUNK characters keeps long outputs from costing mostly GC.
   */
  out = '';
  sealed: string[] = [];
  sealedLength = 0;
  /** The length past which compact writing gives up. */
  limit = Infinity;
  /** Current nesting, the deepest allowed, and whether compact writing gave up on it. */
  depth = 0;
  maxDepth = Infinity;
  tooDeep = false;

  constructor(opts: TextWriteOptions | undefined) {
    this.annotations = opts?.annotations !== false;
    const indent = opts?.indent;
    this.step = indent === true ? 2 : typeof indent === 'number' ? Math.max(0, indent) : 0;
    this.embedded = opts?.embedded;
  }

  payload(e: Embedded): Value {
    const x = e.value;
    if (isValue(x)) return x;
    return this.embedded === undefined ? placeholder(x) : this.embedded(x);
  }

  /** Appends v in compact form; false as soon as the output passes this.limit or this.maxDepth. */
  compact(v: Value): boolean {
    // Checked on entry too, so that nested compounds with no atom between them (`[[[...]]]`)
    // stop at the limit rather than at their innermost value.
    if (this.length > this.limit) return false;
    switch (typeof v) {
      case 'boolean':
        this.out += v ? '#t' : '#f';
        break;
      case 'number':
        if (!Number.isInteger(v)) throw new TypeError(`not a Preserves value: ${v}`);
        this.out += String(v);
        break;
      case 'bigint':
        this.out += String(v);
        break;
      case 'string': {
        // The quoted text is never shorter than the string, so past the limit a prefix is
        // enough to pass it (and shows the string's start when the text is cut): a long
        // string is never copied whole.
        const room = this.limit - this.length;
        this.out += quote(v.length > room ? v.slice(0, room) : v, '"');
        break;
      }
      default:
        if (!this.compactObject(v)) return false;
    }
    if (this.out.length >= CHUNK) this.seal();
    return this.length <= this.limit;
  }

  get length(): number {
    return this.sealedLength + this.out.length;
  }

  seal(): void {
    // Reading a character flattens the rope in place; its nodes become garbage.
    this.out.charCodeAt(0);
    this.sealed.push(this.out);
    this.sealedLength += this.out.length;
    this.out = '';
  }

  /** Everything written, as one string. */
  text(): string {
    if (this.sealed.length === 0) return this.out;
    this.sealed.push(this.out);
    this.out = this.sealed.join('');
    this.sealed = [];
    this.sealedLength = 0;
    return this.out;
  }

  compactObject(v: Value): boolean {
    if (!(v instanceof Sym || v instanceof Double || v instanceof Bytes)) {
      // Annotations that are not written add no level, as they add none to the text.
      const level = !(v instanceof Annotated) || (this.annotations && v.annotations.length > 0);
      if (level && ++this.depth > this.maxDepth) {
        this.tooDeep = true;
        return false;
      }
      const ok = this.compactNested(v);
      if (level) this.depth--;
      return ok;
    }
    if (v instanceof Sym) {
      const room = this.limit - this.length;
      this.out += formatSymbol(v.name.length > room ? v.name.slice(0, room + 1) : v.name);
    } else if (v instanceof Double) {
      this.out += formatDouble(v);
    } else {
      if (this.length + v.bytes.length > this.limit) return false;
      this.out += formatBytes(v.bytes);
    }
    return true;
  }

  compactNested(v: Value): boolean {
    if (Array.isArray(v)) {
      this.out += '[';
      for (let i = 0; i < v.length; i++) {
        if (i > 0) this.out += ' ';
        if (!this.compact(v[i] as Value)) return false;
      }
      this.out += ']';
    } else if (v instanceof Record) {
      this.out += '<';
      if (!this.compact(v.label)) return false;
      for (const f of v.fields) {
        this.out += ' ';
        if (!this.compact(f)) return false;
      }
      this.out += '>';
    } else if (v instanceof Dict) {
      this.out += '{';
      let first = true;
      for (const [k, x] of sortedEntries(v)) {
        if (!first) this.out += ' ';
        first = false;
        if (!this.compact(k)) return false;
        this.out += ': ';
        if (!this.compact(x)) return false;
      }
      this.out += '}';
    } else if (v instanceof PSet) {
      this.out += '#{';
      let first = true;
      for (const x of sortedValues(v)) {
        if (!first) this.out += ' ';
        first = false;
        if (!this.compact(x)) return false;
      }
      this.out += '}';
    } else if (v instanceof Annotated) {
      if (this.annotations) {
        for (const a of v.annotations) {
          this.out += '@';
          if (!this.compact(a)) return false;
          this.out += ' ';
        }
      }
      return this.compact(v.item);
    } else if (v instanceof Embedded) {
      this.out += '#:';
      return this.compact(this.payload(v));
    } else {
      throw new TypeError(`not a Preserves value: ${Object.prototype.toString.call(v)}`);
    }
    return true;
  }

  /** v in compact form if that takes at most `budget` characters. */
  fits(v: Value, budget: number): string | undefined {
    this.out = '';
    this.limit = budget;
    const ok = this.compact(v);
    const s = this.text();
    this.out = '';
    return ok ? s : undefined;
  }

  /** v laid out for people: `indent` is the current line's indentation, `col` where v starts. */
  pretty(v: Value, indent: number, col: number): string {
    const flat = this.fits(v, WIDTH - col);
    if (flat !== undefined) return flat;
    const pad = '\n' + ' '.repeat(indent);
    const inner = indent + this.step;
    const innerPad = '\n' + ' '.repeat(inner);
    if (v instanceof Annotated) {
      if (!this.annotations || v.annotations.length === 0) return this.pretty(v.item, indent, col);
      // Each annotation on its own line, then the value under it.
      let out = '';
      for (const a of v.annotations) out += '@' + this.pretty(a, indent, col + 1) + pad;
      return out + this.pretty(v.item, indent, indent);
    }
    if (Array.isArray(v) || v instanceof PSet) {
      const items = Array.isArray(v) ? (v as readonly Value[]) : sortedValues(v);
      if (items.length === 0) return Array.isArray(v) ? '[]' : '#{}';
      let out = Array.isArray(v) ? '[' : '#{';
      if (items.every((x) => !isCompound(x) && !(x instanceof Annotated))) {
        // Atoms are packed into lines, as prose is, rather than one to a line.
        let line = '';
        for (const x of items) {
          const t = this.fits(x, Infinity)!;
          if (line !== '' && inner + line.length + 1 + t.length > WIDTH) {
            out += innerPad + line;
            line = t;
          } else {
            line = line === '' ? t : line + ' ' + t;
          }
        }
        return out + innerPad + line + pad + (Array.isArray(v) ? ']' : '}');
      }
      for (const x of items) out += innerPad + this.pretty(x, inner, inner);
      return out + pad + (Array.isArray(v) ? ']' : '}');
    }
    if (v instanceof Dict) {
      if (v.size === 0) return '{}';
      let out = '{';
      for (const [k, x] of sortedEntries(v)) {
        const ks = this.pretty(k, inner, inner);
        out += innerPad + ks + ': ' + this.pretty(x, inner, columnAfter(inner, ks) + 2);
      }
      return out + pad + '}';
    }
    if (v instanceof Record) return this.prettyRecord(v, indent, col);
    if (v instanceof Embedded) return '#:' + this.pretty(this.payload(v), indent, col + 2);
    return this.fits(v, Infinity)!;
  }

  prettyRecord(r: Record, indent: number, col: number): string {
    const inner = indent + this.step;
    const fields = r.fields;
    const last = fields[fields.length - 1];
    // A last field whose annotations are not written counts as its bare item.
    const hidden =
      last instanceof Annotated && (!this.annotations || last.annotations.length === 0);
    const lastItem = hidden ? last.item : last;
    if (lastItem !== undefined && isCompound(lastItem)) {
      // `<label a b {` on the first line, the last field's contents indented under it: the
      // usual shape of a record whose last field carries the bulk (`<daemon x {...}>`).
      const head = this.fits(new Record(r.label, fields.slice(0, -1)), WIDTH - col - 2);
      if (head !== undefined) {
        const h = head.slice(0, -1) + ' ';
        return h + this.pretty(lastItem, indent, col + h.length) + '>';
      }
    }
    let out = '<' + this.pretty(r.label, inner, col + 1);
    for (const f of fields) out += '\n' + ' '.repeat(inner) + this.pretty(f, inner, inner);
    return out + '>';
  }
}

/** Writes v as Preserves text (see TextWriteOptions). */
export function stringify(v: Value, opts?: TextWriteOptions): string {
  const w = new Writer(opts);
  const bounded = opts?.maxLength !== undefined || opts?.maxDepth !== undefined;
  if (w.step > 0) {
    if (bounded) throw new TypeError('stringify: maxLength and maxDepth need compact output');
    return w.pretty(v, 0, 0);
  }
  if (!bounded) {
    w.compact(v);
    return w.text();
  }
  w.limit = opts.maxLength ?? Infinity;
  w.maxDepth = opts.maxDepth ?? Infinity;
  if (w.compact(v)) return w.text();
  if (opts.ellipsis !== undefined) return w.text().slice(0, w.limit) + opts.ellipsis;
  throw w.tooDeep
    ? new PreservesWriteLimitError('depth', w.maxDepth)
    : new PreservesWriteLimitError('length', w.limit);
}
