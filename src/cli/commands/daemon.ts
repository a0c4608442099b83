// `limen daemon`: runs the daemon in the foreground until SIGTERM or SIGINT,
// then stops every service in reverse dependency order and exits 0. SIGHUP
// rescans the configuration directories.

import { oneOf, parseArgs } from '../args.ts';
import type { Command } from '../command.ts';
import { ExitCode, type Io } from '../io.ts';
import { startDaemon } from '../../daemon/daemon.ts';

export const daemonCommand: Command = {
  path: ['daemon'],
  summary: 'run the limen daemon in the foreground',
  usage:
    'limen daemon [--root DIR] [--config DIR]... [--socket PATH] [--resolv-conf PATH] [--no-network] [--cgroup auto|off] [--web-group GROUP] [--log-format text|json] [--log-level LEVEL]',
  help: `Runs the daemon until SIGTERM or SIGINT (then stops every service in reverse
dependency order and exits 0). SIGHUP rescans the configuration directories.

Options:
  --root DIR          put every path limen uses under DIR (run dir, state dir,
                      outputs, socket, etc/limen): for tests and the lab
  --config DIR        a site configuration root with core/ and services/
                      (repeatable; default /etc/limen and /run/limen/etc)
  --socket PATH       the control socket (default /run/limen/control.sock)
  --resolv-conf PATH  the resolv.conf to write (default /etc/resolv.conf, or
                      etc/resolv.conf under --root)
  --no-network        start no network driver: a service manager only (links,
                      addresses, routes, firewall are left alone)
  --cgroup MODE       auto (default): a cgroup v2 per service process where the
                      kernel offers one; off: recorded process groups instead
                      (see docs/running.md, "Processes")
  --web-group GROUP   serve the web endpoint, run/limen/web/control.sock, to the
                      members of GROUP (a name or a gid): a restricted control
                      socket for the web dashboard (docs/control-protocol.md,
                      "The web endpoint"); without it there is none
  --log-format FMT    text (default) or json, one line per event on stderr
  --log-level LEVEL   debug, info (default), warn or error

Examples:
  limen daemon
  limen daemon --root /tmp/limen-test --config ./examples/site --log-format json
  tini -g -- limen daemon          # as PID 1 (see docs/running.md)`,
  async run(argv: readonly string[], io: Io): Promise<number> {
    const configDirs: string[] = [];
    const rest: string[] = [];
    for (let i = 0; i < argv.length; i++) {
      if (argv[i] === '--config' && argv[i + 1] !== undefined) configDirs.push(argv[++i]!);
      else if (argv[i]!.startsWith('--config='))
        configDirs.push(argv[i]!.slice('--config='.length));
      else rest.push(argv[i]!);
    }
    const args = parseArgs(rest, {
      root: { type: 'string' },
      socket: { type: 'string' },
      'log-format': { type: 'string' },
      'log-level': { type: 'string' },
      'resolv-conf': { type: 'string' },
      'no-network': { type: 'boolean' },
      cgroup: { type: 'string' },
      'web-group': { type: 'string' },
    });
    if (args.positionals.length > 0) {
      io.err(`limen daemon: unexpected argument '${args.positionals[0]}'\n`);
      return ExitCode.Usage;
    }
    const root = args.options.get('root');
    const socket = args.options.get('socket');
    const resolvConf = args.options.get('resolv-conf');
    const webGroup = args.options.get('web-group');
    // SIGTERM and SIGINT are taken from the start: one that comes while the daemon is
    // still starting (its first services may already run) stops it as soon as it has
    // started, instead of killing it with their services left behind. One listener each
    // for the whole run: removing the last listener stops Node's signal watcher, and a
    // signal that had arrived but was not yet dispatched would then be lost (seen in
    // CI: a SIGTERM at the end of the start did nothing).
    let daemon: Awaited<ReturnType<typeof startDaemon>> | undefined;
    let early: NodeJS.Signals | undefined;
    const onSignal = (sig: NodeJS.Signals) => {
      if (daemon === undefined) early ??= sig;
      else void daemon.shutdown(sig);
    };
    const onHup = () => void daemon?.rescan();
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    process.on('SIGHUP', onHup);
    try {
      daemon = await startDaemon({
        root: typeof root === 'string' ? root : undefined,
        socket: typeof socket === 'string' ? socket : undefined,
        resolvConf: typeof resolvConf === 'string' ? resolvConf : undefined,
        webGroup: typeof webGroup === 'string' ? webGroup : undefined,
        network: args.options.get('no-network') !== true,
        cgroup: oneOf(args.options.get('cgroup'), ['auto', 'off'] as const, 'cgroup', 'auto'),
        configDirs,
        logFormat: oneOf(
          args.options.get('log-format'),
          ['text', 'json'] as const,
          'log-format',
          'text',
        ),
        logLevel: oneOf(
          args.options.get('log-level'),
          ['debug', 'info', 'warn', 'error'] as const,
          'log-level',
          'info',
        ),
        write: (line) => io.err(line),
      });
      if (early !== undefined) void daemon.shutdown(early);
      await daemon.stopped;
    } finally {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      process.off('SIGHUP', onHup);
    }
    return ExitCode.Ok;
  },
};
