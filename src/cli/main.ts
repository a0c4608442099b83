// The limen CLI: dispatches argv to a command and returns its exit code.
// Exit codes: 0 ok, 1 failed, 2 usage, 3 cannot reach the daemon.
//
// Commands are loaded on demand: this file names each one (its words and
// summary, for dispatch and the overview) and imports only the module that
// runs. `limen status` then pays for the control client alone, not for the
// daemon, the lab and the script engine (bench/cli.ts measures it against
// `node -e 0`); test/unit/cli/registry.test.ts keeps the names here equal to
// the commands' own.

import type { Command } from './command.ts';
import { ExitCode, processIo, type Io } from './io.ts';
import { VERSION } from '../base/version.ts';

export { VERSION };

/** A command as main knows it before loading it. */
export interface CommandEntry {
  readonly path: readonly string[];
  readonly summary: string;
  load(): Promise<Command>;
}

const entry = (
  path: readonly string[],
  summary: string,
  load: () => Promise<Command>,
): CommandEntry => ({ path, summary, load });

export const commands: readonly CommandEntry[] = [
  entry(['daemon'], 'run the limen daemon in the foreground', async () => {
    return (await import('./commands/daemon.ts')).daemonCommand;
  }),
  entry(['check'], 'check configuration scripts without running them', async () => {
    return (await import('./commands/check.ts')).checkCommand;
  }),
  entry(
    ['eval'],
    'run scripts against empty dataspaces and print the resulting assertions',
    async () => (await import('./commands/eval.ts')).evalCommand,
  ),
  entry(
    ['preserves', 'convert'],
    'convert Preserves between text, binary and JSON (stdin to stdout)',
    async () => (await import('./commands/preserves.ts')).convertCommand,
  ),
  entry(
    ['lab', 'up'],
    'build the lab: world, isp, rtr (limen), lan1, lan2 in namespaces',
    async () => (await import('./commands/lab.ts')).labUpCommand,
  ),
  entry(
    ['lab', 'down'],
    'remove a lab: processes, namespaces, files (--all: every lab)',
    async () => (await import('./commands/lab.ts')).labDownCommand,
  ),
  entry(
    ['lab', 'status'],
    'list the labs on this machine and what runs in them',
    async () => (await import('./commands/lab.ts')).labStatusCommand,
  ),
  entry(
    ['lab', 'exec'],
    'run a command in a lab node (limen on PATH, talking to the lab router)',
    async () => (await import('./commands/lab.ts')).labExecCommand,
  ),
  entry(
    ['lab', 'demo'],
    'the demo: the lab with limen as a home router, and a timeline',
    async () => (await import('./commands/lab.ts')).labDemoCommand,
  ),
  entry(['status'], "the daemon's status", async () => {
    return (await import('./commands/status.ts')).statusCommand;
  }),
  entry(['services'], 'list the services and their states', async () => {
    return (await import('./commands/services.ts')).servicesCommand;
  }),
  entry(['service'], 'one service in detail: processes, outputs', async () => {
    return (await import('./commands/services.ts')).serviceCommand;
  }),
  entry(['clients'], 'the hosts on the LAN: DHCP leases and IPv6 neighbours', async () => {
    return (await import('./commands/clients.ts')).clientsCommand;
  }),
  entry(['logs'], "a service's recent output (-f to follow)", async () => {
    return (await import('./commands/logs.ts')).logsCommand;
  }),
  entry(['query'], 'the assertions matching a pattern, now', async () => {
    return (await import('./commands/query.ts')).queryCommand;
  }),
  entry(['watch'], 'stream assertions matching patterns as they come and go', async () => {
    return (await import('./commands/query.ts')).watchCommand;
  }),
  entry(['send'], 'send a message into a dataspace', async () => {
    return (await import('./commands/send.ts')).sendCommand;
  }),
  entry(['start'], 'require a service (until stop, or the daemon exits)', async () => {
    return (await import('./commands/lifecycle.ts')).startCommand;
  }),
  entry(['stop'], 'withdraw the requirement that start made', async () => {
    return (await import('./commands/lifecycle.ts')).stopCommand;
  }),
  entry(['restart'], 'restart a service', async () => {
    return (await import('./commands/lifecycle.ts')).restartCommand;
  }),
  entry(['ifup'], 'configure an interface; answers when it is up or has failed', async () => {
    return (await import('./commands/ifupdown.ts')).ifupCommand;
  }),
  entry(['ifdown'], 'take an interface down; answers when it is down', async () => {
    return (await import('./commands/ifupdown.ts')).ifdownCommand;
  }),
  entry(['generations'], 'list the configuration generations', async () => {
    return (await import('./commands/generations.ts')).generationsCommand;
  }),
  entry(['rollback'], 'go back to an earlier configuration generation', async () => {
    return (await import('./commands/generations.ts')).rollbackCommand;
  }),
  entry(['try'], 'apply a configuration as a trial: kept only if confirmed in time', async () => {
    return (await import('./commands/generations.ts')).tryCommand;
  }),
  entry(['diff'], 'show what a change of configuration does, without applying it', async () => {
    return (await import('./commands/diff.ts')).diffCommand;
  }),
  entry(
    ['confirm'],
    'keep the configuration on trial (with the token limen try printed)',
    async () => {
      return (await import('./commands/generations.ts')).confirmCommand;
    },
  ),
  entry(['maintenance'], 'maintenance mode on or off: only the recovery bundle runs', async () => {
    return (await import('./commands/generations.ts')).maintenanceCommand;
  }),
  entry(['settings', 'list'], 'list the user settings', async () => {
    return (await import('./commands/settings.ts')).settingsListCommand;
  }),
  entry(['settings', 'set'], 'store a user setting', async () => {
    return (await import('./commands/settings.ts')).settingsSetCommand;
  }),
  entry(['settings', 'unset'], 'remove a user setting', async () => {
    return (await import('./commands/settings.ts')).settingsUnsetCommand;
  }),
  entry(['web-password', 'set'], "set the web dashboard's password", async () => {
    return (await import('./commands/web-password.ts')).webPasswordSetCommand;
  }),
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

function findCommand(argv: readonly string[]): [CommandEntry, readonly string[]] | undefined {
  let best: [CommandEntry, readonly string[]] | undefined;
  for (const c of commands) {
    if (c.path.every((w, i) => argv[i] === w)) {
      if (best === undefined || c.path.length > best[0].path.length)
        best = [c, argv.slice(c.path.length)];
    }
  }
  return best;
}

/**
 * The error's stable code if it is one of limen's errors. By code, not by class: a
 * command module may come from another copy of the sources than this file (the
 * bundled CLI loads the daemon and the lab from dist/'s per-module build).
 */
function limenCode(e: unknown): string | undefined {
  if (!(e instanceof Error)) return undefined;
  const code = (e as { code?: unknown }).code;
  return typeof code === 'string' && code.startsWith('LIMEN_') ? code : undefined;
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
  const [which, rest] = found;
  const cmd = await which.load();
  if (rest.includes('--help') || rest.includes('-h')) {
    io.out(`Usage: ${cmd.usage}\n\n${cmd.help}\n`);
    return ExitCode.Ok;
  }
  try {
    return await cmd.run(rest, io);
  } catch (e) {
    const code = limenCode(e);
    if (code === 'LIMEN_USAGE') {
      io.err(`limen ${cmd.path.join(' ')}: ${(e as Error).message}\nUsage: ${cmd.usage}\n`);
      return ExitCode.Usage;
    }
    if (code !== undefined) {
      io.err(`limen ${cmd.path.join(' ')}: ${(e as Error).message}\n`);
      return ExitCode.Failed;
    }
    throw e;
  }
}
