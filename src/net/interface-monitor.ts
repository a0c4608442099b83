// The interface monitor: publishes what the kernel holds into $machine, from a
// first dump and then live rtnetlink events — `<interface …>` (Synit's shape),
// `<link-detail …>`, `<address …>`, `<route …>` and `<neighbour …>` — and the DNS
// servers and search domains that router advertisements carry (`<ra-dns …>`,
// `<ra-search …>`, kept with their lifetimes; see docs/vocabulary.md).
//
// Invariants: each kernel object has exactly the assertions derived from its
// current state (a change replaces them in one turn, so unchanged values never
// flap); after lost events (ENOBUFS) or a socket failure the watcher dumps again
// and whatever vanished is retracted. Routes of the local table and routes that
// are not unicast (local, broadcast, multicast, blackhole…) are not published. At
// most NEIGHBOUR_LIMIT neighbours per interface are published (first come, first
// served; `<neighbours-capped IF LIMIT>` while some are left out), and at most
// RA_DNS_LIMIT servers and domains per interface, so a hostile LAN or router
// cannot flood the dataspace.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  type Driver,
  type DriverLog,
  driverLog,
  type Facet,
  type Handle,
  type Ref,
} from '../dataspace/index.ts';
import { dict, is, record, sym, type Value } from '../preserves/index.ts';
import {
  AF,
  ARPHRD_LOOPBACK,
  IFF,
  IF_OPER,
  INFINITY_LIFE_TIME,
  RTN,
  RT_SCOPE,
  RT_TABLE,
} from './netlink-codec.ts';
import type { AddressInfo, Change, LinkInfo, NeighbourInfo, RouteInfo } from './netlink-model.ts';
import type { Transport } from './netlink-proxy.ts';
import { KernelWatcher } from './netlink-watcher.ts';
import { RaDnsTable, type RaDnsChange, type RaDnsEntry } from './ra-dns.ts';

/** Neighbours published per interface, both families together (the kernel's default gc_thresh3 is 1024 per family). */
export const NEIGHBOUR_LIMIT = 1024;
/** ICMPv6 router advertisement: the only message whose options limen reads. */
const ND_ROUTER_ADVERT = 134;

export interface InterfaceMonitorOptions {
  readonly machine: Ref;
  /** Where `NAME/wireless` tells a wireless interface (default /sys/class/net). */
  readonly sysfsNet?: string;
  /** SO_RCVBUF of the netlink socket (tests make it tiny to force ENOBUFS). */
  readonly recvBufferSize?: number;
  /** Where the native netlink socket lives (default 'helper': see netlink-proxy.ts). */
  readonly transport?: Transport;
}

export interface InterfaceMonitor extends Driver {
  /** Resolves after the first dump is published; rejects if netlink is unavailable. */
  readonly ready: Promise<void>;
  /** How many times the state was dumped again (after ENOBUFS or a socket failure). */
  readonly resyncs: number;
  /** Dumps everything again and reconciles, as after ENOBUFS. */
  resync(): void;
}

// ---- Derivation (pure) -----------------------------------------------------------------------

export type InterfaceType = 'loopback' | 'normal' | 'wireless';

const operNames: { readonly [k: number]: string } = {
  [IF_OPER.UNKNOWN]: 'unknown',
  // "not present" is not in Synit's vocabulary: a missing component means down.
  [IF_OPER.NOTPRESENT]: 'down',
  [IF_OPER.DOWN]: 'down',
  [IF_OPER.LOWERLAYERDOWN]: 'lower-layer-down',
  [IF_OPER.TESTING]: 'testing',
  [IF_OPER.DORMANT]: 'dormant',
  [IF_OPER.UP]: 'up',
};

export function interfaceType(l: LinkInfo, wireless: boolean): InterfaceType {
  if (l.arphrd === ARPHRD_LOOPBACK || l.flags & IFF.LOOPBACK) return 'loopback';
  return wireless ? 'wireless' : 'normal';
}

/** `<interface NAME INDEX TYPE ADMIN OPER CARRIER MAC>` */
export function interfaceValue(l: LinkInfo, type: InterfaceType): Value {
  return record(
    'interface',
    l.name,
    l.index,
    sym(type),
    sym(l.flags & IFF.UP ? 'up' : 'down'),
    sym(operNames[l.operstate] ?? 'unknown'),
    sym(l.carrier ? 'carrier' : 'no-carrier'),
    l.mac,
  );
}

/** `<link-detail NAME {kind: SYMBOL-or-#f mtu: N master: NAME-or-#f}>` */
export function linkDetailValue(l: LinkInfo, masterName: string | undefined): Value {
  return record(
    'link-detail',
    l.name,
    dict({
      kind: l.kind === undefined ? false : sym(l.kind),
      mtu: l.mtu,
      master: masterName ?? false,
    }),
  );
}

export function familySymbol(family: number): Value {
  return sym(family === AF.INET6 ? 'ipv6' : 'ipv4');
}

function scopeValue(scope: number): Value {
  switch (scope) {
    case RT_SCOPE.UNIVERSE:
      return sym('global');
    case RT_SCOPE.SITE:
      return sym('site');
    case RT_SCOPE.LINK:
      return sym('link');
    case RT_SCOPE.HOST:
      return sym('host');
    case RT_SCOPE.NOWHERE:
      return sym('nowhere');
    default:
      return scope;
  }
}

const lifetime = (s: number): Value => (s === INFINITY_LIFE_TIME ? sym('forever') : s);

/** `<address NAME FAMILY "ADDR" PREFIXLEN {scope valid preferred}>` */
export function addressValue(a: AddressInfo, ifname: string): Value {
  return record(
    'address',
    ifname,
    familySymbol(a.family),
    a.address,
    a.prefixlen,
    dict({
      scope: scopeValue(a.scope),
      valid: lifetime(a.valid),
      preferred: lifetime(a.preferred),
    }),
  );
}

export function tableValue(table: number): Value {
  if (table === RT_TABLE.MAIN) return sym('main');
  if (table === RT_TABLE.LOCAL) return sym('local');
  return table;
}

/** True for the routes that are published: unicast, outside the local table. */
export function isPublishedRoute(r: RouteInfo): boolean {
  return r.type === RTN.UNICAST && r.table !== RT_TABLE.LOCAL;
}

/** `<route FAMILY DEST PRIORITY TABLE IFNAME GATEWAY>`, one per next hop. */
export function routeValues(r: RouteInfo, nameOf: (index: number) => string | undefined): Value[] {
  if (!isPublishedRoute(r)) return [];
  const dest = r.dstLen === 0 ? 'default' : `${r.dst}/${r.dstLen}`;
  return r.nexthops.map((nh) =>
    record(
      'route',
      familySymbol(r.family),
      dest,
      r.priority,
      tableValue(r.table),
      (nh.oif !== 0 ? nameOf(nh.oif) : undefined) ?? false,
      nh.gateway ?? false,
    ),
  );
}

/** `<neighbour IF FAMILY "ADDR" "MAC" STATE>`: STATE `permanent` (set by hand) or `dynamic`. */
export function neighbourValue(n: NeighbourInfo, ifname: string): Value {
  return record(
    'neighbour',
    ifname,
    familySymbol(n.family),
    n.address,
    n.mac,
    sym(n.permanent ? 'permanent' : 'dynamic'),
  );
}

/**
 * `<ra-dns IF "ADDR" {router: "fe80::1" expires: SECONDS}>` or `<ra-search IF "DOMAIN" {…}>`:
 * EXPIRES seconds since the epoch, or `never`.
 */
export function raDnsValue(e: RaDnsEntry, ifname: string): Value {
  return record(
    e.kind === 'dns' ? 'ra-dns' : 'ra-search',
    ifname,
    e.value,
    dict({
      router: e.router === '' ? false : e.router,
      expires: e.expires === undefined ? sym('never') : Math.floor(e.expires / 1000),
    }),
  );
}

/**
 * At most `limit` keys admitted, first come, first served; the others wait in
 * arrival order, and the first of them is admitted when an admitted one goes.
 */
export class Admission<K> {
  readonly #limit: number;
  readonly admitted = new Set<K>();
  readonly waiting = new Set<K>();

  constructor(limit: number) {
    this.#limit = limit;
  }

  /** Adds a key (no-op if known); true if it is admitted. */
  add(key: K): boolean {
    if (this.admitted.has(key)) return true;
    if (this.waiting.has(key)) return false;
    if (this.admitted.size < this.#limit) {
      this.admitted.add(key);
      return true;
    }
    this.waiting.add(key);
    return false;
  }

  /** Removes a key; returns the waiting key admitted in its place, if any. */
  remove(key: K): K | undefined {
    if (this.waiting.delete(key)) return undefined;
    if (!this.admitted.delete(key)) return undefined;
    for (const next of this.waiting) {
      this.waiting.delete(next);
      this.admitted.add(next);
      return next;
    }
    return undefined;
  }

  get size(): number {
    return this.admitted.size + this.waiting.size;
  }
}

/**
 * Each problem at most once a minute per interface (a hostile router repeats itself
 * every few seconds), and at most 32 different ones a minute per interface.
 */
function problemLog(log: DriverLog): (ifname: string, problems: readonly string[]) => void {
  const logged = new Map<string, Map<string, number>>();
  return (ifname, problems) => {
    const now = Date.now();
    let m = logged.get(ifname);
    if (m === undefined) logged.set(ifname, (m = new Map<string, number>()));
    for (const p of problems) {
      const at = m.get(p);
      if (at !== undefined && now - at < 60_000) continue;
      if (at === undefined && m.size >= 32) {
        for (const [k, t] of m) if (now - t >= 60_000) m.delete(k);
        if (m.size >= 32) continue;
      }
      m.set(p, now);
      log.warn(`router advertisement on ${ifname}: ${p}`, { interface: ifname });
    }
  };
}

// ---- The driver ------------------------------------------------------------------------------

interface Published {
  values: Value[];
  handles: Handle[];
}

/** Starts the monitor in a child facet of `parent`. */
export function startInterfaceMonitor(
  parent: Facet,
  opts: InterfaceMonitorOptions,
): InterfaceMonitor {
  const sysfsNet = opts.sysfsNet ?? '/sys/class/net';
  const published = new Map<string, Published>();
  const wireless = new Map<number, boolean>();
  let watcher: KernelWatcher | undefined;
  let ready: Promise<void> = Promise.resolve();

  const facet = parent.spawn((f) => {
    try {
      watcher = new KernelWatcher({
        recvBufferSize: opts.recvBufferSize,
        logger: f.engine.logger,
        transport: opts.transport,
        neighbours: true,
      });
    } catch (e) {
      driverLog(f, 'interface monitor').error('netlink is not available', {
        error: e instanceof Error ? e.message : String(e),
      });
      ready = Promise.reject(e instanceof Error ? e : new Error(String(e)));
      ready.catch(() => {});
      return;
    }
    const w = watcher;
    const log = driverLog(f, 'interface monitor');
    ready = w.ready;
    f.onStop(() => w.close());

    const set = (key: string, values: Value[]): void => {
      const old = published.get(key);
      if (
        old !== undefined &&
        old.values.length === values.length &&
        old.values.every((v, i) => is(v, values[i]!))
      )
        return;
      const handles = values.map((v) => f.assert(opts.machine, v));
      if (old !== undefined) for (const h of old.handles) f.retract(h);
      if (values.length === 0) published.delete(key);
      else published.set(key, { values, handles });
    };
    const nameOf = (index: number) => w.model.links.get(index)?.name;
    const isWireless = (l: LinkInfo): boolean => {
      let v = wireless.get(l.index);
      if (v === undefined) {
        v =
          existsSync(join(sysfsNet, l.name, 'wireless')) ||
          existsSync(join(sysfsNet, l.name, 'phy80211'));
        wireless.set(l.index, v);
      }
      return v;
    };
    const publishLink = (l: LinkInfo): void => {
      set(`link:${l.index}`, [
        interfaceValue(l, interfaceType(l, isWireless(l))),
        linkDetailValue(l, l.master !== 0 ? nameOf(l.master) : undefined),
      ]);
    };
    const publishAddress = (a: AddressInfo): void => {
      const name = nameOf(a.index);
      set(`addr:${a.key}`, name === undefined ? [] : [addressValue(a, name)]);
    };
    const publishRoute = (r: RouteInfo): void => set(`route:${r.key}`, routeValues(r, nameOf));

    const admissions = new Map<number, Admission<string>>();
    const publishCapped = (index: number): void => {
      const name = nameOf(index);
      const capped = (admissions.get(index)?.waiting.size ?? 0) > 0;
      set(
        `neighcap:${index}`,
        capped && name !== undefined ? [record('neighbours-capped', name, NEIGHBOUR_LIMIT)] : [],
      );
    };
    const publishNeighbour = (n: NeighbourInfo): void => {
      const name = nameOf(n.index);
      set(`neigh:${n.key}`, name === undefined ? [] : [neighbourValue(n, name)]);
    };
    const neighbourChanged = (
      before: NeighbourInfo | undefined,
      after: NeighbourInfo | undefined,
    ): void => {
      const index = (after ?? before)!.index;
      let a = admissions.get(index);
      if (a === undefined) admissions.set(index, (a = new Admission(NEIGHBOUR_LIMIT)));
      const wasCapped = a.waiting.size > 0;
      if (after !== undefined) {
        if (a.add(after.key)) publishNeighbour(after);
      } else {
        set(`neigh:${before!.key}`, []);
        const next = a.remove(before!.key);
        const n = next === undefined ? undefined : w.model.neighbours.get(next);
        if (n !== undefined) publishNeighbour(n);
        if (a.size === 0) admissions.delete(index);
      }
      if (wasCapped !== a.waiting.size > 0) {
        publishCapped(index);
        if (!wasCapped)
          log.warn(
            `more than ${NEIGHBOUR_LIMIT} neighbours on ${nameOf(index) ?? `if${index}`}: the rest are not published`,
          );
      }
    };

    const ra = new RaDnsTable();
    const publishRa = (e: RaDnsEntry): void => {
      const name = nameOf(e.index);
      set(`ra:${e.key}`, name === undefined ? [] : [raDnsValue(e, name)]);
    };
    const applyRa = (changes: readonly RaDnsChange[]): void => {
      for (const c of changes) {
        if (c.after === undefined) set(`ra:${c.before!.key}`, []);
        else publishRa(c.after);
      }
    };
    let raTimer: NodeJS.Timeout | undefined;
    const scheduleRa = (): void => {
      clearTimeout(raTimer);
      raTimer = undefined;
      const next = ra.nextExpiry();
      if (next === undefined) return;
      // setTimeout takes at most 2^31-1 ms: a longer wait is taken a day at a time.
      const delay = Math.min(Math.max(0, next - Date.now()), 86_400_000);
      raTimer = setTimeout(
        () =>
          f.turn(() => {
            applyRa(ra.expire(Date.now()));
            scheduleRa();
          }),
        delay,
      );
    };
    f.onStop(() => clearTimeout(raTimer));
    const raProblem = problemLog(log);

    const republishAll = (): void => {
      for (const l of w.model.links.values()) publishLink(l);
      for (const a of w.model.addresses.values()) publishAddress(a);
      for (const r of w.model.routes.values()) publishRoute(r);
      for (const [index, a] of admissions) {
        for (const key of a.admitted) {
          const n = w.model.neighbours.get(key);
          if (n !== undefined) publishNeighbour(n);
        }
        publishCapped(index);
      }
      for (const e of ra.entries.values()) publishRa(e);
    };

    const apply = (changes: readonly Change[]): void => {
      let renamed = false;
      for (const c of changes) {
        switch (c.kind) {
          case 'link':
            if (c.after === undefined) {
              set(`link:${c.before!.index}`, []);
              wireless.delete(c.before!.index);
              applyRa(ra.dropInterface(c.before!.index));
              renamed = true;
            } else {
              if (c.before === undefined || c.before.name !== c.after.name) {
                wireless.delete(c.after.index);
                renamed = true;
              }
              publishLink(c.after);
            }
            break;
          case 'address':
            if (c.after === undefined) set(`addr:${c.before!.key}`, []);
            else publishAddress(c.after);
            break;
          case 'route':
            if (c.after === undefined) set(`route:${c.before!.key}`, []);
            else publishRoute(c.after);
            break;
          case 'neighbour':
            neighbourChanged(c.before, c.after);
            break;
        }
      }
      // A name appeared, went or changed: whatever names that link must follow.
      if (renamed) republishAll();
    };
    const sub = w.onChanges((changes) => f.turn(() => apply(changes)));
    f.onStop(() => sub.dispose());
    const raSub = w.onNdOptions((options) =>
      f.turn(() => {
        const now = Date.now();
        for (const o of options) {
          if (o.family !== AF.INET6 || o.icmpType !== ND_ROUTER_ADVERT) continue;
          const u = ra.apply(o.index, o.source ?? '', o.option, now);
          applyRa(u.changes);
          raProblem(nameOf(o.index) ?? `if${o.index}`, u.problems);
        }
        scheduleRa();
      }),
    );
    f.onStop(() => raSub.dispose());
  }, 'interface-monitor');

  return {
    facet,
    get ready() {
      return ready;
    },
    get resyncs() {
      return watcher?.resyncs ?? 0;
    },
    resync: () => watcher?.resync(),
    stop: () => facet.stop(),
  };
}
