// `limen status`: what the daemon reports about itself, as `key  value` lines
// for people or one JSON document for scripts.

import { Dict, peel } from '../../preserves/index.ts';
import { controlCommand } from '../control-command.ts';
import { jsonLine, plain, show } from '../format.ts';
import { ExitCode } from '../io.ts';
import { renderFields } from '../table.ts';

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
      const fields = [...d].map(([k, v]) => [plain(k), plain(v)] as const);
      fields.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
      ctx.io.out(renderFields(fields, { color: ctx.color }));
    } else {
      ctx.io.out(show(status) + '\n');
    }
    return ExitCode.Ok;
  },
});
