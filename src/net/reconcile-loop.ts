// The reconcile loop that the kernel-facing drivers share (the address/route
// reconciler, the firewall): a change marks the state dirty and schedules one
// pass; passes never overlap; a change during a pass schedules another after it;
// a burst of changes is one pass (deferred by `debounceMs`, or to the end of the
// current burst of turns with setImmediate when it is 0). Stopping lets the pass
// in flight finish and resolves `closed`; whenIdle resolves once nothing is
// waiting or running.

export interface ReconcileLoopOptions {
  /** One pass: compares what is wanted with what is, and acts. */
  readonly pass: () => Promise<void>;
  /** How long changes are collected before a pass (ms); 0: until the current turns are done. */
  readonly debounceMs?: number;
  /** A pass that threw (a bug, or a failure the pass does not handle itself). */
  readonly onError: (e: unknown) => void;
}

export class ReconcileLoop {
  readonly #o: ReconcileLoopOptions;
  #dirty = false;
  #timer: NodeJS.Timeout | NodeJS.Immediate | undefined;
  #running: Promise<void> | undefined;
  #stopped = false;
  #idleWaiters: (() => void)[] = [];
  #closed: Promise<void> | undefined;

  constructor(o: ReconcileLoopOptions) {
    this.#o = o;
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  /** A change: a pass will run (after the one in flight, if any). */
  schedule(): void {
    if (this.#stopped) return;
    this.#dirty = true;
    if (this.#running !== undefined || this.#timer !== undefined) return;
    const ms = this.#o.debounceMs ?? 0;
    const fire = () => {
      this.#timer = undefined;
      this.#run();
    };
    this.#timer = ms > 0 ? setTimeout(fire, ms) : setImmediate(fire);
  }

  #run(): void {
    if (this.#stopped) return;
    this.#dirty = false;
    this.#running = this.#o
      .pass()
      .catch((e: unknown) => {
        if (!this.#stopped) this.#o.onError(e);
      })
      .finally(() => {
        this.#running = undefined;
        if (this.#dirty && !this.#stopped) this.schedule();
        else this.#idle();
      });
  }

  #idle(): void {
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const w of waiters) w();
  }

  /** Resolves when no change is waiting or being applied. */
  whenIdle(): Promise<void> {
    if (this.#timer === undefined && this.#running === undefined) return Promise.resolve();
    return new Promise((r) => this.#idleWaiters.push(r));
  }

  /** No pass starts any more; resolves once the one in flight, if any, is over. */
  stop(): Promise<void> {
    if (this.#closed !== undefined) return this.#closed;
    this.#stopped = true;
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer as NodeJS.Timeout);
      clearImmediate(this.#timer as NodeJS.Immediate);
      this.#timer = undefined;
    }
    this.#closed = (async () => {
      while (this.#running !== undefined) await this.#running;
      this.#idle();
    })();
    return this.#closed;
  }
}
