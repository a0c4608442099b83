// Runs nft: checks (`nft -c -f -`) and applies (`nft -f -`) a script given on
// stdin, optionally behind a command prefix (`ip netns exec NS` in tests).
// Invariants: every run is bounded by a timeout and by the caller's AbortSignal
// (the process is killed, never left behind), listeners are removed when the
// run ends, and a failure is an NftError whose message is nft's own, trimmed.

import { runProgram, type ProgramResult } from '../platform/run-program.ts';
import { NftError } from './nft-ruleset.ts';

export interface NftRunnerOptions {
  /** The nft program; default 'nft'. */
  readonly nft?: string;
  /** Prepended to every command line, e.g. ['ip', 'netns', 'exec', 'NS']. */
  readonly commandPrefix?: readonly string[];
  /** Per-run limit; default 10 s. */
  readonly timeoutMs?: number;
}

export type CommandResult = ProgramResult;

/** Runs argv with `input` on stdin; resolves with its exit (rejects only if it cannot start). */
export async function runCommand(
  argv: readonly string[],
  input: string,
  signal: AbortSignal,
  timeoutMs: number,
): Promise<CommandResult> {
  try {
    return await runProgram(argv, { input, signal, timeoutMs });
  } catch (e) {
    throw new NftError('LIMEN_NFT_RUN', e instanceof Error ? e.message : String(e));
  }
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
