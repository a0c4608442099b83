// The CLI's output layer: the only place (with bin/) that touches the
// terminal. Commands write through an Io so tests can capture everything.

import { writeSync } from 'node:fs';
import { isatty } from 'node:tty';

export interface Io {
  readonly stdin: NodeJS.ReadableStream;
  out(text: string): void;
  err(text: string): void;
  /** Raw bytes to standard output (binary conversions). */
  outBytes(bytes: Uint8Array): void;
  readonly isTty: boolean;
  readonly color: boolean;
  readonly env: NodeJS.ProcessEnv;
  /** Aborted to stop a long-running command (`logs -f`, `watch`); absent: run until killed. */
  readonly signal?: AbortSignal | undefined;
}

/**
 * Writes to fd with write(2) while that works, and through `stream` from the first
 * time it would block (EAGAIN: a non-blocking descriptor) on, so nothing is lost or
 * reordered. Node's process.stdout builds a stream (and loads its modules) on first
 * use, which costs a command that prints one table a few milliseconds (bench/cli.ts).
 */
function fdWriter(
  fd: number,
  stream: () => NodeJS.WriteStream,
): (data: string | Uint8Array) => void {
  let streaming = false;
  return (data) => {
    let bytes = typeof data === 'string' ? Buffer.from(data) : data;
    while (!streaming && bytes.length > 0) {
      try {
        bytes = bytes.subarray(writeSync(fd, bytes));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
        streaming = true;
      }
    }
    if (bytes.length > 0) stream().write(bytes);
  };
}

export function processIo(): Io {
  const isTty = isatty(1);
  const out = fdWriter(1, () => process.stdout);
  const err = fdWriter(2, () => process.stderr);
  return {
    // Getters and write(2), not process.stdin/stdout/stderr: each of those builds a
    // stream on first use, which a command that never reads stdin should not pay.
    get stdin() {
      return process.stdin;
    },
    out,
    err,
    outBytes: out,
    isTty,
    color: isTty && process.env['NO_COLOR'] === undefined,
    env: process.env,
  };
}

export async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(typeof c === 'string' ? Buffer.from(c) : c);
  return Buffer.concat(chunks);
}

/** Exit codes, documented in `limen --help`. */
export const ExitCode = {
  Ok: 0,
  Failed: 1,
  Usage: 2,
  NoDaemon: 3,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];
