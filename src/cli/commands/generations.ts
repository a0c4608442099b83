// `limen generations` (every configuration the daemon ran, as numbered generations)
// and `limen rollback [GEN]` (put one back in place). docs/safe-change.md.

import { resolve } from 'node:path';
import { answerField, decodeGeneration, decodeProgress } from '../../control/client.ts';
import { printPlan, readCandidate } from './diff.ts';
import { Dict, dict, peel } from '../../preserves/index.ts';
import type { Value } from '../../preserves/index.ts';
import { paint } from '../table.ts';
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

function seconds(v: string | boolean | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v === 'string' && /^\d+(\.\d+)?$/.test(v) && Number(v) >= 1)
    return Math.round(Number(v) * 1000);
  throw new UsageError(`--timeout must be a number of seconds, at least 1 (got '${String(v)}')`);
}

export const tryCommand = controlCommand({
  path: ['try'],
  summary: 'apply a configuration as a trial: kept only if confirmed in time',
  usage:
    'limen try DIR [--dry-run] [--timeout SECONDS] [--message TEXT] [--auto-confirm] [--json] [--socket PATH]',
  help: `Sends the site configuration in DIR (every file, as /etc/limen would hold it) to
the daemon, which checks it (nothing is applied if a script has a problem, and
every problem is printed as file:line:col), records it as a generation in state
trial, applies it, and checks it: every required service up, no new failure.
The trial is kept only when confirmed before the timeout, with the token printed
here, from any session (limen confirm TOKEN); otherwise, or when a check fails, the
previous configuration is put back. If the daemon dies during the trial, its next
start puts the previous configuration back. Exit 0 only when confirmed.

With --dry-run nothing is recorded or applied: the candidate is checked, and what
trying it would do is printed as limen diff prints it (assertions that appear and
disappear, services that start, stop or restart).

Options:
  --dry-run           print the plan only
  --timeout SECONDS   how long the trial may wait for its confirmation (default 120)
  --message TEXT      recorded with the generation (default: limen try DIR)
  --auto-confirm      confirm as soon as every check passes

Examples:
  limen try ./candidate
  limen try ./candidate --dry-run
  limen try ./candidate --auto-confirm --timeout 60`,
  options: {
    'dry-run': { type: 'boolean' },
    timeout: { type: 'string' },
    message: { type: 'string' },
    'auto-confirm': { type: 'boolean' },
  },
  positionals: [1, 1],
  async run(ctx) {
    const dir = resolve(ctx.args.positionals[0]!);
    const timeoutMs = seconds(ctx.args.options.get('timeout'), 120_000);
    const message = ctx.args.options.get('message');
    const files = await readCandidate(ctx, dir);
    if (files === undefined) return ExitCode.Failed;
    if (ctx.args.options.get('dry-run') === true) {
      printPlan(ctx, await (await ctx.client()).diff(undefined, files, dir));
      return ExitCode.Ok;
    }
    const client = await ctx.client();
    const onEvent = (event: Value): void => {
      const e = peel(event);
      if (ctx.json) {
        ctx.io.out(
          jsonLine(e instanceof Dict ? e : dict({ progress: decodeProgress(event) ?? e })),
        );
        return;
      }
      if (e instanceof Dict) {
        const token = plain(answerField(e, 'token') ?? '');
        const deadline = answerField(e, 'deadline');
        ctx.io.out(
          `trial: generation ${plain(answerField(e, 'generation') ?? '?')}, until ` +
            `${typeof deadline === 'number' ? new Date(deadline).toISOString() : '?'}\n` +
            `to keep it, from any session: limen confirm ${token}\n`,
        );
        return;
      }
      const p = decodeProgress(event);
      if (p !== undefined) ctx.io.out(`${paint('try', 'dim', ctx.color)}: ${plain(p)}\n`);
    };
    const answer = await client.try(
      { files, source: dir },
      {
        timeoutMs,
        message: typeof message === 'string' ? message : `limen try ${dir}`,
        autoConfirm: ctx.args.options.get('auto-confirm') === true,
        signal: ctx.signal,
        onEvent,
      },
    );
    const confirmed = answerField(answer, 'confirmed') === true;
    if (ctx.json) ctx.io.out(jsonLine(answer));
    else
      ctx.io.out(
        `generation ${plain(answerField(answer, 'generation') ?? '?')}: ${plain(answerField(answer, 'outcome') ?? '')}\n`,
      );
    return confirmed ? ExitCode.Ok : ExitCode.Failed;
  },
});

export const confirmCommand = controlCommand({
  path: ['confirm'],
  summary: 'keep the configuration on trial (with the token limen try printed)',
  usage: 'limen confirm TOKEN [--json] [--socket PATH]',
  help: `Keeps the running trial: its generation becomes the last confirmed one. TOKEN
is the one limen try printed; it works from any session.

Examples:
  limen confirm 3f9c0e5d9a7b4c1e8f2a6b0d4e7c9a15`,
  positionals: [1, 1],
  async run(ctx) {
    const client = await ctx.client();
    const answer = await client.confirm(ctx.args.positionals[0]!);
    if (ctx.json) ctx.io.out(jsonLine(answer));
    else ctx.io.out(`confirmed generation ${plain(answerField(answer, 'generation') ?? '?')}\n`);
    return ExitCode.Ok;
  },
});

export const maintenanceCommand = controlCommand({
  path: ['maintenance'],
  summary: 'maintenance mode on or off: only the recovery bundle runs',
  usage: 'limen maintenance [on|off] [--json] [--socket PATH]',
  help: `Maintenance mode stops every service outside the recovery bundle and keeps the
bundle running: the network core (links, addresses, the WAN's DHCP client, the
LAN's DHCP and DNS), sshd if configured, the firewall and the control socket; a
configuration adds to it with <recovery-service S>. It stays on across restarts
until turned off; off brings every service back. The daemon turns it on by
itself when three starts in a row did not bring the configuration up. Without
an argument, says whether it is on.

Examples:
  limen maintenance on
  limen maintenance off`,
  positionals: [0, 1],
  async run(ctx) {
    const arg = ctx.args.positionals[0];
    if (arg !== undefined && arg !== 'on' && arg !== 'off')
      throw new UsageError(`expected on or off, got '${arg}'`);
    const client = await ctx.client();
    const answer = await client.maintenance(arg === undefined ? undefined : arg === 'on');
    if (ctx.json) {
      ctx.io.out(jsonLine(answer));
      return ExitCode.Ok;
    }
    const on = answerField(answer, 'on') === true;
    const reason = answerField(answer, 'reason');
    ctx.io.out(
      on
        ? `maintenance mode is on (${reason === undefined ? '' : plain(reason)}): only the recovery bundle runs\n`
        : 'maintenance mode is off\n',
    );
    return ExitCode.Ok;
  },
});
