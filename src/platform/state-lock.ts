// The daemon's exclusive lock on its state directory: one daemon per root. It is
// an flock(2) lock, which the kernel drops when the last descriptor of the open
// file goes away, so a daemon killed by SIGKILL never leaves it behind.
//
// Node.js 20 has no flock and limen takes no native addon, so util-linux's
// flock(1) takes it for us: we open the lock file and hand that very descriptor
// to `flock --exclusive --nonblock 3` as its fd 3. flock(2) locks the open file
// description, which the daemon keeps holding after the child exits. Node opens
// every file with O_CLOEXEC, so no service ever inherits it (a leftover service
// cannot keep a dead daemon's lock). The holder writes its pid into the file, so
// that the one refused can say who holds it.

import { spawnSync } from 'node:child_process';
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
import { StateLockError, StateLockHeldError } from './errors.ts';

/** flock(1)'s exit status when the lock is held and --nonblock was given (our choice). */
const CONFLICT_EXIT = 75;
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
 * StateLockHeldError if another process holds it, StateLockError if it cannot be taken.
 */
export function acquireStateLock(path: string, flockProgram = 'flock'): StateLock {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDWR | constants.O_CREAT, LOCK_MODE);
  } catch (e) {
    throw new StateLockError(`cannot open the state lock ${path}: ${errnoOf(e)}`, { cause: e });
  }
  try {
    const r = spawnSync(
      flockProgram,
      ['--exclusive', '--nonblock', '--conflict-exit-code', String(CONFLICT_EXIT), '3'],
      { stdio: ['ignore', 'ignore', 'pipe', fd], encoding: 'utf8' },
    );
    if (r.error !== undefined) {
      const why =
        errnoOf(r.error) === 'ENOENT'
          ? `the ${flockProgram} program (util-linux) is not installed`
          : r.error.message;
      throw new StateLockError(`cannot lock ${path}: ${why}`, { cause: r.error });
    }
    if (r.status === CONFLICT_EXIT) {
      const pid = holderOf(path);
      throw new StateLockHeldError(
        path,
        pid,
        `${dirname(path)} is in use by another limen daemon (${pid === undefined ? 'pid unknown' : `pid ${pid}`}): stop it, or give this one another --root`,
      );
    }
    if (r.status !== 0) {
      const said = r.stderr.trim().split('\n')[0] ?? '';
      throw new StateLockError(
        `cannot lock ${path}: ${flockProgram} exited with ${r.status ?? r.signal}${said === '' ? '' : ` (${said})`}`,
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
