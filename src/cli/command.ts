// What a CLI command is: a name, help text with examples, and a run function
// that returns an exit code. main.ts dispatches on the first word(s).

import type { Io } from './io.ts';

export interface Command {
  /** Words that select the command, e.g. ['preserves', 'convert']. */
  readonly path: readonly string[];
  readonly summary: string;
  readonly usage: string;
  /** Full help: options and examples. */
  readonly help: string;
  run(args: readonly string[], io: Io): Promise<number>;
}
