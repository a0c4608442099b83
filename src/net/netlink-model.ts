// What the kernel holds, as far as rtnetlink tells: links, addresses, routes and
// neighbours, kept up to date from events and dumps, with every change reported
// as a before/after pair. Pure (no sockets): the watcher feeds it messages.
//
// Dumps and events share one socket, so they arrive in kernel order; a dump
// upserts what it lists, and at its end removes what it neither listed nor saw
// an event for meanwhile. IPv4 removes routes silently when a link goes down or
// away, or an address goes: such events set `routesSuspect` so that the caller
// dumps the routes again; a link going down or losing its carrier flushes its
// neighbours, which sets `neighboursSuspect` the same way.
//
// Neighbours are kept coarse: only entries with a hardware address that the
// kernel holds as usable (reachable, stale, delay, probe or permanent), and only
// whether they are permanent, so that the reachability flips every neighbour
// goes through are no change at all. (Router advertisement options,
// RTM_NEWNDUSEROPT, are events without kernel state: the watcher hands them on.)

import {
  AF,
  IFF,
  RTM,
  RTM_F_CLONED,
  NLM_F,
  NTF,
  NUD,
  parseAddress,
  parseLink,
  parseNeighbour,
  parseRoute,
  type AddressMessage,
  type DumpKind,
  type LinkMessage,
  type NetlinkMessage,
  type NextHop,
} from './netlink-codec.ts';

export interface LinkInfo {
  readonly index: number;
  readonly name: string;
  readonly arphrd: number;
  readonly flags: number;
  readonly mac: string;
  readonly mtu: number;
  readonly master: number;
  readonly operstate: number;
  readonly carrier: boolean;
  readonly kind: string | undefined;
}

export interface AddressInfo extends AddressMessage {
  readonly key: string;
}

export interface RouteInfo {
  readonly key: string;
  /** The kernel's identity of the route (family, table, destination, tos, priority). */
  readonly baseKey: string;
  readonly family: number;
  readonly dst: string;
  readonly dstLen: number;
  readonly tos: number;
  readonly table: number;
  readonly protocol: number;
  readonly scope: number;
  readonly type: number;
  readonly priority: number;
  readonly nexthops: readonly NextHop[];
}

export interface NeighbourInfo {
  readonly key: string;
  readonly index: number;
  readonly family: number;
  readonly address: string;
  /** The hardware address, colon-separated lower-case hex. */
  readonly mac: string;
  /** NUD_PERMANENT: set by hand, not learned from the network. */
  readonly permanent: boolean;
}

export type Change =
  | {
      readonly kind: 'link';
      readonly before: LinkInfo | undefined;
      readonly after: LinkInfo | undefined;
    }
  | {
      readonly kind: 'address';
      readonly before: AddressInfo | undefined;
      readonly after: AddressInfo | undefined;
    }
  | {
      readonly kind: 'route';
      readonly before: RouteInfo | undefined;
      readonly after: RouteInfo | undefined;
    }
  | {
      readonly kind: 'neighbour';
      readonly before: NeighbourInfo | undefined;
      readonly after: NeighbourInfo | undefined;
    };

export function addressKey(
  index: number,
  family: number,
  address: string,
  prefixlen: number,
): string {
  return `${index}|${family}|${address}/${prefixlen}`;
}

export function routeBaseKey(
  family: number,
  table: number,
  dst: string,
  dstLen: number,
  tos: number,
  priority: number,
): string {
  return `${family}|${table}|${dst}/${dstLen}|${tos}|${priority}`;
}

export function neighbourKey(index: number, family: number, address: string): string {
  return `${index}|${family}|${address}`;
}

/** States in which the kernel holds a usable hardware address for the neighbour. */
const USABLE = NUD.REACHABLE | NUD.STALE | NUD.DELAY | NUD.PROBE | NUD.PERMANENT;

/**
 * A neighbour message's key and what the model keeps of it: `info` is undefined
 * for an entry that is not shown (no or an all-zero hardware address, or a state
 * without a usable one: incomplete, failed, noarp, none), which removes what was
 * kept under its key. Undefined for a message about something else: another
 * family (a bridge's forwarding entries share the group) or a proxy entry.
 */
export function readNeighbour(
  payload: Uint8Array,
): { readonly key: string; readonly info: NeighbourInfo | undefined } | undefined {
  const n = parseNeighbour(payload);
  if ((n.family !== AF.INET && n.family !== AF.INET6) || n.address === undefined) return undefined;
  if (n.flags & NTF.PROXY) return undefined;
  const key = neighbourKey(n.index, n.family, n.address);
  if ((n.state & USABLE) === 0 || n.lladdr === '' || /^[0:]*$/.test(n.lladdr))
    return { key, info: undefined };
  const info: NeighbourInfo = {
    key,
    index: n.index,
    family: n.family,
    address: n.address,
    mac: n.lladdr,
    permanent: (n.state & NUD.PERMANENT) !== 0,
  };
  return { key, info };
}

function linkInfo(m: LinkMessage, old: LinkInfo | undefined): LinkInfo {
  // A NEWLINK may leave out attributes that did not change: keep what we knew.
  return {
    index: m.index,
    name: m.name ?? old?.name ?? `if${m.index}`,
    arphrd: m.arphrd,
    flags: m.flags,
    mac: m.mac !== '' ? m.mac : (old?.mac ?? ''),
    mtu: m.mtu ?? old?.mtu ?? 0,
    master: m.master,
    operstate: m.operstate ?? old?.operstate ?? 0,
    carrier: m.carrier ?? (m.flags & IFF.LOWER_UP) !== 0,
    kind: m.kind ?? old?.kind,
  };
}

function sameNexthops(a: readonly NextHop[], b: readonly NextHop[]): boolean {
  return (
    a.length === b.length && a.every((x, i) => x.oif === b[i]!.oif && x.gateway === b[i]!.gateway)
  );
}

function same<T extends object>(a: T | undefined, b: T | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  for (const k of Object.keys(a) as (keyof T)[]) {
    const x = a[k];
    const y = b[k];
    if (k === 'nexthops') {
      if (!sameNexthops(x as readonly NextHop[], y as readonly NextHop[])) return false;
    } else if (x !== y) return false;
  }
  return true;
}

/** Routes of one message: one entry for IPv4, one per next hop for IPv6 (the kernel's own split). */
function routeInfos(payload: Uint8Array): RouteInfo[] {
  const r = parseRoute(payload);
  if (r.flags & RTM_F_CLONED) return [];
  const baseKey = routeBaseKey(r.family, r.table, r.dst, r.dstLen, r.tos, r.priority);
  const base = {
    baseKey,
    family: r.family,
    dst: r.dst,
    dstLen: r.dstLen,
    tos: r.tos,
    table: r.table,
    protocol: r.protocol,
    scope: r.scope,
    type: r.type,
    priority: r.priority,
  };
  if (r.family !== AF.INET6) return [{ ...base, key: baseKey, nexthops: r.nexthops }];
  return r.nexthops.map((nh) => ({
    ...base,
    key: `${baseKey}|${nh.oif}|${nh.gateway ?? ''}`,
    nexthops: [nh],
  }));
}

interface DumpState {
  readonly kind: DumpKind;
  readonly seen: Set<string | number>;
  readonly touched: Set<string | number>;
}

export class KernelModel {
  readonly links = new Map<number, LinkInfo>();
  readonly addresses = new Map<string, AddressInfo>();
  readonly routes = new Map<string, RouteInfo>();
  readonly neighbours = new Map<string, NeighbourInfo>();
  /** Set when an event may have removed routes without telling (IPv4 does so). */
  routesSuspect = false;
  /** Set when a link went down or lost its carrier: the kernel flushed its neighbours. */
  neighboursSuspect = false;
  #dump: DumpState | undefined;

  linkByName(name: string): LinkInfo | undefined {
    for (const l of this.links.values()) if (l.name === name) return l;
    return undefined;
  }

  #touch(kind: DumpKind, key: string | number): void {
    const d = this.#dump;
    if (d !== undefined && d.kind === kind) d.touched.add(key);
  }

  /** Puts `after` under `key` (undefined: removes it) and reports a real change as `kind`. */
  #set<K, V extends object>(
    map: Map<K, V>,
    kind: Change['kind'],
    key: K,
    after: V | undefined,
    out: Change[],
  ): void {
    const before = map.get(key);
    if (after === undefined) {
      if (before === undefined) return;
      map.delete(key);
    } else {
      if (same(before, after)) return;
      map.set(key, after);
    }
    // The map and the kind go together (the four setters below), so the pair is one Change.
    out.push({ kind, before, after } as Change);
  }

  #setLink(index: number, after: LinkInfo | undefined, out: Change[]): void {
    this.#set(this.links, 'link', index, after, out);
  }

  #setAddress(key: string, after: AddressInfo | undefined, out: Change[]): void {
    this.#set(this.addresses, 'address', key, after, out);
  }

  #setRoute(key: string, after: RouteInfo | undefined, out: Change[]): void {
    this.#set(this.routes, 'route', key, after, out);
  }

  #setNeighbour(key: string, after: NeighbourInfo | undefined, out: Change[]): void {
    this.#set(this.neighbours, 'neighbour', key, after, out);
  }

  /** Applies an event (any message that is not part of a dump); appends the changes. */
  applyEvent(m: NetlinkMessage, out: Change[]): void {
    switch (m.type) {
      case RTM.NEWLINK:
      case RTM.DELLINK: {
        const l = parseLink(m.payload);
        // Bridges report their ports with family AF_BRIDGE on the same group; a DELLINK
        // of that family means "left the bridge", not "gone".
        if (l.family === AF.BRIDGE) return;
        this.#touch('links', l.index);
        if (m.type === RTM.NEWLINK) {
          const before = this.links.get(l.index);
          const after = linkInfo(l, before);
          if (before !== undefined && before.flags & IFF.UP && !(after.flags & IFF.UP))
            this.routesSuspect = true;
          if (
            before !== undefined &&
            ((before.flags & IFF.UP && !(after.flags & IFF.UP)) ||
              (before.carrier && !after.carrier))
          )
            this.neighboursSuspect = true;
          this.#setLink(l.index, after, out);
          return;
        }
        this.#setLink(l.index, undefined, out);
        // The kernel removes the link's addresses (with events) and routes (IPv4: without).
        for (const a of [...this.addresses.values()])
          if (a.index === l.index) this.#setAddress(a.key, undefined, out);
        for (const r of [...this.routes.values()])
          if (r.nexthops.some((nh) => nh.oif === l.index)) this.#setRoute(r.key, undefined, out);
        for (const n of [...this.neighbours.values()])
          if (n.index === l.index) this.#setNeighbour(n.key, undefined, out);
        this.routesSuspect = true;
        return;
      }
      case RTM.NEWADDR:
      case RTM.DELADDR: {
        const a = parseAddress(m.payload);
        if (a === undefined) return;
        const key = addressKey(a.index, a.family, a.address, a.prefixlen);
        this.#touch('addresses', key);
        if (m.type === RTM.NEWADDR) this.#setAddress(key, { ...a, key }, out);
        else {
          this.#setAddress(key, undefined, out);
          if (a.family === AF.INET) this.routesSuspect = true;
        }
        return;
      }
      case RTM.NEWROUTE:
      case RTM.DELROUTE: {
        const infos = routeInfos(m.payload);
        if (m.type === RTM.NEWROUTE && infos.length > 0 && m.flags & NLM_F.REPLACE) {
          // A replaced IPv6 route is announced once, without removing its old next hops.
          const baseKey = infos[0]!.baseKey;
          const keep = new Set(infos.map((r) => r.key));
          for (const r of [...this.routes.values()])
            if (r.baseKey === baseKey && !keep.has(r.key)) {
              this.#touch('routes', r.key);
              this.#setRoute(r.key, undefined, out);
            }
        }
        for (const r of infos) {
          this.#touch('routes', r.key);
          this.#setRoute(r.key, m.type === RTM.NEWROUTE ? r : undefined, out);
        }
        return;
      }
      case RTM.NEWNEIGH:
      case RTM.DELNEIGH: {
        const n = readNeighbour(m.payload);
        if (n === undefined) return;
        this.#touch('neighbours', n.key);
        this.#setNeighbour(n.key, m.type === RTM.NEWNEIGH ? n.info : undefined, out);
        return;
      }
      default:
        return;
    }
  }

  beginDump(kind: DumpKind): void {
    this.#dump = { kind, seen: new Set(), touched: new Set() };
    if (kind === 'routes') this.routesSuspect = false;
    if (kind === 'neighbours') this.neighboursSuspect = false;
  }

  /** Applies one object of the running dump. */
  applyDumpPart(m: NetlinkMessage, out: Change[]): void {
    const d = this.#dump;
    if (d === undefined) return;
    switch (m.type) {
      case RTM.NEWLINK: {
        const l = parseLink(m.payload);
        if (l.family === AF.BRIDGE) return;
        d.seen.add(l.index);
        this.#setLink(l.index, linkInfo(l, this.links.get(l.index)), out);
        return;
      }
      case RTM.NEWADDR: {
        const a = parseAddress(m.payload);
        if (a === undefined) return;
        const key = addressKey(a.index, a.family, a.address, a.prefixlen);
        d.seen.add(key);
        this.#setAddress(key, { ...a, key }, out);
        return;
      }
      case RTM.NEWROUTE:
        for (const r of routeInfos(m.payload)) {
          d.seen.add(r.key);
          this.#setRoute(r.key, r, out);
        }
        return;
      case RTM.NEWNEIGH: {
        // An entry that is not shown is simply not listed: the end of the dump removes it.
        const n = readNeighbour(m.payload);
        if (n?.info === undefined) return;
        d.seen.add(n.key);
        this.#setNeighbour(n.key, n.info, out);
        return;
      }
      default:
        return;
    }
  }

  /** Ends the running dump: what it did not list, and no event mentioned, is gone. */
  endDump(out: Change[]): void {
    const d = this.#dump;
    this.#dump = undefined;
    if (d === undefined) return;
    const keep = (k: string | number) => d.seen.has(k) || d.touched.has(k);
    switch (d.kind) {
      case 'links':
        for (const i of [...this.links.keys()]) if (!keep(i)) this.#setLink(i, undefined, out);
        return;
      case 'addresses':
        for (const k of [...this.addresses.keys()])
          if (!keep(k)) this.#setAddress(k, undefined, out);
        return;
      case 'routes':
        for (const k of [...this.routes.keys()]) if (!keep(k)) this.#setRoute(k, undefined, out);
        return;
      case 'neighbours':
        for (const k of [...this.neighbours.keys()])
          if (!keep(k)) this.#setNeighbour(k, undefined, out);
        return;
    }
  }

  /** Drops the running dump without removing anything (it was cut short). */
  abortDump(): void {
    this.#dump = undefined;
  }
}
