// Reading and printing Preserves values in their JSON mapping (docs/json-mapping.md).
// The page never converts to real Preserves values: it reads the JSON shapes where it
// needs a field, and prints any value in Preserves text for display. Readers return
// undefined for a value of another shape, so a view shows what it can of an odd one.

/** Any JSON value, as `JSON.parse` gives it. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export type JsonObject = { [key: string]: Json };

export function sym(name: string): Json {
  return { '@sym': name };
}

export function rec(label: string, ...fields: Json[]): Json {
  return { '@rec': [sym(label), ...fields] };
}

export function bytes(base64: string): Json {
  return { '@bytes': base64 };
}

function isObject(v: Json | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The single `@tag` key of a tagged object, or undefined for a plain dictionary. */
function tagOf(v: JsonObject): string | undefined {
  const keys = Object.keys(v);
  return keys.length === 1 && keys[0]!.startsWith('@') ? keys[0] : undefined;
}

/** The symbol's name, or undefined when v is not a symbol (`null` is the symbol null). */
export function symName(v: Json | undefined): string | undefined {
  if (v === null) return 'null';
  if (!isObject(v) || tagOf(v) !== '@sym') return undefined;
  const name = v['@sym'];
  return typeof name === 'string' ? name : undefined;
}

/** The record's label (a symbol's name) and fields, or undefined for anything else. */
export function asRecord(v: Json | undefined): { label: string; fields: Json[] } | undefined {
  if (!isObject(v) || tagOf(v) !== '@rec') return undefined;
  const parts = v['@rec'];
  if (!Array.isArray(parts) || parts.length === 0) return undefined;
  const label = symName(parts[0]);
  return label === undefined ? undefined : { label, fields: parts.slice(1) };
}

/** The fields of a record labelled `label`, or undefined. */
export function fieldsOf(v: Json | undefined, label: string): Json[] | undefined {
  const r = asRecord(v);
  return r?.label === label ? r.fields : undefined;
}

/** A symbol-keyed dictionary as a plain object, or undefined. */
export function asDict(v: Json | undefined): JsonObject | undefined {
  return isObject(v) && tagOf(v) === undefined ? v : undefined;
}

export function dictField(v: Json | undefined, key: string): Json | undefined {
  return asDict(v)?.[key];
}

export function asString(v: Json | undefined): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

export function asNumber(v: Json | undefined): number | undefined {
  if (typeof v === 'number') return v;
  if (isObject(v) && tagOf(v) === '@double' && typeof v['@double'] === 'number') {
    return v['@double'];
  }
  return undefined;
}

export function asArray(v: Json | undefined): Json[] | undefined {
  return Array.isArray(v) ? v : undefined;
}

/** The key a live store files a value under: equal values give equal keys. */
export function keyOf(v: Json): string {
  return JSON.stringify(v);
}

const bareSymbol = /^[a-zA-Z~!$%^&*?_=+/.|<>-][a-zA-Z0-9~!$%^&*?_=+/.|<>:-]*$/;

const controlEscapes: Readonly<Record<string, string>> = {
  '\b': '\\b',
  '\t': '\\t',
  '\n': '\\n',
  '\f': '\\f',
  '\r': '\\r',
};

function printString(s: string, quote: '"' | "'"): string {
  let out = quote;
  for (const ch of s) {
    if (ch === quote || ch === '\\') out += '\\' + ch;
    else if (ch < ' ' || ch === '\x7f') {
      out += controlEscapes[ch] ?? '\\u' + ch.charCodeAt(0).toString(16).padStart(4, '0');
    } else out += ch;
  }
  return out + quote;
}

function printSymbol(name: string): string {
  return bareSymbol.test(name) && !/^[-+]?[0-9]/.test(name) ? name : printString(name, "'");
}

/** As the daemon's writer: text as `#"…"`, short binary as hex, long as base64. */
function printBytes(base64: string): string {
  const data = bytesFromBase64(base64);
  if (data.every((x) => (x >= 32 && x <= 126) || x === 9 || x === 10 || x === 13)) {
    return '#' + printString(String.fromCharCode(...data), '"');
  }
  if (data.length <= 64) {
    return '#x"' + [...data].map((x) => x.toString(16).padStart(2, '0')).join('') + '"';
  }
  return `#[${base64}]`;
}

/** The value in Preserves text, on one line: `<daemon ntpd>`, `{pids: [812] restarts: 0}`. */
export function printValue(v: Json): string {
  if (v === null) return 'null';
  if (v === true) return '#t';
  if (v === false) return '#f';
  if (typeof v === 'number') return String(v);
  if (typeof v === 'string') return printString(v, '"');
  if (Array.isArray(v)) return '[' + v.map(printValue).join(' ') + ']';
  const tag = tagOf(v);
  const inner = tag === undefined ? undefined : v[tag];
  switch (tag) {
    case undefined:
      return (
        '{' +
        Object.entries(v)
          .map(([k, x]) => `${printSymbol(k)}: ${printValue(x)}`)
          .join(' ') +
        '}'
      );
    case '@sym':
      return typeof inner === 'string' ? printSymbol(inner) : '?';
    case '@rec':
      return Array.isArray(inner) ? '<' + inner.map(printValue).join(' ') + '>' : '?';
    case '@int':
      return typeof inner === 'string' || typeof inner === 'number' ? String(inner) : '?';
    case '@double':
      if (typeof inner === 'number') return Number.isInteger(inner) ? `${inner}.0` : String(inner);
      return typeof inner === 'string' ? inner : '?';
    case '@bytes':
      return typeof inner === 'string' ? printBytes(inner) : '?';
    case '@set':
      return Array.isArray(inner) ? '#{' + inner.map(printValue).join(' ') + '}' : '?';
    case '@dict':
      return Array.isArray(inner)
        ? '{' +
            inner
              .map((pair) =>
                Array.isArray(pair) && pair.length === 2
                  ? `${printValue(pair[0]!)}: ${printValue(pair[1]!)}`
                  : '?',
              )
              .join(' ') +
            '}'
        : '?';
    case '@embedded':
      return '#:' + printValue(inner ?? null);
    default:
      return '?';
  }
}

/** A value for display: strings without quotes, everything else as Preserves text. */
export function show(v: Json | undefined): string {
  if (v === undefined) return '';
  return typeof v === 'string' ? v : printValue(v);
}

/** Text → `{"@bytes": base64}`, as UTF-8. */
export function textToBytes(text: string): Json {
  return bytes(base64FromBytes(new TextEncoder().encode(text)));
}

/** `{"@bytes": base64}` → text (UTF-8, bad sequences replaced), or undefined. */
export function bytesToText(v: Json | undefined): string | undefined {
  if (!isObject(v) || tagOf(v) !== '@bytes' || typeof v['@bytes'] !== 'string') return undefined;
  return new TextDecoder().decode(bytesFromBase64(v['@bytes']));
}

export function base64FromBytes(data: Uint8Array): string {
  let binary = '';
  // In chunks: String.fromCharCode(...big) overflows the stack.
  for (let i = 0; i < data.length; i += 0x8000) {
    binary += String.fromCharCode(...data.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

export function bytesFromBase64(base64: string): Uint8Array {
  const binary = atob(base64);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

/**
 * A dictionary's entries whatever its keys: a plain object's keys are symbols' names,
 * `{"@dict": [[K, V]…]}` holds any keys (strings, as in `try`'s `files`).
 */
export function dictEntries(v: Json | undefined): [Json, Json][] {
  if (!isObject(v)) return [];
  if (tagOf(v) === undefined) return Object.entries(v).map(([k, x]) => [sym(k), x]);
  if (tagOf(v) !== '@dict') return [];
  return (asArray(v['@dict']) ?? []).flatMap((pair) =>
    Array.isArray(pair) && pair.length === 2 ? [[pair[0]!, pair[1]!] as [Json, Json]] : [],
  );
}

/** A dictionary with string keys, in the mapping's general form, sorted as Preserves sorts strings. */
export function stringKeyedDict(entries: Iterable<[string, Json]>): Json {
  const sorted = [...entries].sort(([a], [b]) => compareUtf8(a, b));
  return { '@dict': sorted.map(([k, x]) => [k, x]) };
}

function compareUtf8(a: string, b: string): number {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] !== y[i]) return x[i]! - y[i]!;
  }
  return x.length - y.length;
}

/** The base64 text of `{"@bytes": base64}`, or undefined. */
export function bytesBase64(v: Json | undefined): string | undefined {
  if (!isObject(v) || tagOf(v) !== '@bytes') return undefined;
  return typeof v['@bytes'] === 'string' ? v['@bytes'] : undefined;
}
