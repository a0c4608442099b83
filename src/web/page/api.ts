// The page's side of the HTTP mapping of the control protocol (docs/web.md): login and
// session, one-off requests (NDJSON answers) and streams (server-sent events). A 401
// anywhere means the session is gone: every listener of onSessionEnded hears it once,
// and the page shows the login form again.

import type { Json, JsonObject } from './values.ts';

/** An error as the server or the daemon reports it: `{reason, message}`. */
export class ApiError extends Error {
  readonly reason: string;
  readonly status: number | undefined;
  constructor(reason: string, message: string, status?: number) {
    super(message);
    this.reason = reason;
    this.status = status;
  }
}

export interface Session {
  readonly csrf: string;
  /** When the session ends whatever happens, ms since the epoch. */
  readonly expires: number;
  /** Seconds without a request after which it ends. */
  readonly idle: number;
}

let csrf: string | undefined;
const endedListeners = new Set<() => void>();

/** Called when a request finds the session gone (401); returns the unsubscribe. */
export function onSessionEnded(listener: () => void): () => void {
  endedListeners.add(listener);
  return () => endedListeners.delete(listener);
}

function sessionEnded(): void {
  if (csrf === undefined) return;
  csrf = undefined;
  for (const l of [...endedListeners]) l();
}

/** The `{error: {reason, message}}` of a failed response, or a stand-in from its status. */
async function errorOf(response: Response): Promise<ApiError> {
  let body: unknown;
  try {
    body = await response.json();
  } catch {
    body = undefined;
  }
  const e = (body as { error?: { reason?: unknown; message?: unknown } } | undefined)?.error;
  const reason = typeof e?.reason === 'string' ? e.reason : `http-${response.status}`;
  const message =
    typeof e?.message === 'string' ? e.message : `${response.status} ${response.statusText}`;
  return new ApiError(reason, message, response.status);
}

async function post(path: string, body: unknown, withCsrf = true): Promise<Response> {
  const headers: Record<string, string> = { 'Content-Type': 'application/json' };
  if (withCsrf && csrf !== undefined) headers['X-CSRF-Token'] = csrf;
  const response = await fetch(path, {
    method: 'POST',
    headers,
    body: JSON.stringify(body),
    credentials: 'same-origin',
  });
  if (!response.ok) {
    const error = await errorOf(response);
    // A wrong password at login or for a change is a 401 too, not an ended session.
    if (response.status === 401 && withCsrf && path !== '/api/password') sessionEnded();
    throw error;
  }
  return response;
}

function readSession(body: unknown): Session {
  const s = body as Partial<Session>;
  if (typeof s.csrf !== 'string') throw new ApiError('bad-answer', 'the session has no token');
  return { csrf: s.csrf, expires: Number(s.expires), idle: Number(s.idle) };
}

export async function login(password: string): Promise<Session> {
  const response = await post('/api/login', { password }, false);
  const session = readSession(await response.json());
  csrf = session.csrf;
  return session;
}

/** The current session, or undefined without one (the page's start). */
export async function session(): Promise<Session | undefined> {
  const response = await fetch('/api/session', { credentials: 'same-origin' });
  if (response.status === 401) return undefined;
  if (!response.ok) throw await errorOf(response);
  const s = readSession(await response.json());
  csrf = s.csrf;
  return s;
}

export async function logout(): Promise<void> {
  try {
    await post('/api/logout', {});
  } finally {
    sessionEnded();
  }
}

export async function changePassword(oldPassword: string, newPassword: string): Promise<void> {
  await post('/api/password', { old: oldPassword, new: newPassword });
}

/**
 * Runs a control-protocol command: calls onEvent for each `{"event": V}` line as it
 * arrives, and resolves with the `ok` value or rejects with an ApiError.
 */
export async function request(
  command: string,
  args: JsonObject,
  onEvent?: (event: Json) => void,
  signal?: AbortSignal,
): Promise<Json> {
  const headers: Record<string, string> = { 'Content-Type': 'application/json' };
  if (csrf !== undefined) headers['X-CSRF-Token'] = csrf;
  const init: RequestInit = {
    method: 'POST',
    headers,
    body: JSON.stringify({ command, args }),
    credentials: 'same-origin',
  };
  if (signal !== undefined) init.signal = signal;
  const response = await fetch('/api/request', init);
  if (!response.ok) {
    const error = await errorOf(response);
    if (response.status === 401) sessionEnded();
    throw error;
  }
  if (response.body === null) throw new ApiError('bad-answer', 'the answer has no body');
  for await (const line of lines(response.body)) {
    if (line.trim() === '') continue;
    const message = JSON.parse(line) as {
      event?: Json;
      ok?: Json;
      error?: { reason: string; message: string };
    };
    if ('event' in message) onEvent?.(message.event ?? null);
    else if ('ok' in message) return message.ok ?? null;
    else if (message.error !== undefined) {
      throw new ApiError(message.error.reason, message.error.message);
    }
  }
  throw new ApiError('disconnected', `${command}: the answer ended before the result`);
}

/** The body's text, line by line, as it arrives. */
async function* lines(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let pending = '';
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      pending += decoder.decode(value, { stream: true });
      let newline: number;
      while ((newline = pending.indexOf('\n')) >= 0) {
        yield pending.slice(0, newline);
        pending = pending.slice(newline + 1);
      }
    }
    pending += decoder.decode();
    if (pending !== '') yield pending;
  } finally {
    reader.releaseLock();
  }
}

export interface StreamHandlers {
  /** Each `event: event`; a reconnection starts the command again, after onOpen. */
  onEvent(value: Json): void;
  /** The connection is (again) open: what came before is to be forgotten. */
  onOpen?(): void;
  /** The command failed, or the connection did and will not come back. */
  onError?(error: ApiError): void;
  onEnd?(): void;
}

export interface Stream {
  close(): void;
}

// How many streams are open, for the header's "live" indicator.
let streamsOpen = 0;
let streamsWanted = 0;
const liveListeners = new Set<(live: boolean) => void>();

function liveChanged(): void {
  const live = streamsWanted > 0 && streamsOpen === streamsWanted;
  for (const l of [...liveListeners]) l(live);
}

/** Called with true while every stream is connected; returns the unsubscribe. */
export function onLiveChange(listener: (live: boolean) => void): () => void {
  liveListeners.add(listener);
  return () => liveListeners.delete(listener);
}

/**
 * A command's events as server-sent events (`watch`, `logs` with follow). The browser
 * reconnects a dropped connection by itself; the server then runs the command again.
 */
export function stream(command: string, args: JsonObject, handlers: StreamHandlers): Stream {
  const url = `/api/stream?command=${encodeURIComponent(command)}&args=${encodeURIComponent(JSON.stringify(args))}`;
  return openStream(url, command, handlers);
}

/**
 * Several watches in one stream (`GET /api/watch`): a browser keeps at most six
 * connections to a host. Each event is `{watch: I, event: V}`, I the index in `watches`.
 */
export function streamWatches(
  watches: readonly { readonly pattern: Json; readonly dataspace: string }[],
  handlers: StreamHandlers,
): Stream {
  const list = watches.map((w) => ({ pattern: w.pattern, dataspace: { '@sym': w.dataspace } }));
  return openStream(
    `/api/watch?watches=${encodeURIComponent(JSON.stringify(list))}`,
    'watch',
    handlers,
  );
}

function openStream(url: string, command: string, handlers: StreamHandlers): Stream {
  const source = new EventSource(url, { withCredentials: true });
  let open = false;
  let closed = false;
  streamsWanted++;
  const setOpen = (now: boolean) => {
    if (open === now) return;
    open = now;
    streamsOpen += now ? 1 : -1;
    liveChanged();
  };
  const close = () => {
    if (closed) return;
    closed = true;
    source.close();
    setOpen(false);
    streamsWanted--;
    liveChanged();
  };
  source.addEventListener('open', () => {
    setOpen(true);
    handlers.onOpen?.();
  });
  source.addEventListener('event', (e) => {
    handlers.onEvent(JSON.parse((e as MessageEvent<string>).data) as Json);
  });
  source.addEventListener('end', () => {
    close();
    handlers.onEnd?.();
  });
  // Both the server's `event: error` (a MessageEvent with data) and the browser's own
  // connection errors (a plain Event) arrive as "error".
  source.addEventListener('error', (e) => {
    if (e instanceof MessageEvent && typeof e.data === 'string') {
      const body = JSON.parse(e.data) as { reason?: string; message?: string };
      close();
      handlers.onError?.(new ApiError(body.reason ?? 'error', body.message ?? 'stream failed'));
      return;
    }
    setOpen(false);
    if (source.readyState !== EventSource.CLOSED) return; // the browser retries
    // A refused connection (401, 429…) is not retried: ask why through the session.
    close();
    session().then(
      (s) => {
        if (s === undefined) sessionEnded();
        else handlers.onError?.(new ApiError('disconnected', `${command}: the stream was refused`));
      },
      (error: unknown) =>
        handlers.onError?.(
          error instanceof ApiError ? error : new ApiError('disconnected', String(error)),
        ),
    );
  });
  return { close };
}
