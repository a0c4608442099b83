// The dashboard's sessions and its login rate limit (docs/web.md). A session is a
// random 256-bit token in an HttpOnly, SameSite=Strict cookie and a CSRF token that
// the page sends back in a header; both live only in this process's memory, so a
// restart of the server logs everybody out, which is the safe direction.
//
// Invariants: the store holds at most MAX_SESSIONS sessions (the least recently used
// goes first); a session is dead `idle` seconds after its last request and `max`
// seconds after its login, whatever it does; tokens are compared through their
// SHA-256 (a map lookup) and CSRF tokens with timingSafeEqual. The login limiter
// keeps at most MAX_TRACKED addresses.

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export const MAX_SESSIONS = 32;
export const DEFAULT_IDLE_S = 1800;
export const DEFAULT_MAX_S = 12 * 3600;

export interface Session {
  /** A short name for the log: never the token, nor enough to find it. */
  readonly id: string;
  readonly csrf: string;
  readonly address: string;
  readonly created: number;
  lastSeen: number;
  /** Called once when it ends (logout, expiry, eviction). */
  readonly onEnd: (() => void)[];
}

const hash = (token: string) => createHash('sha256').update(token).digest('hex');

export class SessionStore {
  readonly idleMs: number;
  readonly maxMs: number;
  readonly #now: () => number;
  /** By the token's hash. */
  readonly #sessions = new Map<string, Session>();

  constructor(opts: { idleS?: number; maxS?: number; now?: () => number } = {}) {
    this.idleMs = (opts.idleS ?? DEFAULT_IDLE_S) * 1000;
    this.maxMs = (opts.maxS ?? DEFAULT_MAX_S) * 1000;
    this.#now = opts.now ?? Date.now;
  }

  get size(): number {
    return this.#sessions.size;
  }

  /** A new session for `address`: its token (for the cookie) and the session. */
  create(address: string): { token: string; session: Session } {
    this.sweep();
    while (this.#sessions.size >= MAX_SESSIONS) {
      let oldest: [string, Session] | undefined;
      for (const e of this.#sessions)
        if (oldest === undefined || e[1].lastSeen < oldest[1].lastSeen) oldest = e;
      this.#end(oldest![0]);
    }
    const token = randomBytes(32).toString('base64url');
    const now = this.#now();
    const session: Session = {
      id: hash(token).slice(0, 8),
      csrf: randomBytes(32).toString('base64url'),
      address,
      created: now,
      lastSeen: now,
      onEnd: [],
    };
    this.#sessions.set(hash(token), session);
    return { token, session };
  }

  /** The live session of `token`, marked as used now; undefined if none (or it expired). */
  find(token: string | undefined): Session | undefined {
    if (token === undefined || token.length === 0 || token.length > 100) return undefined;
    const key = hash(token);
    const s = this.#sessions.get(key);
    if (s === undefined) return undefined;
    const now = this.#now();
    if (this.#expired(s, now)) {
      this.#end(key);
      return undefined;
    }
    s.lastSeen = now;
    return s;
  }

  /** When `s` expires if nothing more happens (ms since the epoch). */
  expires(s: Session): number {
    return Math.min(s.lastSeen + this.idleMs, s.created + this.maxMs);
  }

  end(token: string): void {
    this.#end(hash(token));
  }

  /** Ends every expired session (a timer calls it, so that their streams close too). */
  sweep(): void {
    const now = this.#now();
    for (const [key, s] of this.#sessions) if (this.#expired(s, now)) this.#end(key);
  }

  endAll(): void {
    for (const key of [...this.#sessions.keys()]) this.#end(key);
  }

  #expired(s: Session, now: number): boolean {
    return now >= this.expires(s);
  }

  #end(key: string): void {
    const s = this.#sessions.get(key);
    if (s === undefined) return;
    this.#sessions.delete(key);
    for (const f of s.onEnd.splice(0)) f();
  }
}

/** True when `given` is the session's CSRF token. */
export function csrfMatches(session: Session, given: string | undefined): boolean {
  if (given === undefined) return false;
  const a = Buffer.from(session.csrf);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}

export const LOGIN_FAILURES_PER_ADDRESS = 5;
export const LOGIN_WINDOW_MS = 15 * 60_000;
const MAX_TRACKED = 1024;

/**
 * Failed logins by client address: after LOGIN_FAILURES_PER_ADDRESS within
 * LOGIN_WINDOW_MS, that address is refused until the window has passed. (The daemon
 * limits failed checks of all clients together as well: 20 a minute.)
 */
export class LoginLimiter {
  readonly #now: () => number;
  readonly #perAddress: number;
  readonly #failures = new Map<string, number[]>();

  constructor(opts: { perAddress?: number; now?: () => number } = {}) {
    this.#now = opts.now ?? Date.now;
    this.#perAddress = opts.perAddress ?? LOGIN_FAILURES_PER_ADDRESS;
  }

  /** Undefined when `address` may try; otherwise the seconds it must wait. */
  refusal(address: string): number | undefined {
    const recent = this.#recent(address);
    if (recent.length < this.#perAddress) return undefined;
    return Math.ceil((recent[0]! + LOGIN_WINDOW_MS - this.#now()) / 1000);
  }

  failed(address: string): void {
    const recent = this.#recent(address);
    recent.push(this.#now());
    this.#failures.delete(address);
    this.#failures.set(address, recent);
    while (this.#failures.size > MAX_TRACKED) {
      const first = this.#failures.keys().next().value as string;
      this.#failures.delete(first);
    }
  }

  succeeded(address: string): void {
    this.#failures.delete(address);
  }

  #recent(address: string): number[] {
    const now = this.#now();
    return (this.#failures.get(address) ?? []).filter((t) => now - t < LOGIN_WINDOW_MS);
  }
}
