// Waiting in tests without sleeping: until() resolves as soon as a condition
// holds (or a promise settles), and fails after a timeout with what was seen,
// so a hung test says why instead of just timing out.

export interface UntilOptions {
  /** Default 5000. */
  readonly timeoutMs?: number;
  /** What was being waited for and what was seen; called when it times out. */
  readonly describe?: () => string;
  /** How often a predicate is re-evaluated. Default 5 ms. */
  readonly intervalMs?: number;
}

export class UntilTimeoutError extends Error {
  override name = 'UntilTimeoutError';
}

function failure(options: UntilOptions, lastError?: unknown): UntilTimeoutError {
  const what = options.describe?.() ?? 'condition';
  const cause = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
  return new UntilTimeoutError(
    `timed out after ${options.timeoutMs ?? 5000} ms waiting for: ${what}${cause}`,
  );
}

/**
 * True for what a predicate returns while the condition does not hold yet:
 * undefined, null, false, an empty string or an empty array (a query with no
 * match yet, a log with no line yet: waiting for a list means waiting for it to
 * hold something). 0 is a value (an exit code, a count).
 */
export function isNotYet(v: unknown): boolean {
  return (
    v === undefined || v === null || v === false || v === '' || (Array.isArray(v) && v.length === 0)
  );
}

/**
 * With a promise: its value, or a timeout. With a predicate: polls it until it
 * returns something that is not "not yet" (see isNotYet; a thrown error counts
 * as "not yet" too, and is shown if it times out), and returns that.
 */
export async function until<T>(
  probe: Promise<T> | (() => T | undefined | null | false | Promise<T | undefined | null | false>),
  options: UntilOptions = {},
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 5000;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(failure(options, lastError)), timeoutMs);
  });
  let lastError: unknown;
  let done = false;
  try {
    if (typeof probe !== 'function') return await Promise.race([probe, timeout]);
    const poll = async (): Promise<T> => {
      const interval = options.intervalMs ?? 5;
      while (!done) {
        try {
          const v = await probe();
          if (!isNotYet(v)) return v as T;
        } catch (e) {
          lastError = e;
        }
        await new Promise((r) => setTimeout(r, interval));
      }
      return undefined as never;
    };
    return await Promise.race([poll(), timeout]);
  } finally {
    done = true;
    clearTimeout(timer);
  }
}
