// Runs nft: checks (`nft -c -f -`) and applies (`nft -f -`) a script given on
// stdin, optionally behind a command prefix (`ip netns exec NS` in tests).
// Invariants: every run is bounded by a timeout and by the caller's AbortSignal
// (the process is killed, never left behind), listeners are removed when the
// run ends, and a failure is an NftError whose message is nft's own, trimmed.

import { spawn } from 'node:child_process';
import { NftError } from './nft-ruleset.ts';

export interface NftRunnerOptions {
  /** The nft program; default 'nft'. */
  readonly nft?: string;
  /** Prepended to every command line, e.g. ['ip', 'netns', 'exec', 'NS']. */
  readonly commandPrefix?: readonly string[];
  /** Per-run limit; default 10 s. */
  readonly timeoutMs?: number;
}

export interface CommandResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

const MAX_CAPTURE = 64 * 1024;

/** Runs argv with `input` on stdin; resolves with its exit (rejects only if it cannot start). */
export function runCommand(
  argv: readonly string[],
  input: string,
  signal: AbortSignal,
  timeoutMs: number,
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(new NftError('LIMEN_NFT_RUN', `${argv.join(' ')}: aborted`));
      return;
    }
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
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
    const timer = setTimeout(kill, timeoutMs);
    signal.addEventListener('abort', kill);
    const done = (): void => {
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', kill);
    };
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      if (stdout.length < MAX_CAPTURE) stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      if (stderr.length < MAX_CAPTURE) stderr += d;
    });
    child.stdin.on('error', () => {
      // The program exited before reading everything; its exit status says why.
    });
    child.on('error', (e) => {
      if (settled) return;
      done();
      reject(new NftError('LIMEN_NFT_RUN', `${argv[0]!}: ${e.message}`));
    });
    child.on('close', (code, sig) => {
      if (settled) return;
      done();
      resolve({ code, signal: sig, stdout, stderr });
    });
    child.stdin.end(input);
  });
}

/** nft's complaint, trimmed to something that fits an assertion. */
export function nftMessage(r: CommandResult): string {
  if (r.signal !== null) return `nft was killed by ${r.signal} (timeout or abort)`;
  const text = r.stderr.trim() || r.stdout.trim() || `nft exited with status ${String(r.code)}`;
  return text.length > 2000 ? `${text.slice(0, 1997)}...` : text;
}

export class NftRunner {
  readonly #argv: readonly string[];
  readonly #timeoutMs: number;

  constructor(o: NftRunnerOptions = {}) {
    this.#argv = [...(o.commandPrefix ?? []), o.nft ?? 'nft'];
    this.#timeoutMs = o.timeoutMs ?? 10_000;
  }

  /** Throws NftError (LIMEN_NFT_CHECK) with nft's message if nft would refuse the script. */
  async check(script: string, signal: AbortSignal): Promise<void> {
    const r = await runCommand([...this.#argv, '-c', '-f', '-'], script, signal, this.#timeoutMs);
    if (r.code !== 0) throw new NftError('LIMEN_NFT_CHECK', nftMessage(r));
  }

  /** Applies the script in one transaction; throws NftError (LIMEN_NFT_APPLY) if nft refused it. */
  async apply(script: string, signal: AbortSignal): Promise<void> {
    const r = await runCommand([...this.#argv, '-f', '-'], script, signal, this.#timeoutMs);
    if (r.code !== 0) throw new NftError('LIMEN_NFT_APPLY', nftMessage(r));
  }

  /** Runs `nft ARGS…` and returns its stdout (e.g. `list table inet limen`). */
  async run(args: readonly string[], signal: AbortSignal): Promise<string> {
    const r = await runCommand([...this.#argv, ...args], '', signal, this.#timeoutMs);
    if (r.code !== 0) throw new NftError('LIMEN_NFT_RUN', nftMessage(r));
    return r.stdout;
  }
}
