// A typed event source for the supervisor's classes: `event(listener)` returns a
// Disposable that removes the listener. A listener that throws does not stop the
// others or the emitter; its error goes to the handler the owner chose.

import { toDisposable, type Disposable } from '../base/disposable.ts';

export type Listener<T> = (value: T) => void;
export type ListenerErrorHandler = (error: unknown) => void;

/** By default a listener's exception is a bug: surface it as uncaught, later. */
export const rethrowLater: ListenerErrorHandler = (error) => {
  queueMicrotask(() => {
    throw error;
  });
};

export class Emitter<T> {
  #listeners = new Set<Listener<T>>();
  #onListenerError: ListenerErrorHandler;

  constructor(onListenerError: ListenerErrorHandler = rethrowLater) {
    this.#onListenerError = onListenerError;
  }

  /** Subscribes; the same function added twice is called twice. */
  readonly event = (listener: Listener<T>): Disposable => {
    // Wrap so that adding one function twice gives two independent subscriptions.
    const entry: Listener<T> = (v) => listener(v);
    this.#listeners.add(entry);
    return toDisposable(() => this.#listeners.delete(entry));
  };

  get hasListeners(): boolean {
    return this.#listeners.size > 0;
  }

  fire(value: T): void {
    for (const l of [...this.#listeners]) {
      try {
        l(value);
      } catch (e) {
        this.#onListenerError(e);
      }
    }
  }

  /** Drops every listener; later fires reach nobody. */
  clear(): void {
    this.#listeners.clear();
  }
}
