// Where the dashboard listens: on the addresses of the interfaces its configuration
// names (by default those of `<firewall-zone lan …>`), followed through the daemon's
// watches, so that it is never reachable on the WAN's addresses and follows a LAN that
// is renumbered. An address that cannot be bound yet (an IPv6 address still in DAD) is
// tried again every second while it is there.
//
// Invariants: one listening server per address; a server is closed when its address
// or its interface goes out of the set; IPv6 link-local and host-scope addresses are
// never bound (a link-local one needs a zone, and nothing on the LAN needs it).

import { createServer as createHttp, type RequestListener, type Server } from 'node:http';
import { createServer as createHttps } from 'node:https';
import type { ControlClient } from '../control/client.ts';
import { decodeWatchEvent } from '../control/protocol.ts';
import { Dict, Record, Sym, parse, peel, sym } from '../preserves/index.ts';

export interface Tls {
  readonly cert: Buffer;
  readonly key: Buffer;
}

export interface ListenerOptions {
  readonly port: number;
  readonly tls: Tls | undefined;
  readonly handler: RequestListener;
  readonly log: (line: string) => void;
  /** Limits every server shares. */
  readonly maxConnections: number;
}

const RETRY_MS = 1000;

/** One HTTP(S) server on `host`, hardened against slow and greedy clients. */
export function makeServer(o: ListenerOptions): Server {
  const server =
    o.tls === undefined
      ? createHttp(o.handler)
      : createHttps({ cert: o.tls.cert, key: o.tls.key }, o.handler);
  server.headersTimeout = 10_000;
  server.requestTimeout = 60_000;
  server.keepAliveTimeout = 5_000;
  server.maxHeadersCount = 64;
  server.maxConnections = o.maxConnections;
  return server;
}

export class Listeners {
  readonly #o: ListenerOptions;
  /** address → its server (undefined while a bind is being retried). */
  readonly #servers = new Map<string, { server: Server | undefined; timer?: NodeJS.Timeout }>();
  #closed = false;

  constructor(o: ListenerOptions) {
    this.#o = o;
  }

  /** The addresses served now (bound). */
  bound(): string[] {
    return [...this.#servers].filter(([, s]) => s.server?.listening === true).map(([a]) => a);
  }

  /** Makes the set of addresses served exactly `addresses`. */
  set(addresses: Iterable<string>): void {
    if (this.#closed) return;
    const want = new Set(addresses);
    for (const a of [...this.#servers.keys()]) if (!want.has(a)) this.#drop(a);
    for (const a of want) if (!this.#servers.has(a)) this.#bind(a);
  }

  #bind(address: string): void {
    const entry: { server: Server | undefined; timer?: NodeJS.Timeout } = { server: undefined };
    this.#servers.set(address, entry);
    const attempt = () => {
      if (this.#servers.get(address) !== entry) return;
      const server = makeServer(this.#o);
      server.once('error', (e: NodeJS.ErrnoException) => {
        server.close();
        if (this.#servers.get(address) !== entry) return;
        if (entry.timer === undefined)
          this.#o.log(
            `cannot listen on ${shown(address, this.#o.port)} yet (${e.code ?? e.message}); trying every second`,
          );
        entry.timer = setTimeout(attempt, RETRY_MS);
      });
      server.listen({ host: address, port: this.#o.port }, () => {
        if (this.#servers.get(address) !== entry) {
          server.close();
          return;
        }
        entry.server = server;
        this.#o.log(
          `listening on ${this.#o.tls === undefined ? 'http' : 'https'}://${shown(address, this.#o.port)}/`,
        );
      });
    };
    attempt();
  }

  #drop(address: string): void {
    const e = this.#servers.get(address);
    this.#servers.delete(address);
    if (e === undefined) return;
    if (e.timer !== undefined) clearTimeout(e.timer);
    if (e.server !== undefined) {
      this.#o.log(`no longer listening on ${shown(address, this.#o.port)}`);
      e.server.close();
      e.server.closeAllConnections();
    }
  }

  close(): void {
    this.#closed = true;
    for (const a of [...this.#servers.keys()]) this.#drop(a);
  }
}

const shown = (address: string, port: number) =>
  address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;

/**
 * Follows the addresses of `interfaces` (or, when undefined, of the interfaces of
 * `<firewall-zone lan …>`) through `client`'s watches, and calls `onChange` with the
 * set to serve after each change. Resolves when a watch ends (the connection went).
 */
export async function followAddresses(
  client: ControlClient,
  interfaces: readonly string[] | undefined,
  onChange: (addresses: Set<string>) => void,
  signal: AbortSignal,
): Promise<void> {
  let names = new Set(interfaces ?? []);
  /** "IF ADDR" of every usable address, whatever the interface. */
  const addresses = new Map<string, string>();
  const update = () => {
    const out = new Set<string>();
    for (const [key, addr] of addresses)
      if (names.has(key.slice(0, key.indexOf(' ')))) out.add(addr);
    onChange(out);
  };
  const watches: Promise<void>[] = [];
  watches.push(
    client.watch('machine', parse('<address ?if ?family ?addr _ ?info>'), {
      signal,
      onEvent: (ev) => {
        const e = decodeWatchEvent(ev);
        if (e === undefined || e.type === 'synced' || e.type === 'message') return;
        const c = new Map(e.captures);
        const ifname = c.get('if');
        const addr = c.get('addr');
        const info = peel(c.get('info') ?? false);
        if (typeof ifname !== 'string' || typeof addr !== 'string') return;
        const scope = info instanceof Dict ? peel(info.get(sym('scope')) ?? false) : undefined;
        if (!(scope instanceof Sym && scope.name === 'global')) return;
        const key = `${ifname} ${addr}`;
        if (e.type === 'added') addresses.set(key, addr);
        else addresses.delete(key);
        update();
      },
    }),
  );
  if (interfaces === undefined) {
    const zones = new Map<string, string[]>();
    watches.push(
      client.watch('config', parse('<firewall-zone lan ?ifs>'), {
        signal,
        onEvent: (ev) => {
          const e = decodeWatchEvent(ev);
          if (e === undefined || e.type === 'synced' || e.type === 'message') return;
          const v = peel(e.value);
          const ifs = v instanceof Record ? peel(v.fields[1] ?? false) : undefined;
          const list = Array.isArray(ifs)
            ? ifs.filter((x): x is string => typeof x === 'string')
            : [];
          const key = JSON.stringify(list);
          if (e.type === 'added') zones.set(key, list);
          else zones.delete(key);
          names = new Set([...zones.values()].flat());
          update();
        },
      }),
    );
  }
  await Promise.race(watches);
}
