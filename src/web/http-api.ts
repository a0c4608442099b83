// The dashboard's HTTP side (docs/web.md, "The HTTP mapping of the control
// protocol"): the page's files, the login and its session, and the control protocol's
// commands as POST /api/request (NDJSON) and GET /api/stream (server-sent events).
//
// Invariants: nothing but the page's files and the login answers without a live
// session; every POST but the login needs the session's CSRF token in X-CSRF-Token and
// no foreign Origin; a command runs only if the web endpoint's allowlist has it (the
// daemon checks again); a request body is read no further than its limit; a session
// holds at most MAX_OPEN requests and streams; a stream whose browser does not read
// is dropped once MAX_UNSENT bytes wait; every action is logged with its session.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { ControlClosedError, ControlConnectError } from '../control/client.ts';
import { ControlRequestError } from '../control/errors.ts';
import { WEB_COMMANDS } from '../control/web-endpoint.ts';
import type { CommandName } from '../control/commands/index.ts';
import {
  Bytes,
  Dict,
  fromJSON,
  peel,
  stringify,
  sym,
  toJSON,
  type Value,
} from '../preserves/index.ts';
import { DaemonLink } from './daemon-link.ts';
import { csrfMatches, type LoginLimiter, type Session, type SessionStore } from './sessions.ts';
import type { StaticFiles } from './static-files.ts';

export const COOKIE = 'limen-session';
/** A login's or a password change's body. */
const SMALL_BODY = 8 * 1024;
/** A request's body: a trial's files (some 700 KiB) in base64, and room around them. */
const REQUEST_BODY = 2 * 1024 * 1024;
/** Requests and streams one session may have open at once (the daemon allows 64). */
export const MAX_OPEN = 40;
/** Bytes of events waiting for a browser that does not read; past them the stream ends. */
const MAX_UNSENT = 2 * 1024 * 1024;
const HEARTBEAT_MS = 15_000;
/** Watches one /api/watch stream carries. */
const MAX_WATCHES = 16;
/** What a logged action shows of its arguments. */
const LOG_ARGS = 300;

/** What /api/request runs: the endpoint's commands but the streams and the password's. */
const REQUEST_COMMANDS = new Set<string>(
  [...WEB_COMMANDS].filter((c) => !['watch', 'check-password', 'web-password-change'].includes(c)),
);
const STREAM_COMMANDS = new Set<string>(['watch', 'logs']);

export interface ApiOptions {
  readonly socketPath: string;
  readonly files: StaticFiles;
  readonly sessions: SessionStore;
  readonly limiter: LoginLimiter;
  /** Whether the page is served over HTTPS (the cookie is then Secure). */
  readonly secure: boolean;
  readonly log: (line: string) => void;
}

class HttpError extends Error {
  readonly status: number;
  readonly reason: string;
  constructor(status: number, reason: string, message: string) {
    super(message);
    this.status = status;
    this.reason = reason;
  }
}

interface Live {
  readonly session: Session;
  readonly token: string;
  readonly link: DaemonLink;
  open: number;
}

const SECURITY_HEADERS: { [name: string]: string } = {
  'content-security-policy':
    "default-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

export class WebApi {
  readonly #o: ApiOptions;
  /** Each session's connection to the daemon and its open requests, by session id. */
  readonly #live = new Map<string, Live>();

  constructor(o: ApiOptions) {
    this.#o = o;
  }

  /** The server's 'request' handler. */
  handle(req: IncomingMessage, res: ServerResponse): void {
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v);
    this.#route(req, res).catch((e: unknown) => this.#fail(res, e));
  }

  async #route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://page');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    if (!path.startsWith('/api/')) {
      if (method !== 'GET' && method !== 'HEAD')
        throw new HttpError(405, 'bad-request', `${method} is not served here`);
      this.#o.files.serve(path, req, res);
      return;
    }
    res.setHeader('cache-control', 'no-store');
    const route = `${method} ${path}`;
    switch (route) {
      case 'POST /api/login':
        return this.#login(req, res);
      case 'GET /api/session':
        return this.#session(req, res);
      case 'POST /api/logout':
        return this.#logout(req, res);
      case 'POST /api/password':
        return this.#password(req, res);
      case 'POST /api/request':
        return this.#request(req, res);
      case 'GET /api/stream':
        return this.#stream(req, res, url);
      case 'GET /api/watch':
        return this.#watches(req, res, url);
      default:
        throw new HttpError(404, 'not-found', `no such API: ${route}`);
    }
  }

  // ---- Sessions ------------------------------------------------------------------

  async #login(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.#checkOrigin(req);
    const address = clientAddress(req);
    const wait = this.#o.limiter.refusal(address);
    if (wait !== undefined) {
      this.#o.log(`login from ${address} refused: too many failed logins (${wait} s to wait)`);
      throw new HttpError(
        429,
        'rate-limited',
        `too many failed logins from ${address}; try again in ${wait} s`,
      );
    }
    const body = await readJson(req, SMALL_BODY);
    const password = field(body, 'password');
    // A fresh connection for each check: see daemon-link.ts.
    const link = new DaemonLink(this.#o.socketPath);
    let valid: boolean;
    try {
      const answer = await (await link.client()).call('check-password', { password });
      valid = dictField(answer, 'valid') === true;
    } finally {
      link.close();
    }
    if (!valid) {
      this.#o.limiter.failed(address);
      this.#o.log(`login from ${address} failed: wrong password`);
      throw new HttpError(401, 'bad-password', 'wrong password');
    }
    this.#o.limiter.succeeded(address);
    const { token, session } = this.#o.sessions.create(address);
    this.#o.log(`session ${session.id} (${address}): logged in`);
    res.setHeader('set-cookie', this.#cookie(token, Math.round(this.#o.sessions.maxMs / 1000)));
    sendJson(res, 200, this.#sessionAnswer(session));
  }

  #session(req: IncomingMessage, res: ServerResponse): void {
    const { session } = this.#require(req, false);
    sendJson(res, 200, this.#sessionAnswer(session));
  }

  #logout(req: IncomingMessage, res: ServerResponse): void {
    const { session, token } = this.#require(req, true);
    this.#o.log(`session ${session.id} (${session.address}): logged out`);
    this.#o.sessions.end(token);
    res.setHeader('set-cookie', this.#cookie('', 0));
    res.writeHead(204).end();
  }

  async #password(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const live = this.#require(req, true);
    const body = await readJson(req, SMALL_BODY);
    const old = field(body, 'old');
    const next = field(body, 'new');
    const who = `session ${live.session.id} (${live.session.address})`;
    let changed: boolean;
    try {
      const answer = await (
        await live.link.client()
      ).call('web-password-change', { old, new: next });
      changed = dictField(answer, 'changed') === true;
    } catch (e) {
      if (e instanceof ControlRequestError && e.reason === 'bad-request')
        throw new HttpError(400, e.reason, e.message);
      throw e;
    }
    this.#o.log(`${who}: change of password: ${changed ? 'done' : 'refused, wrong old password'}`);
    if (!changed) throw new HttpError(401, 'bad-password', 'the old password is wrong');
    res.writeHead(204).end();
  }

  #sessionAnswer(session: Session): Value {
    return new Dict([
      [sym('csrf'), session.csrf],
      [sym('expires'), this.#o.sessions.expires(session)],
      [sym('idle'), Math.round(this.#o.sessions.idleMs / 1000)],
    ]);
  }

  #cookie(token: string, maxAge: number): string {
    return (
      `${COOKIE}=${token}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAge}` +
      (this.#o.secure ? '; Secure' : '')
    );
  }

  /** The request's live session; with `action`, also its CSRF token and origin. */
  #require(req: IncomingMessage, action: boolean): Live {
    const token = cookieOf(req, COOKIE);
    const session = this.#o.sessions.find(token);
    if (session === undefined || token === undefined)
      throw new HttpError(401, 'no-session', 'not logged in, or the session expired');
    if (action) {
      this.#checkOrigin(req);
      const given = req.headers['x-csrf-token'];
      if (!csrfMatches(session, typeof given === 'string' ? given : undefined)) {
        this.#o.log(
          `session ${session.id} (${clientAddress(req)}): refused ${req.method} ${req.url}: ` +
            'missing or wrong CSRF token',
        );
        throw new HttpError(403, 'csrf', 'missing or wrong CSRF token (X-CSRF-Token)');
      }
    }
    let live = this.#live.get(session.id);
    if (live === undefined) {
      const link = new DaemonLink(this.#o.socketPath);
      live = { session, token, link, open: 0 };
      this.#live.set(session.id, live);
      session.onEnd.push(() => {
        this.#live.delete(session.id);
        link.close();
      });
    }
    return live;
  }

  /** A browser sends Origin with every POST: one naming another site is a forgery. */
  #checkOrigin(req: IncomingMessage): void {
    const origin = req.headers.origin;
    if (origin === undefined) return;
    const host = req.headers.host;
    const own = `${this.#o.secure ? 'https' : 'http'}://${host ?? ''}`;
    if (origin !== own) {
      this.#o.log(`refused ${req.method} ${req.url} from ${clientAddress(req)}: origin ${origin}`);
      throw new HttpError(403, 'origin', `requests from ${origin} are not accepted`);
    }
  }

  // ---- Commands ------------------------------------------------------------------

  async #request(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const live = this.#require(req, true);
    const body = await readJson(req, REQUEST_BODY);
    const command = field(body, 'command');
    if (!REQUEST_COMMANDS.has(command)) {
      const why = STREAM_COMMANDS.has(command)
        ? `${command} is a stream: use GET /api/stream`
        : `${command} is not a command the dashboard runs`;
      this.#o.log(`session ${live.session.id} (${live.session.address}): refused ${command}`);
      throw new HttpError(403, 'forbidden', why);
    }
    const args = argsOf(body);
    if (command === 'logs' && dictField(args, 'follow') === true)
      throw new HttpError(403, 'forbidden', 'logs with follow is a stream: use GET /api/stream');
    this.#open(live);
    const who = `session ${live.session.id} (${live.session.address})`;
    const shown = `${command} ${describeArgs(command, args)}`;
    const abort = new AbortController();
    res.on('close', () => abort.abort(new Error('the browser went away')));
    let headersSent = false;
    const line = (v: unknown) => {
      if (!headersSent) {
        res.writeHead(200, { 'content-type': 'application/x-ndjson; charset=utf-8' });
        headersSent = true;
      }
      res.write(JSON.stringify(v) + '\n');
    };
    try {
      const client = await live.link.client();
      const answer = await client.request(command as CommandName, args, {
        signal: abort.signal,
        onEvent: (e) => line({ event: toJSON(e) }),
      });
      this.#o.log(`${who}: ${shown}: ok`);
      line(answer === undefined ? { end: true } : { ok: toJSON(answer) });
    } catch (e) {
      if (abort.signal.aborted) {
        this.#o.log(`${who}: ${shown}: the browser went away`);
        return;
      }
      const err = describeError(e);
      this.#o.log(`${who}: ${shown}: ${err.reason}: ${err.message}`);
      if (!headersSent && err.reason === 'unreachable') throw e;
      line({ error: err });
    } finally {
      live.open--;
      // Not yet answered: the error goes up to #fail, which answers 503.
      if (headersSent) res.end();
    }
  }

  async #stream(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const live = this.#require(req, false);
    const command = url.searchParams.get('command') ?? '';
    if (!STREAM_COMMANDS.has(command))
      throw new HttpError(403, 'forbidden', `${command} is not a stream the dashboard opens`);
    const args = argsOf({ args: jsonParam(url, 'args', {}) });
    if (command === 'logs' && dictField(args, 'follow') !== true)
      throw new HttpError(400, 'bad-request', 'a logs stream needs follow: true');
    await this.#sse(res, live, [{ command, args }], false);
  }

  /**
   * `GET /api/watch?watches=[{"pattern": P, "dataspace": D}, …]`: several watches in one
   * stream (a browser keeps at most six connections to a host), each event tagged
   * `{"watch": I, "event": V}` with its watch's index.
   */
  async #watches(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const live = this.#require(req, false);
    const list = jsonParam(url, 'watches', undefined);
    if (!Array.isArray(list) || list.length === 0 || list.length > MAX_WATCHES)
      throw new HttpError(
        400,
        'bad-request',
        `watches must be a list of 1 to ${MAX_WATCHES} {"pattern", "dataspace"} objects`,
      );
    const requests = list.map((w: unknown) => ({ command: 'watch', args: argsOf({ args: w }) }));
    await this.#sse(res, live, requests, true);
  }

  /** Runs `requests` on the session's connection as one server-sent-event stream. */
  async #sse(
    res: ServerResponse,
    live: Live,
    requests: readonly { command: string; args: Dict }[],
    tagged: boolean,
  ): Promise<void> {
    this.#open(live, requests.length);
    const what = requests.map((r) => r.command).join('+');
    const abort = new AbortController();
    let unsent = 0;
    const write = (text: string) => {
      if (res.destroyed) return;
      if (!res.write(text)) {
        unsent += text.length;
        if (unsent > MAX_UNSENT) {
          this.#o.log(
            `session ${live.session.id}: a ${what} stream dropped: the browser did not read`,
          );
          abort.abort(new Error('lagged'));
          res.destroy();
        }
      }
    };
    res.on('drain', () => (unsent = 0));
    const heartbeat = setInterval(() => write(': alive\n\n'), HEARTBEAT_MS);
    const ended = () => abort.abort(new Error('closed'));
    live.session.onEnd.push(ended);
    res.on('close', () => {
      clearInterval(heartbeat);
      abort.abort(new Error('the browser went away'));
    });
    try {
      const client = await live.link.client();
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'x-accel-buffering': 'no',
      });
      write(': limen\n\n');
      // The first to end (or fail) ends them all.
      await Promise.race(
        requests.map((r, i) =>
          client.request(r.command as CommandName, r.args, {
            signal: abort.signal,
            onEvent: (e) => {
              const data = tagged ? { watch: i, event: toJSON(e) } : toJSON(e);
              write(`event: event\ndata: ${JSON.stringify(data)}\n\n`);
            },
          }),
        ),
      );
      write('event: end\ndata: {}\n\n');
    } catch (e) {
      if (!abort.signal.aborted) {
        const err = describeError(e);
        if (!res.headersSent) throw e;
        write(`event: error\ndata: ${JSON.stringify(err)}\n\n`);
      }
    } finally {
      clearInterval(heartbeat);
      abort.abort(new Error('ended'));
      live.open -= requests.length;
      const i = live.session.onEnd.indexOf(ended);
      if (i >= 0) live.session.onEnd.splice(i, 1);
      // Not yet answered: the error goes up to #fail, which answers 503.
      if (res.headersSent) res.end();
    }
  }

  #open(live: Live, n = 1): void {
    if (live.open + n > MAX_OPEN)
      throw new HttpError(
        429,
        'too-many-requests',
        `this session has ${live.open} requests and streams open, its limit`,
      );
    live.open += n;
  }

  #fail(res: ServerResponse, e: unknown): void {
    let status: number;
    let error: { reason: string; message: string };
    if (e instanceof HttpError) {
      status = e.status;
      error = { reason: e.reason, message: e.message };
    } else {
      error = describeError(e);
      status = error.reason === 'unreachable' ? 503 : error.reason === 'internal' ? 500 : 400;
      if (error.reason === 'rate-limited') status = 429;
      if (status === 500) this.#o.log(`internal error: ${(e as Error)?.stack ?? String(e)}`);
    }
    if (res.headersSent) {
      res.end();
      return;
    }
    sendJson(
      res,
      status,
      new Dict([
        [
          sym('error'),
          new Dict([
            [sym('reason'), error.reason],
            [sym('message'), error.message],
          ]),
        ],
      ]),
    );
  }

  /** Ends every session (the server is stopping). */
  close(): void {
    this.#o.sessions.endAll();
  }
}

function describeError(e: unknown): { reason: string; message: string } {
  if (e instanceof ControlRequestError) return { reason: e.reason, message: e.message };
  if (e instanceof ControlConnectError || e instanceof ControlClosedError)
    return { reason: 'unreachable', message: `the daemon is not reachable: ${e.message}` };
  if (e instanceof HttpError) return { reason: e.reason, message: e.message };
  return { reason: 'internal', message: 'an internal error of the web server (its log says more)' };
}

function sendJson(res: ServerResponse, status: number, v: Value): void {
  const body = JSON.stringify(toJSON(v));
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}

/** The peer's address, as the log and the login limiter name it. */
export function clientAddress(req: IncomingMessage): string {
  return (req.socket.remoteAddress ?? 'unknown').replace(/^::ffff:/, '');
}

function cookieOf(req: IncomingMessage, name: string): string | undefined {
  const header = req.headers.cookie;
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** The body as JSON, read no further than `limit` bytes. */
async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const type = req.headers['content-type'] ?? '';
  if (!type.startsWith('application/json'))
    throw new HttpError(400, 'bad-request', 'the body must be application/json');
  const declared = Number(req.headers['content-length'] ?? '0');
  if (declared > limit) throw tooLarge(limit);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > limit) {
      req.destroy();
      throw tooLarge(limit);
    }
    chunks.push(c);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch (e) {
    throw new HttpError(400, 'bad-request', `the body is not JSON: ${(e as Error).message}`);
  }
}

const tooLarge = (limit: number) =>
  new HttpError(413, 'too-large', `the body is larger than ${limit} bytes, the limit here`);

function field(body: unknown, name: string): string {
  const v = (body as { [k: string]: unknown } | null)?.[name];
  if (typeof body !== 'object' || body === null || typeof v !== 'string')
    throw new HttpError(400, 'bad-request', `the body needs "${name}", a string`);
  return v;
}

/** URL parameter `name` as JSON (`fallback` when absent). */
function jsonParam(url: URL, name: string, fallback: unknown): unknown {
  const text = url.searchParams.get(name);
  if (text === null) return fallback;
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new HttpError(400, 'bad-request', `${name} is not JSON: ${(e as Error).message}`);
  }
}

/** The body's `args` as a Preserves dictionary (the JSON mapping; absent is `{}`). */
function argsOf(body: unknown): Dict {
  const raw = (body as { args?: unknown }).args ?? {};
  let v: Value;
  try {
    v = fromJSON(raw);
  } catch (e) {
    throw new HttpError(400, 'bad-request', `args: ${(e as Error).message}`);
  }
  const d = peel(v);
  if (!(d instanceof Dict)) throw new HttpError(400, 'bad-request', 'args must be an object');
  return d;
}

function dictField(v: Value | undefined, name: string): Value | undefined {
  const d = v === undefined ? undefined : peel(v);
  return d instanceof Dict ? d.get(sym(name)) : undefined;
}

/** A command's arguments for the log: a trial's files by count, never their content. */
function describeArgs(command: string, args: Dict): string {
  let shown: Value = args;
  if (command === 'try' || command === 'diff') {
    shown = new Dict(
      [...args].map(([k, v]) => {
        const inner = peel(v);
        return [
          k,
          inner instanceof Dict && [...inner.values()].some((x) => peel(x) instanceof Bytes)
            ? `${inner.size} files`
            : v,
        ] as const;
      }),
    );
  }
  const text = stringify(shown);
  return text.length > LOG_ARGS ? `${text.slice(0, LOG_ARGS)}…` : text;
}
