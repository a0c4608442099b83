// Reads the Preserves text syntax (preserves.dev/preserves-text.html) into Values.
// Invariants: line:column (1-based; columns count code points) is computed lazily from
// offsets, and without `annotations` or `positions` no Annotated wrapper is allocated.
// Every failure is a PreservesReadError subclass located as file:line:col.
//
// Choices the specification leaves open (tests pin them down):
// - an annotated value's position is its item's, after any `@ann` and comments;
// - `# text` becomes the string annotation "text" (one space or tab after '#' dropped) and
//   `#!text` becomes <interpreter "text">; comments just before a closing bracket or the end
//   of input annotate nothing and are dropped;
// - strings and quoted symbols accept the same escapes (\" \' \| included) and raw newlines;
// - parse("") is PreservesEofError, parse("  ") PreservesShortError (the conformance suite's
//   whitespace0/whitespace1); TextReader.next() simply returns undefined at the end.

import './compare.ts'; // registers hashing and equality, which the sets and dictionaries built here need
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
  type Sym,
  int,
  sym,
  type Position,
  type Value,
} from './values.ts';

export interface TextReadOptions {
  /** File name used in positions and errors. */
  source?: string;
  /** Keep annotations and comments (default false: they are dropped). */
  annotations?: boolean;
  /** Wrap every value, atoms too, in an Annotated carrying its position; implies `annotations`. */
  positions?: boolean;
  /** Deeper nesting raises PreservesTooDeepError (default DEFAULT_MAX_DEPTH). */
  maxDepth?: number;
  /** Maps the payload of `#:v` to what the Embedded holds; default: the payload Value itself. */
  embedded?: (v: Value) => unknown;
}

// ---- Character classes ---------------------------------------------------------------------

const SYM = 1; // may appear in a bare symbol or number
const WS = 2; // whitespace: space, tab, CR, LF
const DELIM = 4; // may follow a bare symbol, number or #t/#f

const asciiClass = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  const ch = String.fromCharCode(c);
  if (/[A-Za-z0-9]/.test(ch) || '~!$%^&*?_=+-/.'.includes(ch)) asciiClass[c] = SYM;
}
for (const c of [9, 10, 13, 32]) asciiClass[c] = WS | DELIM;
for (const ch of '<>[]{}#:"\'|@;,') asciiClass[ch.charCodeAt(0)] = DELIM;

// The spec admits code points above 127 in bare symbols when they are letters, marks,
// numbers, connector/dash/other punctuation, symbols or private use; separators, controls,
// brackets and quotation marks stay out so that they can never be mistaken for syntax.
const unicodeSymbolChar = /^[\p{L}\p{M}\p{Nd}\p{Nl}\p{No}\p{Pc}\p{Pd}\p{Po}\p{S}\p{Co}]$/u;

/** Code units taken by the symbol character at s[i] (a code point above 127), or 0 if it is not one. */
function unicodeSymbolWidth(s: string, i: number): number {
  const cp = s.codePointAt(i)!;
  if (!unicodeSymbolChar.test(String.fromCodePoint(cp))) return 0;
  return cp > 0xffff ? 2 : 1;
}

const NOT_NUMBER = 0;
const INTEGER = 1;
const DOUBLE = 2;

/** Classifies s[start, end) by the JSON number grammar, extended with a leading '+'. */
function numberKind(s: string, start: number, end: number): number {
  let p = start;
  let c = s.charCodeAt(p);
  if (c === 43 || c === 45) c = s.charCodeAt(++p);
  const d0 = p;
  while (p < end && c >= 48 && c <= 57) c = s.charCodeAt(++p);
  if (p === d0) return NOT_NUMBER;
  if (p === end) return INTEGER;
  if (c === 46) {
    c = s.charCodeAt(++p);
    const f0 = p;
    while (p < end && c >= 48 && c <= 57) c = s.charCodeAt(++p);
    if (p === f0) return NOT_NUMBER;
  }
  if (p < end && (c === 101 || c === 69)) {
    c = s.charCodeAt(++p);
    if (c === 43 || c === 45) c = s.charCodeAt(++p);
    const e0 = p;
    while (p < end && c >= 48 && c <= 57) c = s.charCodeAt(++p);
    if (p === e0) return NOT_NUMBER;
  }
  return p === end ? DOUBLE : NOT_NUMBER;
}

/** True when `name` can be written as a bare symbol: it is non-empty, made only of symbol
 *  characters, and does not read as a number. The text writer quotes every other symbol. */
export function isBareSymbol(name: string): boolean {
  const n = name.length;
  if (n === 0) return false;
  for (let i = 0; i < n;) {
    const c = name.charCodeAt(i);
    if (c < 128) {
      if ((asciiClass[c]! & SYM) === 0) return false;
      i++;
    } else {
      const w = unicodeSymbolWidth(name, i);
      if (w === 0) return false;
      i += w;
    }
  }
  return numberKind(name, 0, n) === NOT_NUMBER;
}

function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

function base64Digit(c: number): number {
  if (c >= 65 && c <= 90) return c - 65;
  if (c >= 97 && c <= 122) return c - 71;
  if (c >= 48 && c <= 57) return c + 4;
  if (c === 43 || c === 45) return 62; // '+' and the URL-safe '-'
  if (c === 47 || c === 95) return 63; // '/' and the URL-safe '_'
  return -1;
}

function isCloser(c: number): boolean {
  return c === 93 || c === 125 || c === 62;
}

// readValue's `closer` argument: the closing bracket of the enclosing collection, or one of these.
const TOP = -1; // top level: end of input (after only whitespace and comments) ends the stream
const REQUIRED = -2; // a value must follow (after ':', '#:' or '@')

// Record labels and enum-like fields repeat endlessly, so recently read symbols are kept in a
// small direct-mapped cache and compared in place, which saves slicing a string for each.
// Sharing it between readers is safe: symbols are immutable.
const SYMBOL_CACHE_SIZE = 512;
const symbolCache: (Sym | undefined)[] = new Array<Sym | undefined>(SYMBOL_CACHE_SIZE).fill(
  undefined,
);
const NO_ANNOTATIONS: readonly Value[] = Object.freeze([]);
const INTERPRETER = sym('interpreter');

const closerNames: { readonly [c: number]: string } = { 93: 'sequence', 125: 'set', 62: 'record' };

/** The reader proper. TextReader wraps it so that parse() can reach what the public class hides. */
class Parser {
  readonly s: string;
  readonly n: number;
  i = 0;
  depth = 0;
  /** Offset of the item most recently read by readValue (after its annotations). */
  lastStart = 0;
  readonly source: string | undefined;
  readonly keep: boolean;
  readonly positions: boolean;
  readonly maxDepth: number;
  readonly embed: ((v: Value) => unknown) | undefined;
  // Memo for posAt(): positions are mostly asked for in increasing order.
  pcOffset = 0;
  pcLine = 1;
  pcColumn = 1;

  constructor(text: string, opts: TextReadOptions | undefined) {
    this.s = text;
    this.n = text.length;
    this.source = opts?.source;
    this.positions = opts?.positions === true;
    this.keep = this.positions || opts?.annotations === true;
    this.maxDepth = opts?.maxDepth ?? DEFAULT_MAX_DEPTH;
    this.embed = opts?.embedded;
    if (text.charCodeAt(0) === 0xfeff) {
      // A byte-order mark is not part of the text and does not count as a column.
      this.i = 1;
      this.pcOffset = 1;
    }
  }

  // ---- Positions and errors ----------------------------------------------------------------

  posAt(offset: number): Position {
    const s = this.s;
    let i = this.pcOffset;
    let line = this.pcLine;
    let column = this.pcColumn;
    if (offset < i) {
      i = s.charCodeAt(0) === 0xfeff ? 1 : 0;
      line = 1;
      column = 1;
    }
    for (; i < offset; i++) {
      const c = s.charCodeAt(i);
      if (c === 10) {
        line++;
        column = 1;
      } else if (c === 13) {
        // CR LF is one line break, counted at the LF.
        if (s.charCodeAt(i + 1) !== 10) {
          line++;
          column = 1;
        }
      } else if (c < 0xdc00 || c > 0xdfff || i === 0 || (s.charCodeAt(i - 1) & 0xfc00) !== 0xd800) {
        column++; // the low half of a surrogate pair does not start a code point
      }
    }
    this.pcOffset = i;
    this.pcLine = line;
    this.pcColumn = column;
    return { source: this.source, line, column, offset };
  }

  where(offset: number): string {
    const p = this.posAt(offset);
    return `${p.line}:${p.column}`;
  }

  describe(at: number): string {
    if (at >= this.n) return 'end of input';
    const cp = this.s.codePointAt(at)!;
    if (cp < 32 || cp === 127) return `U+${cp.toString(16).toUpperCase().padStart(4, '0')}`;
    return `'${String.fromCodePoint(cp)}'`;
  }

  syntax(detail: string, at: number): PreservesSyntaxError {
    return new PreservesSyntaxError(detail, this.posAt(at));
  }

  short(detail: string, at: number): PreservesShortError {
    return new PreservesShortError(detail, this.posAt(at));
  }

  /** Short if the input ended at `at`, else a syntax error saying what was found. */
  unexpected(expected: string, at: number): PreservesSyntaxError | PreservesShortError {
    if (at >= this.n) return this.short(`${expected}, found end of input`, at);
    return this.syntax(`${expected}, found ${this.describe(at)}`, at);
  }

  unterminated(what: string, start: number): PreservesShortError {
    return this.short(`unterminated ${what} opened at ${this.where(start)}`, this.n);
  }

  enter(at: number): void {
    if (++this.depth > this.maxDepth) {
      throw new PreservesTooDeepError(
        `nesting deeper than ${this.maxDepth} levels`,
        this.posAt(at),
      );
    }
  }

  // ---- Values --------------------------------------------------------------------------------

  /**
   * Reads one value with its annotations, from this.i. Returns undefined, having consumed
   * only whitespace and comments, when it meets `closer` (or any closing bracket, which the
   * caller then reports), or end of input at the top level. Comments met before a closer or
   * the end of input annotate nothing and are dropped.
   */
  readValue(closer: number, commas: boolean): Value | undefined {
    const s = this.s;
    const n = this.n;
    let i = this.i;
    let anns: Value[] | undefined;
    let at = -1; // offset of the first '@', which commits us to reading a value
    for (;;) {
      let c = s.charCodeAt(i);
      while (c === 32 || c === 10 || c === 13 || c === 9) c = s.charCodeAt(++i);
      if (c === 64) {
        if (at < 0) at = i;
        this.i = i + 1;
        this.enter(i);
        const a = this.readValue(REQUIRED, false)!;
        this.depth--;
        if (this.keep) (anns ??= []).push(a);
        i = this.i;
        continue;
      }
      if (c === 35) {
        const d = s.charCodeAt(i + 1);
        if (d === 32 || d === 9 || d === 10 || d === 13 || i + 1 >= n) {
          // `# text` to the end of the line: a string annotation on the next value.
          const start = d === 32 || d === 9 ? i + 2 : i + 1;
          let j = start;
          while (j < n && (c = s.charCodeAt(j)) !== 10 && c !== 13) j++;
          if (this.keep) (anns ??= []).push(this.wrapAt(s.slice(start, j), i));
          i = j;
          continue;
        }
        if (d === 33) {
          // `#!...` (a script's interpreter line) is the annotation <interpreter "...">.
          let j = i + 2;
          while (j < n && (c = s.charCodeAt(j)) !== 10 && c !== 13) j++;
          if (this.keep) {
            const pos = this.positions ? this.posAt(i) : undefined; // before the inner offset
            const r = new Record(INTERPRETER, [this.wrapAt(s.slice(i + 2, j), i + 2)]);
            (anns ??= []).push(pos === undefined ? r : new Annotated(r, NO_ANNOTATIONS, pos));
          }
          i = j;
          continue;
        }
      }
      if (c === 44 && commas && at < 0) {
        i++;
        continue;
      }
      break;
    }
    this.i = i;
    if (i >= n) {
      if (at >= 0) throw this.short(`expected the value annotated at ${this.where(at)}`, i);
      if (closer === REQUIRED) throw this.short('expected a value, found end of input', i);
      return undefined;
    }
    const c = s.charCodeAt(i);
    if (closer >= 0 && isCloser(c)) {
      if (at < 0) return undefined;
      throw this.syntax(
        `expected the value annotated at ${this.where(at)}, found ${this.describe(i)}`,
        i,
      );
    }
    // Taken before the item is read, so that posAt() is asked for offsets in increasing order.
    const pos = this.positions ? this.posAt(i) : undefined;
    const item = this.readItem(c, i);
    this.lastStart = i;
    if (pos !== undefined) return new Annotated(item, anns ?? NO_ANNOTATIONS, pos);
    if (anns !== undefined) return new Annotated(item, anns);
    return item;
  }

  /** A value made by the reader itself (a comment's text), with a position when positions are on. */
  wrapAt(v: Value, at: number): Value {
    return this.positions ? new Annotated(v, NO_ANNOTATIONS, this.posAt(at)) : v;
  }

  /** Reads the value (without annotations) that starts with code unit c at offset i. */
  readItem(c: number, i: number): Value {
    switch (c) {
      case 60:
        return this.readRecord(i);
      case 91:
        return this.readSequence(i);
      case 123:
        return this.readDictionary(i);
      case 34:
        return this.readString(i, 34, 'string');
      case 39:
        return sym(this.readString(i, 39, 'quoted symbol'));
      case 124:
        return sym(this.readString(i, 124, 'quoted symbol'));
      case 35:
        return this.readHash(i);
      case 44:
        throw this.syntax(
          "unexpected ',': commas may only separate the items of a sequence, set or dictionary",
          i,
        );
      case 93:
      case 125:
      case 62:
      case 58:
        throw this.syntax(`unexpected ${this.describe(i)}`, i);
      default:
        return this.readBare(i);
    }
  }

  /** Checks that the token s[start, at) is followed by a delimiter or the end of input. */
  delimited(start: number, at: number): void {
    if (at >= this.n) return;
    const c = this.s.charCodeAt(at);
    if (c < 128 && (asciiClass[c]! & DELIM) !== 0) return;
    throw this.syntax(
      `expected whitespace or a delimiter after '${this.s.slice(start, at)}', found ${this.describe(at)}`,
      at,
    );
  }

  readBare(start: number): Value {
    const s = this.s;
    const n = this.n;
    let i = start;
    let h = 0;
    while (i < n) {
      const c = s.charCodeAt(i);
      if (c < 128) {
        if ((asciiClass[c]! & SYM) === 0) break;
        h = Math.imul(h ^ c, 0x01000193);
        i++;
      } else {
        const w = unicodeSymbolWidth(s, i);
        if (w === 0) break;
        h = Math.imul(h ^ c, 0x01000193);
        i += w;
      }
    }
    if (i === start) throw this.syntax(`unexpected ${this.describe(i)}`, i);
    this.delimited(start, i);
    this.i = i;
    switch (numberKind(s, start, i)) {
      case INTEGER: {
        let p = start;
        const c0 = s.charCodeAt(p);
        const neg = c0 === 45;
        if (neg || c0 === 43) p++;
        if (i - p > 15) return int(BigInt(s.slice(start, i)));
        let v = 0;
        for (; p < i; p++) v = v * 10 + (s.charCodeAt(p) - 48);
        return neg ? 0 - v : v; // 0 - v keeps "-0" from becoming JS -0
      }
      case DOUBLE:
        return new Double(Number(s.slice(start, i)));
      default:
        return this.symbol(start, i, h);
    }
  }

  /** The symbol s[start, end), whose hash is h. */
  symbol(start: number, end: number, h: number): Sym {
    const slot = (h ^ (h >>> 16)) & (SYMBOL_CACHE_SIZE - 1);
    const hit = symbolCache[slot];
    const len = end - start;
    if (hit !== undefined && hit.name.length === len) {
      const name = hit.name;
      const s = this.s;
      let k = 0;
      while (k < len && name.charCodeAt(k) === s.charCodeAt(start + k)) k++;
      if (k === len) return hit;
    }
    const y = sym(this.s.slice(start, end));
    symbolCache[slot] = y;
    return y;
  }

  readHash(start: number): Value {
    const s = this.s;
    const c = s.charCodeAt(start + 1);
    switch (c) {
      case 116:
      case 102:
        this.delimited(start, start + 2);
        this.i = start + 2;
        return c === 116;
      case 123:
        return this.readSet(start);
      case 34:
        return this.readByteString(start);
      case 91:
        return this.readBase64(start);
      case 58: {
        this.i = start + 2;
        this.enter(start);
        const payload = this.readValue(REQUIRED, false)!;
        this.depth--;
        return new Embedded(this.embed === undefined ? payload : this.embed(payload));
      }
      case 120: {
        const d = s.charCodeAt(start + 2);
        if (d === 34) return new Bytes(this.readHex(start, start + 3));
        if (d === 100 && s.charCodeAt(start + 3) === 34) {
          const b = this.readHex(start, start + 4);
          if (b.length !== 8) {
            throw this.syntax(
              `a double written #xd"..." needs exactly 16 hex digits, found ${b.length * 2}`,
              start,
            );
          }
          let bits = 0n;
          for (const x of b) bits = (bits << 8n) | BigInt(x);
          return Double.fromBits(bits);
        }
        const ahead = d === 100 ? start + 3 : start + 2;
        throw this.unexpected(`expected #x"hex" or #xd"hex"`, ahead);
      }
      default:
        throw this.unexpected(
          "expected t, f, {, \", x, [, :, ! or whitespace after '#'",
          start + 1,
        );
    }
  }

  /** Closes the collection opened at `open` if this.i is at `closer`; otherwise reports why not. */
  close(closer: number, open: number): void {
    const i = this.i;
    if (this.s.charCodeAt(i) === closer) {
      this.i = i + 1;
      this.depth--;
      return;
    }
    const what = closerNames[closer] ?? 'collection';
    const ch = String.fromCharCode(closer);
    throw this.unexpected(`expected '${ch}' to close the ${what} opened at ${this.where(open)}`, i);
  }

  readSequence(start: number): Value[] {
    this.i = start + 1;
    this.enter(start);
    const items: Value[] = [];
    for (;;) {
      const v = this.readValue(93, true);
      if (v === undefined) break;
      items.push(v);
    }
    this.close(93, start);
    return items;
  }

  readSet(start: number): PSet {
    this.i = start + 2;
    this.enter(start);
    const set = new PSet();
    for (;;) {
      const v = this.readValue(125, true);
      if (v === undefined) break;
      const size = set.size;
      set.add(v);
      if (set.size === size) throw this.syntax('duplicate element in set', this.lastStart);
    }
    this.close(125, start);
    return set;
  }

  readDictionary(start: number): Dict {
    const s = this.s;
    this.i = start + 1;
    this.enter(start);
    const dict = new Dict();
    for (;;) {
      const k = this.readValue(125, true);
      if (k === undefined) break;
      const keyAt = this.lastStart;
      let i = this.i;
      let c = s.charCodeAt(i);
      while (c === 32 || c === 10 || c === 13 || c === 9) c = s.charCodeAt(++i);
      if (c !== 58) {
        throw this.unexpected(`expected ':' after the dictionary key at ${this.where(keyAt)}`, i);
      }
      this.i = i + 1;
      const v = this.readValue(REQUIRED, false)!;
      const size = dict.size;
      dict.set(k, v);
      if (dict.size === size) throw this.syntax('duplicate key in dictionary', keyAt);
    }
    const i = this.i;
    if (s.charCodeAt(i) === 125) {
      this.i = i + 1;
      this.depth--;
      return dict;
    }
    throw this.unexpected(`expected '}' to close the dictionary opened at ${this.where(start)}`, i);
  }

  readRecord(start: number): Record {
    this.i = start + 1;
    this.enter(start);
    const label = this.readValue(62, false);
    if (label === undefined) {
      if (this.s.charCodeAt(this.i) === 62) {
        throw this.syntax("a record needs a label: '<>' is not a value", start);
      }
      this.close(62, start); // throws: the record was closed by another bracket or not at all
    }
    const fields: Value[] = [];
    for (;;) {
      const v = this.readValue(62, false);
      if (v === undefined) break;
      fields.push(v);
    }
    this.close(62, start);
    return new Record(label!, fields);
  }

  /** Reads "..." (strings) and '...' or |...| (quoted symbols); returns the text. */
  readString(start: number, quote: number, what: string): string {
    const s = this.s;
    const n = this.n;
    let i = start + 1;
    let chunk = i;
    let out = '';
    for (;;) {
      if (i >= n) throw this.unterminated(what, start);
      const c = s.charCodeAt(i);
      if (c === quote) {
        this.i = i + 1;
        return chunk === start + 1 ? s.slice(chunk, i) : out + s.slice(chunk, i);
      }
      if (c === 92) {
        out += s.slice(chunk, i);
        out += this.readEscape(i, start, what);
        i = chunk = this.i;
      } else {
        i++;
      }
    }
  }

  /** Decodes the escape at s[i] === '\\' in a string or quoted symbol; sets this.i past it. */
  readEscape(i: number, start: number, what: string): string {
    const s = this.s;
    if (i + 1 >= this.n) throw this.unterminated(what, start);
    const e = s.charCodeAt(i + 1);
    this.i = i + 2;
    switch (e) {
      case 92:
      case 47:
      case 34:
      case 39:
      case 124:
        return String.fromCharCode(e);
      case 98:
        return '\b';
      case 102:
        return '\f';
      case 110:
        return '\n';
      case 114:
        return '\r';
      case 116:
        return '\t';
      case 117: {
        const u = this.hex4(i + 2, start, what);
        if (u >= 0xdc00 && u <= 0xdfff) {
          throw this.syntax(`unpaired surrogate \\u${s.slice(i + 2, i + 6)}`, i);
        }
        if (u < 0xd800 || u > 0xdbff) {
          this.i = i + 6;
          return String.fromCharCode(u);
        }
        // A high surrogate must be followed at once by an escaped low surrogate.
        for (const [k, want] of [
          [6, 92],
          [7, 117],
        ] as const) {
          if (i + k >= this.n) throw this.unterminated(what, start);
          if (s.charCodeAt(i + k) !== want) {
            throw this.syntax(`unpaired surrogate \\u${s.slice(i + 2, i + 6)}`, i);
          }
        }
        const lo = this.hex4(i + 8, start, what);
        if (lo < 0xdc00 || lo > 0xdfff) {
          throw this.syntax(`unpaired surrogate \\u${s.slice(i + 2, i + 6)}`, i);
        }
        this.i = i + 12;
        return String.fromCharCode(u, lo);
      }
      default:
        throw this.syntax(`unknown escape '\\${String.fromCharCode(e)}' in ${what}`, i);
    }
  }

  hex4(at: number, start: number, what: string): number {
    let v = 0;
    for (let k = 0; k < 4; k++) {
      if (at + k >= this.n) throw this.unterminated(what, start);
      const h = hexDigit(this.s.charCodeAt(at + k));
      if (h < 0) throw this.syntax('\\u must be followed by four hex digits', at - 2);
      v = (v << 4) | h;
    }
    return v;
  }

  readByteString(start: number): Bytes {
    const s = this.s;
    const n = this.n;
    const out: number[] = [];
    let i = start + 2;
    for (;;) {
      if (i >= n) throw this.unterminated('byte string', start);
      const c = s.charCodeAt(i);
      if (c === 34) break;
      if (c === 92) {
        if (i + 1 >= n) throw this.unterminated('byte string', start);
        const e = s.charCodeAt(i + 1);
        i += 2;
        switch (e) {
          case 92:
          case 47:
          case 34:
            out.push(e);
            break;
          case 98:
            out.push(8);
            break;
          case 102:
            out.push(12);
            break;
          case 110:
            out.push(10);
            break;
          case 114:
            out.push(13);
            break;
          case 116:
            out.push(9);
            break;
          case 120: {
            let b = 0;
            for (let k = 0; k < 2; k++) {
              if (i + k >= n) throw this.unterminated('byte string', start);
              const h = hexDigit(s.charCodeAt(i + k));
              if (h < 0) throw this.syntax('\\x must be followed by two hex digits', i - 2);
              b = (b << 4) | h;
            }
            out.push(b);
            i += 2;
            break;
          }
          default:
            throw this.syntax(
              `unknown escape '\\${String.fromCharCode(e)}' in byte string (only \\xHH and \\\\ \\/ \\" \\b \\f \\n \\r \\t)`,
              i - 2,
            );
        }
      } else if (c >= 32 && c < 127) {
        out.push(c);
        i++;
      } else {
        throw this.syntax(
          `byte strings hold only printable ASCII: write ${this.describe(i)} as \\xHH`,
          i,
        );
      }
    }
    this.i = i + 1;
    return new Bytes(Uint8Array.from(out));
  }

  /** Reads hex digit pairs, separated by optional whitespace, up to '"'; `i` is past the opening quote. */
  readHex(start: number, i: number): Uint8Array {
    const s = this.s;
    const n = this.n;
    const out: number[] = [];
    for (;;) {
      let c = s.charCodeAt(i);
      while (c === 32 || c === 10 || c === 13 || c === 9) c = s.charCodeAt(++i);
      if (i >= n) throw this.unterminated('hex byte string', start);
      if (c === 34) break;
      const h = hexDigit(c);
      if (h < 0) throw this.syntax(`expected a hex digit or '"', found ${this.describe(i)}`, i);
      if (i + 1 >= n) throw this.unterminated('hex byte string', start);
      const l = hexDigit(s.charCodeAt(i + 1));
      if (l < 0) {
        throw this.syntax(
          `hex bytes are pairs of digits: expected a second hex digit, found ${this.describe(i + 1)}`,
          i + 1,
        );
      }
      out.push((h << 4) | l);
      i += 2;
    }
    this.i = i + 1;
    return Uint8Array.from(out);
  }

  readBase64(start: number): Bytes {
    const s = this.s;
    const n = this.n;
    const out: number[] = [];
    let acc = 0;
    let bits = 0;
    let count = 0;
    let padded = false;
    let i = start + 2;
    for (; ; i++) {
      if (i >= n) throw this.unterminated('base64 byte string', start);
      const c = s.charCodeAt(i);
      if (c === 93) break;
      if (c === 32 || c === 10 || c === 13 || c === 9) continue;
      if (c === 61) {
        padded = true;
        continue;
      }
      const d = base64Digit(c);
      if (d < 0 || padded) {
        throw this.syntax(
          d < 0
            ? `invalid base64 character ${this.describe(i)}`
            : "base64 padding '=' may only end the data",
          i,
        );
      }
      acc = ((acc << 6) | d) & 0xffffff;
      bits += 6;
      count++;
      if (bits >= 8) {
        bits -= 8;
        out.push((acc >> bits) & 0xff);
      }
    }
    if (count % 4 === 1) throw this.syntax('truncated base64 data', start);
    this.i = i + 1;
    return new Bytes(Uint8Array.from(out));
  }

  /** Skips whitespace and comments; true if nothing else remains. */
  atEnd(): boolean {
    const s = this.s;
    const n = this.n;
    let i = this.i;
    for (;;) {
      let c = s.charCodeAt(i);
      while (c === 32 || c === 10 || c === 13 || c === 9) c = s.charCodeAt(++i);
      if (c !== 35) break;
      const d = s.charCodeAt(i + 1);
      if (!(d === 32 || d === 9 || d === 10 || d === 13 || d === 33 || i + 1 >= n)) break;
      while (i < n && (c = s.charCodeAt(i)) !== 10 && c !== 13) i++;
    }
    this.i = i;
    return i >= n;
  }

  next(): Value | undefined {
    this.depth = 0;
    return this.readValue(TOP, false);
  }
}

/**
 * Reads a stream of values: next() returns each in turn and undefined at a clean end of input
 * (trailing whitespace and comments included). After an error the reader must not be reused.
 */
export class TextReader {
  readonly #p: Parser;
  constructor(text: string, opts?: TextReadOptions) {
    this.#p = new Parser(text, opts);
  }
  next(): Value | undefined {
    return this.#p.next();
  }
}

/**
 * Reads exactly one value; trailing whitespace and comments are allowed, anything else is a
 * syntax error. Empty input raises PreservesEofError; input with only whitespace and comments
 * raises PreservesShortError (as the conformance suite expects: the value never came).
 */
export function parse(text: string, opts?: TextReadOptions): Value {
  const p = new Parser(text, opts);
  if (p.i >= p.n) throw new PreservesEofError('expected a value, found end of input', p.posAt(p.i));
  const v = p.next();
  if (v === undefined) {
    throw p.short('expected a value, found only whitespace and comments', p.n);
  }
  if (!p.atEnd()) {
    throw p.syntax(`expected end of input after the value, found ${p.describe(p.i)}`, p.i);
  }
  return v;
}

/** Reads zero or more values (a script file). */
export function parseAll(text: string, opts?: TextReadOptions): Value[] {
  const p = new Parser(text, opts);
  const out: Value[] = [];
  for (let v = p.next(); v !== undefined; v = p.next()) out.push(v);
  return out;
}
