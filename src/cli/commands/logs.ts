// `limen logs [-f] [-n N] SERVICE`: a service's recent output from the daemon's
// ring buffer, and with -f every new line until interrupted.

import { decodeLogEntry, type LogEntry } from '../../control/client.ts';
import type { Value } from '../../preserves/index.ts';
import { UsageError } from '../args.ts';
import { controlCommand, type ControlContext } from '../control-command.ts';
import { jsonLine, parseServiceArg, showTime } from '../format.ts';
import { ExitCode } from '../io.ts';
import { paint } from '../table.ts';

const DEFAULT_LINES = 50;

function lineCount(v: string | boolean | undefined): number {
  if (v === undefined) return DEFAULT_LINES;
  if (typeof v === 'string' && /^\d+$/.test(v)) return Number(v);
  throw new UsageError(`-n must be a number of lines (got '${String(v)}')`);
}

function printer(ctx: ControlContext): (entry: Value) => void {
  return (v) => {
    if (ctx.json) {
      ctx.io.out(jsonLine(v));
      return;
    }
    const e: LogEntry = decodeLogEntry(v);
    const stream = paint(e.stream, e.stream === 'stderr' ? 'red' : 'dim', ctx.color);
    ctx.io.out(`${paint(showTime(e.time), 'dim', ctx.color)} ${stream} ${e.line}\n`);
  };
}

export const logsCommand = controlCommand({
  path: ['logs'],
  summary: "a service's recent output (-f to follow)",
  usage: 'limen logs [-f] [-n N] SERVICE [--json] [--socket PATH]',
  help: `Prints the last lines a service wrote (the daemon keeps a ring buffer per
service). SERVICE is Preserves text; a bare word means <daemon WORD>.

Options:
  -n, --lines N   how many lines to show first (default ${DEFAULT_LINES}; 0 for none)
  -f, --follow    keep printing new lines until interrupted (Ctrl-C)

With --json, each line is a JSON object {"time", "stream", "line"}.

Examples:
  limen logs sshd
  limen logs -f -n 0 '<daemon <udhcpc "wan0">>'
  limen logs --json dnsmasq | jq -r .line`,
  options: {
    follow: { type: 'boolean', short: 'f' },
    lines: { type: 'string', short: 'n' },
  },
  positionals: [1, 1],
  async run(ctx) {
    const lines = lineCount(ctx.args.options.get('lines'));
    const service = parseServiceArg(ctx.args.positionals[0]!);
    const print = printer(ctx);
    const client = await ctx.client();
    if (ctx.args.options.get('follow') === true) {
      await client.followLogs(service, {
        lines,
        onEntry: print,
        ...(ctx.signal !== undefined ? { signal: ctx.signal } : {}),
      });
      return ExitCode.Ok;
    }
    const entries = await client.logs(service, lines);
    if (Array.isArray(entries)) for (const e of entries as readonly Value[]) print(e);
    return ExitCode.Ok;
  },
});
