// `limen ifup IF` and `limen ifdown IF`: ask the daemon to configure an interface
// (or take it down), print its progress, and answer when it is done or has failed,
// with the reason (exit 1), or when --timeout passes.

import { answerField, decodeProgress } from '../../control/client.ts';
import { dict, peel, type Value } from '../../preserves/index.ts';
import { UsageError } from '../args.ts';
import { controlCommand, type ControlContext } from '../control-command.ts';
import { jsonLine, plain, show } from '../format.ts';
import { ExitCode } from '../io.ts';
import { paint } from '../table.ts';

function timeoutMs(v: string | boolean | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v === 'string' && /^\d+(\.\d+)?$/.test(v) && Number(v) > 0) {
    return Math.round(Number(v) * 1000);
  }
  throw new UsageError(`--timeout must be a positive number of seconds (got '${String(v)}')`);
}

async function run(ctx: ControlContext, which: 'up' | 'down'): Promise<number> {
  const ifname = ctx.args.positionals[0]!;
  const timeout = timeoutMs(ctx.args.options.get('timeout'));
  const client = await ctx.client();
  const onProgress = (event: Value): void => {
    const p = decodeProgress(event);
    if (p === undefined) return;
    if (ctx.json) ctx.io.out(jsonLine(dict({ progress: p })));
    else ctx.io.out(`${paint(ifname, 'dim', ctx.color)}: ${plain(p)}\n`);
  };
  const options = { timeoutMs: timeout, onProgress, signal: ctx.signal };
  const answer =
    which === 'up' ? await client.ifup(ifname, options) : await client.ifdown(ifname, options);
  if (ctx.json) {
    ctx.io.out(jsonLine(answer));
    return ExitCode.Ok;
  }
  const detail = answerField(answer, 'detail');
  const d = detail === undefined ? undefined : peel(detail);
  const extra = d === undefined || d === false ? '' : `: ${typeof d === 'string' ? d : show(d)}`;
  ctx.io.out(
    `${ifname} is ${paint(which, which === 'up' ? 'green' : 'yellow', ctx.color)}${extra}\n`,
  );
  return ExitCode.Ok;
}

const releaseNote = `
A DHCP lease on IF is released first (the server gets a DHCPRELEASE), waiting
up to 3 s for it to be withdrawn; then the link goes down. ifup gets a new one.
`;

const help = (
  which: 'up' | 'down',
): string => `Asks the daemon to bring interface IF ${which}, prints its progress, and answers
when it is ${which === 'up' ? 'configured' : 'down'} or has failed (exit 1, with the reason). IF is an
interface name as the kernel knows it (eth0, wan0...).
${which === 'down' ? releaseNote : ''}
To renew a DHCP lease now, without taking IF down:
  limen send '<dhcp-renew "IF">'

Options:
  --timeout SECONDS   give up after this long (default: the daemon's, 60 s)

Examples:
  limen if${which} wan0
  limen if${which} --timeout 20 --json lan0`;

export const ifupCommand = controlCommand({
  path: ['ifup'],
  summary: 'configure an interface; answers when it is up or has failed',
  usage: 'limen ifup IF [--timeout SECONDS] [--json] [--socket PATH]',
  help: help('up'),
  options: { timeout: { type: 'string' } },
  positionals: [1, 1],
  run: (ctx) => run(ctx, 'up'),
});

export const ifdownCommand = controlCommand({
  path: ['ifdown'],
  summary: 'take an interface down; answers when it is down',
  usage: 'limen ifdown IF [--timeout SECONDS] [--json] [--socket PATH]',
  help: help('down'),
  options: { timeout: { type: 'string' } },
  positionals: [1, 1],
  run: (ctx) => run(ctx, 'down'),
});
