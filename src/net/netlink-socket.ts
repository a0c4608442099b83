// One rtnetlink socket, through the `netlink` package's native socket (by default
// in a helper process: see netlink-proxy.ts). It carries multicast events, dumps and requests on the
// same socket, so that the kernel's order is kept: an event caused by our own
// request arrives before its ACK, and events interleave with dump parts in the
// order they happened.
//
// Invariant: every message of a datagram is handed to the handler synchronously
// and in order, then `flush()` is called once; request and dump promises settle
// afterwards.

import { getSystemErrorName } from 'node:util';
import { LimenError } from '../base/errors.ts';
import {
  NLM_F,
  NLMSG,
  formatMessage,
  parseErrorMessage,
  parseMessages,
  type NetlinkMessage,
} from './netlink-codec.ts';
import { openRawSocket, type RawSocket, type Transport } from './netlink-proxy.ts';

/** The `netlink` package (its native addon) could not be loaded or the socket not opened. */
export class NetlinkUnavailableError extends LimenError {
  readonly code = 'LIMEN_NETLINK_UNAVAILABLE';
}

/** The kernel refused a request; `errno` is its positive errno, `errnoName` e.g. "EEXIST". */
export class NetlinkRequestError extends LimenError {
  readonly code = 'LIMEN_NETLINK_REQUEST';
  readonly errno: number;
  readonly errnoName: string;
  constructor(errno: number, what: string) {
    const name = errnoName(errno);
    super(`${what}: ${name} (${describeErrno(errno)})`);
    this.errno = errno;
    this.errnoName = name;
  }
}

/** No answer in time, or the socket closed with the request outstanding. */
export class NetlinkTimeoutError extends LimenError {
  readonly code = 'LIMEN_NETLINK_TIMEOUT';
}
export class NetlinkClosedError extends LimenError {
  readonly code = 'LIMEN_NETLINK_CLOSED';
}

export function errnoName(errno: number): string {
  try {
    return getSystemErrorName(-errno);
  } catch {
    return `errno ${errno}`;
  }
}

const descriptions: { readonly [name: string]: string } = {
  EEXIST: 'it already exists',
  ENODEV: 'no such device',
  ENOENT: 'not found',
  ESRCH: 'not found',
  EADDRNOTAVAIL: 'no such address',
  ENETUNREACH: 'the gateway is not reachable through any interface',
  ENETDOWN: 'the interface is down',
  EINVAL: 'invalid argument',
  EPERM: 'operation not permitted',
  EACCES: 'permission denied',
  EOPNOTSUPP: 'not supported',
  ENOBUFS: 'the kernel dropped messages',
};

export function describeErrno(errno: number): string {
  return descriptions[errnoName(errno)] ?? 'kernel error';
}

export interface RtnlSocketHandler {
  /** A message that is neither a dump part nor an answer to a request of ours. */
  event(msg: NetlinkMessage): void;
  /** Called after each datagram's messages were handled. */
  flush(): void;
  /** A receive error (ENOBUFS: the kernel dropped events) or a failure of the socket. */
  error(err: Error & { code?: string }): void;
}

export interface RtnlSocketOptions {
  readonly groups: readonly number[];
  /** SO_RCVBUF in bytes (the kernel doubles it and enforces a minimum). */
  readonly recvBufferSize?: number | undefined;
  /** Milliseconds to wait for an ACK or the end of a dump (default 5000). */
  readonly timeoutMs?: number | undefined;
  /** Default 'helper'. */
  readonly transport?: Transport | undefined;
}

interface Pending {
  readonly resolve: () => void;
  readonly reject: (e: Error) => void;
  readonly what: string;
  /** For a dump: called with each part. */
  readonly part: ((m: NetlinkMessage) => void) | undefined;
  interrupted: boolean;
  timer: NodeJS.Timeout | undefined;
}

const NETLINK_ROUTE = 0;

export class RtnlSocket {
  readonly #raw: RawSocket;
  readonly #handler: RtnlSocketHandler;
  readonly #timeoutMs: number;
  readonly #pending = new Map<number, Pending>();
  #seq = 1;
  #closed = false;
  #settle: (() => void)[] = [];

  /** Throws NetlinkUnavailableError if the socket cannot be opened here and now. */
  constructor(opts: RtnlSocketOptions, handler: RtnlSocketHandler) {
    this.#handler = handler;
    this.#timeoutMs = opts.timeoutMs ?? 5000;
    try {
      this.#raw = openRawSocket(opts.transport ?? 'helper', {
        protocol: NETLINK_ROUTE,
        groups: opts.groups,
        recvBufferSize: opts.recvBufferSize,
      });
    } catch (e) {
      throw new NetlinkUnavailableError(
        `cannot open an rtnetlink socket: ${e instanceof Error ? e.message : String(e)}`,
        { cause: e },
      );
    }
    this.#raw.onMessage((buf) => this.#receive(buf));
    this.#raw.onError((err) => this.#report(err));
  }

  get isClosed(): boolean {
    return this.#closed;
  }

  #report(e: unknown): void {
    if (this.#closed) return;
    try {
      this.#handler.error(e instanceof Error ? e : new Error(String(e)));
    } catch {
      // The handler's own failure has nowhere else to go.
    }
  }

  #receive(buf: Uint8Array): void {
    if (this.#closed) return;
    const msgs = parseMessages(buf);
    for (const m of msgs) this.#dispatch(m);
    this.#handler.flush();
    const settle = this.#settle;
    this.#settle = [];
    for (const fn of settle) fn();
  }

  #dispatch(m: NetlinkMessage): void {
    const p = m.pid === this.#raw.port() ? this.#pending.get(m.seq) : undefined;
    if (p !== undefined) {
      if (m.type === NLMSG.ERROR) {
        const errno = parseErrorMessage(m);
        this.#finish(m.seq, errno === 0 ? undefined : new NetlinkRequestError(errno, p.what));
        return;
      }
      if (m.type === NLMSG.DONE && p.part !== undefined) {
        if (m.flags & NLM_F.DUMP_INTR) p.interrupted = true;
        this.#finish(m.seq, undefined);
        return;
      }
      // A dump part carries NLM_F_MULTI; an event caused by our own request carries our
      // port and sequence number too, but never that flag.
      if (p.part !== undefined && m.flags & NLM_F.MULTI) {
        if (m.flags & NLM_F.DUMP_INTR) p.interrupted = true;
        p.part(m);
        return;
      }
    }
    if (m.type === NLMSG.NOOP || m.type === NLMSG.DONE || m.type === NLMSG.ERROR) return;
    this.#handler.event(m);
  }

  #finish(seq: number, err: Error | undefined): void {
    const p = this.#pending.get(seq);
    if (p === undefined) return;
    this.#pending.delete(seq);
    clearTimeout(p.timer);
    // Settle after the rest of the datagram was handled, so that the events that
    // came with it are applied before the caller continues.
    this.#settle.push(err === undefined ? p.resolve : () => p.reject(err));
  }

  #send(type: number, flags: number, payload: Uint8Array, p: Omit<Pending, 'timer'>): void {
    if (this.#closed) {
      p.reject(new NetlinkClosedError(`${p.what}: the netlink socket is closed`));
      return;
    }
    const seq = this.#seq;
    this.#seq = (this.#seq % 0x7fffffff) + 1;
    const entry: Pending = { ...p, timer: undefined };
    entry.timer = setTimeout(() => {
      if (!this.#pending.delete(seq)) return;
      p.reject(
        new NetlinkTimeoutError(`${p.what}: no answer from the kernel in ${this.#timeoutMs} ms`),
      );
    }, this.#timeoutMs);
    this.#pending.set(seq, entry);
    // A failed send is reported through the error handler (the socket is then unusable).
    this.#raw.send(formatMessage(type, flags, seq, payload));
  }

  /** Sends a request with NLM_F_ACK; resolves on the ACK, rejects with NetlinkRequestError. */
  request(type: number, flags: number, payload: Uint8Array, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#send(type, flags | NLM_F.REQUEST | NLM_F.ACK, payload, {
        resolve,
        reject,
        what,
        part: undefined,
        interrupted: false,
      });
    });
  }

  /**
   * Dumps; `part` sees every object in order with the events around it. Resolves with
   * true if the kernel flagged the dump as interrupted (inconsistent: dump again).
   */
  dump(
    type: number,
    payload: Uint8Array,
    part: (m: NetlinkMessage) => void,
    what: string,
  ): Promise<boolean> {
    return new Promise((resolve, reject) => {
      const p = {
        resolve: () => resolve(p.interrupted),
        reject,
        what,
        part,
        interrupted: false,
      };
      this.#send(type, NLM_F.REQUEST | NLM_F.DUMP, payload, p);
    });
  }

  /** Closes the socket; outstanding requests reject with NetlinkClosedError. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const [, p] of this.#pending) {
      clearTimeout(p.timer);
      p.reject(new NetlinkClosedError(`${p.what}: the netlink socket was closed`));
    }
    this.#pending.clear();
    try {
      this.#raw.close();
    } catch {
      // Already closed by the addon after a failure.
    }
  }
}
