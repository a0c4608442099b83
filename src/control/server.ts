// The control server: listens on the control socket (mode 0600) and answers the
// requests of docs/control-protocol.md. It owns a child facet of the one it is
// given (what `limen start` requires, the watches' observers) and one facet per
// connection; close() stops them all and removes the socket.
//
// Invariants: a client never blocks the daemon: input lines are bounded (1 MiB by
// default; over it the connection is closed), unsent output is bounded (over it the
// client is told it lagged and dropped); a bad line gets an error and the
// connection stays usable; every request's work is aborted when it is cancelled or
// its connection goes away.

import { createServer, type Server, type Socket } from 'node:net';
import { LimenError, UserError } from '../base/errors.ts';
import {
  P,
  captureNames,
  compilePattern,
  PatternError,
  UnboundVariableError,
  type Facet,
  type Handle,
  type Logger,
  type Pattern,
  type Ref,
} from '../dataspace/index.ts';
import { ValueMap, compare, record, stringify, strip, type Value } from '../preserves/index.ts';
import { ControlRequestError, InvalidSettingError, ProtocolError } from './errors.ts';
import {
  ArgReader,
  COMMANDS,
  ErrorReason,
  LineReader,
  MAX_LINE_BYTES,
  PROTOCOL_VERSION,
  decodeClientMessage,
  dictOf,
  encodeLogEntry,
  encodeProgress,
  encodeQueryAnswer,
  encodeServerMessage,
  encodeServiceDetail,
  encodeServiceInfo,
  encodeSettingsAnswer,
  encodeWatchEvent,
  isCommandName,
  type ClientMessage,
  type DataspaceName,
  type RequestId,
  type ServerMessage,
} from './protocol.ts';
import type { InterfaceController, InterfaceResult, ServiceView } from './providers.ts';
import type { SettingsStore } from './settings-store.ts';
import { raceAbort, waitForAbort } from './signals.ts';
import { bindSocketFile, type BoundSocket, type ListeningSocket } from './socket-file.ts';

export const DEFAULT_MAX_OUTPUT_BYTES = 8 * 1024 * 1024;
export const DEFAULT_INTERFACE_TIMEOUT_MS = 60_000;
/** How long close() lets clients read the shutdown notice. */
const SHUTDOWN_GRACE_MS = 500;

export interface ControlServerOptions {
  readonly socketPath: string;
  /** The socket, already bound by listenOnSocketFile() (the daemon binds it first); absent: bound at start. */
  readonly listening?: ListeningSocket | undefined;
  /** The server runs in a child of this facet (its engine is the daemon's). */
  readonly facet: Facet;
  readonly dataspaces: { readonly config: Ref; readonly machine: Ref; readonly log: Ref };
  readonly services: ServiceView;
  /** Absent until the network layer exists: ifup/ifdown then answer `unsupported`. */
  readonly interfaces?: InterfaceController | undefined;
  readonly settings: SettingsStore;
  /** What `limen status` shows: a dictionary, by convention. */
  readonly status: () => Value | Promise<Value>;
  readonly logger: Logger;
  /** Longest request line in bytes (default 1 MiB). */
  readonly maxLineBytes?: number;
  /** Unsent output a client may accumulate before it is dropped (default 8 MiB). */
  readonly maxOutputBytes?: number;
  /** How long a dropped client has to read its last message before the socket is destroyed. */
  readonly dropGraceMs?: number;
  /** ifup/ifdown time limit when the request gives none (default 60 s). */
  readonly interfaceTimeoutMs?: number;
}

export interface ControlServer {
  readonly socketPath: string;
  /** Open connections. */
  readonly connectionCount: number;
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

/** The abort reason of a request its client cancelled (answered with `<end ID>`). */
const CANCELLED = new Error('cancelled by the client');
/** The abort reason of a request whose connection went away (answered with nothing). */
const DISCONNECTED = new Error('the client disconnected');

interface RequestContext {
  readonly id: RequestId;
  readonly args: ArgReader;
  readonly signal: AbortSignal;
  readonly connection: Connection;
  /** Streams an event; ignored once the request has finished. */
  event(value: Value): void;
}

function label(v: Value): string {
  const s = stringify(strip(v));
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

class ControlServerImpl implements ControlServer {
  readonly socketPath: string;
  readonly options: ControlServerOptions;
  readonly logger: Logger;
  readonly facet: Facet;
  readonly maxLineBytes: number;
  readonly maxOutputBytes: number;
  readonly dropGraceMs: number;
  readonly connections = new Set<Connection>();
  /** `<require-service S>` asserted by `start`, by service. */
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
    this.dropGraceMs = options.dropGraceMs ?? 2000;
    this.facet = options.facet.spawn(() => {}, 'control server');
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
    this.connections.add(new Connection(this, socket));
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

  ref(name: DataspaceName): Ref {
    return this.options.dataspaces[name];
  }

  // ---- Requests --------------------------------------------------------------------------

  handle(command: string, ctx: RequestContext): Promise<Value | undefined> | Value | undefined {
    if (!this.facet.isAlive) {
      throw new ControlRequestError(ErrorReason.ShuttingDown, 'limen is shutting down');
    }
    if (!isCommandName(command)) {
      throw new ControlRequestError(
        ErrorReason.UnknownCommand,
        `unknown command ${command} (known: ${COMMANDS.join(', ')})`,
      );
    }
    switch (command) {
      case 'status':
        ctx.args.done();
        return this.options.status();
      case 'services':
        ctx.args.done();
        return [...this.options.services.list()]
          .sort((a, b) => compare(a.service, b.service))
          .map(encodeServiceInfo);
      case 'service':
        return this.service(ctx);
      case 'logs':
        return this.logs(ctx);
      case 'query':
        return this.query(ctx);
      case 'watch':
        return this.watch(ctx);
      case 'send':
        return this.send(ctx);
      case 'start':
        return this.startService(ctx);
      case 'stop':
        return this.stopService(ctx);
      case 'restart':
        return this.restartService(ctx);
      case 'ifup':
        return this.iface(ctx, 'up');
      case 'ifdown':
        return this.iface(ctx, 'down');
      case 'settings-list':
        return this.settingsList(ctx);
      case 'settings-set':
        return this.settingsSet(ctx);
      case 'settings-unset':
        return this.settingsUnset(ctx);
    }
  }

  service(ctx: RequestContext): Value {
    const service = ctx.args.value('service', true);
    ctx.args.done();
    const detail = this.options.services.detail(service);
    if (detail === undefined) {
      throw new ControlRequestError(ErrorReason.NotFound, `unknown service ${label(service)}`);
    }
    let outputs = detail.outputs;
    if (outputs === undefined) {
      const pattern = P.rec('output', P.lit(service), P.bind('key'), P.bind('value'));
      outputs = this.ref('config')
        .dataspace.query(pattern)
        .map((m) => [m.captures.get('key')!, m.captures.get('value')!] as const)
        .sort((a, b) => compare(a[0], b[0]));
    }
    return encodeServiceDetail({ ...detail, outputs });
  }

  async logs(ctx: RequestContext): Promise<Value | undefined> {
    const service = ctx.args.value('service', true);
    const lines = ctx.args.count('lines', Number.MAX_SAFE_INTEGER);
    const follow = ctx.args.boolean('follow', false);
    ctx.args.done();
    const source = this.options.services.logs(service);
    if (source === undefined) {
      throw new ControlRequestError(
        ErrorReason.NotFound,
        `no logs for ${label(service)}: limen has not run that service`,
      );
    }
    if (!follow) return source.tail(lines).map(encodeLogEntry);
    for (const e of source.tail(lines)) ctx.event(encodeLogEntry(e));
    const sub = source.follow((e) => ctx.event(encodeLogEntry(e)));
    try {
      await waitForAbort(ctx.signal);
    } finally {
      sub.dispose();
    }
    return undefined;
  }

  pattern(ctx: RequestContext): Pattern | undefined {
    const value = ctx.args.value('pattern', true);
    try {
      return compilePattern(value);
    } catch (e) {
      if (e instanceof PatternError || e instanceof UnboundVariableError) {
        ctx.args.problem(`bad pattern: ${e.message}`);
        return undefined;
      }
      throw e;
    }
  }

  query(ctx: RequestContext): Value {
    const ref = this.ref(ctx.args.dataspace());
    const pattern = this.pattern(ctx);
    ctx.args.done();
    const names = captureNames(pattern!);
    const matches = ref.dataspace
      .query(pattern!)
      .sort((a, b) => compare(a.value, b.value))
      .map((m) => ({ value: m.value, captures: [...m.captures] }));
    return encodeQueryAnswer({ names, matches });
  }

  watch(ctx: RequestContext): Promise<Value | undefined> {
    const ref = this.ref(ctx.args.dataspace());
    const pattern = this.pattern(ctx)!;
    ctx.args.done();
    const { signal } = ctx;
    return new Promise((resolve, reject) => {
      const onAbort = (): void => child.stop();
      const child = ctx.connection.facet.spawn((f) => {
        f.onStop(() => {
          signal.removeEventListener('abort', onAbort);
          if (signal.aborted) resolve(undefined);
          else reject(new ControlRequestError(ErrorReason.Internal, 'the watch failed'));
        });
        f.observe(
          ref,
          pattern,
          {
            onAdd: (value, captures) =>
              ctx.event(encodeWatchEvent({ type: 'added', value, captures: [...captures] })),
            onRemove: (value, captures) =>
              ctx.event(encodeWatchEvent({ type: 'removed', value, captures: [...captures] })),
            onMessage: (value, captures) =>
              ctx.event(encodeWatchEvent({ type: 'message', value, captures: [...captures] })),
          },
          'control watch',
        );
        // Turns run in order, and the observation's first notifications are queued when
        // this turn commits: a turn queued from a turn queued now runs after all of them.
        f.turn(() => f.turn(() => ctx.event(encodeWatchEvent({ type: 'synced' }))));
      }, 'control watch');
      signal.addEventListener('abort', onAbort, { once: true });
      if (signal.aborted) child.stop();
    });
  }

  send(ctx: RequestContext): Value {
    const ref = this.ref(ctx.args.dataspace());
    const message = ctx.args.value('message', true);
    ctx.args.done();
    this.facet.turn(() => this.facet.send(ref, message));
    return true;
  }

  startService(ctx: RequestContext): Value {
    const service = ctx.args.value('service', true);
    ctx.args.done();
    const already = this.required.has(service);
    if (!already) {
      this.facet.turn(() => {
        this.required.set(
          service,
          this.facet.assert(this.ref('config'), record('require-service', service)),
        );
      });
    }
    return dictOf({ service, required: true, already });
  }

  stopService(ctx: RequestContext): Value {
    const service = ctx.args.value('service', true);
    ctx.args.done();
    const h = this.required.get(service);
    if (h !== undefined) {
      this.required.delete(service);
      this.facet.turn(() => this.facet.retract(h));
    }
    if (this.ref('config').dataspace.has(record('require-service', service))) {
      throw new ControlRequestError(
        ErrorReason.StillRequired,
        `${label(service)} is still required by the configuration ` +
          `(<require-service ${label(service)}> is asserted there), so it keeps running; ` +
          `change the configuration to stop it`,
      );
    }
    return dictOf({ service, required: false, wasRequired: h !== undefined });
  }

  restartService(ctx: RequestContext): Value {
    const service = ctx.args.value('service', true);
    ctx.args.done();
    this.facet.turn(() => this.facet.send(this.ref('config'), record('restart-service', service)));
    return dictOf({ service });
  }

  async iface(ctx: RequestContext, which: 'up' | 'down'): Promise<Value> {
    const name = ctx.args.string('interface', true);
    const timeoutMs = ctx.args.count(
      'timeout',
      this.options.interfaceTimeoutMs ?? DEFAULT_INTERFACE_TIMEOUT_MS,
    );
    if (name !== '' && (name.length > 15 || /[/\s]/.test(name))) {
      ctx.args.problem(
        `'${name}' is not an interface name (at most 15 characters, no '/' or spaces)`,
      );
    }
    ctx.args.done();
    const controller = this.options.interfaces;
    if (controller === undefined) {
      throw new ControlRequestError(
        ErrorReason.Unsupported,
        `if${which} is not available: this daemon runs no network layer`,
      );
    }
    const ac = new AbortController();
    const forward = (): void => ac.abort(ctx.signal.reason);
    ctx.signal.addEventListener('abort', forward, { once: true });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      ac.abort(new Error('timeout'));
    }, timeoutMs);
    try {
      const work = controller[which](name, {
        signal: ac.signal,
        onProgress: (p) => ctx.event(encodeProgress(p)),
      });
      let result: InterfaceResult;
      try {
        result = await raceAbort(work, ac.signal);
      } catch (e) {
        if (timedOut) {
          throw new ControlRequestError(
            ErrorReason.Timeout,
            `${name} did not come ${which} within ${formatSeconds(timeoutMs)}`,
          );
        }
        throw e;
      }
      if (!result.ok)
        throw new ControlRequestError(ErrorReason.Failed, `${name}: ${result.reason}`);
      return dictOf({ interface: name, state: which, detail: result.detail });
    } finally {
      clearTimeout(timer);
      ctx.signal.removeEventListener('abort', forward);
    }
  }

  async settingsList(ctx: RequestContext): Promise<Value> {
    ctx.args.done();
    return encodeSettingsAnswer(await this.options.settings.list({ signal: ctx.signal }));
  }

  async settingsSet(ctx: RequestContext): Promise<Value> {
    const value = ctx.args.value('value', true);
    ctx.args.done();
    const r = await this.options.settings.set(value, { signal: ctx.signal });
    return dictOf({ value, file: r.file, changed: r.changed });
  }

  async settingsUnset(ctx: RequestContext): Promise<Value> {
    const value = ctx.args.value('value', true);
    ctx.args.done();
    const r = await this.options.settings.unset(value, { signal: ctx.signal });
    if (!r.removed) {
      throw new ControlRequestError(ErrorReason.NotFound, `not a stored setting: ${label(value)}`);
    }
    return dictOf({ value, file: r.file, removed: true });
  }
}

function formatSeconds(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(1)} s`;
}

/** One client: its line reader, its open requests, its facet (watches live in it). */
class Connection {
  readonly server: ControlServerImpl;
  readonly socket: Socket;
  readonly facet: Facet;
  readonly reader: LineReader;
  /** Requests not finished yet, by id. */
  readonly open = new ValueMap<AbortController>();
  #closing = false;
  #gone = false;
  #destroyTimer: NodeJS.Timeout | undefined;
  /** Resolves once the socket has closed and the connection's facet has stopped. */
  readonly closed: Promise<void>;
  #resolveClosed!: () => void;

  constructor(server: ControlServerImpl, socket: Socket) {
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

  /** Writes a message unless the client already has too much unread; then drops it. */
  write(m: ServerMessage): boolean {
    if (this.#closing || this.socket.destroyed) return false;
    const unsent = this.socket.writableLength;
    if (unsent > this.server.maxOutputBytes) {
      this.server.logger.warn(
        `control: dropping a client that does not read its output (${unsent} bytes unsent)`,
        { unsent },
      );
      this.#fail(
        ErrorReason.Lagged,
        `you did not read fast enough (${unsent} bytes were waiting); closing the connection`,
      );
      return false;
    }
    this.socket.write(encodeServerMessage(m) + '\n');
    return true;
  }

  /** Tells the client why, then closes the connection (destroying it if it will not read). */
  #fail(reason: ErrorReason, message: string, graceMs = this.server.dropGraceMs): void {
    if (this.#closing) return;
    this.#closing = true;
    this.#abortAll(DISCONNECTED);
    this.reader.close();
    this.socket.end(encodeServerMessage({ type: 'error', id: undefined, reason, message }) + '\n');
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
    this.#run(msg).catch((e: unknown) => {
      const message = e instanceof Error ? e.message : String(e);
      this.server.logger.error(`control: ${msg.command} failed: ${message}`, { error: e });
    });
  }

  #error(id: RequestId | undefined, reason: string, message: string): void {
    this.write({ type: 'error', id, reason, message });
  }

  async #run(msg: Extract<ClientMessage, { type: 'request' }>): Promise<void> {
    const { id } = msg;
    const ac = new AbortController();
    this.open.set(id, ac);
    let finished = false;
    const ctx: RequestContext = {
      id,
      args: new ArgReader(id, msg.args),
      signal: ac.signal,
      connection: this,
      event: (value) => {
        if (!finished && !ac.signal.aborted) this.write({ type: 'event', id, value });
      },
    };
    try {
      const value = await this.server.handle(msg.command, ctx);
      finished = true;
      if (ac.signal.aborted) this.#ended(id, ac.signal);
      else if (value === undefined) this.write({ type: 'end', id });
      else this.write({ type: 'ok', id, value });
    } catch (e) {
      finished = true;
      if (ac.signal.aborted) this.#ended(id, ac.signal);
      else this.#failure(id, msg.command, e);
    } finally {
      // Only our own entry: after we answered, the client may reuse the id.
      if (this.open.get(id) === ac) this.open.delete(id);
    }
  }

  #ended(id: RequestId, signal: AbortSignal): void {
    if (signal.reason === CANCELLED) this.write({ type: 'end', id });
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
    this.reader.close();
    this.#abortAll(DISCONNECTED);
    this.open.clear();
    this.facet.stop();
    this.server.connections.delete(this);
    this.#resolveClosed();
  }
}
