// The interface monitor: publishes what the kernel holds into $machine, from a
// first dump and then live rtnetlink events — `<interface …>` (Synit's shape),
// `<link-detail …>`, `<address …>` and `<route …>` (see docs/vocabulary.md).
//
// Invariants: each kernel object has exactly the assertions derived from its
// current state (a change replaces them in one turn, so unchanged values never
// flap); after lost events (ENOBUFS) or a socket failure the watcher dumps again
// and whatever vanished is retracted. Routes of the local table and routes that
// are not unicast (local, broadcast, multicast, blackhole…) are not published.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { type Driver, driverLog, type Facet, type Handle, type Ref } from '../dataspace/index.ts';
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
import type { AddressInfo, Change, LinkInfo, RouteInfo } from './netlink-model.ts';
import type { Transport } from './netlink-proxy.ts';
import { KernelWatcher } from './netlink-watcher.ts';

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
    const republishAll = (): void => {
      for (const l of w.model.links.values()) publishLink(l);
      for (const a of w.model.addresses.values()) publishAddress(a);
      for (const r of w.model.routes.values()) publishRoute(r);
    };

    const apply = (changes: readonly Change[]): void => {
      let renamed = false;
      for (const c of changes) {
        switch (c.kind) {
          case 'link':
            if (c.after === undefined) {
              set(`link:${c.before!.index}`, []);
              wireless.delete(c.before!.index);
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
        }
      }
      // A name appeared, went or changed: whatever names that link must follow.
      if (renamed) republishAll();
    };
    const sub = w.onChanges((changes) => f.turn(() => apply(changes)));
    f.onStop(() => sub.dispose());
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
