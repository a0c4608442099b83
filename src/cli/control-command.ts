// What every command that talks to the daemon shares: --socket (and LIMEN_SOCKET),
// --root, --json, help with the exit codes, one connection through the control
// client (closed when the command ends), and one mapping from failures to exit
// codes: 1 the daemon said no, 2 usage, 3 the daemon cannot be reached.

import {
  ControlClient,
  ControlClosedError,
  ControlConnectError,
  ControlRequestError,
  ControlVersionError,
  ProtocolError,
  socketPathFor,
} from '../control/client.ts';
import { parseArgs, UsageError, type OptionSpec, type ParsedArgs } from './args.ts';
import type { Command } from './command.ts';
import { ExitCode, type Io } from './io.ts';
import { colorEnabled } from './table.ts';

const commonOptions: OptionSpec = {
  socket: { type: 'string' },
  root: { type: 'string' },
  json: { type: 'boolean' },
};

const commonHelp = `Common options:
  --socket PATH   the control socket (default: $LIMEN_SOCKET, else /run/limen/control.sock)
  --root DIR      the daemon's --root: use DIR/run/limen/control.sock
  --json          output for scripts: JSON (streams: one JSON document per line)

Exit codes: 0 ok, 1 the request failed, 2 usage error, 3 cannot reach the daemon.
The control socket is root-only (mode 0600): run limen as root.`;

export interface ControlContext {
  readonly io: Io;
  readonly args: ParsedArgs;
  readonly json: boolean;
  readonly color: boolean;
  /** `limen status`, for messages. */
  readonly name: string;
  /** Aborts long-running commands (follow, watch); from the Io. */
  readonly signal: AbortSignal | undefined;
  /** The connection (made on first use, closed when the command ends). */
  client(): Promise<ControlClient>;
}

export interface ControlCommandSpec {
  readonly path: readonly string[];
  readonly summary: string;
  readonly usage: string;
  /** What the command does, its own options and examples (the common part is appended). */
  readonly help: string;
  readonly options?: OptionSpec;
  /** Positional arguments: [min, max]. */
  readonly positionals: readonly [number, number];
  run(ctx: ControlContext): Promise<number>;
}

/** The socket path: --socket, else $LIMEN_SOCKET, else the default (under --root if given). */
export function resolveSocket(args: ParsedArgs, env: NodeJS.ProcessEnv): string {
  const socket = args.options.get('socket');
  if (typeof socket === 'string') return socket;
  const root = args.options.get('root');
  if (typeof root === 'string') return socketPathFor(root);
  const fromEnv = env['LIMEN_SOCKET'];
  return fromEnv !== undefined && fromEnv !== '' ? fromEnv : socketPathFor();
}

function isAbort(e: unknown, signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true && (e === signal.reason || (e as Error).name === 'AbortError');
}

export function controlCommand(spec: ControlCommandSpec): Command {
  const name = `limen ${spec.path.join(' ')}`;
  return {
    path: spec.path,
    summary: spec.summary,
    usage: spec.usage,
    help: `${spec.help}\n\n${commonHelp}`,
    async run(argv: readonly string[], io: Io): Promise<number> {
      const args = parseArgs(argv, { ...commonOptions, ...spec.options });
      const [min, max] = spec.positionals;
      const n = args.positionals.length;
      if (n < min)
        throw new UsageError(
          `expected ${min === max ? min : `at least ${min}`} argument${min === 1 ? '' : 's'}, got ${n}`,
        );
      if (n > max) throw new UsageError(`unexpected argument '${args.positionals[max]!}'`);
      const socketPath = resolveSocket(args, io.env);
      let client: ControlClient | undefined;
      const ctx: ControlContext = {
        io,
        args,
        json: args.options.get('json') === true,
        color: colorEnabled(io),
        name,
        signal: io.signal,
        client: async () =>
          (client ??= await ControlClient.connect(socketPath, { signal: io.signal })),
      };
      try {
        return await spec.run(ctx);
      } catch (e) {
        if (isAbort(e, io.signal)) return ExitCode.Ok;
        if (e instanceof ControlConnectError) {
          io.err(`${name}: ${e.message}\n`);
          return ExitCode.NoDaemon;
        }
        if (e instanceof ControlClosedError) {
          io.err(`${name}: ${e.message}\n`);
          return ExitCode.NoDaemon;
        }
        if (e instanceof ControlRequestError) {
          io.err(`${name}: ${e.message}\n`);
          return ExitCode.Failed;
        }
        if (e instanceof ControlVersionError || e instanceof ProtocolError) {
          io.err(`${name}: ${e.message}\n`);
          return ExitCode.Failed;
        }
        throw e;
      } finally {
        client?.close();
      }
    },
  };
}
