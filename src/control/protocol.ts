// The control protocol, version 1 (docs/control-protocol.md): Preserves text, one
// value per line, in both directions. This module owns the framing (LineReader),
// the message shapes and their encoding, the error reasons and the wire form of
// what requests return. Invariant: an encoded message never contains a newline
// (compact text escapes every control character) and holds no annotations.

import {
  DEFAULT_MAX_DEPTH,
  Dict,
  PreservesReadError,
  PreservesWriteLimitError,
  Record,
  Sym,
  parse,
  peel,
  record,
  stringify,
  strip,
  sym,
  type Value,
} from '../preserves/index.ts';
import { describeEmbedded } from '../script/index.ts';
import { MessageTooLargeError, ProtocolError } from './errors.ts';
import type {
  GenerationSummary,
  PlanAnswer,
  LogEntry,
  ProcessInfo,
  ServiceDetail,
  ServiceInfo,
} from './providers.ts';

export const PROTOCOL_VERSION = 1;
/** The longest line the server accepts (bytes, newline excluded); longer closes the connection. */
export const MAX_LINE_BYTES = 1024 * 1024;
export const DEFAULT_SOCKET_PATH = '/run/limen/control.sock';
/** The longest line the server sends by default (bytes, newline excluded): one answer or event. */
export const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;
/** The deepest nesting of a message the server sends: what the reader accepts (Preserves' own). */
export const MAX_MESSAGE_DEPTH = DEFAULT_MAX_DEPTH;

/**
 * The socket path for a daemon run with `--root DIR` (the default path without one): the
 * one place it is built, for the daemon, the CLI and the lab.
 */
export function socketPathFor(root?: string): string {
  if (root === undefined) return DEFAULT_SOCKET_PATH;
  return `${root.replace(/\/+$/, '')}${DEFAULT_SOCKET_PATH}`;
}

/** The stable error reasons of `<error ID REASON "message">`. */
export const ErrorReason = {
  /** The line is not Preserves text. */
  Syntax: 'syntax',
  /** The line is Preserves but not a well-formed request (or has bad arguments). */
  BadRequest: 'bad-request',
  UnknownCommand: 'unknown-command',
  /** The id is already used by a request that has not finished. */
  DuplicateId: 'duplicate-id',
  NotFound: 'not-found',
  /** The daemon has no provider for the request (e.g. no network layer for ifup). */
  Unsupported: 'unsupported',
  /** The request was carried out and failed (e.g. an interface did not come up). */
  Failed: 'failed',
  Timeout: 'timeout',
  /** `stop`: the control socket's requirement is gone, but the configuration still requires it. */
  StillRequired: 'still-required',
  InvalidSetting: 'invalid-setting',
  /** A line over the limit; the server closes the connection after sending it. */
  LineTooLong: 'line-too-long',
  /** The client did not read its output fast enough; the server closes the connection. */
  Lagged: 'lagged',
  /** An answer or event would pass a limit (bytes, nesting, matches); only that request fails. */
  TooLarge: 'too-large',
  /** A connection has as many requests running as it may; that request is refused. */
  TooManyRequests: 'too-many-requests',
  /** The server has as many connections as it may; the new one is closed after this line. */
  TooManyConnections: 'too-many-connections',
  ShuttingDown: 'shutting-down',
  /** The command is not one this socket runs (the web endpoint's allowlist). */
  Forbidden: 'forbidden',
  /** check-password: too many failed checks, on this connection or on all of them. */
  RateLimited: 'rate-limited',
  Internal: 'internal',
} as const;
export type ErrorReason = (typeof ErrorReason)[keyof typeof ErrorReason];

export const DATASPACES = ['config', 'machine', 'log'] as const;
export type DataspaceName = (typeof DATASPACES)[number];

// ---- Messages --------------------------------------------------------------------------------

/** A request id: an integer or a string, chosen by the client, unique among its open requests. */
export type RequestId = number | bigint | string;

export type ClientMessage =
  | {
      readonly type: 'request';
      readonly id: RequestId;
      readonly command: string;
      readonly args: Dict;
    }
  | { readonly type: 'cancel'; readonly id: RequestId };

export type ServerMessage =
  | { readonly type: 'hello'; readonly version: number }
  | { readonly type: 'ok'; readonly id: RequestId; readonly value: Value }
  | {
      readonly type: 'error';
      /** Undefined for an error about a line that had no usable id (`#f` on the wire). */
      readonly id: RequestId | undefined;
      readonly reason: string;
      readonly message: string;
    }
  | { readonly type: 'event'; readonly id: RequestId; readonly value: Value }
  | { readonly type: 'end'; readonly id: RequestId };

const L = {
  hello: sym('limen-control'),
  request: sym('request'),
  cancel: sym('cancel'),
  ok: sym('ok'),
  error: sym('error'),
  event: sym('event'),
  end: sym('end'),
} as const;

/** Compact Preserves text for the wire: no annotations, live references described
 *  (`#:<dataspace config>`); such a description reads back as a plain value. */
export function writeValue(v: Value): string {
  return stringify(v, { annotations: false, embedded: describeEmbedded });
}

function idValue(id: RequestId | undefined): Value {
  return id === undefined ? false : id;
}

function isRequestId(v: Value): v is RequestId {
  return typeof v === 'string' || typeof v === 'bigint' || typeof v === 'number';
}

export function encodeClientMessage(m: ClientMessage): string {
  switch (m.type) {
    case 'request':
      return writeValue(record(L.request, m.id, sym(m.command), m.args));
    case 'cancel':
      return writeValue(record(L.cancel, m.id));
  }
}

/** What one message the server sends may cost. */
export interface MessageLimits {
  /** UTF-8 bytes of the line, newline excluded. */
  readonly maxBytes: number;
  /** Nesting of the whole message, as the reader counts it (the envelope's levels included). */
  readonly maxDepth: number;
}

export const DEFAULT_MESSAGE_LIMITS: MessageLimits = {
  maxBytes: MAX_MESSAGE_BYTES,
  maxDepth: MAX_MESSAGE_DEPTH,
};

/**
 * Compact wire text within the limits. Stops as soon as the text passes one (it never
 * builds more than about maxBytes characters) and throws MessageTooLargeError.
 */
export function writeValueWithin(v: Value, limits: MessageLimits): string {
  let text: string;
  try {
    // A character is at least one UTF-8 byte: the length bound stops the writer early,
    // the byte count below is exact.
    text = stringify(v, {
      annotations: false,
      embedded: describeEmbedded,
      maxLength: limits.maxBytes,
      maxDepth: limits.maxDepth,
    });
  } catch (e) {
    if (e instanceof PreservesWriteLimitError) {
      throw e.limit === 'depth'
        ? new MessageTooLargeError('depth', limits.maxDepth)
        : new MessageTooLargeError('bytes', limits.maxBytes);
    }
    throw e;
  }
  if (Buffer.byteLength(text) > limits.maxBytes) {
    throw new MessageTooLargeError('bytes', limits.maxBytes);
  }
  return text;
}

function serverMessageValue(m: ServerMessage): Value {
  switch (m.type) {
    case 'hello':
      return record(L.hello, m.version);
    case 'ok':
      return record(L.ok, m.id, m.value);
    case 'error':
      return record(L.error, idValue(m.id), sym(m.reason), m.message);
    case 'event':
      return record(L.event, m.id, m.value);
    case 'end':
      return record(L.end, m.id);
  }
}

/** One line of server output, within the limits (see writeValueWithin). */
export function encodeServerMessage(
  m: ServerMessage,
  limits: MessageLimits = DEFAULT_MESSAGE_LIMITS,
): string {
  return writeValueWithin(serverMessageValue(m), limits);
}

function readLine(line: string, what: string): Value {
  try {
    return parse(line, { source: what });
  } catch (e) {
    if (e instanceof PreservesReadError) {
      throw new ProtocolError(
        ErrorReason.Syntax,
        `not Preserves text: ${e.detail} (column ${e.pos.column})`,
      );
    }
    throw e;
  }
}

function labelOf(v: Value): string | undefined {
  if (!(v instanceof Record)) return undefined;
  const l = peel(v.label);
  return l instanceof Sym ? l.name : undefined;
}

/** Reads one line a client sent. Throws ProtocolError (with the id, when one could be read). */
export function decodeClientMessage(line: string): ClientMessage {
  const v = readLine(line, 'request');
  const label = labelOf(v);
  const r = v as Record;
  const rawId = label !== undefined && r.fields.length > 0 ? peel(r.fields[0]!) : undefined;
  const id = rawId !== undefined && isRequestId(rawId) ? rawId : undefined;
  const bad = (message: string): ProtocolError =>
    new ProtocolError(ErrorReason.BadRequest, message, id);
  if (label === 'request') {
    const problems: string[] = [];
    if (r.fields.length !== 3) {
      throw bad(
        `a request is <request ID COMMAND {ARG: VALUE ...}> (got ${r.fields.length} fields)`,
      );
    }
    if (id === undefined) problems.push('the request id must be an integer or a string');
    const command = peel(r.fields[1]!);
    if (!(command instanceof Sym)) problems.push('the command must be a symbol, as in status');
    const args = peel(r.fields[2]!);
    if (!(args instanceof Dict)) problems.push('the arguments must be a dictionary, as in {}');
    else {
      for (const k of args.keys()) {
        if (!(peel(k) instanceof Sym)) {
          problems.push(`argument names must be symbols (got ${writeValue(k)})`);
        }
      }
    }
    if (problems.length > 0) throw bad(problems.join('; '));
    return { type: 'request', id: id!, command: (command as Sym).name, args: args as Dict };
  }
  if (label === 'cancel') {
    if (r.fields.length !== 1 || id === undefined) {
      throw bad('a cancellation is <cancel ID>, ID an integer or a string');
    }
    return { type: 'cancel', id };
  }
  throw bad(
    `expected <request ID COMMAND {ARGS}> or <cancel ID>, got ${abbreviate(writeValue(v))}`,
  );
}

/** Reads one line the server sent. Throws ProtocolError on anything unexpected. */
export function decodeServerMessage(line: string): ServerMessage {
  const v = readLine(line, 'response');
  const label = labelOf(v);
  const r = v as Record;
  const f = label === undefined ? [] : r.fields.map(peel);
  const bad = (): ProtocolError =>
    new ProtocolError(
      ErrorReason.BadRequest,
      `unexpected message from the daemon: ${abbreviate(writeValue(v))}`,
    );
  const id = f[0] !== undefined && isRequestId(f[0]) ? f[0] : undefined;
  switch (label) {
    case 'limen-control': {
      const version = f[0];
      if (typeof version !== 'number') throw bad();
      return { type: 'hello', version };
    }
    case 'ok':
      if (id === undefined || f.length !== 2) throw bad();
      return { type: 'ok', id, value: r.fields[1]! };
    case 'event':
      if (id === undefined || f.length !== 2) throw bad();
      return { type: 'event', id, value: r.fields[1]! };
    case 'end':
      if (id === undefined || f.length !== 1) throw bad();
      return { type: 'end', id };
    case 'error': {
      const [, reason, message] = f;
      if (f.length !== 3 || !(reason instanceof Sym) || typeof message !== 'string') throw bad();
      if (id === undefined && f[0] !== false) throw bad();
      return { type: 'error', id, reason: reason.name, message };
    }
    default:
      throw bad();
  }
}

function abbreviate(s: string, max = 80): string {
  return s.length > max ? `${s.slice(0, max - 3)}...` : s;
}

// ---- Framing ---------------------------------------------------------------------------------

const LF = 0x0a;
const CR = 0x0d;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Splits a byte stream into lines (LF, an optional CR before it dropped) and decodes each as
 * UTF-8; `onLine` gets undefined for a line that is not valid UTF-8. Memory is bounded: once
 * the unfinished line exceeds `maxBytes`, push() returns false and the reader is spent.
 */
export class LineReader {
  readonly maxBytes: number;
  readonly #onLine: (line: string | undefined) => void;
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #overflowed = false;

  constructor(maxBytes: number, onLine: (line: string | undefined) => void) {
    this.maxBytes = maxBytes;
    this.#onLine = onLine;
  }

  get overflowed(): boolean {
    return this.#overflowed;
  }

  push(chunk: Buffer): boolean {
    if (this.#overflowed) return false;
    let buf = chunk;
    for (;;) {
      const nl = buf.indexOf(LF);
      if (nl < 0) break;
      if (this.#pendingBytes + nl > this.maxBytes) return this.#overflow();
      const piece = buf.subarray(0, nl);
      let line: Buffer;
      if (this.#pendingBytes === 0) line = piece;
      else {
        this.#pending.push(piece);
        line = Buffer.concat(this.#pending, this.#pendingBytes + nl);
        this.#pending = [];
        this.#pendingBytes = 0;
      }
      buf = buf.subarray(nl + 1);
      this.#onLine(decodeLine(line));
      // onLine may have closed the connection and spent the reader.
      if (this.#overflowed) return false;
    }
    if (buf.length > 0) {
      if (this.#pendingBytes + buf.length > this.maxBytes) return this.#overflow();
      this.#pending.push(Buffer.from(buf));
      this.#pendingBytes += buf.length;
    }
    return true;
  }

  /** Stops the reader: later pushes are ignored. */
  close(): void {
    this.#overflowed = true;
    this.#pending = [];
    this.#pendingBytes = 0;
  }

  #overflow(): false {
    this.close();
    return false;
  }
}

function decodeLine(b: Buffer): string | undefined {
  const end = b.length > 0 && b[b.length - 1] === CR ? b.length - 1 : b.length;
  try {
    return utf8.decode(b.subarray(0, end));
  } catch {
    return undefined;
  }
}

// ---- Arguments -------------------------------------------------------------------------------

/** Reads a request's arguments, collecting every problem; `done()` throws them together. */
export class ArgReader {
  readonly #args: Dict;
  readonly #used = new Set<string>();
  readonly #problems: string[] = [];
  readonly #id: RequestId;

  constructor(id: RequestId, args: Dict) {
    this.#id = id;
    this.#args = args;
  }

  #get(name: string): Value | undefined {
    this.#used.add(name);
    const v = this.#args.get(sym(name));
    return v === undefined ? undefined : strip(v);
  }

  problem(message: string): void {
    this.#problems.push(message);
  }

  /** Any value; a missing required argument is a problem (and yields `false`). */
  value(name: string, required: true): Value;
  value(name: string, required?: false): Value | undefined;
  value(name: string, required = false): Value | undefined {
    const v = this.#get(name);
    if (v === undefined && required) {
      this.problem(`missing argument ${name}`);
      return false;
    }
    return v;
  }

  string(name: string, required: true): string;
  string(name: string, required?: false): string | undefined;
  string(name: string, required = false): string | undefined {
    const v = this.#get(name);
    if (v === undefined) {
      if (required) this.problem(`missing argument ${name} (a string)`);
      return required ? '' : undefined;
    }
    if (typeof v !== 'string') {
      this.problem(`argument ${name} must be a string, got ${abbreviate(writeValue(v), 40)}`);
      return '';
    }
    return v;
  }

  /** A non-negative safe integer, or the fallback when absent. */
  count(name: string, fallback: number): number {
    const v = this.#get(name);
    if (v === undefined) return fallback;
    if (typeof v !== 'number' || v < 0) {
      this.problem(
        `argument ${name} must be a non-negative integer, got ${abbreviate(writeValue(v), 40)}`,
      );
      return fallback;
    }
    return v;
  }

  boolean(name: string, fallback: boolean): boolean {
    const v = this.#get(name);
    if (v === undefined) return fallback;
    if (typeof v !== 'boolean') {
      this.problem(`argument ${name} must be #t or #f, got ${abbreviate(writeValue(v), 40)}`);
      return fallback;
    }
    return v;
  }

  dataspace(name = 'dataspace'): DataspaceName {
    const v = this.#get(name);
    if (v === undefined) return 'config';
    if (v instanceof Sym && (DATASPACES as readonly string[]).includes(v.name)) {
      return v.name as DataspaceName;
    }
    this.problem(
      `argument ${name} must be one of ${DATASPACES.join(', ')}, got ${abbreviate(writeValue(v), 40)}`,
    );
    return 'config';
  }

  /** Throws a bad-request ProtocolError listing every problem (unknown arguments included). */
  done(): void {
    for (const k of this.#args.keys()) {
      const name = (peel(k) as Sym).name;
      if (!this.#used.has(name)) this.#problems.push(`unknown argument ${name}`);
    }
    if (this.#problems.length > 0) {
      throw new ProtocolError(ErrorReason.BadRequest, this.#problems.join('; '), this.#id);
    }
  }
}

// ---- What requests return ---------------------------------------------------------------------

/** RFC 3339, UTC, milliseconds: how times travel. */
export function formatTime(ms: number): string {
  return new Date(ms).toISOString();
}

function field(d: Value, name: string): Value | undefined {
  const p = peel(d);
  if (!(p instanceof Dict)) return undefined;
  const v = p.get(sym(name));
  return v === undefined ? undefined : peel(v);
}

function str(d: Value, name: string, fallback = ''): string {
  const v = field(d, name);
  return typeof v === 'string' ? v : fallback;
}

function optStr(d: Value, name: string): string | undefined {
  const v = field(d, name);
  return typeof v === 'string' ? v : undefined;
}

function num(d: Value, name: string): number | undefined {
  const v = field(d, name);
  return typeof v === 'number' ? v : undefined;
}

function time(d: Value, name: string): number | undefined {
  const v = field(d, name);
  if (typeof v !== 'string') return undefined;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : t;
}

function seq(d: Value, name: string): readonly Value[] {
  const v = field(d, name);
  return Array.isArray(v) ? (v as readonly Value[]) : [];
}

function putOptional(d: Dict, name: string, v: Value | undefined): void {
  if (v !== undefined) d.set(sym(name), v);
}

export function encodeServiceInfo(s: ServiceInfo): Dict {
  const d = new Dict([
    [sym('service'), s.service],
    [sym('state'), s.state],
    [sym('pids'), [...s.pids]],
    [sym('restarts'), s.restarts],
  ]);
  putOptional(d, 'since', s.since === undefined ? undefined : formatTime(s.since));
  putOptional(d, 'lastExit', s.lastExit);
  putOptional(d, 'failure', s.failure);
  return d;
}

export function decodeServiceInfo(v: Value): ServiceInfo {
  return {
    service: field(v, 'service') ?? false,
    state: str(v, 'state', '?'),
    pids: seq(v, 'pids').filter((p): p is number => typeof p === 'number'),
    restarts: num(v, 'restarts') ?? 0,
    since: time(v, 'since'),
    lastExit: optStr(v, 'lastExit'),
    failure: optStr(v, 'failure'),
  };
}

function encodeProcessInfo(p: ProcessInfo): Dict {
  const d = new Dict([
    [sym('spec'), p.spec],
    [sym('state'), p.state],
    [sym('restarts'), p.restarts],
    [sym('problems'), [...p.problems]],
  ]);
  putOptional(d, 'pid', p.pid);
  putOptional(d, 'lastExit', p.lastExit);
  putOptional(d, 'failure', p.failure);
  putOptional(d, 'where', p.where);
  return d;
}

function decodeProcessInfo(v: Value): ProcessInfo {
  return {
    spec: field(v, 'spec') ?? false,
    state: str(v, 'state', '?'),
    pid: num(v, 'pid'),
    restarts: num(v, 'restarts') ?? 0,
    lastExit: optStr(v, 'lastExit'),
    problems: seq(v, 'problems').filter((p): p is string => typeof p === 'string'),
    failure: optStr(v, 'failure'),
    where: optStr(v, 'where'),
  };
}

export function encodeServiceDetail(s: ServiceDetail): Dict {
  const d = encodeServiceInfo(s);
  putOptional(d, 'outputsDir', s.outputsDir);
  d.set(sym('processes'), s.processes.map(encodeProcessInfo));
  d.set(sym('outputs'), new Dict(s.outputs ?? []));
  return d;
}

export function decodeServiceDetail(v: Value): ServiceDetail {
  const outputs = field(v, 'outputs');
  return {
    ...decodeServiceInfo(v),
    outputsDir: optStr(v, 'outputsDir'),
    processes: seq(v, 'processes').map(decodeProcessInfo),
    outputs: outputs instanceof Dict ? [...outputs] : [],
  };
}

export function encodeLogEntry(e: LogEntry): Dict {
  return new Dict([
    [sym('time'), formatTime(e.time)],
    [sym('stream'), e.stream],
    [sym('line'), e.line],
  ]);
}

export function decodeLogEntry(v: Value): LogEntry {
  return { time: time(v, 'time') ?? 0, stream: str(v, 'stream', '?'), line: str(v, 'line') };
}

/** A watch's event: a value began or stopped being asserted, or was sent as a message. */
export type WatchEvent =
  | {
      readonly type: 'added' | 'removed' | 'message';
      readonly value: Value;
      /** Captures by name, in the pattern's order. */
      readonly captures: readonly (readonly [string, Value])[];
    }
  /** Everything asserted when the watch began has been reported. */
  | { readonly type: 'synced' };

export function encodeCaptures(captures: Iterable<readonly [string, Value]>): Dict {
  return new Dict([...captures].map(([k, v]) => [sym(k), v] as const));
}

function decodeCaptures(v: Value | undefined): [string, Value][] {
  const p = v === undefined ? undefined : peel(v);
  if (!(p instanceof Dict)) return [];
  const out: [string, Value][] = [];
  for (const [k, x] of p) {
    const key = peel(k);
    if (key instanceof Sym) out.push([key.name, x]);
  }
  return out;
}

export function encodeWatchEvent(e: WatchEvent): Value {
  if (e.type === 'synced') return record('synced');
  return record(e.type, e.value, encodeCaptures(e.captures));
}

export function decodeWatchEvent(v: Value): WatchEvent | undefined {
  const label = labelOf(peel(v));
  const r = peel(v) as Record;
  switch (label) {
    case 'synced':
      return { type: 'synced' };
    case 'added':
    case 'removed':
    case 'message':
      if (r.fields.length < 1) return undefined;
      return { type: label, value: r.fields[0]!, captures: decodeCaptures(r.fields[1]) };
    default:
      return undefined;
  }
}

/** What a query returns: the capture names in order, and each match. */
export interface QueryAnswer {
  readonly names: readonly string[];
  readonly matches: readonly {
    readonly value: Value;
    readonly captures: readonly (readonly [string, Value])[];
  }[];
}

export type QueryMatch = QueryAnswer['matches'][number];

/** How many levels the answer puts around each match: `<ok ID {matches: [MATCH ...]}>`. */
export const QUERY_MATCH_LEVELS = 3;

/** One match as the answer holds it: `{value: V captures: {NAME: V ...}}`. */
export function encodeQueryMatch(m: QueryMatch): Dict {
  return new Dict([
    [sym('value'), m.value],
    [sym('captures'), encodeCaptures(m.captures)],
  ]);
}

export function encodeQueryAnswer(a: QueryAnswer): Dict {
  return new Dict([
    [sym('names'), [...a.names]],
    [sym('matches'), a.matches.map(encodeQueryMatch)],
  ]);
}

export function decodeQueryAnswer(v: Value): QueryAnswer {
  const names = seq(v, 'names').filter((n): n is string => typeof n === 'string');
  const matches = seq(v, 'matches').map((m) => {
    const captures = decodeCaptures(field(m, 'captures'));
    // Keep the names' order (a dictionary's order is not significant on the wire).
    captures.sort((a, b) => names.indexOf(a[0]) - names.indexOf(b[0]));
    return { value: field(m, 'value') ?? false, captures };
  });
  return { names, matches };
}

/** Progress of ifup/ifdown: `<progress VALUE>`. */
export function encodeProgress(v: Value): Value {
  return record('progress', v);
}

export function decodeProgress(v: Value): Value | undefined {
  const p = peel(v);
  return labelOf(p) === 'progress' ? ((p as Record).fields[0] ?? false) : undefined;
}

/** One stored setting as the protocol carries it. */
export interface SettingEntry {
  readonly value: Value;
  readonly file: string;
}

export interface SettingsAnswer {
  readonly settings: readonly SettingEntry[];
  /** Files that could not be read or parsed: reported, not fatal. */
  readonly problems: readonly { readonly file: string; readonly message: string }[];
}

export function encodeSettingsAnswer(a: SettingsAnswer): Dict {
  return new Dict([
    [
      sym('settings'),
      a.settings.map(
        (s) =>
          new Dict([
            [sym('value'), s.value],
            [sym('file'), s.file],
          ]),
      ),
    ],
    [
      sym('problems'),
      a.problems.map(
        (p) =>
          new Dict([
            [sym('file'), p.file],
            [sym('message'), p.message],
          ]),
      ),
    ],
  ]);
}

export function decodeSettingsAnswer(v: Value): SettingsAnswer {
  return {
    settings: seq(v, 'settings').map((s) => ({
      value: field(s, 'value') ?? false,
      file: str(s, 'file'),
    })),
    problems: seq(v, 'problems').map((p) => ({ file: str(p, 'file'), message: str(p, 'message') })),
  };
}

/** A dictionary of named values, for status and simple answers. */
export function dictOf(entries: { readonly [k: string]: Value | undefined }): Dict {
  const d = new Dict();
  for (const [k, v] of Object.entries(entries)) if (v !== undefined) d.set(sym(k), v);
  return d;
}

/** Reads a field of a dictionary answer (annotations peeled). */
export function answerField(v: Value, name: string): Value | undefined {
  return field(v, name);
}

// ---- Generations -----------------------------------------------------------------------------

/** `{number time message who parent? checksum outcome current last-confirmed}`; time in ms. */
export function encodeGeneration(g: GenerationSummary): Dict {
  return new Dict([
    [sym('number'), g.number],
    [sym('time'), g.time],
    [sym('message'), g.message],
    [sym('who'), g.who],
    ...(g.parent === undefined ? [] : [[sym('parent'), g.parent] as const]),
    [sym('checksum'), g.checksum],
    [sym('outcome'), g.outcome],
    [sym('current'), g.current],
    [sym('last-confirmed'), g.lastConfirmed],
  ]);
}

export function decodeGeneration(v: Value): GenerationSummary {
  const d = peel(v);
  if (!(d instanceof Dict))
    throw new ProtocolError(ErrorReason.BadRequest, 'a generation is a dictionary');
  const get = (k: string) => {
    const x = d.get(sym(k));
    return x === undefined ? undefined : peel(x);
  };
  const n = (k: string) => {
    const x = get(k);
    return typeof x === 'number' ? x : undefined;
  };
  const s = (k: string) => {
    const x = get(k);
    return typeof x === 'string' ? x : '';
  };
  return {
    number: n('number') ?? 0,
    time: n('time') ?? 0,
    message: s('message'),
    who: s('who'),
    parent: n('parent'),
    checksum: s('checksum'),
    outcome: s('outcome'),
    current: get('current') === true,
    lastConfirmed: get('last-confirmed') === true,
  };
}

// ---- Plans (diff) ----------------------------------------------------------------------------

/** The most entries of one list of a plan that an answer carries; the rest are counted in a note. */
export const MAX_PLAN_ENTRIES = 1000;

/**
 * `{from to appear disappear start stop restart: [{service changes: [{key from? to?}]}]
 * notes}`: FROM and TO in words, the lists of values, NOTES strings.
 */
export function encodePlan(p: PlanAnswer): Dict {
  const notes = [...p.notes];
  const cap = <T>(list: readonly T[], what: string): T[] => {
    if (list.length > MAX_PLAN_ENTRIES)
      notes.push(`${list.length - MAX_PLAN_ENTRIES} more ${what} not shown`);
    return list.slice(0, MAX_PLAN_ENTRIES);
  };
  return dictOf({
    from: p.from,
    to: p.to,
    appear: cap(p.appear, 'assertions that appear'),
    disappear: cap(p.disappear, 'assertions that disappear'),
    start: cap(p.start, 'services that start'),
    stop: cap(p.stop, 'services that stop'),
    restart: cap(p.restart, 'services that restart').map((r) =>
      dictOf({
        service: r.service,
        changes: r.changes.map((c) => dictOf({ key: c.key, from: c.from, to: c.to })),
      }),
    ),
    notes,
  });
}

export function decodePlan(v: Value): PlanAnswer {
  const d = peel(v);
  if (!(d instanceof Dict))
    throw new ProtocolError(ErrorReason.BadRequest, 'a plan is a dictionary');
  const get = (x: Value, k: string): Value | undefined => {
    const p = peel(x);
    const y = p instanceof Dict ? p.get(sym(k)) : undefined;
    return y === undefined ? undefined : peel(y);
  };
  const list = (x: Value, k: string): Value[] => {
    const y = get(x, k);
    return Array.isArray(y) ? (y as Value[]) : [];
  };
  const text = (x: Value, k: string): string => {
    const y = get(x, k);
    return typeof y === 'string' ? y : '';
  };
  return {
    from: text(d, 'from'),
    to: text(d, 'to'),
    appear: list(d, 'appear'),
    disappear: list(d, 'disappear'),
    start: list(d, 'start'),
    stop: list(d, 'stop'),
    restart: list(d, 'restart').map((r) => ({
      service: get(r, 'service') ?? false,
      changes: list(r, 'changes').map((c) => ({
        key: text(c, 'key'),
        from: get(c, 'from'),
        to: get(c, 'to'),
      })),
    })),
    notes: list(d, 'notes').filter((n): n is string => typeof n === 'string'),
  };
}
