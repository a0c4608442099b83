// The engine: one run queue, turns, and the root of the facet tree. Every
// callback (observer notifications, `facet.turn(fn)` from inside a turn) runs in
// a turn of its own, never re-entrantly; a turn's effects (assert, retract,
// observe, send) are buffered and committed together when it ends, in order.
//
// Failure: an exception in a turn discards the turn's buffered effects, is
// logged with the origin of the observer or facet that raised it, and stops that
// facet (its children first; never the root); everything else keeps running.
// Order: the queue is FIFO; a turn's notifications are queued when it commits.
//
// Scheduling: work queued from outside a turn is drained in a microtask (by
// default), in slices of `turnBudget` turns so that a long cascade yields to the
// host's event loop. `sync()` resolves when the queue is empty. Effects made
// outside any turn (e.g. `facet.assert` in an I/O callback) are committed at once,
// as a turn of their own.
//
// Budgets (budget.ts): every queued task carries the length of its causal chain
// (its cause's plus one; what comes from outside any turn starts a new chain at
// 0). A facet with a budget is stopped instead of running a task past
// `chainLimit`, or a turn past its budget's turns in one busy period (from the
// queue's last emptying to its next). Unbudgeted facets are never checked.

import { formatPosition, type Value } from '../preserves/index.ts';
import type { Dataspace } from './dataspace.ts';
import type { Budget } from './budget.ts';
import { BudgetExceededError } from './errors.ts';
import { Facet, type Handle, type Observer } from './facet.ts';
import { IndexEvent } from './match-index.ts';
import type { Captures } from './pattern.ts';

export type LogFields = { readonly [key: string]: unknown };

/** Where the engine reports failures. The daemon routes this to `$log`. */
export interface Logger {
  error(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  /** Routine events (a service started, a file reloaded); optional. */
  info?(message: string, fields?: LogFields): void;
}

export const silentLogger: Logger = {
  error() {},
  warn() {},
};

export interface EngineOptions {
  /** Defaults to a logger that drops everything: a daemon must pass its own. */
  readonly logger?: Logger;
  /** Milliseconds since the epoch; tests pass a fake clock. */
  readonly now?: () => number;
  /** Runs the drain soon (default: queueMicrotask). Must defer: never call `run` synchronously. */
  readonly schedule?: (run: () => void) => void;
  /** Runs the drain after other host events (default: setImmediate, else setTimeout 0). */
  readonly yieldTo?: (run: () => void) => void;
  /** Turns run before yielding to the host (default 10,000). */
  readonly turnBudget?: number;
  /** The longest causal chain of turns a budgeted facet may run in (default 100,000). */
  readonly chainLimit?: number;
}

export const DEFAULT_CHAIN_LIMIT = 100_000;
/** Chain lengths saturate here: they share a queue slot with the task's kind. */
const MAX_DEPTH = 2 ** 28;
/** A drained queue longer than this is given back to the allocator rather than kept. */
const KEEP_QUEUE_SLOTS = 1 << 16;

// Buffered actions.
const ASSERT = 0;
const RETRACT = 1;
const OBSERVE = 2;
const SEND = 3;
export type ActionOp = typeof ASSERT | typeof RETRACT | typeof OBSERVE | typeof SEND;
export const ActionOp = { Assert: ASSERT, Retract: RETRACT, Observe: OBSERVE, Send: SEND } as const;

class Action {
  readonly op: ActionOp;
  readonly handle: Handle | undefined;
  readonly ds: Dataspace | undefined;
  readonly value: Value | undefined;
  constructor(
    op: ActionOp,
    handle: Handle | undefined,
    ds: Dataspace | undefined,
    value: Value | undefined,
  ) {
    this.op = op;
    this.handle = handle;
    this.ds = ds;
    this.value = value;
  }
}

// Queued tasks: an observer notification (kinds 0-2 are IndexEvent: observer, value,
// captures) or a turn (facet, fn). The queue is one array with a stride of four,
// reused from drain to drain, so that queueing allocates nothing. A task's first
// slot holds its kind in the low two bits and its chain length above them.
const TURN = 3;
const STRIDE = 4;

export class Engine {
  readonly logger: Logger;
  /** The root of the facet tree; stopping it stops everything. */
  readonly root: Facet;
  readonly #now: () => number;
  readonly #schedule: (run: () => void) => void;
  readonly #yieldTo: (run: () => void) => void;
  readonly #budget: number;
  readonly #chainLimit: number;
  /** The chain length of the running task (0 outside the drain: a new cause). */
  #depth = 0;
  /** Counts busy periods (the queue emptied), for budgets' turn counts. */
  #period = 0;
  /** The facet whose turn is running; undefined between turns. */
  #active: Facet | undefined = undefined;
  #actions: Action[] = [];
  #queue: unknown[] = [];
  /** Queue slots copied by compaction, for queueStats(). */
  #moved = 0;
  /** Queue slots ever enqueued, for queueStats(). */
  #enqueued = 0;
  #head = 0;
  #tail = 0;
  #scheduled = false;
  #draining = false;
  #waiters: (() => void)[] = [];

  constructor(options: EngineOptions = {}) {
    this.logger = options.logger ?? silentLogger;
    this.#now = options.now ?? Date.now;
    this.#schedule = options.schedule ?? queueMicrotask;
    // setImmediate where the host has it: setTimeout(0) waits at least a millisecond.
    this.#yieldTo =
      options.yieldTo ??
      (typeof setImmediate === 'function'
        ? (run) => void setImmediate(run)
        : (run) => void setTimeout(run, 0));
    this.#budget = options.turnBudget ?? 10_000;
    this.#chainLimit = options.chainLimit ?? DEFAULT_CHAIN_LIMIT;
    this.root = new Facet(this, undefined, 'root');
  }

  now(): number {
    return this.#now();
  }

  /** True while a turn is running (effects are being buffered). */
  get inTurn(): boolean {
    return this.#active !== undefined;
  }

  /** The facet whose turn is running. */
  get activeFacet(): Facet | undefined {
    return this.#active;
  }

  /** True when no turn is running or queued. */
  get isQuiescent(): boolean {
    return this.#active === undefined && this.#head === this.#tail;
  }

  /**
   * Runs fn in a turn of `facet` (default: the root): at once outside a turn, queued
   * inside one. A failing turn of the root is logged and discarded; the root keeps running.
   */
  turn(fn: () => void, facet: Facet = this.root): void {
    facet.turn(fn);
  }

  /** Resolves once every queued turn, and every turn those cause, has run. */
  sync(): Promise<void> {
    if (this.isQuiescent) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  // ---- Used by Facet and Dataspace -----------------------------------------------------

  /** @internal Buffers an action in the running turn, or commits it at once outside turns. */
  _act(
    op: ActionOp,
    handle: Handle | undefined,
    ds: Dataspace | undefined,
    value: Value | undefined,
  ): void {
    if (this.#active !== undefined) {
      this.#actions.push(new Action(op, handle, ds, value));
    } else {
      this.#apply(op, handle, ds, value);
    }
  }

  /** @internal Runs fn in the running turn, or as a turn of its own for `facet`. */
  _withTurn(facet: Facet, fn: () => void): void {
    if (this.#active !== undefined) {
      fn();
      return;
    }
    this.#runTurn(facet, undefined, fn);
  }

  /** @internal A turn for facet: now if no turn is running, otherwise queued. */
  _turn(facet: Facet, fn: () => void): void {
    if (this.#active !== undefined) {
      this.#enqueue(TURN, facet, fn, undefined);
    } else if (facet.isAlive) {
      this.#runTurn(facet, undefined, fn);
    }
  }

  /** @internal Makes `facet` the active one; returns the previous one. */
  _enter(facet: Facet | undefined): Facet | undefined {
    const prev = this.#active;
    this.#active = facet;
    return prev;
  }

  /** @internal The position in the running turn's buffer (see _truncate). */
  _mark(): number {
    return this.#actions.length;
  }

  /**
   * @internal Discards the actions buffered since `mark`, undoing their call-time
   * bookkeeping. Retractions by facets that are no longer alive are kept: a stop
   * cannot be undone, so what the stopped facet held must still go.
   */
  _truncate(mark: number): void {
    const acts = this.#actions;
    const kept: Action[] = [];
    for (let i = mark; i < acts.length; i++) {
      const a = acts[i]!;
      const h = a.handle;
      if (h === undefined) continue;
      if (a.op === RETRACT) {
        if (h.facet.isAlive) h._undoRetract();
        else kept.push(a);
      } else {
        h._drop();
      }
    }
    acts.length = mark;
    for (const a of kept) acts.push(a);
  }

  /** @internal Called by the index (through a dataspace) when a turn commits. */
  _notify(o: Observer, event: IndexEvent, value: Value, captures: Captures): void {
    if (!o.alive) return;
    const cb = o.callbacks;
    if (
      event === IndexEvent.Added
        ? cb.onAdd === undefined
        : event === IndexEvent.Removed
          ? cb.onRemove === undefined
          : cb.onMessage === undefined
    )
      return;
    this.#enqueue(event, o, value, captures);
  }

  /** @internal Logs a failure with the origin of what raised it. */
  _logFailure(facet: Facet, origin: string | undefined, error: unknown, what: string): void {
    let where = origin ?? facet.location ?? `facet ${facet.id}`;
    let message = error instanceof Error ? error.message : String(error);
    if (error instanceof BudgetExceededError) {
      // Reported (and logged) once per problem: a reaction that goes over on every event
      // must not flood the log.
      if (facet.budget !== undefined && !this.#noteBudget(facet.budget, where, error)) return;
      if (error.pos !== undefined) where = formatPosition(error.pos);
      message = error.detail;
      what = 'facet stopped';
    }
    try {
      this.logger.error(`${where}: ${what}: ${message}`, {
        origin: where,
        facet: facet.id,
        error,
      });
    } catch {
      // A broken logger must not break the engine.
    }
  }

  #noteBudget(budget: Budget, where: string, error: BudgetExceededError): boolean {
    try {
      return budget._note(where, error);
    } catch (e) {
      this._logFailure(this.root, 'engine', e, 'reporting a budget failure');
      return true;
    }
  }

  /**
   * A task for a budgeted facet: true if it may run. Otherwise the facet is stopped in a
   * turn of its own that fails with the reason (logged and reported like any failure).
   */
  #admit(facet: Facet, budget: Budget, depth: number, origin: string | undefined): boolean {
    let error: BudgetExceededError;
    if (depth > this.#chainLimit) {
      error = new BudgetExceededError(
        'chain',
        `a chain of more than ${this.#chainLimit} turns, each caused by the one before, did not end (a message or assertion loop?)`,
      );
    } else if (budget.period !== this.#period) {
      budget.period = this.#period;
      budget.turns = 1;
      return true;
    } else if (++budget.turns <= budget.limits.turns) {
      return true;
    } else {
      error = new BudgetExceededError(
        'turns',
        `more than ${budget.limits.turns} turns without the engine ever becoming idle (an endless cascade?)`,
      );
    }
    this.#runTurn(facet, origin, () => {
      throw error;
    });
    return false;
  }

  // ---- Turns ---------------------------------------------------------------------------

  #runTurn(facet: Facet, origin: string | undefined, fn: () => void): void {
    this.#active = facet;
    try {
      fn();
    } catch (e) {
      this.#fail(facet, origin, e, 'turn failed');
    }
    this.#commit();
  }

  #fail(facet: Facet, origin: string | undefined, error: unknown, what: string): void {
    this.#active = facet;
    this._truncate(0);
    this._logFailure(facet, origin, error, what);
    // Stopping the root would stop everything: its failed turn is only discarded.
    if (facet === this.root) return;
    try {
      facet._stopInTurn();
    } catch (e) {
      this._logFailure(facet, origin, e, 'stopping after a failure');
    }
  }

  #commit(): void {
    const acts = this.#actions;
    if (acts.length !== 0) {
      for (let i = 0; i < acts.length; i++) {
        const a = acts[i]!;
        try {
          this.#apply(a.op, a.handle, a.ds, a.value);
        } catch (e) {
          this._logFailure(this.root, 'engine', e, 'internal error while committing');
        }
      }
      acts.length = 0;
    }
    this.#active = undefined;
  }

  #apply(
    op: ActionOp,
    h: Handle | undefined,
    ds: Dataspace | undefined,
    value: Value | undefined,
  ): void {
    switch (op) {
      case ASSERT:
        h!._commitAssert();
        return;
      case RETRACT:
        h!._commitRetract();
        return;
      case OBSERVE:
        h!._commitObserve();
        return;
      case SEND:
        ds!._applySend(value!);
        return;
    }
  }

  // ---- The run queue -------------------------------------------------------------------

  #enqueue(kind: number, a: unknown, b: unknown, c: unknown): void {
    const q = this.#queue;
    const t = this.#tail;
    const d = this.#depth;
    q[t] = kind | ((d < MAX_DEPTH ? d + 1 : d) << 2);
    q[t + 1] = a;
    q[t + 2] = b;
    q[t + 3] = c;
    this.#tail = t + STRIDE;
    this.#enqueued += STRIDE;
    if (!this.#scheduled && !this.#draining) {
      this.#scheduled = true;
      this.#schedule(this.#drain);
    }
  }

  readonly #drain = (): void => {
    this.#scheduled = false;
    if (this.#draining) return;
    this.#draining = true;
    const q = this.#queue;
    let budget = this.#budget;
    try {
      while (this.#head !== this.#tail) {
        if (budget-- <= 0) {
          this.#compact();
          this.#scheduled = true;
          this.#yieldTo(this.#drain);
          return;
        }
        const h = this.#head;
        const word = q[h] as number;
        const kind = word & 3;
        const depth = word >>> 2;
        const a = q[h + 1];
        const b = q[h + 2];
        const c = q[h + 3];
        q[h + 1] = q[h + 2] = q[h + 3] = undefined;
        this.#head = h + STRIDE;
        this.#depth = depth;
        if (kind === TURN) {
          const facet = a as Facet;
          if (!facet.isAlive) continue;
          const fb = facet.budget;
          if (fb !== undefined && !this.#admit(facet, fb, depth, undefined)) continue;
          this.#runTurn(facet, undefined, b as () => void);
        } else {
          const o = a as Observer;
          if (!o.alive) continue;
          const ob = o.facet.budget;
          if (ob !== undefined && !this.#admit(o.facet, ob, depth, o.origin)) continue;
          this.#deliver(kind, o, b as Value, c as Captures);
        }
      }
      this.#head = this.#tail = 0;
      this.#period++;
      // A burst's queue is not kept for ever: the next one grows a new one.
      if (q.length > KEEP_QUEUE_SLOTS) this.#queue = [];
    } finally {
      this.#draining = false;
      this.#depth = 0;
    }
    const waiters = this.#waiters;
    if (waiters.length !== 0) {
      this.#waiters = [];
      for (const w of waiters) w();
    }
  };

  /**
   * Moves the unconsumed part of the queue to its start (before yielding), but only
   * once the consumed part is at least as long as what is left: each entry is then
   * copied O(1) times overall. Compacting at every yield made a burst of N queued
   * events cost O(N^2) (N/budget copies of the whole remaining queue).
   */
  /** Diagnostics: slots enqueued and slots moved by compaction (moved stays O(enqueued)). */
  queueStats(): { enqueued: number; moved: number; pending: number } {
    return { enqueued: this.#enqueued, moved: this.#moved, pending: this.#tail - this.#head };
  }

  #compact(): void {
    const q = this.#queue;
    const h = this.#head;
    if (h === 0 || h < this.#tail - h) return;
    this.#moved += this.#tail - h;
    // A fresh array by slice: V8 copies packed arrays fast, where copyWithin and fill
    // on a generic array crawl.
    this.#queue = q.slice(h, this.#tail);
    this.#tail -= h;
    this.#head = 0;
  }

  #deliver(kind: number, o: Observer, value: Value, captures: Captures): void {
    if (!o.alive) return;
    const facet = o.facet;
    const cb = o.callbacks;
    this.#active = facet;
    try {
      switch (kind) {
        case IndexEvent.Added:
          cb.onAdd?.(value, captures);
          break;
        case IndexEvent.Removed:
          cb.onRemove?.(value, captures);
          break;
        default:
          cb.onMessage?.(value, captures);
          break;
      }
    } catch (e) {
      this.#fail(facet, o.origin, e, 'observer failed');
    }
    this.#commit();
  }
}
