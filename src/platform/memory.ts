// Giving memory back after a large piece of state goes away (a big configuration
// file replaced or removed). V8 collects garbage when it next needs room, which in
// a quiet daemon may be never: the freed heap stayed resident for minutes (135 of
// 145 MiB still held 60 s after a 0.8 MiB file was reverted). A full collection
// returns it (V8 unmaps the emptied pages shortly after); V8 shrinks its young
// generation (some 30 MiB once grown) only in a collection made while little is
// being allocated, so a second one follows when things have calmed down.
//
// The collector is V8's `gc`, reached without --expose-gc by enabling the flag and
// taking `gc` from a fresh context; where that is refused, this does nothing.

import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** At most one collection this often: a full one stops the process for tens of ms. */
const MIN_INTERVAL_MS = 5000;
/** Lets the change that freed the memory finish (its turn, its consequences) first. */
const DELAY_MS = 200;
/** V8 measures its allocation rate over the last few seconds: after that, it is low. */
const FOLLOW_UP_MS = 10_000;

let collector: (() => void) | null | undefined;
let timer: NodeJS.Timeout | undefined;
let followUp: NodeJS.Timeout | undefined;
let last = -Infinity;

function gc(): (() => void) | null {
  if (collector !== undefined) return collector;
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (typeof exposed === 'function') return (collector = exposed);
  try {
    setFlagsFromString('--expose-gc');
    const fn: unknown = runInNewContext('gc');
    collector = typeof fn === 'function' ? (fn as () => void) : null;
  } catch {
    collector = null;
  }
  return collector;
}

/**
 * Asks for a full garbage collection soon, once a large amount of memory has become
 * garbage. Calls close together share one collection; the timer never keeps the
 * process alive.
 */
export function releaseMemorySoon(): void {
  if (timer !== undefined) return;
  const delay = Math.max(DELAY_MS, last + MIN_INTERVAL_MS - Date.now());
  timer = setTimeout(() => {
    timer = undefined;
    last = Date.now();
    const collect = gc();
    if (collect === null) return;
    collect();
    clearTimeout(followUp);
    followUp = setTimeout(() => {
      followUp = undefined;
      collect();
    }, FOLLOW_UP_MS);
    followUp.unref();
  }, delay);
  timer.unref();
}
