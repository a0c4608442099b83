// `limen settings list|set VALUE|unset VALUE`: the user settings the daemon keeps
// in /var/lib/limen/user-settings/ (one file per setting, each published as
// <user-setting VALUE>).

import { decodeSettingsAnswer } from '../../control/client.ts';
import { strip } from '../../preserves/index.ts';
import { controlCommand } from '../control-command.ts';
import { jsonLine, parseValueArg, show } from '../format.ts';
import { ExitCode } from '../io.ts';
import { answerField } from '../../control/client.ts';

const storeHelp = `Each setting is a file in /var/lib/limen/user-settings/ named by the SHA-1 of the
value's canonical form; the daemon publishes each as <user-setting VALUE> in $config.`;

export const settingsListCommand = controlCommand({
  path: ['settings', 'list'],
  summary: 'list the user settings',
  usage: 'limen settings list [--json] [--socket PATH]',
  help: `Prints every stored setting, one per line. A file that cannot be read is
reported on standard error (the others are still listed).
${storeHelp}

Examples:
  limen settings list
  limen settings list --json | jq '.settings[].value'`,
  positionals: [0, 0],
  async run(ctx) {
    const client = await ctx.client();
    const answer = await client.settingsList();
    if (ctx.json) {
      ctx.io.out(jsonLine(answer));
      return ExitCode.Ok;
    }
    const a = decodeSettingsAnswer(answer);
    for (const s of a.settings) ctx.io.out(show(s.value) + '\n');
    for (const p of a.problems) ctx.io.err(`${ctx.name}: warning: ${p.file}: ${p.message}\n`);
    return ExitCode.Ok;
  },
});

export const settingsSetCommand = controlCommand({
  path: ['settings', 'set'],
  summary: 'store a user setting',
  usage: 'limen settings set VALUE [--json] [--socket PATH]',
  help: `Stores VALUE (Preserves text) as a user setting; storing it again changes
nothing. A setting cannot contain pattern or variable syntax (_ ?x $x) or embedded values.
${storeHelp}

Examples:
  limen settings set '<hostname "router">'
  limen settings set '<require-service <daemon sshd>>'`,
  positionals: [1, 1],
  async run(ctx) {
    const value = strip(parseValueArg(ctx.args.positionals[0]!, 'VALUE'));
    const client = await ctx.client();
    const answer = await client.settingsSet(value);
    if (ctx.json) ctx.io.out(jsonLine(answer));
    else {
      const changed = answerField(answer, 'changed') === true;
      ctx.io.out(changed ? `set ${show(value)}\n` : `${show(value)} was already set\n`);
    }
    return ExitCode.Ok;
  },
});

export const settingsUnsetCommand = controlCommand({
  path: ['settings', 'unset'],
  summary: 'remove a user setting',
  usage: 'limen settings unset VALUE [--json] [--socket PATH]',
  help: `Removes the stored setting VALUE (Preserves text, as it was set). Fails (exit 1)
if it is not stored.
${storeHelp}

Examples:
  limen settings unset '<hostname "router">'`,
  positionals: [1, 1],
  async run(ctx) {
    const value = strip(parseValueArg(ctx.args.positionals[0]!, 'VALUE'));
    const client = await ctx.client();
    const answer = await client.settingsUnset(value);
    ctx.io.out(ctx.json ? jsonLine(answer) : `unset ${show(value)}\n`);
    return ExitCode.Ok;
  },
});
