// A capturing Io for CLI tests: feeds standard input from a buffer and
// collects what a command writes, as text and as bytes.

import { Readable } from 'node:stream';
import type { Io } from '../../src/cli/io.ts';

export interface CapturedIo extends Io {
  readonly stdout: () => string;
  readonly stdoutBytes: () => Buffer;
  readonly stderr: () => string;
}

export function captureIo(
  input: string | Uint8Array = '',
  env: NodeJS.ProcessEnv = {},
): CapturedIo {
  const out: Buffer[] = [];
  const err: string[] = [];
  return {
    stdin: Readable.from(input.length === 0 ? [] : [Buffer.from(input)]),
    out: (t) => void out.push(Buffer.from(t)),
    err: (t) => void err.push(t),
    outBytes: (b) => void out.push(Buffer.from(b)),
    isTty: false,
    color: false,
    env,
    stdout: () => Buffer.concat(out).toString('utf8'),
    stdoutBytes: () => Buffer.concat(out),
    stderr: () => err.join(''),
  };
}
