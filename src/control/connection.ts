// One client of the control server: its line reader, its open requests, its facet
// (what its requests start lives there), and its output queue. It reads requests
// line by line, runs each through the server's table of commands with a
// RequestContext (arguments, events, an AbortSignal), and answers each exactly once;
// `<cancel ID>` aborts one, and the connection going away aborts them all.
//
// Invariants: what the client has not read is counted exactly (whole lines, handed to
// the socket one chunk at a time) and bounded: past the limit the client is told and
// dropped. A bug in handling one client's line costs that client only.
//
// Nothing here knows a command: a new one goes in src/control/commands/ (see
// commands/index.ts).

import type { Socket } from 'node:net';
import { LimenError, UserError } from '../base/errors.ts';
import type { Facet, Logger } from '../dataspace/index.ts';
import { ValueMap, type Value } from '../preserves/index.ts';
import { findCommand } from './commands/index.ts';
import { label, type EncodedEvent, type RequestContext } from './commands/handler.ts';
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
  PROTOCOL_VERSION,
  decodeClientMessage,
  encodeServerMessage,
  writeValue,
  type ClientMessage,
  type MessageLimits,
  type RequestId,
  type ServerMessage,
} from './protocol.ts';

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
export interface ConnectionHost {
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
export class Connection {
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
