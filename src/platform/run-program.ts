// Runs a program to completion and captures what it said: the one way the drivers
// run short-lived commands (nft, ip, wg). Invariants: every run is bounded by a
// timeout and by the caller's AbortSignal (the process is killed, never left
// behind), listeners are removed when the run ends, output is capped, and extra
// descriptors (`fds`, which become the child's 3, 4, …) let a program read a secret
// file the caller opened, so the secret is never on a command line.

import { spawn } from 'node:child_process';
import { ProgramStartError } from './errors.ts';

export interface ProgramResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface RunProgramOptions {
  /** Written to the program's stdin (default: stdin is /dev/null). */
  readonly input?: string;
  /** Open descriptors handed to the child as its fds 3, 4, … (the caller still owns and closes them). */
  readonly fds?: readonly number[];
  readonly signal?: AbortSignal;
  readonly timeoutMs: number;
}

const MAX_CAPTURE = 64 * 1024;

/** Runs argv; resolves with its exit, rejects (ProgramStartError) only if it cannot start. */
export function runProgram(argv: readonly string[], o: RunProgramOptions): Promise<ProgramResult> {
  return new Promise((resolve, reject) => {
    if (o.signal?.aborted === true) {
      reject(new ProgramStartError(`${argv.join(' ')}: aborted`));
      return;
    }
    const stdin = o.input === undefined ? 'ignore' : 'pipe';
    const child = spawn(argv[0]!, argv.slice(1), {
      stdio: [stdin, 'pipe', 'pipe', ...(o.fds ?? [])],
    });
    let stdout = '';
    let stderr = '';
    let settled = false;
    const kill = (): void => {
      try {
        child.kill('SIGKILL');
      } catch {
        // already gone
      }
    };
    const timer = setTimeout(kill, o.timeoutMs);
    o.signal?.addEventListener('abort', kill);
    const done = (): void => {
      settled = true;
      clearTimeout(timer);
      o.signal?.removeEventListener('abort', kill);
    };
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      if (stdout.length < MAX_CAPTURE) stdout += d;
    });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      if (stderr.length < MAX_CAPTURE) stderr += d;
    });
    child.on('error', (e) => {
      if (settled) return;
      done();
      reject(new ProgramStartError(`${argv[0]!}: ${e.message}`));
    });
    child.on('close', (code, sig) => {
      if (settled) return;
      done();
      resolve({ code, signal: sig, stdout, stderr });
    });
    if (child.stdin !== null) {
      child.stdin.on('error', () => {
        // The program exited before reading everything; its exit status says why.
      });
      child.stdin.end(o.input);
    }
  });
}
