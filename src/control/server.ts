// The control server: listens on the control socket (mode 0600), accepts and bounds
// connections (Connection runs each), and dispatches each request to its command's
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
// Nothing here knows a command: a new one goes in src/control/commands/ (see
// commands/index.ts).

import { createServer, type Server, type Socket } from 'node:net';
import { LimenError, UserError } from '../base/errors.ts';
import type { Facet, Handle, Logger } from '../dataspace/index.ts';
import { ValueMap, type Value } from '../preserves/index.ts';
import { COMMANDS, findCommand } from './commands/index.ts';
import {
  label,
  type CommandDeps,
  type CommandOptions,
  type EncodedEvent,
  type RequestContext,
} from './commands/handler.ts';
import {
  ControlRequestError,
  InvalidSettingError,
  MessageTooLargeError,
  ProtocolError,
  formatBytes,
} from './errors.ts';
import {
  ArgReader,
  ErrorReason,
  LineReader,
  MAX_LINE_BYTES,
  MAX_MESSAGE_BYTES,
  MAX_MESSAGE_DEPTH,
  PROTOCOL_VERSION,
  decodeClientMessage,
  encodeServerMessage,
  writeValue,
  writeValueWithin,
  type ClientMessage,
  type MessageLimits,
  type RequestId,
  type ServerMessage,
} from './protocol.ts';
import { bindSocketFile, type BoundSocket, type ListeningSocket } from './socket-file.ts';

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
  /** `<require-service S>` asserted by `start`, by service (CommandDeps.required). */
  readonly required = new ValueMap<Handle>();
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
    this.facet = options.facet.spawn(() => {}, 'control server');
    this.deps = {
      options,
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
      this.#bound = await bindSocketFile(this.#net, this.socketPath);
    } else {
      this.#bound = this.options.listening;
      this.options.listening.accept((socket) => this.#accept(socket));
    }
    this.logger.info?.(`control: listening on ${this.socketPath}`, { socket: this.socketPath });
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
    const handler = findCommand(command);
    if (handler === undefined) {
      throw new ControlRequestError(
        ErrorReason.UnknownCommand,
        `unknown command ${command} (known: ${COMMANDS.join(', ')})`,
      );
    }
    return handler.handle(ctx, this.deps);
  }

  /** CommandDeps.sharedEventText: `body()` within the limits one level down (the event record is around it). */
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

/**
 * The socket is handed whole lines, up to this many bytes at a time (or one longer line),
 * and the next chunk only once it has taken the last: what a client has not read stays in
 * the connection's queue, where it is counted exactly and can be dropped without cutting a line.
 */
const CHUNK_BYTES = 64 * 1024;
/** Error messages are cut to this length (they quote what the client sent). */
const MAX_ERROR_MESSAGE = 64 * 1024;

/** The abort reason of a request its client cancelled (answered with `<end ID>`). */
const CANCELLED = new Error('cancelled by the client');
/** The abort reason of a request whose connection went away (answered with nothing). */
const DISCONNECTED = new Error('the client disconnected');

/** What a connection needs from its server. */
interface ConnectionHost {
  /** The server's facet: each connection's facet is a child of it. */
  readonly facet: Facet;
  readonly logger: Logger;
  readonly maxLineBytes: number;
  readonly maxOutputBytes: number;
  readonly maxOpenRequests: number;
  readonly limits: MessageLimits;
  readonly dropGraceMs: number;
  /** Bytes queued and in flight on every connection not being closed. */
  unsentBytes: number;
  /** Drops connections until the unsent bytes of all of them fit the server's budget. */
  enforceBudget(): void;
  /** Runs a request: its answer, or undefined when a stream ends. */
  handle(command: string, ctx: RequestContext): Promise<Value | undefined> | Value | undefined;
  /** The connection's socket is gone. */
  forget(connection: Connection): void;
}

/** What a client can do about an answer or event over a limit, by command. */
function narrowingHint(command: string): string {
  return (
    findCommand(command)?.tooLargeHint ??
    'this answer cannot be sent; tell the limen developers which request made it'
  );
}

/** Why a message cannot be sent: `what` would pass which limit, then `after`, then what to do. */
function tooLarge(what: string, e: MessageTooLargeError, command: string, after = ''): string {
  const limit =
    e.limit === 'bytes'
      ? `would be larger than ${formatBytes(e.max)}, the limit for one message`
      : `would nest deeper than ${e.max} levels, the limit for one message (Preserves' own)`;
  return `${what} ${limit}${after}; ${narrowingHint(command)}`;
}

/** A line waiting to be handed to the socket, with its size in bytes (newline included). */
interface Queued {
  readonly line: string;
  readonly bytes: number;
}

/** One client: its line reader, its open requests, its facet (watches live in it), its output queue. */
class Connection {
  readonly server: ConnectionHost;
  readonly socket: Socket;
  readonly facet: Facet;
  readonly reader: LineReader;
  /** Requests not finished yet, by id. */
  readonly open = new ValueMap<AbortController>();
  /** When the client last sent a line or was last answered (for choosing whom to close). */
  lastActive = Date.now();
  /** When the socket last took everything queued for it (for choosing whom to drop). */
  caughtUpAt = performance.now();
  #closing = false;
  #gone = false;
  #destroyTimer: NodeJS.Timeout | undefined;
  /** Lines not yet handed to the socket, oldest first, and their bytes. */
  #queue: Queued[] = [];
  #queuedBytes = 0;
  /** Bytes handed to the socket whose write has not completed (at most one chunk). */
  #inFlight = 0;
  /** Whether this connection's unsent bytes still count in the server's total. */
  #counted = true;
  /** Resolves once the socket has closed and the connection's facet has stopped. */
  readonly closed: Promise<void>;
  #resolveClosed!: () => void;

  constructor(server: ConnectionHost, socket: Socket) {
    this.server = server;
    this.socket = socket;
    this.closed = new Promise((resolve) => (this.#resolveClosed = resolve));
    this.facet = server.facet.spawn(() => {}, 'control connection');
    this.reader = new LineReader(server.maxLineBytes, (line) => this.#line(line));
    socket.on('data', (chunk: Buffer) => this.#data(chunk));
    socket.on('error', () => this.#teardown());
    socket.on('close', () => this.#teardown());
    this.write({ type: 'hello', version: PROTOCOL_VERSION });
  }

  get closing(): boolean {
    return this.#closing;
  }

  /** Bytes this connection has been given and its client has not taken yet (as far as we know). */
  get unsent(): number {
    return this.#queuedBytes + this.#inFlight;
  }

  /** No request running and nothing to send: closing it loses the client nothing but the connection. */
  get isIdle(): boolean {
    return !this.#closing && this.open.size === 0 && this.unsent === 0;
  }

  /**
   * Queues a message, unless the client already has too much unread: then drops it (and
   * returns false). A message over the limits throws MessageTooLargeError and is not sent.
   */
  write(m: ServerMessage): boolean {
    if (!this.#admit()) return false;
    const line = encodeServerMessage(m, this.server.limits);
    this.#enqueue(line, Buffer.byteLength(line) + 1);
    return true;
  }

  /** As write() for `<event ID BODY>`, the body already written (shared between clients). */
  writeEvent(id: RequestId, write: () => EncodedEvent): boolean {
    if (!this.#admit()) return false;
    const body = write();
    const head = `<event ${writeValue(id)} `;
    const bytes = Buffer.byteLength(head) + body.bytes + 1;
    if (bytes > this.server.limits.maxBytes) {
      throw new MessageTooLargeError('bytes', this.server.limits.maxBytes);
    }
    // Concatenation makes a rope that points at the shared body: each client's queue holds
    // only its own few bytes until the line is handed to its socket.
    this.#enqueue(head + body.text + '>', bytes + 1);
    return true;
  }

  /** False if closing, or if the client has too much unread: then it is dropped. */
  #admit(): boolean {
    if (this.#closing || this.socket.destroyed) return false;
    const unsent = this.unsent;
    if (unsent > this.server.maxOutputBytes) {
      this.server.logger.warn(
        `control: dropping a client that does not read its output (${unsent} bytes unsent)`,
        { unsent },
      );
      this.drop(
        ErrorReason.Lagged,
        `you did not read fast enough (${unsent} bytes were waiting, the limit is ` +
          `${formatBytes(this.server.maxOutputBytes)}); closing the connection`,
      );
      return false;
    }
    return true;
  }

  #enqueue(line: string, bytes: number): void {
    this.#queue.push({ line, bytes });
    this.#queuedBytes += bytes;
    this.server.unsentBytes += bytes;
    this.#flush();
    this.server.enforceBudget();
  }

  /** Hands the socket the next chunk of whole lines, once it has taken the previous one. */
  #flush(): void {
    if (this.#inFlight > 0 || this.#queue.length === 0 || this.socket.destroyed) return;
    let n = 0;
    let bytes = 0;
    while (n < this.#queue.length && (n === 0 || bytes + this.#queue[n]!.bytes <= CHUNK_BYTES)) {
      bytes += this.#queue[n]!.bytes;
      n++;
    }
    const lines = this.#queue.splice(0, n);
    this.#queuedBytes -= bytes;
    this.#inFlight = bytes;
    const text =
      lines.length === 1 ? lines[0]!.line + '\n' : lines.map((q) => q.line + '\n').join('');
    // The callback runs once the socket has passed the chunk to the kernel (on a later tick,
    // even when the write completed at once), or with an error when the socket is destroyed.
    this.socket.write(text, () => {
      this.#inFlight = 0;
      if (this.#counted) this.server.unsentBytes -= bytes;
      if (this.#queue.length === 0) this.caughtUpAt = performance.now();
      if (!this.#closing) this.#flush();
    });
  }

  /** Stops counting this connection in the server's total and forgets what it had not sent. */
  #discard(): void {
    if (this.#counted) {
      this.#counted = false;
      this.server.unsentBytes -= this.unsent;
    }
    this.#queue = [];
    this.#queuedBytes = 0;
  }

  /** Drops a client that lags: what it has not read is discarded, then it is told why. */
  drop(reason: ErrorReason, message: string): void {
    if (this.#closing) return;
    this.#discard();
    this.#fail(reason, message);
  }

  /** Closes an idle connection to make room for another (nothing to discard, nothing to wait for). */
  evict(reason: ErrorReason, message: string): void {
    if (this.#closing) return;
    this.#discard();
    this.#fail(reason, message, 0);
  }

  /** Tells the client why after what it was already sent, then closes the connection
   *  (destroying it if it will not read). */
  #fail(reason: ErrorReason, message: string, graceMs = this.server.dropGraceMs): void {
    if (this.#closing) return;
    this.#closing = true;
    this.#abortAll(DISCONNECTED);
    this.reader.close();
    // What is queued goes before the notice, at once: the queue is bounded, and nothing
    // more will be added to it.
    const rest = this.#queue.map((q) => q.line + '\n').join('');
    this.#discard();
    const notice = encodeServerMessage({ type: 'error', id: undefined, reason, message }) + '\n';
    this.socket.end(rest + notice);
    if (graceMs === 0 && this.socket.writableLength === 0) {
      this.socket.destroy();
      return;
    }
    this.#destroyTimer = setTimeout(() => this.socket.destroy(), graceMs);
    this.#destroyTimer.unref();
  }

  /** Says the daemon is stopping and closes; resolves once the socket is gone. */
  shutdown(graceMs: number): Promise<void> {
    if (this.#gone) return this.closed;
    if (!this.#closing) this.#fail(ErrorReason.ShuttingDown, 'limen is shutting down', graceMs);
    else {
      // Already being dropped: a client that never reads must not delay the shutdown.
      clearTimeout(this.#destroyTimer);
      this.#destroyTimer = setTimeout(() => this.socket.destroy(), graceMs);
      this.#destroyTimer.unref();
    }
    return this.closed;
  }

  #data(chunk: Buffer): void {
    let ok: boolean;
    try {
      ok = this.reader.push(chunk);
    } catch (e) {
      // A bug in handling one client's line must cost that client only, never the daemon.
      const message = e instanceof Error ? e.message : String(e);
      this.server.logger.error(
        `control: dropping a connection after an internal error: ${message}`,
        {
          error: e,
        },
      );
      this.#fail(ErrorReason.Internal, `internal error: ${message}`);
      return;
    }
    if (ok || this.#closing) return;
    this.server.logger.warn(
      `control: closing a connection that sent a line over ${this.reader.maxBytes} bytes`,
    );
    this.#fail(
      ErrorReason.LineTooLong,
      `a line was longer than ${this.reader.maxBytes} bytes; closing the connection`,
    );
  }

  #line(line: string | undefined): void {
    if (this.#closing) return;
    this.lastActive = Date.now();
    if (line === undefined) {
      this.#error(undefined, ErrorReason.Syntax, 'the line is not UTF-8 text');
      return;
    }
    if (line.trim() === '') return;
    let msg: ClientMessage;
    try {
      msg = decodeClientMessage(line);
    } catch (e) {
      if (e instanceof ProtocolError) {
        this.#error(e.id, e.reason, e.message);
        return;
      }
      throw e;
    }
    if (msg.type === 'cancel') {
      // A cancel for a request that already finished is normal (it raced the answer).
      this.open.get(msg.id)?.abort(CANCELLED);
      return;
    }
    if (this.open.has(msg.id)) {
      this.#error(msg.id, ErrorReason.DuplicateId, `request ${String(msg.id)} is still open`);
      return;
    }
    if (this.open.size >= this.server.maxOpenRequests) {
      this.#error(
        msg.id,
        ErrorReason.TooManyRequests,
        `this connection has ${this.open.size} requests running, its limit; ` +
          `cancel some, or wait for their answers`,
      );
      return;
    }
    this.#run(msg).catch((e: unknown) => {
      const message = e instanceof Error ? e.message : String(e);
      this.server.logger.error(`control: ${msg.command} failed: ${message}`, { error: e });
    });
  }

  #error(id: RequestId | undefined, reason: string, message: string): void {
    const text =
      message.length > MAX_ERROR_MESSAGE
        ? `${message.slice(0, MAX_ERROR_MESSAGE - 3)}...`
        : message;
    this.write({ type: 'error', id, reason, message: text });
  }

  async #run(msg: Extract<ClientMessage, { type: 'request' }>): Promise<void> {
    const { id, command } = msg;
    const ac = new AbortController();
    this.open.set(id, ac);
    let finished = false;
    const ctx: RequestContext = {
      id,
      args: new ArgReader(id, msg.args),
      signal: ac.signal,
      facet: this.facet,
      event: (value) => {
        if (finished || ac.signal.aborted) return;
        try {
          this.write({ type: 'event', id, value });
        } catch (e) {
          // The request stops (a watch, a log follow...) and answers with the reason.
          ac.abort(this.#eventFailure(command, () => label(value), e));
        }
      },
      eventText: (write, describe) => {
        if (finished || ac.signal.aborted) return;
        try {
          this.writeEvent(id, write);
        } catch (e) {
          ac.abort(this.#eventFailure(command, describe, e));
        }
      },
    };
    try {
      const value = await this.server.handle(command, ctx);
      finished = true;
      if (ac.signal.aborted) this.#ended(id, command, ac.signal);
      else if (value === undefined) this.write({ type: 'end', id });
      else this.#answer(id, command, value);
    } catch (e) {
      finished = true;
      if (ac.signal.aborted) this.#ended(id, command, ac.signal);
      else this.#failure(id, command, e);
    } finally {
      // Only our own entry: after we answered, the client may reuse the id.
      if (this.open.get(id) === ac) this.open.delete(id);
      this.lastActive = Date.now();
    }
  }

  #answer(id: RequestId, command: string, value: Value): void {
    try {
      this.write({ type: 'ok', id, value });
    } catch (e) {
      if (!(e instanceof MessageTooLargeError)) throw e;
      this.server.logger.warn(`control: ${command}: the answer is too large (${e.message})`);
      this.#error(id, ErrorReason.TooLarge, tooLarge('the answer', e, command));
    }
  }

  #eventFailure(command: string, what: () => string, e: unknown): Error {
    if (e instanceof MessageTooLargeError) {
      this.server.logger.warn(`control: ${command}: an event is too large (${e.message})`);
      return new ControlRequestError(
        ErrorReason.TooLarge,
        tooLarge(`an event (${what()})`, e, command, `, so the ${command} stopped`),
      );
    }
    const message = e instanceof Error ? e.message : String(e);
    this.server.logger.error(`control: ${command}: an event failed: ${message}`, { error: e });
    return new ControlRequestError(ErrorReason.Internal, `internal error: ${message}`);
  }

  #ended(id: RequestId, command: string, signal: AbortSignal): void {
    const reason: unknown = signal.reason;
    if (reason === CANCELLED) this.write({ type: 'end', id });
    else if (reason instanceof ControlRequestError) this.#failure(id, command, reason);
  }

  #failure(id: RequestId, command: string, e: unknown): void {
    if (e instanceof ControlRequestError) return this.#error(id, e.reason, e.message);
    if (e instanceof ProtocolError) return this.#error(id, e.reason, e.message);
    if (e instanceof InvalidSettingError) {
      return this.#error(id, ErrorReason.InvalidSetting, e.message);
    }
    if (e instanceof UserError || e instanceof LimenError) {
      this.server.logger.warn(`control: ${command} failed: ${e.message}`, { error: e });
      return this.#error(id, ErrorReason.Failed, e.message);
    }
    const message = e instanceof Error ? e.message : String(e);
    this.server.logger.error(`control: ${command} failed: ${message}`, { error: e });
    this.#error(id, ErrorReason.Internal, `internal error: ${message}`);
  }

  #abortAll(reason: Error): void {
    for (const ac of [...this.open.values()]) ac.abort(reason);
  }

  #teardown(): void {
    if (this.#gone) return;
    this.#gone = true;
    this.#closing = true;
    clearTimeout(this.#destroyTimer);
    this.#discard();
    this.reader.close();
    this.#abortAll(DISCONNECTED);
    this.open.clear();
    this.facet.stop();
    this.server.forget(this);
    this.#resolveClosed();
  }
}
