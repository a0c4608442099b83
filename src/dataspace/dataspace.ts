// A dataspace: a multiset of assertions with observers, and `Ref`, the
// capability through which facets publish into it (optionally attenuated).
//
// Invariants: a value is in the index iff its count (the number of live handles
// asserting it) is positive, so observers see only 0->1 and 1->0 transitions;
// messages go to the observers present when the sending turn commits and are not
// kept. All mutation happens when a turn commits (the `_apply*` methods, called
// only by the Engine); reading (`has`, `count`, `query`...) sees committed state.

import { Embedded, hash, peel, type Value } from '../preserves/index.ts';
import type { Caveat } from './caveat.ts';
import type { Engine } from './engine.ts';
import type { Handle, Observer } from './facet.ts';
import { AssertionEntry, MatchIndex, type QueryResult } from './match-index.ts';
import type { Pattern } from './pattern.ts';
import { ValueTable } from './value-table.ts';

/**
 * A reference to a dataspace: what `$config`, `$machine` and `$log` are. Equality is
 * identity (wrap it with `embed` to pass it around as a Preserves value). Caveats
 * restrict what is *published* through it (assertions and messages), newest first;
 * observing through an attenuated ref sees the whole underlying dataspace.
 */
export class Ref {
  readonly dataspace: Dataspace;
  /** Applied in order: the first caveat sees the value first. */
  readonly caveats: readonly Caveat[];
  #embedded: Embedded | undefined;
  constructor(dataspace: Dataspace, caveats: readonly Caveat[] = []) {
    this.dataspace = dataspace;
    this.caveats = caveats;
  }
  get isAttenuated(): boolean {
    return this.caveats.length !== 0;
  }
  /** This ref as a Preserves value (`#:ref`); always the same Embedded object. */
  toValue(): Embedded {
    return (this.#embedded ??= new Embedded(this));
  }
}

/** The ref as a Preserves value. */
export function embed(ref: Ref): Embedded {
  return ref.toValue();
}

/** The ref inside an embedded value, or undefined if the value is not one. */
export function asRef(v: Value): Ref | undefined {
  v = peel(v);
  return v instanceof Embedded && v.value instanceof Ref ? v.value : undefined;
}

export class Dataspace {
  readonly engine: Engine;
  readonly name: string;
  /** The unattenuated ref; every use of it is the same object. */
  readonly ref: Ref;
  readonly #entries = new ValueTable<AssertionEntry<Observer>>();
  readonly #index: MatchIndex<Observer>;

  constructor(engine: Engine, name = 'dataspace') {
    this.engine = engine;
    this.name = name;
    this.ref = new Ref(this);
    this.#index = new MatchIndex<Observer>((o, event, value, captures) =>
      engine._notify(o, event, value, captures),
    );
  }

  /** The number of distinct values asserted. */
  get size(): number {
    return this.#entries.size;
  }

  has(value: Value): boolean {
    return this.#entries.has(value);
  }

  /** How many live handles assert the value. */
  count(value: Value): number {
    return this.#entries.get(value)?.count ?? 0;
  }

  *values(): IterableIterator<Value> {
    for (const e of this.#entries.values()) yield e.value;
  }

  /**
   * The asserted values matching the pattern, with their captures (committed state); at
   * most `limit` of them (which ones is unspecified), so that a caller can bound the work.
   */
  query(pattern: Pattern, limit = Infinity): QueryResult[] {
    return this.#index.query(pattern, limit);
  }

  /** Resolves when every turn queued so far (and everything it caused) has run. */
  sync(): Promise<void> {
    return this.engine.sync();
  }

  indexStats(): { discriminators: number; classes: number; groups: number } {
    return this.#index.stats();
  }

  // ---- Called by the Engine when a turn commits ------------------------------------------

  /** @internal */
  _applyAssert(h: Handle, value: Value): void {
    const hv = hash(value);
    let e = this.#entries.get(value, hv);
    if (e === undefined) {
      e = new AssertionEntry<Observer>(value);
      this.#entries.set(value, e, hv);
    }
    h.entry = e;
    if (++e.count === 1) this.#index.addAssertion(e);
  }

  /** @internal */
  _applyRetract(h: Handle): void {
    const e = h.entry;
    if (e === undefined) return;
    h.entry = undefined;
    if (--e.count === 0) {
      this.#entries.delete(e.value);
      this.#index.removeAssertion(e);
    }
  }

  /** @internal */
  _applyObserve(o: Observer): void {
    const a = o.analysis;
    if (a === undefined) return;
    o.analysis = undefined;
    o.slot = this.#index.addObserver(a, o);
  }

  /** @internal */
  _applyUnobserve(o: Observer): void {
    if (o.slot !== undefined) this.#index.removeObserver(o.slot);
    o.slot = undefined;
  }

  /** @internal */
  _applySend(value: Value): void {
    this.#index.deliver(value);
  }
}
