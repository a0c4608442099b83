// `limen query PATTERN` (the assertions matching a pattern now) and `limen watch
// PATTERN...` (a stream of + and - as they come and go, ! for messages).

import {
  DATASPACES,
  decodeQueryAnswer,
  decodeWatchEvent,
  type DataspaceName,
} from '../../control/client.ts';
import { dict, type Value } from '../../preserves/index.ts';
import { oneOf } from '../args.ts';
import { controlCommand, type ControlContext } from '../control-command.ts';
import { jsonLine, parsePatternArg, show } from '../format.ts';
import { ExitCode } from '../io.ts';
import { paint, renderTable } from '../table.ts';

function dataspaceOf(ctx: ControlContext): DataspaceName {
  return oneOf(ctx.args.options.get('dataspace'), DATASPACES, 'dataspace', 'config');
}

const patternHelp = `PATTERN is Preserves text: _ matches anything, ?name captures, <?name P>
captures while matching P; records and sequences match by prefix.`;

export const queryCommand = controlCommand({
  path: ['query'],
  summary: 'the assertions matching a pattern, now',
  usage: 'limen query PATTERN [--dataspace config|machine|log] [--json] [--socket PATH]',
  help: `Prints the assertions in a dataspace that match PATTERN. With captures, a table
with one column per capture; without, one value per line.
${patternHelp}

Options:
  --dataspace D   config (default), machine or log

Examples:
  limen query '<require-service ?s>'
  limen query --dataspace machine '<interface ?name _ _ _ ?oper>'
  limen query --json '<service-state ?s ?state>' | jq '.matches[].captures'`,
  options: { dataspace: { type: 'string' } },
  positionals: [1, 1],
  async run(ctx) {
    const dataspace = dataspaceOf(ctx);
    const pattern = parsePatternArg(ctx.args.positionals[0]!, 'PATTERN');
    const client = await ctx.client();
    const answer = await client.query(dataspace, pattern);
    if (ctx.json) {
      ctx.io.out(jsonLine(answer));
      return ExitCode.Ok;
    }
    const a = decodeQueryAnswer(answer);
    if (a.names.length === 0) {
      for (const m of a.matches) ctx.io.out(show(m.value) + '\n');
    } else if (a.matches.length > 0) {
      const rows = a.matches.map((m) =>
        a.names.map((n) => {
          const c = m.captures.find(([k]) => k === n);
          return c === undefined ? '-' : show(c[1]);
        }),
      );
      ctx.io.out(renderTable(a.names, rows, { color: ctx.color }));
    }
    return ExitCode.Ok;
  },
});

function watchPrinter(ctx: ControlContext): (v: Value) => void {
  return (v) => {
    const e = decodeWatchEvent(v);
    if (e === undefined) return;
    if (ctx.json) {
      ctx.io.out(
        e.type === 'synced'
          ? jsonLine(dict({ event: 'synced' }))
          : jsonLine(
              dict({
                event: e.type,
                value: e.value,
                captures: dict(Object.fromEntries(e.captures)),
              }),
            ),
      );
      return;
    }
    switch (e.type) {
      case 'synced':
        return;
      case 'added':
        ctx.io.out(`${paint('+', 'green', ctx.color)} ${show(e.value)}\n`);
        return;
      case 'removed':
        ctx.io.out(`${paint('-', 'red', ctx.color)} ${show(e.value)}\n`);
        return;
      case 'message':
        ctx.io.out(`${paint('!', 'yellow', ctx.color)} ${show(e.value)}\n`);
        return;
    }
  };
}

export const watchCommand = controlCommand({
  path: ['watch'],
  summary: 'stream assertions matching patterns as they come and go',
  usage: 'limen watch PATTERN... [--dataspace config|machine|log] [--json] [--socket PATH]',
  help: `Prints '+ VALUE' for each assertion matching a PATTERN (those present first),
'- VALUE' when one goes away, and '! VALUE' for each matching message, until
interrupted (Ctrl-C). Several patterns are watched together.
${patternHelp}

With --json, one object per line: {"event": "added"|"removed"|"message", "value",
"captures"}, and {"event": "synced"} once everything present at the start was shown.

Options:
  --dataspace D   config (default), machine or log

Examples:
  limen watch '<service-state ?s ?state>'
  limen watch --dataspace machine '<address "wan0" ?a>' '<route ?r>'
  limen watch --dataspace log '<log _ {service: <daemon sshd>}>'`,
  options: { dataspace: { type: 'string' } },
  positionals: [1, Infinity],
  async run(ctx) {
    const dataspace = dataspaceOf(ctx);
    const patterns = ctx.args.positionals.map((p, i) =>
      parsePatternArg(p, ctx.args.positionals.length > 1 ? `PATTERN ${i + 1}` : 'PATTERN'),
    );
    const client = await ctx.client();
    const print = watchPrinter(ctx);
    await Promise.all(
      patterns.map((pattern) =>
        client.watch(dataspace, pattern, {
          onEvent: print,
          ...(ctx.signal !== undefined ? { signal: ctx.signal } : {}),
        }),
      ),
    );
    return ExitCode.Ok;
  },
});
