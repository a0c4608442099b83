// How live references look when a script's values are shown to people
// (`stringify`, `limen eval`, error messages): `#:<dataspace config>` instead of an
// opaque placeholder, so that output is readable and deterministic.

import {
  Dict,
  Embedded,
  PSet,
  Record,
  isValue,
  peel,
  record,
  stringify,
  sym,
  type Value,
} from '../preserves/index.ts';
import { Ref } from '../dataspace/index.ts';
import { FacetRef } from './facet-ref.ts';

/** A stand-in value for an embedded payload: `<dataspace NAME>`, `<facet ORIGIN>`... */
export function describeEmbedded(payload: unknown): Value {
  if (isValue(payload)) return payload;
  if (payload instanceof Ref) {
    const name = sym(payload.dataspace.name);
    return payload.isAttenuated
      ? record('dataspace', name, sym('attenuated'))
      : record('dataspace', name);
  }
  if (payload instanceof FacetRef) {
    const f = payload.facet;
    return record('facet', f.origin ?? `facet ${f.id}`);
  }
  return record('embedded');
}

/** The value with every live reference replaced by its description (annotations dropped). */
export function presentable(v: Value): Value {
  v = peel(v);
  if (v instanceof Embedded) return isValue(v.value) ? v : new Embedded(describeEmbedded(v.value));
  if (Array.isArray(v)) return (v as readonly Value[]).map(presentable);
  if (v instanceof Record) return new Record(presentable(v.label), v.fields.map(presentable));
  if (v instanceof PSet) return new PSet([...v].map(presentable));
  if (v instanceof Dict)
    return new Dict([...v].map(([k, x]) => [presentable(k), presentable(x)] as const));
  return v;
}

/** For people: a string as it is, anything else as Preserves text with live references described. */
export function plainText(v: Value): string {
  const p = peel(v);
  return typeof p === 'string' ? p : stringify(presentable(p));
}
