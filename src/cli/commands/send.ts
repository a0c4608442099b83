// `limen send MESSAGE`: sends a message (`!`) into a dataspace; the observers
// present at that moment see it, and it is not kept.

import { DATASPACES } from '../../control/client.ts';
import { strip } from '../../preserves/index.ts';
import { oneOf } from '../args.ts';
import { controlCommand } from '../control-command.ts';
import { jsonLine, parseValueArg } from '../format.ts';
import { ExitCode } from '../io.ts';

export const sendCommand = controlCommand({
  path: ['send'],
  summary: 'send a message into a dataspace',
  usage: 'limen send MESSAGE [--dataspace config|machine|log] [--json] [--socket PATH]',
  help: `Sends MESSAGE (Preserves text) to the observers of a dataspace, as a script's
'! MESSAGE' does. Prints nothing on success (with --json: true).

Options:
  --dataspace D   config (default), machine or log

Examples:
  limen send '<restart-service <daemon sshd>>'
  limen send --dataspace log '<note "maintenance starts">'`,
  options: { dataspace: { type: 'string' } },
  positionals: [1, 1],
  async run(ctx) {
    const dataspace = oneOf(ctx.args.options.get('dataspace'), DATASPACES, 'dataspace', 'config');
    const message = strip(parseValueArg(ctx.args.positionals[0]!, 'MESSAGE'));
    const client = await ctx.client();
    const answer = await client.send(dataspace, message);
    if (ctx.json) ctx.io.out(jsonLine(answer));
    return ExitCode.Ok;
  },
});
