// `limen generations` (every configuration the daemon ran, as numbered generations)
// and `limen rollback [GEN]` (put one back in place). docs/safe-change.md.

import { answerField, decodeGeneration } from '../../control/client.ts';
import type { Value } from '../../preserves/index.ts';
import { UsageError } from '../args.ts';
import { controlCommand } from '../control-command.ts';
import { jsonLine, plain, showTime } from '../format.ts';
import { ExitCode } from '../io.ts';
import { renderTable } from '../table.ts';

export const generationsCommand = controlCommand({
  path: ['generations'],
  summary: 'list the configuration generations',
  usage: 'limen generations [--json] [--socket PATH]',
  help: `Lists the configuration generations, oldest first: every site configuration the
daemon ran (the one it started with, each hand edit once it settled, each trial),
with its time, outcome (confirmed, trial, or rolled back and why) and message.
The current generation is marked '*', the last confirmed one 'c'.

Examples:
  limen generations
  limen generations --json | jq '.[] | select(.current)'`,
  positionals: [0, 0],
  async run(ctx) {
    const client = await ctx.client();
    const answer = await client.generations();
    if (ctx.json) {
      ctx.io.out(jsonLine(answer));
      return ExitCode.Ok;
    }
    const list = Array.isArray(answer) ? (answer as readonly Value[]).map(decodeGeneration) : [];
    if (list.length === 0) {
      ctx.io.out('no generations\n');
      return ExitCode.Ok;
    }
    const rows = list.map((g) => [
      `${g.current ? '*' : ' '}${g.lastConfirmed ? 'c' : ' '}`,
      String(g.number),
      showTime(g.time),
      g.outcome,
      g.message,
    ]);
    ctx.io.out(renderTable(['', 'GEN', 'TIME', 'OUTCOME', 'MESSAGE'], rows, { color: ctx.color }));
    return ExitCode.Ok;
  },
});

export const rollbackCommand = controlCommand({
  path: ['rollback'],
  summary: 'go back to an earlier configuration generation',
  usage: 'limen rollback [GEN] [--json] [--socket PATH]',
  help: `Puts the site configuration of generation GEN back in place (default: the last
confirmed generation before the current one); the daemon applies it as it applies
any edit. The generation it leaves is recorded as rolled back.

Examples:
  limen rollback
  limen rollback 12`,
  positionals: [0, 1],
  async run(ctx) {
    const arg = ctx.args.positionals[0];
    let to: number | undefined;
    if (arg !== undefined) {
      to = Number(arg);
      if (!/^[1-9][0-9]*$/.test(arg) || !Number.isSafeInteger(to))
        throw new UsageError(
          `GEN must be a generation number (see limen generations), got '${arg}'`,
        );
    }
    const client = await ctx.client();
    const answer = await client.rollback(to);
    if (ctx.json) {
      ctx.io.out(jsonLine(answer));
      return ExitCode.Ok;
    }
    const f = (name: string) => {
      const v = answerField(answer, name);
      return v === undefined ? undefined : plain(v);
    };
    const from = f('from');
    ctx.io.out(
      `rolled back${from === undefined ? '' : ` from generation ${from}`} to generation ${f('to')}` +
        ` (${f('written')} file(s) written, ${f('removed')} removed)\n`,
    );
    return ExitCode.Ok;
  },
});
