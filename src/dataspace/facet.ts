// Facets: the tree of ownership. A facet owns the assertions and observers it
// made (as Handles), its child facets and its stop handlers. Stopping a facet
// stops its children first, in reverse order of start, then runs its stop
// handlers (in reverse order of registration), aborts its `signal`, and retracts
// everything it still holds, all in one turn.
//
// Effects are buffered in the running turn (see engine.ts); outside any turn each
// call commits at once. A facet that is stopping may still assert, observe and
// send (what it asserts is retracted when the stop completes, so a stop handler
// that wants a lasting effect must go through a live ancestor or send a message);
// a stopped facet throws FacetStoppedError, except `turn` and `stop`, which
// ignore it (late I/O completions are normal), and `onStop`, which runs at once.

import type { Disposable } from '../base/disposable.ts';
import type { Value } from '../preserves/index.ts';
import type { Budget } from './budget.ts';
import { applyCaveats } from './caveat.ts';
import type { Dataspace, Ref } from './dataspace.ts';
import type { Engine } from './engine.ts';
import { ActionOp } from './engine.ts';
import { BudgetExceededError, FacetStoppedError, ForeignRefError } from './errors.ts';
import { analyze, type Analysis, type AssertionEntry, type ObserverSlot } from './match-index.ts';
import type { Captures, Pattern } from './pattern.ts';

/**
 * What an observer is told. A value is added when it starts to be asserted (its count
 * goes 0->1, or it was already asserted when observation began) and removed when its
 * count returns to 0; each call carries that value's captures. Messages are delivered
 * to observers present when the sending turn commits.
 */
export interface ObserverCallbacks {
  onAdd?(value: Value, captures: Captures): void;
  onRemove?(value: Value, captures: Captures): void;
  onMessage?(value: Value, captures: Captures): void;
}

/** An observation, as registered in a dataspace's index. */
export class Observer {
  readonly facet: Facet;
  readonly callbacks: ObserverCallbacks;
  readonly origin: string | undefined;
  /** The decomposed pattern, until the observation is committed (then released: it is big). */
  analysis: Analysis | undefined;
  /** False once retracted (or dropped): queued notifications for it are discarded. */
  alive = true;
  slot: ObserverSlot<Observer> | undefined = undefined;
  constructor(
    facet: Facet,
    callbacks: ObserverCallbacks,
    origin: string | undefined,
    analysis: Analysis,
  ) {
    this.facet = facet;
    this.callbacks = callbacks;
    this.origin = origin;
    this.analysis = analysis;
  }
}

const PENDING = 0;
const LIVE = 1;
const ENDED = 2;
type HandleState = typeof PENDING | typeof LIVE | typeof ENDED;

/**
 * One assertion or observation, owned by the facet that made it. Retract it with
 * `facet.retract(h)` or `h.dispose()`; the facet retracts whatever is left when it stops.
 */
export class Handle implements Disposable {
  readonly facet: Facet;
  readonly dataspace: Dataspace;
  /** The value as published (after caveats); undefined for an observer or a dropped value. */
  readonly value: Value | undefined;
  readonly observer: Observer | undefined;
  #state: HandleState = PENDING;
  /** @internal The dataspace's entry for the value, while committed. */
  entry: AssertionEntry<Observer> | undefined = undefined;
  /** @internal The owning facet's list of held handles (intrusive: no Set churn). */
  _prev: Handle | undefined = undefined;
  /** @internal */
  _next: Handle | undefined = undefined;
  /** @internal True while in the owner's list, i.e. held and not yet retracted. */
  _held = false;

  constructor(
    facet: Facet,
    dataspace: Dataspace,
    value: Value | undefined,
    observer: Observer | undefined,
  ) {
    this.facet = facet;
    this.dataspace = dataspace;
    this.value = value;
    this.observer = observer;
  }

  get kind(): 'assertion' | 'observer' {
    return this.observer === undefined ? 'assertion' : 'observer';
  }

  /** Committed and not yet retracted. */
  get isLive(): boolean {
    return this.#state === LIVE;
  }

  dispose(): void {
    this.facet.retract(this);
  }

  /** @internal */
  _commitAssert(): void {
    if (this.#state !== PENDING) return;
    this.#state = LIVE;
    if (this.value !== undefined) this.dataspace._applyAssert(this, this.value);
  }

  /** @internal */
  _commitObserve(): void {
    if (this.#state !== PENDING) return;
    this.#state = LIVE;
    this.dataspace._applyObserve(this.observer!);
  }

  /** @internal */
  _commitRetract(): void {
    const was = this.#state;
    if (was === ENDED) return;
    this.#end();
    if (was !== LIVE) return;
    if (this.observer !== undefined) this.dataspace._applyUnobserve(this.observer);
    else this.dataspace._applyRetract(this);
  }

  /** @internal A caveat dropped the value: nothing to commit. */
  _markLive(): void {
    this.#state = LIVE;
  }

  /** @internal The turn that made this handle failed: it never existed. */
  _drop(): void {
    if (this.#state !== ENDED) this.#end();
    this.facet._forget(this);
    if (this.observer !== undefined) this.observer.alive = false;
  }

  /** Every handle ends once: the facet tree's budget was charged for it when it was made. */
  #end(): void {
    this.#state = ENDED;
    const b = this.facet.budget;
    if (b !== undefined) b.handles--;
  }

  /** @internal The turn that retracted this handle failed: it is still held. */
  _undoRetract(): void {
    if (this.#state === ENDED) return;
    this.facet._own(this);
    if (this.observer !== undefined) this.observer.alive = true;
  }
}

const ALIVE = 0;
const STOPPING = 1;
const STOPPED = 2;
type FacetState = typeof ALIVE | typeof STOPPING | typeof STOPPED;

let nextFacetId = 1;

export class Facet {
  readonly id: number;
  readonly engine: Engine;
  readonly parent: Facet | undefined;
  /** Where this facet comes from (e.g. 'net.pr:12:7'), for error messages. */
  readonly origin: string | undefined;
  /** What this facet's tree may cost (a script file's), or undefined: not charged. */
  readonly budget: Budget | undefined;
  #state: FacetState = ALIVE;
  readonly #children = new Set<Facet>();
  /** The newest handle the facet holds; the rest hang off it (see Handle._prev/_next). */
  #last: Handle | undefined = undefined;
  #stopHandlers: (() => void)[] | undefined = undefined;
  #abort: AbortController | undefined = undefined;

  /** Use `engine.root` and `facet.spawn`; the engine makes the root. */
  constructor(
    engine: Engine,
    parent: Facet | undefined,
    origin: string | undefined,
    budget?: Budget,
  ) {
    this.id = nextFacetId++;
    this.engine = engine;
    this.parent = parent;
    this.origin = origin;
    this.budget = budget ?? parent?.budget;
  }

  get isAlive(): boolean {
    return this.#state === ALIVE;
  }

  get isStopped(): boolean {
    return this.#state === STOPPED;
  }

  /** This facet's origin, or the nearest ancestor's. */
  get location(): string | undefined {
    return this.origin ?? this.parent?.location;
  }

  /** Aborted when the facet stops: pass it to async work the facet owns. */
  get signal(): AbortSignal {
    this.#abort ??= new AbortController();
    if (this.#state === STOPPED) this.#abort.abort();
    return this.#abort.signal;
  }

  get children(): readonly Facet[] {
    return [...this.#children];
  }

  #check(ref: Ref | undefined, what: string): void {
    if (this.#state === STOPPED)
      throw new FacetStoppedError(`${what} on stopped facet ${this.id} (${this.location ?? '?'})`);
    if (ref !== undefined && ref.dataspace.engine !== this.engine)
      throw new ForeignRefError(`${what}: the ref belongs to another engine`);
  }

  /**
   * The value as the ref's caveats let it through. A rewrite that builds a value past
   * a script's limits (checkBuiltValue) stops a script's facet; a driver's value (no
   * budget: the daemon's own, which a script's caveats must not stop) is dropped, as
   * by a caveat that rejects it.
   */
  #throughCaveats(ref: Ref, value: Value): Value | undefined {
    try {
      return applyCaveats(ref.caveats, value);
    } catch (e) {
      if (this.budget === undefined && e instanceof BudgetExceededError) return undefined;
      throw e;
    }
  }

  /** Publishes a value (through the ref's caveats). */
  assert(ref: Ref, value: Value): Handle {
    this.#check(ref, 'assert');
    const v = ref.caveats.length === 0 ? value : this.#throughCaveats(ref, value);
    this.budget?._charge();
    const h = new Handle(this, ref.dataspace, v, undefined);
    this.#hold(h);
    if (v === undefined) h._markLive();
    else this.engine._act(ActionOp.Assert, h, undefined, undefined);
    return h;
  }

  /** Withdraws an assertion or stops an observation made by this facet. Idempotent. */
  retract(handle: Handle): void {
    if (handle.facet !== this) {
      handle.facet.retract(handle);
      return;
    }
    if (!handle._held) return;
    this.#release(handle);
    if (handle.observer !== undefined) handle.observer.alive = false;
    this.engine._act(ActionOp.Retract, handle, undefined, undefined);
  }

  /**
   * Asserts the new value (if any), then retracts the old handle (if any), in one
   * turn: an unchanged value is never seen to go away.
   */
  replace(handle: Handle | undefined, ref: Ref, value: Value | undefined): Handle | undefined {
    this.#check(ref, 'replace');
    let h: Handle | undefined;
    this.engine._withTurn(this, () => {
      if (value !== undefined) h = this.assert(ref, value);
      if (handle !== undefined) this.retract(handle);
    });
    return h;
  }

  /**
   * Observes the ref's dataspace (caveats do not restrict observation). Callbacks run
   * in turns of this facet; `origin` is reported if one of them throws.
   */
  observe(ref: Ref, pattern: Pattern, callbacks: ObserverCallbacks, origin?: string): Handle {
    this.#check(ref, 'observe');
    const o = new Observer(this, callbacks, origin, analyze(pattern));
    this.budget?._charge();
    const h = new Handle(this, ref.dataspace, undefined, o);
    this.#hold(h);
    this.engine._act(ActionOp.Observe, h, undefined, undefined);
    return h;
  }

  /** Sends a message (through the ref's caveats) to the observers present at commit. */
  send(ref: Ref, message: Value): void {
    this.#check(ref, 'send');
    const v = ref.caveats.length === 0 ? message : this.#throughCaveats(ref, message);
    if (v !== undefined) this.engine._act(ActionOp.Send, undefined, ref.dataspace, v);
  }

  /**
   * Starts a child facet and runs setup in it, within the current turn. If setup
   * throws, its effects are discarded, the failure is logged and the child stops;
   * the caller carries on. A `budget` makes the child the top of a tree charged to
   * it (default: this facet's budget, if any).
   */
  spawn(setup: (facet: Facet) => void, origin?: string, budget?: Budget): Facet {
    if (this.#state !== ALIVE)
      throw new FacetStoppedError(
        `spawn on ${this.#state === STOPPING ? 'stopping' : 'stopped'} facet ${this.id}`,
      );
    const child = new Facet(this.engine, this, origin, budget);
    this.#children.add(child);
    const engine = this.engine;
    engine._withTurn(this, () => {
      const mark = engine._mark();
      const prev = engine._enter(child);
      try {
        setup(child);
      } catch (e) {
        engine._truncate(mark);
        engine._logFailure(child, undefined, e, 'facet setup failed');
        child._stopInTurn();
      } finally {
        engine._enter(prev);
      }
    });
    return child;
  }

  /** Runs fn when the facet stops (at once, if it already is stopping or stopped). */
  onStop(fn: () => void): void {
    if (this.#state === ALIVE) {
      (this.#stopHandlers ??= []).push(fn);
      return;
    }
    try {
      fn();
    } catch (e) {
      this.engine._logFailure(this, undefined, e, 'stop handler failed');
    }
  }

  /** Stops this facet and its subtree (a no-op if already stopping or stopped). */
  stop(): void {
    if (this.#state !== ALIVE) return;
    this.engine._withTurn(this, () => this._stopInTurn());
  }

  /**
   * Runs fn in a turn of this facet: at once when called outside a turn (an I/O
   * callback, say), queued when called inside one. Ignored once the facet stopped.
   */
  turn(fn: () => void): void {
    if (this.#state === STOPPED) return;
    this.engine._turn(this, fn);
  }

  // ---- Internal --------------------------------------------------------------------------

  /** @internal Stops the subtree; must run inside a turn. */
  _stopInTurn(): void {
    if (this.#state !== ALIVE) return;
    this.#state = STOPPING;
    const engine = this.engine;
    const kids = [...this.#children];
    for (let i = kids.length - 1; i >= 0; i--) kids[i]!._stopInTurn();
    const handlers = this.#stopHandlers;
    this.#stopHandlers = undefined;
    if (handlers !== undefined) {
      const prev = engine._enter(this);
      for (let i = handlers.length - 1; i >= 0; i--) {
        try {
          handlers[i]!();
        } catch (e) {
          engine._logFailure(this, undefined, e, 'stop handler failed');
        }
      }
      engine._enter(prev);
    }
    this.#abort?.abort();
    // Newest first.
    for (let h = this.#last; h !== undefined;) {
      const prev = h._prev;
      h._prev = h._next = undefined;
      h._held = false;
      if (h.observer !== undefined) h.observer.alive = false;
      engine._act(ActionOp.Retract, h, undefined, undefined);
      h = prev;
    }
    this.#last = undefined;
    this.#state = STOPPED;
    if (this.parent !== undefined) this.parent.#children.delete(this);
  }

  #hold(h: Handle): void {
    h._held = true;
    h._prev = this.#last;
    if (this.#last !== undefined) this.#last._next = h;
    this.#last = h;
  }

  #release(h: Handle): void {
    const { _prev: prev, _next: next } = h;
    if (prev !== undefined) prev._next = next;
    if (next === undefined) this.#last = prev;
    else next._prev = prev;
    h._prev = h._next = undefined;
    h._held = false;
  }

  /** @internal */
  _forget(h: Handle): void {
    if (h._held) this.#release(h);
  }

  /** @internal */
  _own(h: Handle): void {
    if (this.#state !== STOPPED && !h._held) this.#hold(h);
  }
}
