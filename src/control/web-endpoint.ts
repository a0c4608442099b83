// The web endpoint's policy (docs/control-protocol.md, "The web endpoint"): the
// commands a client of the second control socket may run, and the password check's
// rate limits. The socket itself (RUN/web/control.sock, root:GROUP 0660 in a root:GROUP
// 0750 directory) keeps every other user out at connect(2); this keeps the group's
// members to the listed commands.
//
// Invariants: the allowlist is closed: a command added to the table is refused here
// until it is listed; a refused check-password never reaches scrypt, and at most one
// scrypt runs at a time (each costs 32 MiB), with a bounded queue.

import type { Logger } from '../dataspace/index.ts';
import type { CommandName } from './commands/index.ts';
import { ControlRequestError } from './errors.ts';
import { ErrorReason } from './protocol.ts';
import {
  WebPasswordError,
  readStoredPassword,
  verifyPassword,
  writeStoredPassword,
  randomPassword,
} from './web-password.ts';

/**
 * What the web endpoint runs: queries and watches, service start/stop/restart,
 * ifup/ifdown, the configuration's try/confirm/rollback (and diff, which applies
 * nothing, and config-files, which reads), the password check and its change (which
 * needs the old password). Never send, settings writes, maintenance, nor the
 * password's setting: those stay on the root-only socket.
 */
export const WEB_COMMANDS: ReadonlySet<CommandName> = new Set<CommandName>([
  'status',
  'services',
  'service',
  'logs',
  'query',
  'watch',
  'settings-list',
  'generations',
  'diff',
  'start',
  'stop',
  'restart',
  'ifup',
  'ifdown',
  'try',
  'confirm',
  'rollback',
  'config-files',
  'check-password',
  'web-password-change',
]);

/** Which commands a control socket runs: the root socket's runs all of them. */
export interface EndpointPolicy {
  /** How the log names this endpoint ("web"). */
  readonly name: string;
  allows(command: string): boolean;
}

export const WEB_POLICY: EndpointPolicy = {
  name: 'web',
  allows: (command) => (WEB_COMMANDS as ReadonlySet<string>).has(command),
};

/** Failed checks one connection may make; after them it is refused every check. */
export const DEFAULT_FAILURES_PER_CONNECTION = 5;
/** Failed checks of all connections within FAILURE_WINDOW_MS; past them every check is refused. */
export const DEFAULT_FAILURES_PER_WINDOW = 20;
export const FAILURE_WINDOW_MS = 60_000;
/** Checks waiting for the one running; more are refused. */
const MAX_WAITING_CHECKS = 16;

export interface WebPasswordOptions {
  /** STATE/web-password. */
  readonly file: string;
  readonly logger: Logger;
  readonly failuresPerConnection?: number;
  readonly failuresPerWindow?: number;
  readonly now?: () => number;
}

/** `check-password` and `web-password-set`: the store at `file`, with the rate limits. */
export class WebPasswords {
  readonly file: string;
  readonly #logger: Logger;
  readonly #perConnection: number;
  readonly #perWindow: number;
  readonly #now: () => number;
  /** Failed checks by connection (its facet, or any object that stands for it). */
  readonly #failures = new WeakMap<object, number>();
  /** Checks running or waiting, by connection. */
  readonly #pending = new WeakMap<object, number>();
  /** When each failure within the window happened, oldest first. */
  #recent: number[] = [];
  /** The check running, and those waiting behind it. */
  #tail: Promise<unknown> = Promise.resolve();
  #waiting = 0;

  constructor(options: WebPasswordOptions) {
    this.file = options.file;
    this.#logger = options.logger;
    this.#perConnection = options.failuresPerConnection ?? DEFAULT_FAILURES_PER_CONNECTION;
    this.#perWindow = options.failuresPerWindow ?? DEFAULT_FAILURES_PER_WINDOW;
    this.#now = options.now ?? (() => Date.now());
  }

  /**
   * True when `password` is the stored one. Throws ControlRequestError `rate-limited`
   * when `client` or everybody failed too often, `unsupported` when none is set, and
   * `failed` when the stored file is unusable (logged with what is wrong).
   */
  async check(password: string, client: object, endpoint: string): Promise<boolean> {
    const now = this.#now();
    this.#recent = this.#recent.filter((t) => now - t < FAILURE_WINDOW_MS);
    // Checks still running count as failures to come: many sent at once pass no limit.
    const mine = this.#failures.get(client) ?? 0;
    const minePending = this.#pending.get(client) ?? 0;
    if (mine + minePending >= this.#perConnection) {
      this.#refuse(
        endpoint,
        `this connection made ${mine} failed password checks (${minePending} more running), ` +
          `its limit is ${this.#perConnection}; no more are checked on it`,
      );
    }
    if (this.#recent.length + this.#waiting >= this.#perWindow) {
      this.#refuse(
        endpoint,
        `${this.#recent.length} password checks failed within the last ` +
          `${FAILURE_WINDOW_MS / 1000} s (${this.#waiting} more running), the limit is ` +
          `${this.#perWindow}; try again later`,
      );
    }
    if (this.#waiting >= MAX_WAITING_CHECKS) {
      this.#refuse(endpoint, `${this.#waiting} password checks are waiting; try again later`);
    }
    this.#waiting++;
    this.#pending.set(client, minePending + 1);
    const run = this.#tail.then(() => this.#verify(password));
    this.#tail = run.catch(() => undefined);
    let ok: boolean;
    try {
      ok = await run;
    } finally {
      this.#waiting--;
      this.#pending.set(client, (this.#pending.get(client) ?? 1) - 1);
    }
    if (!ok) {
      const failures = (this.#failures.get(client) ?? 0) + 1;
      this.#failures.set(client, failures);
      this.#recent.push(this.#now());
      this.#logger.warn(`control (${endpoint}): a password check failed`, {
        endpoint,
        connectionFailures: failures,
        recentFailures: this.#recent.length,
      });
    }
    return ok;
  }

  async #verify(password: string): Promise<boolean> {
    let stored;
    try {
      stored = readStoredPassword(this.file);
    } catch (e) {
      if (!(e instanceof WebPasswordError)) throw e;
      this.#logger.error(`the web password file is unusable: ${e.message}`, { file: this.file });
      throw new ControlRequestError(
        ErrorReason.Failed,
        'the stored web password is unusable (the daemon log says why); set it again with ' +
          'limen web-password set',
      );
    }
    if (stored === undefined) {
      throw new ControlRequestError(
        ErrorReason.Unsupported,
        'no web password is set: set one with limen web-password set',
      );
    }
    return verifyPassword(password, stored);
  }

  #refuse(endpoint: string, message: string): never {
    this.#logger.warn(`control (${endpoint}): a password check refused: ${message}`, { endpoint });
    throw new ControlRequestError(ErrorReason.RateLimited, message);
  }

  /** Stores `password`, or a random one (returned) when it is undefined. */
  async set(password: string | undefined): Promise<{ file: string; password?: string }> {
    const chosen = password ?? randomPassword();
    try {
      await writeStoredPassword(this.file, chosen);
    } catch (e) {
      if (e instanceof WebPasswordError)
        throw new ControlRequestError(ErrorReason.BadRequest, e.message);
      throw e;
    }
    this.#logger.info?.('the web password was set', { file: this.file });
    return password === undefined ? { file: this.file, password: chosen } : { file: this.file };
  }
}
