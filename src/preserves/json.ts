// A lossless mapping between Preserves values and JSON (for `--json` output and input),
// specified in docs/json-mapping.md. Invariant: for every annotation-free value v,
// fromJSON(JSON.parse(JSON.stringify(toJSON(v)))) is equal to v. Kinds JSON lacks become
// objects with exactly one key starting with "@"; annotations are dropped.

import { UserError } from '../base/errors.ts';
import { sortedEntries, sortedValues } from './compare.ts';
import { DEFAULT_MAX_DEPTH } from './errors.ts';
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
  peel,
  sym,
  type Value,
} from './values.ts';

/** JSON input that does not follow the mapping; `path` says where (JSONPath-like, `$…`). */
export class JsonMappingError extends UserError {
  readonly code = 'LIMEN_JSON_MAPPING';
  readonly path: string;
  readonly detail: string;
  constructor(detail: string, path: string) {
    super(`${path}: ${detail}`);
    this.path = path;
    this.detail = detail;
  }
}

/** Text handed to fromJSONText that is not JSON at all. */
export class JsonSyntaxError extends UserError {
  readonly code = 'LIMEN_JSON_SYNTAX';
}

const DEFAULT_NAN = 0x7ff8000000000000n;

function doubleToJSON(d: Double): number | string {
  const x = d.value;
  if (Number.isNaN(x)) {
    const bits = d.bits();
    return bits === DEFAULT_NAN ? 'NaN' : `#xd"${bits.toString(16).padStart(16, '0')}"`;
  }
  if (x === Infinity) return 'Infinity';
  if (x === -Infinity) return '-Infinity';
  if (Object.is(x, -0)) return '-0.0';
  return x;
}

function base64(b: Bytes): string {
  return Buffer.from(b.bytes.buffer, b.bytes.byteOffset, b.bytes.byteLength).toString('base64');
}

/** True when a dictionary can be written as a plain JSON object without ambiguity. */
function isPlainObjectDict(d: Dict): boolean {
  for (const k of d.keys()) if (!(peel(k) instanceof Sym)) return false;
  if (d.size === 1) {
    // A lone "@…" key would read back as a tag.
    const [k] = d.keys();
    if ((peel(k!) as Sym).name.startsWith('@')) return false;
  }
  return true;
}

/** The JSON form of a value (a plain JS value that JSON.stringify accepts). */
export function toJSON(v: Value): unknown {
  switch (typeof v) {
    case 'boolean':
    case 'string':
      return v;
    case 'number':
      if (Number.isSafeInteger(v)) return v;
      if (Number.isInteger(v)) return { '@int': BigInt(v).toString() };
      throw new TypeError(`not a Preserves value: ${v} (non-integers are Doubles)`);
    case 'bigint':
      return v >= -9007199254740991n && v <= 9007199254740991n
        ? Number(v)
        : { '@int': v.toString() };
    default:
      break;
  }
  if (Array.isArray(v)) return v.map((x: Value) => toJSON(x));
  if (v instanceof Annotated) return toJSON(v.item);
  if (v instanceof Sym) return v.name === 'null' ? null : { '@sym': v.name };
  if (v instanceof Record) return { '@rec': [toJSON(v.label), ...v.fields.map((x) => toJSON(x))] };
  if (v instanceof Dict) {
    const entries = sortedEntries(v);
    if (isPlainObjectDict(v)) {
      // fromEntries defines own properties, so a "__proto__" key stays an ordinary key.
      return Object.fromEntries(entries.map(([k, x]) => [(peel(k) as Sym).name, toJSON(x)]));
    }
    return { '@dict': entries.map(([k, x]) => [toJSON(k), toJSON(x)]) };
  }
  if (v instanceof Double) return { '@double': doubleToJSON(v) };
  if (v instanceof Bytes) return { '@bytes': base64(v) };
  if (v instanceof PSet) return { '@set': sortedValues(v).map((x) => toJSON(x)) };
  if (v instanceof Embedded) {
    const x = v.value;
    return { '@embedded': isValue(x) ? toJSON(x) : String(x) };
  }
  throw new TypeError(`not a Preserves value: ${describeNonValue(v)}`);
}

/** JSON text for a value; `indent` as for JSON.stringify. */
export function toJSONText(v: Value, indent?: number | string): string {
  return JSON.stringify(toJSON(v), null, indent);
}

// ---- From JSON ---------------------------------------------------------------------------

const IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

function keyPath(path: string, key: string): string {
  return IDENT.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;
}

function describe(j: unknown): string {
  if (j === null) return 'null';
  if (Array.isArray(j)) return 'an array';
  if (typeof j === 'object') return 'an object';
  return `a ${typeof j}`;
}

const TAGS = ['@int', '@double', '@sym', '@rec', '@set', '@bytes', '@embedded', '@dict'];

const DOUBLE_WORDS: { readonly [k: string]: number } = {
  Infinity: Infinity,
  '-Infinity': -Infinity,
  '-0.0': -0,
  NaN: NaN,
};

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const HEX_DOUBLE = /^#xd"([0-9a-fA-F]{16})"$/;
const DECIMAL = /^[+-]?[0-9]+$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

class Reader {
  readonly maxDepth: number;
  constructor(maxDepth: number) {
    this.maxDepth = maxDepth;
  }

  value(j: unknown, path: string, depth: number): Value {
    if (depth > this.maxDepth) {
      throw new JsonMappingError(`nested more than ${this.maxDepth} deep`, path);
    }
    switch (typeof j) {
      case 'boolean':
        return j;
      case 'string':
        return this.text(j, path);
      case 'number':
        if (!Number.isInteger(j)) return new Double(j);
        if (!Number.isSafeInteger(j)) {
          throw new JsonMappingError(
            `the integer ${j} is outside the safe range and may have been rounded; write {"@int": "<decimal digits>"}`,
            path,
          );
        }
        return j === 0 ? 0 : j; // -0 is the integer 0
      case 'object':
        break;
      default:
        throw new JsonMappingError(`${describe(j)} is not a JSON value`, path);
    }
    if (j === null) return sym('null');
    if (Array.isArray(j)) return this.array(j, path, depth);
    const proto: unknown = Object.getPrototypeOf(j);
    if (proto !== Object.prototype && proto !== null) {
      throw new JsonMappingError('not a JSON value (an object that is not a plain object)', path);
    }
    const obj = j as { readonly [k: string]: unknown };
    const keys = Object.keys(obj);
    if (keys.length === 1 && keys[0]!.startsWith('@')) {
      const tag = keys[0]!;
      return this.tagged(tag, obj[tag], keyPath(path, tag), depth);
    }
    const d = new Dict();
    for (const k of keys) {
      const at = keyPath(path, k);
      d.set(sym(this.text(k, at)), this.value(obj[k], at, depth + 1));
    }
    return d;
  }

  /** JSON escapes can spell lone surrogates, which are not Unicode text. */
  text(s: string, path: string): string {
    if (LONE_SURROGATE.test(s)) {
      throw new JsonMappingError('string contains a lone UTF-16 surrogate (\\uD800-\\uDFFF)', path);
    }
    return s;
  }

  array(a: readonly unknown[], path: string, depth: number): Value[] {
    return a.map((x, i) => this.value(x, `${path}[${i}]`, depth + 1));
  }

  tagged(tag: string, x: unknown, path: string, depth: number): Value {
    switch (tag) {
      case '@int':
        if (typeof x === 'string' && DECIMAL.test(x)) return int(BigInt(x));
        if (typeof x === 'number' && Number.isSafeInteger(x)) return x === 0 ? 0 : x;
        throw new JsonMappingError(`expected a string of decimal digits, got ${describe(x)}`, path);
      case '@double':
        return this.double(x, path);
      case '@sym':
        if (typeof x === 'string') return sym(this.text(x, path));
        throw new JsonMappingError(
          `expected the symbol's name as a string, got ${describe(x)}`,
          path,
        );
      case '@rec': {
        if (!Array.isArray(x) || x.length === 0) {
          throw new JsonMappingError(`expected an array [label, field…], got ${describe(x)}`, path);
        }
        const [label, ...fields] = this.array(x, path, depth);
        return new Record(label!, fields);
      }
      case '@set': {
        if (!Array.isArray(x)) {
          throw new JsonMappingError(`expected an array of elements, got ${describe(x)}`, path);
        }
        const s = new PSet();
        x.forEach((e, i) => {
          const before = s.size;
          s.add(this.value(e, `${path}[${i}]`, depth + 1));
          if (s.size === before)
            throw new JsonMappingError('duplicate set element', `${path}[${i}]`);
        });
        return s;
      }
      case '@bytes':
        if (typeof x === 'string' && BASE64.test(x) && x.length % 4 !== 1) {
          const padded = x.includes('=');
          if (!padded || x.length % 4 === 0)
            return new Bytes(new Uint8Array(Buffer.from(x, 'base64')));
        }
        throw new JsonMappingError('expected a base64 string (RFC 4648, "+/" alphabet)', path);
      case '@embedded':
        return new Embedded(this.value(x, path, depth + 1));
      case '@dict': {
        if (!Array.isArray(x)) {
          throw new JsonMappingError(
            `expected an array of [key, value] pairs, got ${describe(x)}`,
            path,
          );
        }
        const d = new Dict();
        x.forEach((e, i) => {
          const at = `${path}[${i}]`;
          if (!Array.isArray(e) || e.length !== 2) {
            throw new JsonMappingError(`expected a [key, value] pair, got ${describe(e)}`, at);
          }
          const before = d.size;
          d.set(this.value(e[0], `${at}[0]`, depth + 1), this.value(e[1], `${at}[1]`, depth + 1));
          if (d.size === before) throw new JsonMappingError('duplicate dictionary key', `${at}[0]`);
        });
        return d;
      }
      default:
        throw new JsonMappingError(
          `unknown tag ${JSON.stringify(tag)} (known: ${TAGS.join(' ')}); a dictionary whose only key starts with "@" is written {"@dict": [[key, value]]}`,
          path,
        );
    }
  }

  double(x: unknown, path: string): Double {
    if (typeof x === 'number') return new Double(x);
    if (typeof x === 'string') {
      if (Object.hasOwn(DOUBLE_WORDS, x)) return new Double(DOUBLE_WORDS[x]!);
      const m = HEX_DOUBLE.exec(x);
      if (m) return Double.fromBits(BigInt(`0x${m[1]!}`));
    }
    throw new JsonMappingError(
      'expected a number, "Infinity", "-Infinity", "-0.0", "NaN" or #xd"<16 hex digits>"',
      path,
    );
  }
}

export interface FromJSONOptions {
  maxDepth?: number;
}

/** The value a JSON value stands for (the inverse of toJSON). */
export function fromJSON(j: unknown, opts?: FromJSONOptions): Value {
  return new Reader(opts?.maxDepth ?? DEFAULT_MAX_DEPTH).value(j, '$', 0);
}

/** Parses JSON text and maps it to a value. */
export function fromJSONText(s: string, opts?: FromJSONOptions): Value {
  let j: unknown;
  try {
    j = JSON.parse(s);
  } catch (e) {
    throw new JsonSyntaxError(`invalid JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  return fromJSON(j, opts);
}

function describeNonValue(x: unknown): string {
  if (typeof x !== 'object' || x === null) return `${typeof x} ${String(x)}`;
  const name = (x as { constructor?: { name?: unknown } }).constructor?.name;
  return `an object of class ${typeof name === 'string' ? name : '?'}`;
}
