// The control client: the only way the CLI (and anything else outside the daemon)
// talks to limen. One connection carries any number of requests, told apart by id;
// each request settles exactly once (its answer, its error, its cancellation, or
// the connection closing), and its abort listener is removed when it does.
//
// A new command needs nothing here: call() and request() take any name of the
// server's table (src/control/commands/index.ts), of which the client knows only the
// type, so that the CLI's bundles hold no handler.

import { connect as netConnect, type Socket } from 'node:net';
import { Bytes, Dict, ValueMap, sym, type Value } from '../preserves/index.ts';
import {
  ControlClosedError,
  ControlConnectError,
  ControlRequestError,
  ControlVersionError,
  ProtocolError,
} from './errors.ts';
import {
  ErrorReason,
  LineReader,
  PROTOCOL_VERSION,
  decodeServerMessage,
  dictOf,
  encodeClientMessage,
  type DataspaceName,
  type RequestId,
  type ServerMessage,
} from './protocol.ts';
import { abortReason } from './signals.ts';
// A type only (erased): the CLI's bundles never hold the server's handlers.
import type { CommandName } from './commands/index.ts';

export {
  ControlClosedError,
  ControlConnectError,
  ControlRequestError,
  ControlVersionError,
  ProtocolError,
} from './errors.ts';
export {
  DATASPACES,
  DEFAULT_SOCKET_PATH,
  ErrorReason,
  MAX_LINE_BYTES,
  PROTOCOL_VERSION,
  answerField,
  decodeGeneration,
  decodeLogEntry,
  decodePlan,
  decodeProgress,
  decodeQueryAnswer,
  decodeServiceDetail,
  decodeServiceInfo,
  decodeSettingsAnswer,
  decodeWatchEvent,
  socketPathFor,
  type DataspaceName,
  type QueryAnswer,
  type SettingsAnswer,
  type WatchEvent,
} from './protocol.ts';
export type {
  GenerationSummary,
  LogEntry,
  PlanAnswer,
  ProcessInfo,
  RollbackSummary,
  ServiceDetail,
  ServiceInfo,
} from './providers.ts';

/** Responses can be big (a query's matches): the client's line limit is generous. */
const CLIENT_MAX_LINE_BYTES = 256 * 1024 * 1024;

export interface ConnectOptions {
  readonly signal?: AbortSignal | undefined;
  /** How long to wait for the daemon's greeting (default 10 s). */
  readonly greetingTimeoutMs?: number;
}

export interface RequestOptions {
  /** Aborting cancels the request (`<cancel ID>`) and rejects with the abort reason. */
  readonly signal?: AbortSignal | undefined;
  /** Called for each `<event ID VALUE>` of a streaming request. */
  readonly onEvent?: ((value: Value) => void) | undefined;
}

interface Pending {
  readonly resolve: (v: Value | undefined) => void;
  readonly reject: (e: Error) => void;
  readonly onEvent: ((value: Value) => void) | undefined;
}

/** What a connect failure means, in words that say what to do. */
export function describeConnectError(path: string, errno: string, detail?: string): string {
  switch (errno) {
    case 'EACCES':
    case 'EPERM':
      return `permission denied on ${path}: the control socket is root-only; run as root (e.g. with sudo)`;
    case 'ENOENT':
    case 'ECONNREFUSED':
      return (
        `cannot reach limen at ${path} (${errno}): is the daemon running? ` +
        'start it with `limen daemon` or `systemctl start limen`'
      );
    case 'ETIMEDOUT':
      return `no answer from ${path}: the process listening there did not greet like limen`;
    default:
      return `cannot reach limen at ${path} (${errno})${detail !== undefined ? `: ${detail}` : ''}`;
  }
}

type ArgMap = { readonly [name: string]: Value | undefined };

export class ControlClient {
  readonly socketPath: string;
  readonly version: number;
  readonly #socket: Socket;
  readonly #pending = new ValueMap<Pending>();
  #nextId = 1;
  /** Why the connection ended, once it has. */
  #closed: Error | undefined;
  /** The last `<error #f ...>`: the daemon's reason when it drops us. */
  #dropReason: string | undefined;

  private constructor(socketPath: string, socket: Socket, version: number) {
    this.socketPath = socketPath;
    this.#socket = socket;
    this.version = version;
  }

  /** Connects and reads the greeting. Throws ControlConnectError or ControlVersionError. */
  static connect(socketPath: string, options: ConnectOptions = {}): Promise<ControlClient> {
    const { signal } = options;
    signal?.throwIfAborted();
    return new Promise<ControlClient>((resolve, reject) => {
      const socket = netConnect(socketPath);
      let client: ControlClient | undefined;
      const early: string[] = [];
      const reader = new LineReader(CLIENT_MAX_LINE_BYTES, (line) => {
        if (client !== undefined) client.#line(line);
        else if (line !== undefined) early.push(line);
      });
      let settled = false;
      const finish = (e: Error | undefined, c?: ControlClient): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        socket.off('error', onError);
        if (e !== undefined) {
          socket.destroy();
          reject(e);
        } else resolve(c!);
      };
      const onAbort = (): void => finish(abortReason(signal!));
      const onError = (e: NodeJS.ErrnoException): void => {
        const errno = e.code ?? 'EIO';
        finish(
          new ControlConnectError(
            socketPath,
            errno,
            describeConnectError(socketPath, errno, e.message),
          ),
        );
      };
      const timer = setTimeout(
        () =>
          finish(
            new ControlConnectError(
              socketPath,
              'ETIMEDOUT',
              describeConnectError(socketPath, 'ETIMEDOUT'),
            ),
          ),
        options.greetingTimeoutMs ?? 10_000,
      );
      signal?.addEventListener('abort', onAbort, { once: true });
      socket.on('error', onError);
      socket.on('close', () =>
        finish(new ControlClosedError(`${socketPath} closed the connection before greeting`)),
      );
      const onGreeting = (chunk: Buffer): void => {
        if (!reader.push(chunk)) {
          finish(
            new ProtocolError(ErrorReason.BadRequest, `${socketPath}: the greeting is too long`),
          );
          return;
        }
        if (early.length === 0) return;
        socket.off('data', onGreeting);
        let hello: ServerMessage;
        try {
          hello = decodeServerMessage(early.shift()!);
        } catch (e) {
          finish(e as Error);
          return;
        }
        if (hello.type === 'error') {
          // Turned away before the greeting (e.g. too-many-connections): say why.
          finish(
            new ControlClosedError(
              `limen at ${socketPath} refused the connection (${hello.reason}: ${hello.message})`,
            ),
          );
          return;
        }
        if (hello.type !== 'hello') {
          finish(
            new ProtocolError(ErrorReason.BadRequest, `${socketPath} did not greet like limen`),
          );
          return;
        }
        if (hello.version !== PROTOCOL_VERSION) {
          finish(
            new ControlVersionError(
              `limen at ${socketPath} speaks control protocol ${hello.version}; this client speaks ${PROTOCOL_VERSION} (update limen so both match)`,
            ),
          );
          return;
        }
        const c = new ControlClient(socketPath, socket, hello.version);
        client = c;
        c.#attach(reader);
        finish(undefined, c);
        for (const line of early.splice(0)) c.#line(line);
      };
      socket.on('data', onGreeting);
    });
  }

  #attach(reader: LineReader): void {
    const socket = this.#socket;
    socket.removeAllListeners('close');
    socket.on('data', (chunk: Buffer) => {
      if (!reader.push(chunk)) {
        this.#end(new ProtocolError(ErrorReason.BadRequest, 'a response line was too long'));
      }
    });
    socket.on('error', (e) => this.#end(e));
    socket.on('close', () => this.#end(undefined));
  }

  get isClosed(): boolean {
    return this.#closed !== undefined;
  }

  #line(line: string | undefined): void {
    if (line === undefined) {
      this.#end(new ProtocolError(ErrorReason.Syntax, 'the daemon sent a line that is not UTF-8'));
      return;
    }
    let m: ServerMessage;
    try {
      m = decodeServerMessage(line);
    } catch (e) {
      this.#end(e as Error);
      return;
    }
    switch (m.type) {
      case 'hello':
        return;
      case 'error':
        if (m.id === undefined) {
          this.#dropReason = `${m.reason}: ${m.message}`;
          return;
        }
        return this.#settle(m.id, new ControlRequestError(m.reason, m.message));
      case 'ok':
        return this.#settle(m.id, undefined, m.value);
      case 'end':
        return this.#settle(m.id, undefined, undefined);
      case 'event': {
        const p = this.#pending.get(m.id);
        p?.onEvent?.(m.value);
        return;
      }
    }
  }

  #settle(id: RequestId, error: Error | undefined, value?: Value): void {
    const p = this.#pending.get(id);
    if (p === undefined) return;
    this.#pending.delete(id);
    if (error !== undefined) p.reject(error);
    else p.resolve(value);
  }

  #end(error: Error | undefined): void {
    if (this.#closed !== undefined) return;
    const why =
      this.#dropReason !== undefined
        ? `limen closed the connection (${this.#dropReason})`
        : error !== undefined
          ? `the connection to limen failed: ${error.message}`
          : 'limen closed the connection';
    this.#closed = error instanceof ProtocolError ? error : new ControlClosedError(why);
    this.#socket.destroy();
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of pending) p.reject(this.#closed);
  }

  /**
   * Sends a request. Resolves with the `<ok>` value, or undefined when a stream ends
   * (`<end>`); rejects with ControlRequestError for `<error>`, ControlClosedError if the
   * connection goes, or the abort reason when `signal` aborts.
   */
  request(
    command: CommandName,
    args: ArgMap | Dict,
    options: RequestOptions = {},
  ): Promise<Value | undefined> {
    const { signal } = options;
    if (this.#closed !== undefined) return Promise.reject(this.#closed);
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    const id = this.#nextId++;
    const argDict = isDict(args) ? args : dictOf(args);
    return new Promise<Value | undefined>((resolve, reject) => {
      const onAbort = (): void => {
        if (!this.#pending.has(id)) return;
        this.#pending.delete(id);
        if (this.#closed === undefined) {
          this.#socket.write(encodeClientMessage({ type: 'cancel', id }) + '\n');
        }
        reject(abortReason(signal!));
      };
      const done = (): void => signal?.removeEventListener('abort', onAbort);
      this.#pending.set(id, {
        resolve: (v) => {
          done();
          resolve(v);
        },
        reject: (e) => {
          done();
          reject(e);
        },
        onEvent: options.onEvent,
      });
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#socket.write(
        encodeClientMessage({ type: 'request', id, command, args: argDict }) + '\n',
      );
    });
  }

  /** False once the connection has ended (closed by either side, or failed). */
  isOpen(): boolean {
    return this.#closed === undefined;
  }

  /** Closes the connection; open requests reject with ControlClosedError. */
  close(): void {
    this.#dropReason ??= 'closed by the client';
    this.#end(undefined);
  }

  /**
   * Sends a request that answers (every command but a stream): resolves with the `<ok>`
   * value, and rejects as request() does, or if the daemon ends it without an answer.
   * A new command needs no method here: its CLI file calls this, or request() for a
   * stream, with the command's name (one of the table's, src/control/commands/index.ts).
   */
  async call(command: CommandName, args: ArgMap, options?: RequestOptions): Promise<Value> {
    const v = await this.request(command, args, options);
    if (v === undefined) {
      throw new ProtocolError(ErrorReason.BadRequest, `limen ended ${command} without an answer`);
    }
    return v;
  }

  /** Resolves when the stream ends (cancelled by the daemon); rejects as request() does. */
  async #stream(
    command: CommandName,
    args: ArgMap,
    onEvent: (value: Value) => void,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    await this.request(command, args, { onEvent, signal });
  }

  // ---- One method per request: conveniences (call() serves any command) -------------------

  status(): Promise<Value> {
    return this.call('status', {});
  }

  services(): Promise<Value> {
    return this.call('services', {});
  }

  service(service: Value): Promise<Value> {
    return this.call('service', { service });
  }

  /** The last `lines` lines (all kept lines when undefined), as a sequence of log entries. */
  logs(service: Value, lines?: number): Promise<Value> {
    return this.call('logs', { service, lines });
  }

  /** Streams the last `lines` lines, then each new one, until `signal` aborts. */
  followLogs(
    service: Value,
    options: { lines?: number; signal?: AbortSignal; onEntry: (entry: Value) => void },
  ): Promise<void> {
    return this.#stream(
      'logs',
      { service, lines: options.lines, follow: true },
      options.onEntry,
      options.signal,
    );
  }

  query(dataspace: DataspaceName, pattern: Value): Promise<Value> {
    return this.call('query', { dataspace: sym(dataspace), pattern });
  }

  /** Streams `<added ...>`, `<removed ...>`, `<message ...>` and one `<synced>` until `signal` aborts. */
  watch(
    dataspace: DataspaceName,
    pattern: Value,
    options: { signal?: AbortSignal; onEvent: (event: Value) => void },
  ): Promise<void> {
    return this.#stream(
      'watch',
      { dataspace: sym(dataspace), pattern },
      options.onEvent,
      options.signal,
    );
  }

  send(dataspace: DataspaceName, message: Value): Promise<Value> {
    return this.call('send', { dataspace: sym(dataspace), message });
  }

  start(service: Value): Promise<Value> {
    return this.call('start', { service });
  }

  stop(service: Value): Promise<Value> {
    return this.call('stop', { service });
  }

  restart(service: Value): Promise<Value> {
    return this.call('restart', { service });
  }

  ifup(ifname: string, options: InterfaceOptions = {}): Promise<Value> {
    return this.#iface('ifup', ifname, options);
  }

  ifdown(ifname: string, options: InterfaceOptions = {}): Promise<Value> {
    return this.#iface('ifdown', ifname, options);
  }

  #iface(command: 'ifup' | 'ifdown', ifname: string, options: InterfaceOptions): Promise<Value> {
    return this.call(
      command,
      { interface: ifname, timeout: options.timeoutMs },
      { signal: options.signal, onEvent: options.onProgress },
    );
  }

  settingsList(): Promise<Value> {
    return this.call('settings-list', {});
  }

  /** The configuration generations, oldest first (decodeGeneration reads each). */
  generations(): Promise<Value> {
    return this.call('generations', {});
  }

  /** Back to generation `to`, or to the last confirmed one before the current. */
  rollback(to?: number): Promise<Value> {
    return this.call('rollback', { generation: to });
  }

  /**
   * Tries a candidate site configuration (docs/safe-change.md): events are progress and,
   * first, `{generation token deadline}`; answers once it is confirmed or rolled back.
   */
  try(candidate: TrialCandidate, options: TrialOptions = {}): Promise<Value> {
    return this.call(
      'try',
      {
        files: new Dict([...candidate.files].map(([p, c]) => [p, new Bytes(c)] as const)),
        source: candidate.source,
        timeout: options.timeoutMs,
        message: options.message,
        'auto-confirm': options.autoConfirm,
      },
      { signal: options.signal, onEvent: options.onEvent },
    );
  }

  /**
   * What going from one configuration to another would do (decodePlan reads it): each
   * side a generation number or a candidate's files (named `source`); PlanRequest has
   * the defaults. Nothing is applied.
   */
  diff(
    from: number | ReadonlyMap<string, Uint8Array> | undefined,
    to: number | ReadonlyMap<string, Uint8Array> | undefined,
    source?: string,
  ): Promise<Value> {
    const side = (x: typeof from): Value | undefined =>
      x === undefined || typeof x === 'number'
        ? x
        : new Dict([...x].map(([p, c]) => [p, new Bytes(c)] as const));
    return this.call('diff', { from: side(from), to: side(to), source });
  }

  /** Maintenance mode on or off (undefined: only asks). */
  maintenance(on?: boolean): Promise<Value> {
    return this.call('maintenance', { on });
  }

  /** Keeps the running trial, given the token `try` printed. */
  confirm(token: string): Promise<Value> {
    return this.call('confirm', { token });
  }

  settingsSet(value: Value): Promise<Value> {
    return this.call('settings-set', { value });
  }

  settingsUnset(value: Value): Promise<Value> {
    return this.call('settings-unset', { value });
  }
}

export interface TrialCandidate {
  /** Relative path → content. */
  readonly files: ReadonlyMap<string, Uint8Array>;
  /** The candidate's directory, for messages. */
  readonly source: string;
}

export interface TrialOptions {
  readonly timeoutMs?: number | undefined;
  readonly message?: string | undefined;
  readonly autoConfirm?: boolean | undefined;
  readonly signal?: AbortSignal | undefined;
  readonly onEvent?: ((event: Value) => void) | undefined;
}

export interface InterfaceOptions {
  /** The daemon's time limit (default: the daemon's, 60 s). */
  readonly timeoutMs?: number | undefined;
  readonly signal?: AbortSignal | undefined;
  /** Each `<progress VALUE>` event, as sent. */
  readonly onProgress?: ((event: Value) => void) | undefined;
}

function isDict(a: ArgMap | Dict): a is Dict {
  return typeof (a as Dict).forEach === 'function' && typeof (a as Dict).get === 'function';
}
