// A live copy of the kernel's links, addresses and routes (and, when asked,
// neighbours): subscribes to the rtnetlink groups, dumps everything, then applies
// events; reports each batch of changes to its listeners (synchronously, in kernel
// order). When asked for neighbours it also hands on the router advertisement
// options the kernel passes to user space (RTM_NEWNDUSEROPT), which have no state
// to dump.
//
// Invariants: when the kernel drops events (ENOBUFS) the whole state is dumped
// again and reconciled, so that what vanished meanwhile is reported removed (RA
// options lost then come back with the next advertisement); when the socket fails
// it is reopened (with backoff) and dumped again; routes are dumped again after
// events that make IPv4 drop routes silently, neighbours after a link goes down
// or loses its carrier. `ready` settles once, after the first complete dump.

import { toDisposable, type Disposable } from '../base/disposable.ts';
import type { Logger } from '../dataspace/index.ts';
import {
  RTM,
  RTNLGRP,
  dumpRequest,
  parseNdUserOpt,
  type DumpKind,
  type NdUserOptMessage,
  type NetlinkMessage,
} from './netlink-codec.ts';
import { KernelModel, type Change } from './netlink-model.ts';
import type { Transport } from './netlink-proxy.ts';
import { NetlinkClosedError, RtnlSocket, type RtnlSocketHandler } from './netlink-socket.ts';

export interface KernelWatcherOptions {
  /** SO_RCVBUF of the socket (tests make it tiny to force ENOBUFS). */
  readonly recvBufferSize?: number | undefined;
  /** Milliseconds to wait for the kernel (default 5000). */
  readonly timeoutMs?: number | undefined;
  readonly logger?: Logger | undefined;
  /** First delay before reopening a failed socket (doubles up to 5 s; default 100 ms). */
  readonly reopenDelayMs?: number | undefined;
  /** Where the native socket lives (default 'helper': see netlink-proxy.ts). */
  readonly transport?: Transport | undefined;
  /** Follow neighbours too, and hand on router advertisement options (default false). */
  readonly neighbours?: boolean | undefined;
}

export type ChangeListener = (changes: readonly Change[]) => void;
export type NdOptionListener = (options: readonly NdUserOptMessage[]) => void;

const GROUPS = [
  RTNLGRP.LINK,
  RTNLGRP.IPV4_IFADDR,
  RTNLGRP.IPV4_ROUTE,
  RTNLGRP.IPV6_IFADDR,
  RTNLGRP.IPV6_ROUTE,
];
const NEIGHBOUR_GROUPS = [RTNLGRP.NEIGH, RTNLGRP.ND_USEROPT];
/** In dependency order: links, then addresses, then routes, then neighbours. */
const KINDS: readonly DumpKind[] = ['links', 'addresses', 'routes', 'neighbours'];

export class KernelWatcher {
  readonly model = new KernelModel();
  readonly ready: Promise<void>;
  readonly #opts: KernelWatcherOptions;
  readonly #listeners = new Set<ChangeListener>();
  readonly #ndListeners = new Set<NdOptionListener>();
  readonly #syncedListeners = new Set<() => void>();
  /** What a complete dump covers. */
  readonly #all: readonly DumpKind[];
  #socket: RtnlSocket | undefined;
  #pendingChanges: Change[] = [];
  #pendingNdOptions: NdUserOptMessage[] = [];
  #need = new Set<DumpKind>();
  #syncing = false;
  #closed = false;
  #resyncs = 0;
  #reopenDelay: number;
  #reopenTimer: NodeJS.Timeout | undefined;
  #resolveReady!: () => void;
  #rejectReady!: (e: Error) => void;
  #isReady = false;
  /** A complete dump is due or running. */
  #full = false;

  /** Opens the socket at once (throws NetlinkUnavailableError) and starts the first dump. */
  constructor(opts: KernelWatcherOptions = {}) {
    this.#opts = opts;
    this.#all = opts.neighbours === true ? KINDS : KINDS.filter((k) => k !== 'neighbours');
    this.#reopenDelay = opts.reopenDelayMs ?? 100;
    this.ready = new Promise((resolve, reject) => {
      this.#resolveReady = resolve;
      this.#rejectReady = reject;
    });
    this.ready.catch(() => {});
    this.#socket = this.#open();
    this.#requestSync(this.#all);
  }

  /** How many times the state was dumped again after the first time. */
  get resyncs(): number {
    return this.#resyncs;
  }

  /** A dump is running or due: the model may be missing what happened meanwhile. */
  get isSyncing(): boolean {
    return this.#syncing || this.#need.size > 0;
  }

  get isClosed(): boolean {
    return this.#closed;
  }

  onChanges(fn: ChangeListener): Disposable {
    this.#listeners.add(fn);
    return toDisposable(() => this.#listeners.delete(fn));
  }

  /** Router advertisement options, as the kernel hands them on (only with `neighbours`). */
  onNdOptions(fn: NdOptionListener): Disposable {
    this.#ndListeners.add(fn);
    return toDisposable(() => this.#ndListeners.delete(fn));
  }

  /** Called whenever a dump (complete, or of the routes only) leaves the model complete again. */
  onSynced(fn: () => void): Disposable {
    this.#syncedListeners.add(fn);
    return toDisposable(() => this.#syncedListeners.delete(fn));
  }

  /** Sends a request on the watcher's socket; the events it causes are applied before it resolves. */
  request(type: number, flags: number, payload: Uint8Array, what: string): Promise<void> {
    const s = this.#socket;
    if (s === undefined)
      return Promise.reject(
        new NetlinkClosedError(`${what}: the netlink socket is being reopened`),
      );
    return s.request(type, flags, payload, what);
  }

  /** As if the kernel had reported ENOBUFS: dump everything again (for tests and `limen` debugging). */
  resync(): void {
    this.#requestSync(this.#all);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#reopenTimer);
    this.#socket?.close();
    this.#socket = undefined;
    this.#listeners.clear();
    this.#ndListeners.clear();
    this.#syncedListeners.clear();
    if (!this.#isReady) this.#rejectReady(new NetlinkClosedError('the kernel watcher was closed'));
  }

  // ---- Internals ------------------------------------------------------------------------

  #open(): RtnlSocket {
    const handler: RtnlSocketHandler = {
      event: (m) => this.#event(m),
      flush: () => this.#flush(),
      error: (err) => this.#error(err),
    };
    return new RtnlSocket(
      {
        groups: this.#opts.neighbours === true ? [...GROUPS, ...NEIGHBOUR_GROUPS] : GROUPS,
        recvBufferSize: this.#opts.recvBufferSize,
        timeoutMs: this.#opts.timeoutMs,
        transport: this.#opts.transport,
      },
      handler,
    );
  }

  #event(m: NetlinkMessage): void {
    if (m.type === RTM.NEWNDUSEROPT) {
      if (this.#ndListeners.size === 0) return;
      try {
        this.#pendingNdOptions.push(parseNdUserOpt(m.payload));
      } catch (e) {
        this.#opts.logger?.warn('netlink: a malformed router advertisement option', {
          error: e instanceof Error ? e.message : String(e),
        });
      }
      return;
    }
    this.model.applyEvent(m, this.#pendingChanges);
  }

  #flush(): void {
    if (this.model.routesSuspect && !this.#need.has('routes')) this.#requestSync(['routes']);
    if (this.model.neighboursSuspect) {
      if (!this.#all.includes('neighbours')) this.model.neighboursSuspect = false;
      else if (!this.#need.has('neighbours')) this.#requestSync(['neighbours']);
    }
    this.#emit();
  }

  #emit(): void {
    const changes = this.#pendingChanges;
    const options = this.#pendingNdOptions;
    if (changes.length > 0) this.#pendingChanges = [];
    if (options.length > 0) this.#pendingNdOptions = [];
    if (changes.length > 0) this.#notify(this.#listeners, changes);
    if (options.length > 0) this.#notify(this.#ndListeners, options);
  }

  #notify<T>(listeners: Set<(batch: readonly T[]) => void>, batch: readonly T[]): void {
    for (const fn of [...listeners]) {
      try {
        fn(batch);
      } catch (e) {
        this.#opts.logger?.error('kernel watcher listener failed', { error: String(e) });
      }
    }
  }

  #error(err: Error & { code?: string }): void {
    if (this.#closed) return;
    if (err.code === 'ENOBUFS') {
      this.#opts.logger?.warn('netlink: the kernel dropped events (ENOBUFS); dumping again');
      this.#requestSync(this.#all);
      return;
    }
    this.#fail(err);
  }

  /** The socket is unusable: close it, and reopen after a delay. */
  #fail(err: Error): void {
    if (this.#closed || this.#reopenTimer !== undefined) return;
    this.#opts.logger?.warn('netlink socket failed; reopening', {
      error: err.message,
      delayMs: this.#reopenDelay,
    });
    this.#socket?.close();
    this.#socket = undefined;
    this.model.abortDump();
    this.#need = new Set(this.#all);
    this.#full = true;
    const delay = this.#reopenDelay;
    this.#reopenDelay = Math.min(this.#reopenDelay * 2, 5000);
    this.#reopenTimer = setTimeout(() => {
      this.#reopenTimer = undefined;
      if (this.#closed) return;
      try {
        this.#socket = this.#open();
      } catch (e) {
        this.#fail(e instanceof Error ? e : new Error(String(e)));
        return;
      }
      this.#requestSync(this.#all);
    }, delay);
  }

  #requestSync(kinds: readonly DumpKind[]): void {
    for (const k of kinds) this.#need.add(k);
    if (kinds.length === this.#all.length) this.#full = true;
    if (!this.#syncing && this.#socket !== undefined) void this.#syncLoop();
  }

  async #syncLoop(): Promise<void> {
    this.#syncing = true;
    try {
      while (this.#need.size > 0 && !this.#closed && this.#socket !== undefined) {
        const kind = this.#all.find((k) => this.#need.has(k))!;
        this.#need.delete(kind);
        const socket = this.#socket;
        const { type, payload } = dumpRequest(kind);
        this.model.beginDump(kind);
        let interrupted: boolean;
        try {
          interrupted = await socket.dump(
            type,
            payload,
            (m) => this.model.applyDumpPart(m, this.#pendingChanges),
            `dump ${kind}`,
          );
        } catch (e) {
          this.model.abortDump();
          if (socket === this.#socket) this.#fail(e instanceof Error ? e : new Error(String(e)));
          return;
        }
        if (interrupted) {
          this.model.abortDump();
          this.#need.add(kind);
          continue;
        }
        this.model.endDump(this.#pendingChanges);
        this.#emit();
        if (this.#need.size === 0 && this.#full) {
          // A complete dump (not a routes-only one after a silent flush) finished.
          this.#full = false;
          this.#reopenDelay = this.#opts.reopenDelayMs ?? 100;
          if (this.#isReady) this.#resyncs++;
          else {
            this.#isReady = true;
            this.#resolveReady();
          }
        }
        if (this.#need.size === 0 && this.#isReady) {
          for (const fn of [...this.#syncedListeners]) {
            try {
              fn();
            } catch (e) {
              this.#opts.logger?.error('kernel watcher listener failed', { error: String(e) });
            }
          }
        }
      }
    } finally {
      this.#syncing = false;
    }
  }
}
