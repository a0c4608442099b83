// What the `facet` expression yields: an embedded reference to a facet. Sending
// it the symbol `stop` stops that facet (after the current turn, as a message
// would); sending anything else, or asserting to it, is a runtime error.

import { Embedded } from '../preserves/index.ts';
import type { Facet } from '../dataspace/index.ts';

export class FacetRef {
  readonly facet: Facet;
  constructor(facet: Facet) {
    this.facet = facet;
  }
}

const values = new WeakMap<Facet, Embedded>();

/** The facet as a Preserves value; always the same Embedded, so two `facet`s are equal. */
export function facetValue(f: Facet): Embedded {
  let e = values.get(f);
  if (e === undefined) {
    e = new Embedded(new FacetRef(f));
    values.set(f, e);
  }
  return e;
}
