// `limen status`: what the daemon reports about itself, as `key  value` lines
// for people or one JSON document for scripts. Failures are listed one per
// line, `KIND TEXT` (`config-error /etc/limen/x.pr:3:1: …`).

import { Dict, peel, sym, type Value } from '../../preserves/index.ts';
import { controlCommand } from '../control-command.ts';
import { jsonLine, plain, show } from '../format.ts';
import { ExitCode } from '../io.ts';
import { renderFields } from '../table.ts';

/** One `KIND TEXT` line per failure (a sequence of `{kind text …}`), or `none`. */
function failureLines(v: Value): string {
  const list = peel(v);
  if (!Array.isArray(list)) return plain(v);
  if (list.length === 0) return 'none';
  return (list as readonly Value[])
    .map((f) => {
      const d = peel(f);
      if (!(d instanceof Dict)) return plain(f);
      const kind = d.get(sym('kind'));
      const text = d.get(sym('text'));
      return kind === undefined || text === undefined ? plain(f) : `${plain(kind)} ${plain(text)}`;
    })
    .join('\n');
}

export const statusCommand = controlCommand({
  path: ['status'],
  summary: "the daemon's status",
  usage: 'limen status [--json] [--socket PATH]',
  help: `Shows what the running daemon reports about itself.

Examples:
  limen status
  limen status --json | jq .version`,
  positionals: [0, 0],
  async run(ctx) {
    const client = await ctx.client();
    const status = await client.status();
    if (ctx.json) {
      ctx.io.out(jsonLine(status));
      return ExitCode.Ok;
    }
    const d = peel(status);
    if (d instanceof Dict) {
      const fields = [...d].map(([k, v]) => {
        const key = plain(k);
        return [key, key === 'failures' ? failureLines(v) : plain(v)] as const;
      });
      fields.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
      ctx.io.out(renderFields(fields, { color: ctx.color }));
    } else {
      ctx.io.out(show(status) + '\n');
    }
    return ExitCode.Ok;
  },
});
