// flock(2) for Node.js 20, which has none, without a native addon: util-linux's
// flock(1) is run with our open file as its fd 3, and locks that open file
// description, which we keep holding after it exits. The lock goes when our last
// descriptor of it is closed, or when we die (even by SIGKILL). Node opens every
// file with O_CLOEXEC, so no child of ours ever inherits one.

import { spawn, spawnSync } from 'node:child_process';
import { open } from 'node:fs/promises';
import { FlockError } from './errors.ts';

/** flock(1)'s exit status when the lock is held (our choice, with --conflict-exit-code). */
const CONFLICT_EXIT = 75;

export type FlockResult = 'locked' | 'held';

function argsFor(timeoutSeconds: number | undefined): string[] {
  return [
    '--exclusive',
    ...(timeoutSeconds === undefined ? ['--nonblock'] : ['--timeout', String(timeoutSeconds)]),
    '--conflict-exit-code',
    String(CONFLICT_EXIT),
    '3',
  ];
}

function outcome(
  what: string,
  program: string,
  r: { error?: Error | undefined; status: number | null; signal: string | null; stderr: string },
): FlockResult {
  if (r.error !== undefined) {
    const why =
      (r.error as NodeJS.ErrnoException).code === 'ENOENT'
        ? `the ${program} program (util-linux) is not installed`
        : r.error.message;
    throw new FlockError(`cannot lock ${what}: ${why}`, { cause: r.error });
  }
  if (r.status === CONFLICT_EXIT) return 'held';
  if (r.status !== 0) {
    const said = r.stderr.trim().split('\n')[0] ?? '';
    throw new FlockError(
      `cannot lock ${what}: ${program} exited with ${r.status ?? r.signal}${said === '' ? '' : ` (${said})`}`,
    );
  }
  return 'locked';
}

/** Takes an exclusive lock on the open file `fd` without waiting; 'held' if another has it. */
export function flockNow(fd: number, what: string, program = 'flock'): FlockResult {
  const r = spawnSync(program, argsFor(undefined), {
    stdio: ['ignore', 'ignore', 'pipe', fd],
    encoding: 'utf8',
  });
  return outcome(what, program, r);
}

/**
 * Runs `fn` holding an exclusive lock on directory `dir` (waiting up to `timeoutSeconds`
 * for it): a critical section between cooperating processes, and between callers in
 * this one (each opens the directory anew). Throws FlockError if it cannot be had.
 */
export async function withDirectoryLock<T>(
  dir: string,
  fn: () => Promise<T>,
  timeoutSeconds = 10,
  program = 'flock',
): Promise<T> {
  const fh = await open(dir, 'r');
  try {
    // Not spawnSync: the holder may be this very process, which must go on to release it.
    const r = await new Promise<{
      error?: Error;
      status: number | null;
      signal: string | null;
      stderr: string;
    }>((resolve) => {
      const child = spawn(program, argsFor(timeoutSeconds), {
        stdio: ['ignore', 'ignore', 'pipe', fh.fd],
      });
      let stderr = '';
      child.stderr?.setEncoding('utf8').on('data', (c: string) => void (stderr += c));
      child.once('error', (error) => resolve({ error, status: null, signal: null, stderr }));
      child.once('close', (status, signal) => resolve({ status, signal, stderr }));
    });
    if (outcome(dir, program, r) === 'held') {
      throw new FlockError(`cannot lock ${dir}: still held by another after ${timeoutSeconds} s`);
    }
    return await fn();
  } finally {
    await fh.close();
  }
}
