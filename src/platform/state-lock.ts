// The daemon's exclusive lock on its state directory: one daemon per root. It is
// an flock(2) lock (see flock.ts), which the kernel drops when the last
// descriptor of the open file goes away, so a daemon killed by SIGKILL never
// leaves it behind, and no service inherits it. The holder writes its pid into
// the file, so that the one refused can say who holds it.

import {
  closeSync,
  constants,
  fchmodSync,
  ftruncateSync,
  openSync,
  readFileSync,
  writeSync,
} from 'node:fs';
import { dirname } from 'node:path';
import { FlockError, StateLockHeldError } from './errors.ts';
import { flockNow } from './flock.ts';

const LOCK_MODE = 0o644;

export interface StateLock {
  readonly path: string;
  /** Drops the lock (closes the descriptor). Idempotent. */
  release(): void;
}

function errnoOf(e: unknown): string {
  return (e as NodeJS.ErrnoException | null)?.code ?? String(e);
}

/** The pid the holder wrote, if it has yet (it writes right after it locks). */
function holderOf(path: string): number | undefined {
  try {
    const text = readFileSync(path, 'utf8').trim();
    return /^[0-9]+$/.test(text) ? Number(text) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Takes the exclusive lock on `path` (created if missing) without waiting. Throws
 * StateLockHeldError if another process holds it, FlockError if it cannot be taken.
 */
export function acquireStateLock(path: string, flockProgram = 'flock'): StateLock {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDWR | constants.O_CREAT, LOCK_MODE);
  } catch (e) {
    throw new FlockError(`cannot open the state lock ${path}: ${errnoOf(e)}`, { cause: e });
  }
  try {
    if (flockNow(fd, path, flockProgram) === 'held') {
      const pid = holderOf(path);
      throw new StateLockHeldError(
        path,
        pid,
        `${dirname(path)} is in use by another limen daemon (${pid === undefined ? 'pid unknown' : `pid ${pid}`}): stop it, or give this one another --root`,
      );
    }
    // Readable by all (it names the holder), whatever the umask.
    fchmodSync(fd, LOCK_MODE);
    // Truncate, then write: a reader sees nothing or the whole pid (it is short).
    ftruncateSync(fd, 0);
    writeSync(fd, `${process.pid}\n`, 0);
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  let held = true;
  return {
    path,
    release() {
      if (!held) return;
      held = false;
      try {
        // Not naming a stopped daemon; the next holder writes its own pid anyway.
        ftruncateSync(fd, 0);
      } finally {
        closeSync(fd);
      }
    },
  };
}
