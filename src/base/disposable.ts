// Disposables: everything that subscribes, spawns or listens returns one, and
// it has exactly one owner. Disposing twice is harmless.

export interface Disposable {
  dispose(): void;
}

export function toDisposable(fn: () => void): Disposable {
  let done = false;
  return {
    dispose() {
      if (done) return;
      done = true;
      fn();
    },
  };
}

/** Owns a list of disposables and disposes them in reverse order of addition. */
export class DisposableStore implements Disposable {
  #items: Disposable[] = [];
  #disposed = false;

  get isDisposed(): boolean {
    return this.#disposed;
  }

  add<T extends Disposable>(d: T): T {
    if (this.#disposed) d.dispose();
    else this.#items.push(d);
    return d;
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    const errors: unknown[] = [];
    for (let i = this.#items.length - 1; i >= 0; i--) {
      try {
        this.#items[i]!.dispose();
      } catch (e) {
        errors.push(e);
      }
    }
    this.#items = [];
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) throw new AggregateError(errors, 'several disposables failed');
  }
}
