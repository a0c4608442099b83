// The daemon's pattern rules (src/dataspace/pattern.ts), applied in the page to values
// in the JSON mapping: `_` matches anything, `?x` captures, `<?x P>` captures while
// matching P, records and sequences match by prefix of fields, dictionaries when every
// listed key is present and matches; anything else is a literal, compared exactly.
// test/unit/web/page/pattern-match.test.ts checks it against the daemon's matcher.

import { asArray, asDict, asRecord, fieldsOf, keyOf, symName, type Json } from './values.ts';

/** The captures of `pattern` on `value`, or undefined when it does not match. */
export function match(pattern: Json, value: Json): Record<string, Json> | undefined {
  const captures: Record<string, Json> = {};
  return matchInto(pattern, value, captures) ? captures : undefined;
}

function matchInto(pattern: Json, value: Json, captures: Record<string, Json>): boolean {
  const name = symName(pattern);
  if (name === '_') return true;
  if (name !== undefined && name.startsWith('?') && name.length > 1) {
    captures[name.slice(1)] = value;
    return true;
  }
  const r = asRecord(pattern);
  if (r !== undefined && r.label.startsWith('?') && r.label.length > 1 && r.fields.length === 1) {
    if (!matchInto(r.fields[0]!, value, captures)) return false;
    captures[r.label.slice(1)] = value;
    return true;
  }
  if (r !== undefined) {
    const fields = fieldsOf(value, r.label);
    if (fields === undefined || fields.length < r.fields.length) return false;
    return r.fields.every((p, i) => matchInto(p, fields[i]!, captures));
  }
  const items = asArray(pattern);
  if (items !== undefined) {
    const values = asArray(value);
    if (values === undefined || values.length < items.length) return false;
    return items.every((p, i) => matchInto(p, values[i]!, captures));
  }
  const dict = asDict(pattern);
  if (dict !== undefined) {
    const values = asDict(value);
    if (values === undefined) return false;
    return Object.entries(dict).every(
      ([k, p]) => k in values && matchInto(p, values[k]!, captures),
    );
  }
  return keyOf(pattern) === keyOf(value);
}
