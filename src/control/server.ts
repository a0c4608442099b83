// The control server: listens on the control socket (mode 0600) and answers the
// requests of docs/control-protocol.md. It owns a child facet of the one it is
// given (what `limen start` requires, the watches' observers) and one facet per
// connection; close() stops them all and removes the socket.
//
// Invariants: a client never blocks the daemon nor grows its memory without bound:
// input lines are bounded (1 MiB by default; over it the connection is closed); each
// message sent is bounded in bytes and nesting, and stops being encoded as soon as it
// passes a limit (that request alone fails, `too-large`); unsent output is bounded
// per connection and across all of them (over it the laggard is told and dropped);
// connections and the requests running on each are bounded. A bad line gets an
// error and the connection stays usable; every request's work is aborted when it is
// cancelled or its connection goes away.

import { createServer, type Server, type Socket } from 'node:net';
import { LimenError, UserError } from '../base/errors.ts';
import { interfaceNameProblem } from '../base/interface-name.ts';
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
import {
  Bytes,
  Dict,
  ValueMap,
  compare,
  peel,
  record,
  stringify,
  type Value,
} from '../preserves/index.ts';
import {
  ControlRequestError,
  InvalidSettingError,
  MessageTooLargeError,
  ProtocolError,
  formatBytes,
} from './errors.ts';
import {
  ArgReader,
  COMMANDS,
  ErrorReason,
  LineReader,
  MAX_LINE_BYTES,
  MAX_MESSAGE_BYTES,
  MAX_MESSAGE_DEPTH,
  PROTOCOL_VERSION,
  QUERY_MATCH_LEVELS,
  decodeClientMessage,
  dictOf,
  encodeLogEntry,
  encodeProgress,
  encodeQueryAnswer,
  encodeQueryMatch,
  encodeServerMessage,
  encodeServiceDetail,
  encodeServiceInfo,
  encodeGeneration,
  encodePlan,
  encodeSettingsAnswer,
  encodeWatchEvent,
  isCommandName,
  type ClientMessage,
  type DataspaceName,
  type MessageLimits,
  type RequestId,
  type ServerMessage,
  writeValue,
  writeValueWithin,
} from './protocol.ts';
import type {
  ConfigurationChoice,
  GenerationsProvider,
  MaintenanceControl,
  InterfaceController,
  InterfaceResult,
  ServiceView,
} from './providers.ts';
import type { SettingsStore } from './settings-store.ts';
import { raceAbort, waitForAbort } from './signals.ts';
import { bindSocketFile, type BoundSocket, type ListeningSocket } from './socket-file.ts';

/** Unsent output one connection may have before another message is queued for it. */
export const DEFAULT_MAX_OUTPUT_BYTES = 2 * 1024 * 1024;
/** Unsent output of all connections together; past it the one with the most is dropped. */
export const DEFAULT_MAX_TOTAL_OUTPUT_BYTES = 32 * 1024 * 1024;
export const DEFAULT_MAX_CONNECTIONS = 128;
/** Requests running at once on one connection (streams included). */
export const DEFAULT_MAX_OPEN_REQUESTS = 64;
/** Matches one query may answer. */
export const DEFAULT_MAX_QUERY_MATCHES = 20_000;
export const DEFAULT_INTERFACE_TIMEOUT_MS = 60_000;
/** How long close() lets clients read the shutdown notice. */
const SHUTDOWN_GRACE_MS = 500;
/**
 * The socket is handed whole lines, up to this many bytes at a time (or one longer line),
 * and the next chunk only once it has taken the last: what a client has not read stays in
 * the connection's queue, where it is counted exactly and can be dropped without cutting a line.
 */
const CHUNK_BYTES = 64 * 1024;
/** Error messages are cut to this length (they quote what the client sent). */
const MAX_ERROR_MESSAGE = 64 * 1024;

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
  /** Absent: generations and rollback answer `unsupported`. */
  readonly generations?: GenerationsProvider | undefined;
  /** Absent: maintenance answers `unsupported`. */
  readonly maintenance?: MaintenanceControl | undefined;
  /** What `limen status` shows: a dictionary, by convention. */
  readonly status: () => Value | Promise<Value>;
  readonly logger: Logger;
  /** Longest request line in bytes (default 1 MiB). */
  readonly maxLineBytes?: number;
  /** Unsent bytes a connection may have before a new message is queued; over it the client is dropped (default 2 MiB). */
  readonly maxOutputBytes?: number;
  /** Unsent bytes of all connections; over it the one with the most is dropped (default 32 MiB). */
  readonly maxTotalOutputBytes?: number;
  /** Longest message sent, in bytes (default 4 MiB); deepest nesting is Preserves' own 512. */
  readonly maxMessageBytes?: number;
  /** Matches one query may answer (default 20,000). */
  readonly maxQueryMatches?: number;
  /** Open connections (default 128); past it an idle one is closed, or the new one refused. */
  readonly maxConnections?: number;
  /** Requests running at once on one connection (default 64). */
  readonly maxOpenRequests?: number;
  /** How long a dropped client has to read its last message before the socket is destroyed. */
  readonly dropGraceMs?: number;
  /** ifup/ifdown time limit when the request gives none (default 60 s). */
  readonly interfaceTimeoutMs?: number;
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
  /**
   * Streams an event written as wire text by `write` (see ControlServerImpl.watchEventText);
   * `describe` names it if it cannot be sent.
   */
  eventText(write: () => EncodedEvent, describe: () => string): void;
}

/** The wire text of an event's value, for `<event ID TEXT>`, and its UTF-8 size. */
interface EncodedEvent {
  readonly text: string;
  readonly bytes: number;
}

/** At most 80 characters of v's text, however large v is. */
function label(v: Value): string {
  return stringify(v, { annotations: false, maxLength: 77, ellipsis: '...' });
}

/** What a client can do about an answer or event over a limit, by command. */
function narrowingHint(command: string): string {
  switch (command) {
    case 'query':
      return 'narrow the pattern (constants in place of _ or ?x) so that fewer or smaller assertions match';
    case 'watch':
      return 'narrow the pattern so that it leaves such values out';
    case 'logs':
      return 'ask for fewer lines (limen logs --lines N)';
    default:
      return 'this answer cannot be sent; tell the limen developers which request made it';
  }
}

/** Why a message cannot be sent: `what` would pass which limit, then `after`, then what to do. */
function tooLarge(what: string, e: MessageTooLargeError, command: string, after = ''): string {
  const limit =
    e.limit === 'bytes'
      ? `would be larger than ${formatBytes(e.max)}, the limit for one message`
      : `would nest deeper than ${e.max} levels, the limit for one message (Preserves' own)`;
  return `${what} ${limit}${after}; ${narrowingHint(command)}`;
}

class ControlServerImpl implements ControlServer {
  readonly socketPath: string;
  readonly options: ControlServerOptions;
  readonly logger: Logger;
  readonly facet: Facet;
  readonly maxLineBytes: number;
  readonly maxOutputBytes: number;
  readonly maxTotalOutputBytes: number;
  readonly maxQueryMatches: number;
  readonly maxConnections: number;
  readonly maxOpenRequests: number;
  readonly limits: MessageLimits;
  readonly dropGraceMs: number;
  readonly connections = new Set<Connection>();
  /** Bytes queued and in flight on every connection not being closed. */
  unsentBytes = 0;
  /**
   * Watch events written this tick, by asserted value, then by kind and pattern: every
   * client watching the same pattern gets the same text (and the same string, so their
   * queues share it), written once instead of once per client. Cleared on the next tick,
   * so it holds only what is being sent now.
   */
  #eventTexts = new WeakMap<object, Map<string, EncodedEvent | MessageTooLargeError>>();
  #eventTextsClear: NodeJS.Immediate | undefined;
  /** Connections refused since the last log line about it, and when that line was. */
  #refused = 0;
  #refusedLoggedAt = -Infinity;
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
    this.maxTotalOutputBytes = options.maxTotalOutputBytes ?? DEFAULT_MAX_TOTAL_OUTPUT_BYTES;
    this.maxQueryMatches = options.maxQueryMatches ?? DEFAULT_MAX_QUERY_MATCHES;
    this.maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
    this.maxOpenRequests = options.maxOpenRequests ?? DEFAULT_MAX_OPEN_REQUESTS;
    this.limits = {
      maxBytes: options.maxMessageBytes ?? MAX_MESSAGE_BYTES,
      maxDepth: MAX_MESSAGE_DEPTH,
    };
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
      case 'generations':
        return this.generationsList(ctx);
      case 'rollback':
        return this.rollback(ctx);
      case 'try':
        return this.tryCandidate(ctx);
      case 'diff':
        return this.diff(ctx);
      case 'confirm':
        return this.confirm(ctx);
      case 'maintenance':
        return this.setMaintenance(ctx);
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
    const max = this.maxQueryMatches;
    const found = ref.dataspace.query(pattern!, max + 1);
    if (found.length > max) {
      throw new ControlRequestError(
        ErrorReason.TooLarge,
        `more than ${max} assertions match, and a query answers at most ${max}; ` +
          narrowingHint('query'),
      );
    }
    const matches = found.map((m) => ({ value: m.value, captures: [...m.captures] }));
    // Every match must fit in the answer before the matches are sorted: comparing two
    // values costs up to their size, so this bounds the sort as well as the text. The
    // text is written again below, within the same limits, when the answer is sent.
    let budget = this.limits.maxBytes;
    for (let i = 0; i < matches.length; i++) {
      const m = matches[i]!;
      try {
        budget -=
          Buffer.byteLength(
            writeValueWithin(encodeQueryMatch(m), {
              maxBytes: budget,
              maxDepth: this.limits.maxDepth - QUERY_MATCH_LEVELS,
            }),
          ) + 1;
      } catch (e) {
        if (!(e instanceof MessageTooLargeError)) throw e;
        const message =
          e.limit === 'depth'
            ? `a matching assertion is nested too deeply to be sent (an answer nests at most ` +
              `${this.limits.maxDepth} levels, Preserves' own limit, ${QUERY_MATCH_LEVELS + 1} ` +
              `of them around each value): ${label(m.value)}`
            : `the answer would be larger than ${formatBytes(this.limits.maxBytes)}, the limit ` +
              `for one answer (the first ${i} of the ${matches.length} matches already take ` +
              `${this.limits.maxBytes - budget} bytes)`;
        throw new ControlRequestError(
          ErrorReason.TooLarge,
          `${message}; ${narrowingHint('query')}`,
        );
      }
    }
    matches.sort((a, b) => compare(a.value, b.value));
    return encodeQueryAnswer({ names, matches });
  }

  /**
   * `<added V {CAPTURES}>` (or removed, message) as wire text, within the limits one level
   * down (the event record is around it). The captures are those of `pattern` (whose text
   * is `patternKey`) on `value`, so clients of the same pattern share one text.
   */
  watchEventText(
    type: 'added' | 'removed' | 'message',
    patternKey: string,
    value: Value,
    captures: readonly (readonly [string, Value])[],
  ): EncodedEvent {
    const write = (): EncodedEvent | MessageTooLargeError => {
      try {
        const text = writeValueWithin(encodeWatchEvent({ type, value, captures }), {
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
    if (typeof value !== 'object' || value === null) r = write();
    else {
      let byKey = this.#eventTexts.get(value);
      if (byKey === undefined) {
        byKey = new Map();
        this.#eventTexts.set(value, byKey);
        if (this.#eventTextsClear === undefined) {
          this.#eventTextsClear = setImmediate(() => {
            this.#eventTexts = new WeakMap();
            this.#eventTextsClear = undefined;
          });
        }
      }
      const key = `${type} ${patternKey}`;
      r = byKey.get(key);
      if (r === undefined) {
        r = write();
        byKey.set(key, r);
      }
    }
    if (r instanceof MessageTooLargeError) throw r;
    return r;
  }

  watch(ctx: RequestContext): Promise<Value | undefined> {
    const ref = this.ref(ctx.args.dataspace());
    const pattern = this.pattern(ctx)!;
    // Bounded: it was read from a request line.
    const patternKey = writeValue(ctx.args.value('pattern', true));
    ctx.args.done();
    const { signal } = ctx;
    const emit =
      (type: 'added' | 'removed' | 'message') =>
      (value: Value, captures: ReadonlyMap<string, Value>): void =>
        ctx.eventText(
          () => this.watchEventText(type, patternKey, value, [...captures]),
          () => label(record(type, value)),
        );
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
            onAdd: emit('added'),
            onRemove: emit('removed'),
            onMessage: emit('message'),
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
    // '' is a missing or non-string argument, which the reader has already reported.
    const problem = name === '' ? undefined : interfaceNameProblem(name);
    if (problem !== undefined)
      ctx.args.problem(`'${name}' is not an interface name: it ${problem}`);
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

  #generations(command: string): GenerationsProvider {
    const g = this.options.generations;
    if (g === undefined) {
      throw new ControlRequestError(
        ErrorReason.Unsupported,
        `${command} is not available: this daemon keeps no configuration generations`,
      );
    }
    return g;
  }

  async generationsList(ctx: RequestContext): Promise<Value> {
    ctx.args.done();
    return (await this.#generations('generations').list()).map(encodeGeneration);
  }

  /**
   * `try {files: {PATH: #[CONTENT]} source timeout message auto-confirm}`: streams the
   * trial's progress (the first event holds its token), and answers once it is confirmed
   * or rolled back. A client that goes away leaves the trial running: it is confirmed
   * with the token from anywhere, or rolled back at its deadline.
   */
  async tryCandidate(ctx: RequestContext): Promise<Value> {
    const files = candidateFiles(ctx, 'files', ctx.args.value('files', true));
    const source = ctx.args.string('source') ?? 'candidate';
    const timeoutMs = ctx.args.count('timeout', DEFAULT_TRIAL_TIMEOUT_MS);
    if (timeoutMs < 1000 || timeoutMs > MAX_TRIAL_TIMEOUT_MS)
      ctx.args.problem(
        `argument timeout must be from 1 s to ${formatSeconds(MAX_TRIAL_TIMEOUT_MS)}`,
      );
    const message = ctx.args.string('message') ?? 'limen try';
    const autoConfirm = ctx.args.boolean('auto-confirm', false);
    ctx.args.done();
    const provider = this.#generations('try');
    let started;
    try {
      started = await provider.try({
        files,
        source,
        timeoutMs,
        message,
        who: 'limen try',
        autoConfirm,
        onProgress: (text) => ctx.event(encodeProgress(text)),
        onStarted: (t) =>
          ctx.event(dictOf({ generation: t.generation, token: t.token, deadline: t.deadline })),
      });
    } catch (e) {
      if (e instanceof UserError) throw new ControlRequestError(ErrorReason.Failed, e.message);
      throw e;
    }
    const result = await raceAbort(started.done, ctx.signal);
    return dictOf({
      generation: result.generation,
      confirmed: result.confirmed,
      outcome: result.confirmed ? 'confirmed' : `rolled back: ${result.reason ?? ''}`,
    });
  }

  /**
   * `diff {from? to? source?}`: FROM and TO are each a generation number or a candidate's
   * files `{PATH: #[CONTENT]}` (named SOURCE); answers what going from one to the other
   * would do (PlanRequest has the defaults). Nothing is applied.
   */
  async diff(ctx: RequestContext): Promise<Value> {
    const source = ctx.args.string('source') ?? 'candidate';
    const choice = (key: 'from' | 'to'): ConfigurationChoice | undefined => {
      const v = ctx.args.value(key);
      if (v === undefined) return undefined;
      if (typeof v === 'number' && Number.isSafeInteger(v) && v > 0) return { generation: v };
      if (v instanceof Dict) return { files: candidateFiles(ctx, key, v), source };
      ctx.args.problem(
        `argument ${key} must be a generation number or a dictionary of files, got ${label(v)}`,
      );
      return undefined;
    };
    const from = choice('from');
    const to = choice('to');
    ctx.args.done();
    try {
      return encodePlan(await this.#generations('diff').plan({ from, to }));
    } catch (e) {
      if (e instanceof UserError) throw new ControlRequestError(ErrorReason.Failed, e.message);
      throw e;
    }
  }

  /** `maintenance {on: BOOL}` (without `on`: just the state): `{on: BOOL reason: "…"}`. */
  async setMaintenance(ctx: RequestContext): Promise<Value> {
    const on = ctx.args.value('on');
    if (on !== undefined && typeof on !== 'boolean')
      ctx.args.problem('argument on must be #t or #f');
    ctx.args.done();
    const m = this.options.maintenance;
    if (m === undefined)
      throw new ControlRequestError(ErrorReason.Unsupported, 'this daemon has no maintenance mode');
    const reason = typeof on === 'boolean' ? await m.set(on) : m.reason();
    return dictOf({ on: reason !== undefined, ...(reason === undefined ? {} : { reason }) });
  }

  async confirm(ctx: RequestContext): Promise<Value> {
    const token = ctx.args.string('token', true);
    ctx.args.done();
    try {
      return dictOf({
        generation: await this.#generations('confirm').confirm(token),
        confirmed: true,
      });
    } catch (e) {
      if (e instanceof UserError) throw new ControlRequestError(ErrorReason.Failed, e.message);
      throw e;
    }
  }

  async rollback(ctx: RequestContext): Promise<Value> {
    const to = ctx.args.value('generation');
    if (to !== undefined && !(typeof to === 'number' && Number.isSafeInteger(to) && to > 0)) {
      ctx.args.problem(`argument generation must be a generation number, got ${label(to)}`);
    }
    ctx.args.done();
    try {
      const r = await this.#generations('rollback').rollback(to as number | undefined);
      return dictOf({
        ...(r.from === undefined ? {} : { from: r.from }),
        to: r.to,
        written: r.written,
        removed: r.removed,
      });
    } catch (e) {
      if (e instanceof UserError) throw new ControlRequestError(ErrorReason.Failed, e.message);
      throw e;
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

/** Files one candidate may have. */
const MAX_TRIAL_FILES = 10_000;
const DEFAULT_TRIAL_TIMEOUT_MS = 120_000;
const MAX_TRIAL_TIMEOUT_MS = 24 * 3600_000;

/**
 * A candidate's files from argument `key` (`{PATH: #[CONTENT]}`), each path checked;
 * every problem is reported on the request's arguments.
 */
function candidateFiles(ctx: RequestContext, key: string, given: Value): Map<string, Uint8Array> {
  const files = new Map<string, Uint8Array>();
  if (!(given instanceof Dict)) {
    ctx.args.problem(`argument ${key} must be a dictionary {PATH: #[CONTENT]}`);
    return files;
  }
  if (given.size > MAX_TRIAL_FILES)
    ctx.args.problem(`a candidate has at most ${MAX_TRIAL_FILES} files, this one ${given.size}`);
  for (const [k, v] of given) {
    const path = peel(k);
    const content = peel(v);
    if (typeof path !== 'string' || !isCandidatePath(path))
      ctx.args.problem(
        `${label(k)} is not a relative path of the site configuration (no '..', no dot-files, no absolute paths)`,
      );
    else if (!(content instanceof Bytes))
      ctx.args.problem(`the content of ${path} must be a byte string`);
    else files.set(path, content.bytes);
  }
  return files;
}

/** A path inside the site configuration: relative, no '..' or '.', no dot-files. */
function isCandidatePath(path: string): boolean {
  if (path === '' || path.length > 4096 || path.includes('\0') || path.startsWith('/'))
    return false;
  return path.split('/').every((seg) => seg !== '' && !seg.startsWith('.'));
}

function formatSeconds(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(1)} s`;
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

/** A line waiting to be handed to the socket, with its size in bytes (newline included). */
interface Queued {
  readonly line: string;
  readonly bytes: number;
}

/** One client: its line reader, its open requests, its facet (watches live in it), its output queue. */
class Connection {
  readonly server: ControlServerImpl;
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
      connection: this,
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
    this.server.connections.delete(this);
    this.#resolveClosed();
  }
}
