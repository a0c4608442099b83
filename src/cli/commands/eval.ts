// `limen eval`: runs scripts against fresh, empty dataspaces with no drivers
// attached (nothing is started or touched on the system) until the engine is
// quiescent, then prints one dataspace's assertions in the Preserves total
// order, so the output is deterministic and diffable.

import { oneOf, parseArgs, UsageError } from '../args.ts';
import type { Command } from '../command.ts';
import { ExitCode, type Io } from '../io.ts';
import { STANDARD_BINDINGS } from './check.ts';
import { Dataspace, Engine, embed, type Logger } from '../../dataspace/index.ts';
import { compare, stringify, toJSONText, type Value } from '../../preserves/index.ts';
import {
  ScriptPathError,
  checkScriptFiles,
  formatProblem,
  presentable,
  runScripts,
  type Script,
} from '../../script/index.ts';

const DEFAULT_TIMEOUT_MS = 5000;

export const evalCommand: Command = {
  path: ['eval'],
  summary: 'run scripts against empty dataspaces and print the resulting assertions',
  usage: 'limen eval DIR|FILE... [--dataspace config|machine|log] [--json] [--timeout MS]',
  help: `Checks the scripts as 'limen check' does, then runs them (in order: each
directory's *.pr files in name order) with $config, $machine and $log bound to
fresh dataspaces and no drivers attached: no process is started and nothing on
the system is touched. When nothing more happens, prints the assertions of one
dataspace, one per line, sorted in the Preserves total order. References print
as #:<dataspace NAME>.

Options:
  --dataspace NAME  config (default), machine or log
  --json            one JSON value per line (see docs/json-mapping.md)
  --timeout MS      give up if the scripts are still busy after MS milliseconds;
                    default ${DEFAULT_TIMEOUT_MS}

A script that goes over its budget (a message loop, a value that grows each
turn, too many assertions: see docs/script-language.md) is stopped there and
reported with its file:line:col, as the daemon does.

Exit status: 0 if the scripts ran cleanly, 1 on a check, runtime or budget
error (the assertions are printed anyway after a runtime error), 2 on a usage
error.

Examples:
  limen eval config/boot
  limen eval config/boot config/core --dataspace machine --json`,
  async run(argv: readonly string[], io: Io): Promise<number> {
    const args = parseArgs(argv, {
      dataspace: { type: 'string' },
      json: { type: 'boolean' },
      timeout: { type: 'string' },
    });
    if (args.positionals.length === 0) throw new UsageError('expected at least one DIR or FILE');
    const which = oneOf(args.options.get('dataspace'), STANDARD_BINDINGS, 'dataspace', 'config');
    const json = args.options.get('json') === true;
    const timeoutText = args.options.get('timeout');
    const timeoutMs = timeoutText === undefined ? DEFAULT_TIMEOUT_MS : Number(timeoutText);
    if (!Number.isInteger(timeoutMs) || timeoutMs <= 0)
      throw new UsageError(
        `--timeout must be a positive number of milliseconds (got '${String(timeoutText)}')`,
      );

    let files;
    try {
      files = await checkScriptFiles(args.positionals, STANDARD_BINDINGS);
    } catch (e) {
      if (e instanceof ScriptPathError) {
        io.err(`limen eval: ${e.message}\n`);
        return ExitCode.Failed;
      }
      throw e;
    }
    const problems = files.flatMap((f) => f.problems);
    if (problems.length > 0) {
      for (const p of problems) io.err(formatProblem(p) + '\n');
      io.err(
        `limen eval: ${problems.length} error${problems.length === 1 ? '' : 's'}; nothing was run\n`,
      );
      return ExitCode.Failed;
    }

    const failures: string[] = [];
    const logger: Logger = {
      error: (m) => failures.push(m),
      warn: (m) => failures.push(m),
    };
    const engine = new Engine({ logger });
    const spaces = {
      config: new Dataspace(engine, 'config'),
      machine: new Dataspace(engine, 'machine'),
      log: new Dataspace(engine, 'log'),
    };
    const bindings = new Map<string, Value>(
      Object.entries(spaces).map(([name, ds]) => [name, embed(ds.ref)] as const),
    );
    runScripts(
      engine.root,
      files.map((f) => f.script as Script),
      bindings,
    );

    let timer: NodeJS.Timeout | undefined;
    const settled = await Promise.race([
      engine.sync().then(() => true),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (!settled) {
      // Stopping everything removes every observer, which ends whatever loop kept it busy.
      engine.root.stop();
      failures.push(`the scripts were still busy after ${timeoutMs} ms; stopped them`);
    }

    const values = [...spaces[which].values()].map(presentable).sort(compare);
    for (const v of values) io.out((json ? toJSONText(v) : stringify(v)) + '\n');
    for (const f of failures) io.err(`limen eval: ${f}\n`);
    return failures.length === 0 ? ExitCode.Ok : ExitCode.Failed;
  },
};
