// `limen web-password set [--random]`: the web dashboard's password, read from
// standard input (its first line) or chosen at random and printed. The daemon stores
// it as a salted scrypt hash (STATE/web-password, mode 0600); it is sent over the
// root-only control socket and never appears on a command line.

import { answerField } from '../../control/client.ts';
import { controlCommand } from '../control-command.ts';
import { jsonLine } from '../format.ts';
import { ExitCode } from '../io.ts';

/** More than the daemon accepts (1024 bytes): stdin is read no further than this. */
const MAX_INPUT_BYTES = 4096;

/** The first line of `stream`, read no further than MAX_INPUT_BYTES; undefined past it. */
async function firstLine(stream: NodeJS.ReadableStream): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const c of stream) {
    const b = typeof c === 'string' ? Buffer.from(c) : c;
    chunks.push(b);
    bytes += b.length;
    if (b.includes(0x0a)) break;
    if (bytes > MAX_INPUT_BYTES) return undefined;
  }
  const text = Buffer.concat(chunks).toString('utf8');
  const nl = text.indexOf('\n');
  const line = nl < 0 ? text : text.slice(0, nl);
  return Buffer.byteLength(line) > MAX_INPUT_BYTES ? undefined : line.replace(/\r$/, '');
}

export const webPasswordSetCommand = controlCommand({
  path: ['web-password', 'set'],
  summary: "set the web dashboard's password",
  usage: 'limen web-password set [--random] [--json] [--socket PATH]',
  help: `Sets the password the web dashboard's login checks (on the web endpoint,
docs/control-protocol.md). The new password is the first line of standard input (8
to 1024 bytes), or with --random one chosen by the daemon and printed. It is stored
as a salted scrypt hash in /var/lib/limen/web-password (mode 0600); the old one stops
working at once.

Options:
  --random   choose a random password (24 characters) and print it

Examples:
  limen web-password set --random
  printf '%s\\n' "$NEW_PASSWORD" | limen web-password set`,
  options: { random: { type: 'boolean' } },
  positionals: [0, 0],
  async run(ctx) {
    const random = ctx.args.options.get('random') === true;
    let password: string | undefined;
    if (!random) {
      if (ctx.io.isTty) ctx.io.err('new web password (one line): ');
      password = await firstLine(ctx.io.stdin);
      if (password === undefined) {
        ctx.io.err(`${ctx.name}: the password is longer than ${MAX_INPUT_BYTES} bytes\n`);
        return ExitCode.Failed;
      }
    }
    const client = await ctx.client();
    const answer = await client.call(
      'web-password-set',
      password === undefined ? { random: true } : { password },
    );
    if (ctx.json) ctx.io.out(jsonLine(answer));
    else {
      const chosen = answerField(answer, 'password');
      const stored = answerField(answer, 'file');
      const file = typeof stored === 'string' ? stored : 'the state directory';
      ctx.io.out(
        typeof chosen === 'string'
          ? `web password set (stored in ${file}): ${chosen}\n`
          : `web password set (stored in ${file})\n`,
      );
    }
    return ExitCode.Ok;
  },
});
