// Equality that also compares annotations (positions ignored), for tests of
// readers and codecs that must keep annotations (conformance expectations 3, 4, 6).

import {
  Annotated,
  Dict,
  Embedded,
  PSet,
  Record,
  is,
  isValue,
  type Value,
} from '../../src/preserves/index.ts';

export function same(a: Value, b: Value): boolean {
  const aa = a instanceof Annotated ? a.annotations : [];
  const ba = b instanceof Annotated ? b.annotations : [];
  if (aa.length !== ba.length || !aa.every((x, i) => same(x, ba[i]!))) return false;
  const x = a instanceof Annotated ? a.item : a;
  const y = b instanceof Annotated ? b.item : b;
  if (Array.isArray(x)) {
    const xs = x as readonly Value[];
    if (!Array.isArray(y)) return false;
    const ys = y as readonly Value[];
    return xs.length === ys.length && xs.every((v, i) => same(v, ys[i]!));
  }
  if (x instanceof Record) {
    return (
      y instanceof Record &&
      x.fields.length === y.fields.length &&
      same(x.label, y.label) &&
      x.fields.every((v, i) => same(v, y.fields[i]!))
    );
  }
  if (x instanceof PSet) {
    if (!(y instanceof PSet) || x.size !== y.size) return false;
    const ys = [...y];
    return [...x].every((v) => ys.some((w) => same(v, w)));
  }
  if (x instanceof Dict) {
    if (!(y instanceof Dict) || x.size !== y.size) return false;
    const ys = [...y];
    return [...x].every(([k, v]) => ys.some(([l, w]) => same(k, l) && same(v, w)));
  }
  if (x instanceof Embedded && y instanceof Embedded && isValue(x.value) && isValue(y.value)) {
    return same(x.value, y.value);
  }
  return is(x, y);
}
