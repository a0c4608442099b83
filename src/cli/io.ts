// The CLI's output layer: the only place (with bin/) that touches the
// terminal. Commands write through an Io so tests can capture everything.

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

export function processIo(): Io {
  const isTty = process.stdout.isTTY;
  return {
    // A getter: process.stdin builds a stream (and loads its modules) on first use,
    // which costs every command that never reads it a few milliseconds (bench/cli.ts).
    get stdin() {
      return process.stdin;
    },
    out: (t) => void process.stdout.write(t),
    err: (t) => void process.stderr.write(t),
    outBytes: (b) => void process.stdout.write(b),
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
