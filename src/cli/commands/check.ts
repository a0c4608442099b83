// `limen check`: reads and checks script files without running them, and
// reports every problem in every file (file:line:col: message), not just the first.

import { parseArgs, UsageError } from '../args.ts';
import type { Command } from '../command.ts';
import { ExitCode, type Io } from '../io.ts';
import { ScriptPathError, checkScriptFiles, formatProblem } from '../../script/index.ts';

/** The bindings the standard config trees are loaded with. */
export const STANDARD_BINDINGS = ['config', 'machine', 'log'] as const;

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

export const checkCommand: Command = {
  path: ['check'],
  summary: 'check configuration scripts without running them',
  usage: 'limen check DIR|FILE...',
  help: `Reads every script (*.pr under each directory, recursively, skipping
dot-files and dot-directories; a FILE is checked whatever its name) and
reports every problem found: syntax errors, unknown instructions, missing
operands, malformed patterns, unbound variables. Scripts are checked with
$config, $machine and $log bound, as the daemon loads them. Nothing runs.

Exit status: 0 if there are no problems, 1 otherwise.

Examples:
  limen check /etc/limen
  limen check config/boot site.pr`,
  async run(argv: readonly string[], io: Io): Promise<number> {
    const args = parseArgs(argv, {});
    if (args.positionals.length === 0) throw new UsageError('expected at least one DIR or FILE');
    let files;
    try {
      files = await checkScriptFiles(args.positionals, STANDARD_BINDINGS);
    } catch (e) {
      if (e instanceof ScriptPathError) {
        io.err(`limen check: ${e.message}\n`);
        return ExitCode.Failed;
      }
      throw e;
    }
    let problems = 0;
    let broken = 0;
    for (const f of files) {
      if (f.problems.length === 0) continue;
      broken++;
      for (const p of f.problems) {
        problems++;
        io.out(formatProblem(p) + '\n');
      }
    }
    if (problems === 0) {
      io.out(`checked ${plural(files.length, 'file')}: no errors\n`);
      return ExitCode.Ok;
    }
    io.out(
      `checked ${plural(files.length, 'file')}: ${plural(problems, 'error')} in ${plural(broken, 'file')}\n`,
    );
    return ExitCode.Failed;
  },
};
