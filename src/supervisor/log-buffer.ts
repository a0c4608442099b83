// A service's recent output: a ring buffer of the last N lines, oldest evicted
// first, with followers that see each line as it is appended. Memory is bounded
// by the capacity (and the line splitter's cap on a line's length).

import type { Disposable } from '../base/disposable.ts';
import { Emitter, type Listener, type ListenerErrorHandler } from './emitter.ts';
import type { LogLine } from './process-runner.ts';

export type { LogLine, LogStream } from './process-runner.ts';

export const DEFAULT_LOG_CAPACITY = 1000;

export interface LogBufferOptions {
  /** Lines kept; default 1000. */
  readonly capacity?: number;
  readonly onListenerError?: ListenerErrorHandler;
}

export class LogBuffer {
  readonly capacity: number;
  readonly #ring: (LogLine | undefined)[];
  /** Index of the oldest line. */
  #head = 0;
  #size = 0;
  #total = 0;
  readonly #appended: Emitter<LogLine>;

  constructor(options: LogBufferOptions = {}) {
    const capacity = options.capacity ?? DEFAULT_LOG_CAPACITY;
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`log buffer capacity must be an integer >= 1, got ${capacity}`);
    }
    this.capacity = capacity;
    this.#ring = new Array<LogLine | undefined>(capacity);
    this.#appended = new Emitter(options.onListenerError);
  }

  /** Lines held now (at most the capacity). */
  get size(): number {
    return this.#size;
  }

  /** Lines ever appended, evicted ones included. */
  get total(): number {
    return this.#total;
  }

  /** Lines no longer held: evicted to make room, or cleared. */
  get dropped(): number {
    return this.#total - this.#size;
  }

  append(line: LogLine): void {
    const tail = (this.#head + this.#size) % this.capacity;
    this.#ring[tail] = line;
    if (this.#size < this.capacity) this.#size++;
    else this.#head = (this.#head + 1) % this.capacity;
    this.#total++;
    this.#appended.fire(line);
  }

  /** The last `n` lines (all by default), oldest first. */
  tail(n: number = this.#size): LogLine[] {
    const count = Math.max(0, Math.min(Math.floor(n), this.#size));
    const out: LogLine[] = [];
    for (let i = this.#size - count; i < this.#size; i++) {
      out.push(this.#ring[(this.#head + i) % this.capacity]!);
    }
    return out;
  }

  /**
   * Calls `listener` for each line appended from now on; with `replay`, first
   * (synchronously) for the last `replay` lines, so nothing falls in between.
   */
  follow(listener: Listener<LogLine>, options: { replay?: number } = {}): Disposable {
    if (options.replay !== undefined && options.replay > 0) {
      for (const l of this.tail(options.replay)) listener(l);
    }
    return this.#appended.event(listener);
  }

  clear(): void {
    this.#ring.fill(undefined);
    this.#head = 0;
    this.#size = 0;
  }
}
