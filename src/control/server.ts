// The control server: listens on the control socket (mode 0600), accepts and bounds
// connections (connection.ts runs each), and dispatches each request to its command's
// handler, found by name in the table of commands (commands/index.ts). It owns a child
// facet of the one it is given (what `limen start` requires, the watches' observers
// live under it) and one facet per connection; close() stops them all and removes the
// socket.
//
// Invariants: a client never blocks the daemon nor grows its memory without bound:
// input lines are bounded (1 MiB by default; over it the connection is closed); each
// message sent is bounded in bytes and nesting, and stops being encoded as soon as it
// passes a limit (that request alone fails, `too-large`); unsent output is bounded
// per connection and across all of them (over it the laggard is told and dropped);
// connections and the requests running on each are bounded. A bad line gets an
// error and the connection stays usable; every request's work is aborted when it is
// cancelled or its connection goes away.
//
// The same server serves the web endpoint (docs/control-protocol.md, "The web
// endpoint"): given an EndpointPolicy it runs only the commands the policy allows,
// refusing (and logging) the others, with the same bounds as the root socket.
//
// Nothing here knows a command: a new one goes in src/control/commands/ (see
// commands/index.ts).

import { createServer, type Server, type Socket } from 'node:net';
import type { Facet, Handle, Logger } from '../dataspace/index.ts';
import { ValueMap, type Value } from '../preserves/index.ts';
import { COMMANDS, findCommand } from './commands/index.ts';
import type {
  CommandDeps,
  CommandOptions,
  EncodedEvent,
  RequestContext,
} from './commands/handler.ts';
import { Connection, type ConnectionHost } from './connection.ts';
import { ControlRequestError, MessageTooLargeError, formatBytes } from './errors.ts';
import {
  ErrorReason,
  MAX_LINE_BYTES,
  MAX_MESSAGE_BYTES,
  MAX_MESSAGE_DEPTH,
  encodeServerMessage,
  writeValueWithin,
  type MessageLimits,
} from './protocol.ts';
import {
  bindSocketFile,
  type BoundSocket,
  type ListeningSocket,
  type SocketAccess,
} from './socket-file.ts';
import type { EndpointPolicy } from './web-endpoint.ts';

/** Unsent output one connection may have before another message is queued for it. */
export const DEFAULT_MAX_OUTPUT_BYTES = 2 * 1024 * 1024;
/** Unsent output of all connections together; past it the one with the most is dropped. */
export const DEFAULT_MAX_TOTAL_OUTPUT_BYTES = 32 * 1024 * 1024;
export const DEFAULT_MAX_CONNECTIONS = 128;
/** Requests running at once on one connection (streams included). */
export const DEFAULT_MAX_OPEN_REQUESTS = 64;
/** How long close() lets clients read the shutdown notice. */
const SHUTDOWN_GRACE_MS = 500;

/** The transport's options, and what the daemon gives the commands (CommandOptions). */
export interface ControlServerOptions extends CommandOptions {
  readonly socketPath: string;
  /** The socket, already bound by listenOnSocketFile() (the daemon binds it first); absent: bound at start. */
  readonly listening?: ListeningSocket | undefined;
  /** Who besides root may connect (the web endpoint: its group); absent: root alone. */
  readonly socketAccess?: SocketAccess | undefined;
  /**
   * What `start` asserted, by service, shared with another server (the web endpoint
   * shares the root socket's: either's `stop` undoes either's `start`); absent: its own.
   * A handle is retracted by the facet that asserted it, wherever `stop` comes from.
   */
  readonly required?: ValueMap<Handle> | undefined;
  /** The commands this socket runs (the web endpoint's); absent: all of them. */
  readonly endpoint?: EndpointPolicy | undefined;
  /** The server runs in a child of this facet (its engine is the daemon's). */
  readonly facet: Facet;
  readonly logger: Logger;
  /** Longest request line in bytes (default 1 MiB). */
  readonly maxLineBytes?: number;
  /** Unsent bytes a connection may have before a new message is queued; over it the client is dropped (default 2 MiB). */
  readonly maxOutputBytes?: number;
  /** Unsent bytes of all connections; over it the one with the most is dropped (default 32 MiB). */
  readonly maxTotalOutputBytes?: number;
  /** Longest message sent, in bytes (default 4 MiB); deepest nesting is Preserves' own 512. */
  readonly maxMessageBytes?: number;
  /** Open connections (default 128); past it an idle one is closed, or the new one refused. */
  readonly maxConnections?: number;
  /** Requests running at once on one connection (default 64). */
  readonly maxOpenRequests?: number;
  /** How long a dropped client has to read its last message before the socket is destroyed. */
  readonly dropGraceMs?: number;
}

export interface ControlServer {
  readonly socketPath: string;
  /** Open connections (those being closed included, until their socket is gone). */
  readonly connectionCount: number;
  /** Bytes queued for clients and not yet taken by their sockets, over all connections. */
  readonly unsentBytes: number;
  /** Stops listening, drops every client, stops the server's facet, removes the socket. */
  close(): Promise<void>;
}

/** Starts the server; resolves once the socket is listening (mode 0600). */
export async function startControlServer(options: ControlServerOptions): Promise<ControlServer> {
  const server = new ControlServerImpl(options);
  try {
    await server.start();
  } catch (e) {
    await server.close();
    throw e;
  }
  return server;
}

class ControlServerImpl implements ControlServer, ConnectionHost {
  readonly socketPath: string;
  readonly options: ControlServerOptions;
  readonly logger: Logger;
  readonly facet: Facet;
  readonly maxLineBytes: number;
  readonly maxOutputBytes: number;
  readonly maxTotalOutputBytes: number;
  readonly maxConnections: number;
  readonly maxOpenRequests: number;
  readonly limits: MessageLimits;
  readonly dropGraceMs: number;
  /** What the commands are given (built once). */
  readonly deps: CommandDeps;
  readonly connections = new Set<Connection>();
  /** Bytes queued and in flight on every connection not being closed. */
  unsentBytes = 0;
  /**
   * Event texts written this tick (sharedEventText), by owner (a watch's asserted value),
   * then by key (its kind and pattern): every client watching the same pattern gets the
   * same text (and the same string, so their queues share it), written once instead of
   * once per client. Cleared on the next tick, so it holds only what is being sent now.
   */
  #eventTexts = new WeakMap<object, Map<string, EncodedEvent | MessageTooLargeError>>();
  #eventTextsClear: NodeJS.Immediate | undefined;
  /** Connections refused since the last log line about it, and when that line was. */
  #refused = 0;
  #refusedLoggedAt = -Infinity;
  /** Requests the endpoint's policy refused since the last log line about them, and when that was. */
  #forbidden = 0;
  #forbiddenLoggedAt = -Infinity;
  /** `<require-service S>` asserted by `start`, by service (CommandDeps.required). */
  readonly required: ValueMap<Handle>;
  readonly #net: Server;
  #bound: BoundSocket | undefined;
  #closing: Promise<void> | undefined;

  constructor(options: ControlServerOptions) {
    this.options = options;
    this.socketPath = options.socketPath;
    this.logger = options.logger;
    this.maxLineBytes = options.maxLineBytes ?? MAX_LINE_BYTES;
    this.maxOutputBytes = options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
    this.maxTotalOutputBytes = options.maxTotalOutputBytes ?? DEFAULT_MAX_TOTAL_OUTPUT_BYTES;
    this.maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
    this.maxOpenRequests = options.maxOpenRequests ?? DEFAULT_MAX_OPEN_REQUESTS;
    this.limits = {
      maxBytes: options.maxMessageBytes ?? MAX_MESSAGE_BYTES,
      maxDepth: MAX_MESSAGE_DEPTH,
    };
    this.dropGraceMs = options.dropGraceMs ?? 2000;
    this.required = options.required ?? new ValueMap<Handle>();
    this.facet = options.facet.spawn(() => {}, 'control server');
    this.deps = {
      options,
      endpoint: options.endpoint?.name ?? 'root',
      facet: this.facet,
      limits: this.limits,
      required: this.required,
      ref: (name) => options.dataspaces[name],
      sharedEventText: (owner, key, body) => this.#sharedEventText(owner, key, body),
    };
    this.#net = options.listening?.server ?? createServer((socket) => this.#accept(socket));
    this.#net.on('error', (e) =>
      this.logger.error(`control: socket error: ${e.message}`, { error: e }),
    );
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  async start(): Promise<void> {
    if (this.options.listening === undefined) {
      this.#bound = await bindSocketFile(this.#net, this.socketPath, this.options.socketAccess);
    } else {
      this.#bound = this.options.listening;
      this.options.listening.accept((socket) => this.#accept(socket));
    }
    const endpoint = this.options.endpoint;
    this.logger.info?.(
      `control: listening on ${this.socketPath}` +
        (endpoint === undefined ? '' : ` (the ${endpoint.name} endpoint)`),
      { socket: this.socketPath, ...(endpoint === undefined ? {} : { endpoint: endpoint.name }) },
    );
  }

  #accept(socket: Socket): void {
    if (this.#closing !== undefined || !this.facet.isAlive) {
      socket.destroy();
      return;
    }
    if (this.#live() >= this.maxConnections && !this.#makeRoom()) {
      // A flood must not flood the log too: one line a second at most, with the count.
      this.#refused++;
      const now = performance.now();
      if (now - this.#refusedLoggedAt >= 1000) {
        this.logger.warn(
          `control: refusing a connection: ${this.maxConnections} are open, each with a request ` +
            `running (${this.#refused} refused since the last such line)`,
          { limit: this.maxConnections, refused: this.#refused },
        );
        this.#refused = 0;
        this.#refusedLoggedAt = now;
      }
      refuse(
        socket,
        ErrorReason.TooManyConnections,
        `limen has ${this.maxConnections} connections open (its limit), each with a request ` +
          `running; close some (watch or logs -f clients, say) and try again`,
      );
      return;
    }
    this.connections.add(new Connection(this, socket));
  }

  /** Connections not being closed. */
  #live(): number {
    let n = 0;
    for (const c of this.connections) if (!c.closing) n++;
    return n;
  }

  /**
   * At the connection limit, closes the connection idle the longest (no request running,
   * nothing unsent), so that a flood of idle connections cannot lock out root's CLI: it
   * sends its request as soon as it is greeted, and a connection with a request running
   * is never closed to make room. False when every connection is busy.
   */
  #makeRoom(): boolean {
    let idlest: Connection | undefined;
    for (const c of this.connections) {
      if (c.isIdle && (idlest === undefined || c.lastActive < idlest.lastActive)) idlest = c;
    }
    if (idlest === undefined) return false;
    idlest.evict(
      ErrorReason.TooManyConnections,
      `limen reached its limit of ${this.maxConnections} connections and closed this idle one ` +
        `to make room`,
    );
    return true;
  }

  /** Drops connections, the one with the most unsent output first, until all fit the budget. */
  enforceBudget(): void {
    while (this.unsentBytes > this.maxTotalOutputBytes) {
      let worst: Connection | undefined;
      for (const c of this.connections) {
        if (c.closing) continue;
        // Equal amounts are common (every watcher of a burst got the same events): then
        // the one that has gone longest without taking all it was sent lags the most.
        if (
          worst === undefined ||
          c.unsent > worst.unsent ||
          (c.unsent === worst.unsent && c.caughtUpAt < worst.caughtUpAt)
        )
          worst = c;
      }
      if (worst === undefined || worst.unsent === 0) return;
      const unsent = worst.unsent;
      this.logger.warn(
        `control: dropping the client with the most unsent output (${unsent} bytes): ` +
          `all clients together passed ${formatBytes(this.maxTotalOutputBytes)}`,
        { unsent, limit: this.maxTotalOutputBytes },
      );
      worst.drop(
        ErrorReason.Lagged,
        `limen's unsent output to all clients passed ${formatBytes(this.maxTotalOutputBytes)} ` +
          `and this connection had the most (${unsent} bytes); closing it`,
      );
    }
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    const closed = new Promise<void>((resolve) => {
      if (!this.#net.listening) resolve();
      else this.#net.close(() => resolve());
    });
    // Tell every client why, give each a moment to read it, then cut what is left.
    await Promise.all(
      [...this.connections].map((c) => c.shutdown(Math.min(this.dropGraceMs, SHUTDOWN_GRACE_MS))),
    );
    this.facet.stop();
    this.required.clear();
    await closed;
    await this.#bound?.unlink();
  }

  /** The connection's socket is gone. */
  forget(connection: Connection): void {
    this.connections.delete(connection);
  }

  // ---- Requests --------------------------------------------------------------------------

  handle(command: string, ctx: RequestContext): Promise<Value | undefined> | Value | undefined {
    if (!this.facet.isAlive) {
      throw new ControlRequestError(ErrorReason.ShuttingDown, 'limen is shutting down');
    }
    const policy = this.options.endpoint;
    if (policy !== undefined && !policy.allows(command)) this.#forbid(policy, command);
    const handler = findCommand(command);
    if (handler === undefined) {
      throw new ControlRequestError(
        ErrorReason.UnknownCommand,
        `unknown command ${command} (known: ${COMMANDS.join(', ')})`,
      );
    }
    return handler.handle(ctx, this.deps);
  }

  /** Refuses a command the endpoint does not run, and logs it (one line a second at most). */
  #forbid(policy: EndpointPolicy, command: string): never {
    this.#forbidden++;
    const now = performance.now();
    if (now - this.#forbiddenLoggedAt >= 1000) {
      this.logger.warn(
        `control (${policy.name}): refused ${abbreviateCommand(command)}: not a command of the ` +
          `${policy.name} endpoint (${this.#forbidden} refused since the last such line)`,
        { endpoint: policy.name, command: abbreviateCommand(command), refused: this.#forbidden },
      );
      this.#forbidden = 0;
      this.#forbiddenLoggedAt = now;
    }
    throw new ControlRequestError(
      ErrorReason.Forbidden,
      `${abbreviateCommand(command)} is not run on the ${policy.name} endpoint ` +
        `(it runs: ${COMMANDS.filter((c) => policy.allows(c)).join(', ')}); ` +
        `use the root-only control socket`,
    );
  }

  /**
   * CommandDeps.sharedEventText: `body()` within the limits one level down (the event
   * record is around it), memoised by owner and key until the next tick.
   */
  #sharedEventText(owner: Value, key: string, body: () => Value): EncodedEvent {
    const write = (): EncodedEvent | MessageTooLargeError => {
      try {
        const text = writeValueWithin(body(), {
          maxBytes: this.limits.maxBytes,
          maxDepth: this.limits.maxDepth - 1,
        });
        return { text, bytes: Buffer.byteLength(text) };
      } catch (e) {
        if (!(e instanceof MessageTooLargeError)) throw e;
        // Say the message's limits, not those of the part written here.
        return e.limit === 'depth'
          ? new MessageTooLargeError('depth', this.limits.maxDepth)
          : new MessageTooLargeError('bytes', this.limits.maxBytes);
      }
    };
    let r: EncodedEvent | MessageTooLargeError | undefined;
    if (typeof owner !== 'object' || owner === null) r = write();
    else {
      let byKey = this.#eventTexts.get(owner);
      if (byKey === undefined) {
        byKey = new Map();
        this.#eventTexts.set(owner, byKey);
        if (this.#eventTextsClear === undefined) {
          this.#eventTextsClear = setImmediate(() => {
            this.#eventTexts = new WeakMap();
            this.#eventTextsClear = undefined;
          });
        }
      }
      r = byKey.get(key);
      if (r === undefined) {
        r = write();
        byKey.set(key, r);
      }
    }
    if (r instanceof MessageTooLargeError) throw r;
    return r;
  }
}

/** A command name as the log shows it: a client chooses it, so it is cut short. */
function abbreviateCommand(command: string): string {
  return command.length > 40 ? `${command.slice(0, 37)}...` : command;
}

/**
 * Turns a connection away with one error line. The line is tiny and the socket's buffer
 * empty, so it is written at once and the socket is destroyed right away: a flood of
 * connections never piles up sockets waiting to close.
 */
function refuse(socket: Socket, reason: ErrorReason, message: string): void {
  socket.on('error', () => {});
  socket.write(encodeServerMessage({ type: 'error', id: undefined, reason, message }) + '\n');
  socket.destroy();
}
