// `during`: the `?` reaction for TypeScript drivers. One child facet per
// distinct capture tuple, started when the first matching assertion appears
// and stopped when the last one for that tuple goes away. The dataspace
// delivers per distinct value; this module counts values per tuple.

import { Record, ValueMap, sym, type Value } from '../preserves/index.ts';
import type { Ref } from './dataspace.ts';
import type { Facet, Handle } from './facet.ts';
import { captureNames, type Captures, type Pattern } from './pattern.ts';

const tupleLabel = sym('captures');

interface Slot {
  count: number;
  facet: Facet;
}

/**
 * Runs `setup` in a new child facet of `facet` for each distinct capture tuple of
 * `pattern` in `ref`'s dataspace, for as long as some matching assertion exists.
 * Returns the observer's handle (retracting it stops every child).
 */
export function during(
  facet: Facet,
  ref: Ref,
  pattern: Pattern,
  setup: (child: Facet, captures: Captures) => void,
  origin?: string,
): Handle {
  const names = captureNames(pattern);
  const slots = new ValueMap<Slot>();
  const key = (c: Captures): Value =>
    new Record(
      tupleLabel,
      names.map((n) => c.get(n)!),
    );
  const handle = facet.observe(
    ref,
    pattern,
    {
      onAdd(_value, captures) {
        const k = key(captures);
        const slot = slots.get(k);
        if (slot !== undefined) {
          slot.count++;
          return;
        }
        const child = facet.spawn((f) => setup(f, captures), origin);
        slots.set(k, { count: 1, facet: child });
      },
      onRemove(_value, captures) {
        const k = key(captures);
        const slot = slots.get(k);
        if (slot === undefined) return;
        if (--slot.count === 0) {
          slots.delete(k);
          slot.facet.stop();
        }
      },
    },
    origin,
  );
  return handle;
}
