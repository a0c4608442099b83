// The limen CLI: dispatches argv to a command and returns its exit code.
// Exit codes: 0 ok, 1 failed, 2 usage, 3 cannot reach the daemon.

import { UsageError } from './args.ts';
import type { Command } from './command.ts';
import { checkCommand } from './commands/check.ts';
import { daemonCommand } from './commands/daemon.ts';
import { evalCommand } from './commands/eval.ts';
import { convertCommand } from './commands/preserves.ts';
import { labCommands } from './commands/lab.ts';
import { ifdownCommand, ifupCommand } from './commands/ifupdown.ts';
import { restartCommand, startCommand, stopCommand } from './commands/lifecycle.ts';
import { logsCommand } from './commands/logs.ts';
import { queryCommand, watchCommand } from './commands/query.ts';
import { sendCommand } from './commands/send.ts';
import { serviceCommand, servicesCommand } from './commands/services.ts';
import {
  settingsListCommand,
  settingsSetCommand,
  settingsUnsetCommand,
} from './commands/settings.ts';
import { statusCommand } from './commands/status.ts';
import { ExitCode, processIo, type Io } from './io.ts';
import { LimenError } from '../base/errors.ts';
import { VERSION } from '../base/version.ts';

export { VERSION };

export const commands: readonly Command[] = [
  daemonCommand,
  checkCommand,
  evalCommand,
  convertCommand,
  ...labCommands,
  statusCommand,
  servicesCommand,
  serviceCommand,
  logsCommand,
  queryCommand,
  watchCommand,
  sendCommand,
  startCommand,
  stopCommand,
  restartCommand,
  ifupCommand,
  ifdownCommand,
  settingsListCommand,
  settingsSetCommand,
  settingsUnsetCommand,
];

function overview(): string {
  const rows = commands.map((c) => `  ${c.path.join(' ').padEnd(22)} ${c.summary}`);
  return `limen ${VERSION}: a reactive system layer for Linux routers and edge devices

Usage: limen COMMAND [OPTIONS]

Commands:
${rows.join('\n')}

Every command takes --help. Exit codes: 0 ok, 1 failed, 2 usage error,
3 cannot reach the daemon.
`;
}

function findCommand(argv: readonly string[]): [Command, readonly string[]] | undefined {
  let best: [Command, readonly string[]] | undefined;
  for (const c of commands) {
    if (c.path.every((w, i) => argv[i] === w)) {
      if (best === undefined || c.path.length > best[0].path.length)
        best = [c, argv.slice(c.path.length)];
    }
  }
  return best;
}

export async function main(argv: readonly string[], io: Io = processIo()): Promise<number> {
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    io.out(overview());
    return argv.length === 0 ? ExitCode.Usage : ExitCode.Ok;
  }
  if (argv[0] === '--version') {
    io.out(`${VERSION}\n`);
    return ExitCode.Ok;
  }
  const found = findCommand(argv);
  if (found === undefined) {
    const group = commands.filter((c) => c.path[0] === argv[0]);
    if (group.length > 0) {
      io.err(
        `limen ${argv[0]}: expected one of: ${group.map((c) => c.path.slice(1).join(' ')).join(', ')}\n`,
      );
    } else {
      io.err(`limen: unknown command '${argv[0]}' (try 'limen --help')\n`);
    }
    return ExitCode.Usage;
  }
  const [cmd, rest] = found;
  if (rest.includes('--help') || rest.includes('-h')) {
    io.out(`Usage: ${cmd.usage}\n\n${cmd.help}\n`);
    return ExitCode.Ok;
  }
  try {
    return await cmd.run(rest, io);
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`limen ${cmd.path.join(' ')}: ${e.message}\nUsage: ${cmd.usage}\n`);
      return ExitCode.Usage;
    }
    if (e instanceof LimenError) {
      io.err(`limen ${cmd.path.join(' ')}: ${e.message}\n`);
      return ExitCode.Failed;
    }
    throw e;
  }
}
