// The address/route reconciler: makes the kernel hold the addresses and routes
// desired in $config — `<ip-address IF "ADDR/LEN" {valid preferred renewed}>` and
// `<ip-route FAMILY DEST {via dev metric}>` — and reports each one as
// `<ip-address-state IF "ADDR/LEN" STATE REASON>` / `<ip-route-state FAMILY DEST
// METRIC STATE REASON>` in $config (STATE installed|pending|failed).
//
// Invariants: limen marks what it installs with its own protocol number (routes:
// rtm_protocol; addresses: IFA_PROTO, Linux 6.3+) and only ever deletes what
// carries that mark. It watches the kernel on its own rtnetlink socket and puts
// back what someone else removed; a change of a desired address (a DHCP renew)
// refreshes its lifetimes in place. At start, marked objects that are still
// desired are adopted untouched, the rest are deleted once the configuration has
// settled. Stopping the reconciler leaves the kernel as it is (a restart must not
// drop traffic); only a retraction while running deletes.
//
// The checks of the desired values are in address-route-spec.ts; the pass loop
// (one pass at a time, a change during a pass schedules another) is the one the
// firewall uses too (reconcile-loop.ts).

import { performance } from 'node:perf_hooks';
import {
  type Driver,
  type DriverLog,
  driverLog,
  declareFailures,
  P,
  type Facet,
  type Handle,
  type Ref,
} from '../dataspace/index.ts';
import {
  Dict,
  ValueMap,
  Record as PRecord,
  is,
  peel,
  record,
  sym,
  type Value,
} from '../preserves/index.ts';
import {
  AF,
  IFA_F,
  INFINITY_LIFE_TIME,
  NLM_F,
  RTM,
  RTN,
  RT_TABLE,
  delAddressPayload,
  delRoutePayload,
  formatIp,
  newAddressPayload,
  newRoutePayload,
  parseIp,
  type IpVersion,
  type RouteRequest,
} from './netlink-codec.ts';
import {
  addressKey,
  routeBaseKey,
  type AddressInfo,
  type LinkInfo,
  type RouteInfo,
} from './netlink-model.ts';
import type { Transport } from './netlink-proxy.ts';
import { NetlinkClosedError, NetlinkRequestError } from './netlink-socket.ts';
import { KernelWatcher } from './netlink-watcher.ts';
import { ReconcileLoop } from './reconcile-loop.ts';
import {
  checkIpAddress,
  checkIpRoute,
  type AddressSpec,
  type ReconcileState,
  type RouteSpec,
  type RouteType,
} from './address-route-spec.ts';

export {
  checkIpAddress,
  checkIpRoute,
  type AddressSpec,
  type ReconcileState,
  type RouteSpec,
} from './address-route-spec.ts';

/** The kernel's rtm_type for each route type. */
const RTN_OF: { readonly [t in RouteType]: number } = {
  unicast: RTN.UNICAST,
  unreachable: RTN.UNREACHABLE,
  blackhole: RTN.BLACKHOLE,
  prohibit: RTN.PROHIBIT,
};

/** limen's mark on the routes and addresses it installs ('L'); see docs/vocabulary.md. */
export const LIMEN_PROTOCOL = 76;

export interface AddressRouteOptions {
  readonly config: Ref;
  /** The mark (rtm_protocol / IFA_PROTO); default LIMEN_PROTOCOL. */
  readonly protocol?: number;
  /**
   * Marked leftovers of an earlier run that are not desired are deleted once this
   * resolves (the daemon passes "the configuration is loaded"); without it, after
   * `leftoverGraceMs` from the first dump.
   */
  readonly settled?: Promise<void>;
  /** Default 10000. */
  readonly leftoverGraceMs?: number;
  /** Monotonic milliseconds, for lifetimes (default performance.now). */
  readonly now?: () => number;
  /** SO_RCVBUF of the netlink socket. */
  readonly recvBufferSize?: number;
  /** Where the native netlink socket lives (default 'helper'). */
  readonly transport?: Transport;
}

export interface AddressRouteStats {
  /** Kernel requests made, by kind. */
  addressAdds: number;
  addressDeletes: number;
  routeAdds: number;
  routeDeletes: number;
  /** Objects found marked at start and kept because they were desired. */
  adopted: number;
}

export interface AddressRouteReconciler extends Driver {
  /** Resolves after the first dump of the kernel's state; rejects if netlink is unavailable. */
  readonly ready: Promise<void>;
  /** Resolves once stopped and no kernel request is in flight. */
  readonly closed: Promise<void>;
  readonly stats: Readonly<AddressRouteStats>;
  /** Resolves when every desired change so far has been tried on the kernel. */
  whenIdle(): Promise<void>;
}

// ---- The driver ------------------------------------------------------------------------------

interface Entry<S> {
  readonly value: Value;
  readonly seq: number;
  readonly spec: S;
}

interface AddressGroup {
  readonly key: string;
  entries: Entry<AddressSpec>[];
  /** The entry (seq) last applied to the kernel, when, and with what lifetimes. */
  appliedSeq: number;
  appliedAt: number;
  failedSeq: number;
  failedGen: number;
  /** Said with `installed`: "adopted" (from an earlier run), or nothing. */
  note: string;
}

interface RouteGroup {
  readonly key: string;
  entries: Entry<RouteSpec>[];
  failedSeq: number;
  failedGen: number;
  note: string;
}

const RETRYABLE = new Set(['ENETUNREACH', 'ENODEV', 'ENETDOWN', 'EADDRNOTAVAIL']);

/**
 * Worth waiting for rather than a failure: the kernel refused for a reason that a later
 * change may remove (no route to the gateway yet, the link is down), or the socket was
 * being reopened (the request is tried again after the next dump).
 */
function isTransient(err: unknown): boolean {
  return err instanceof NetlinkRequestError ? RETRYABLE.has(err.errnoName) : true;
}

function familyOf(version: IpVersion): number {
  return version === 4 ? AF.INET : AF.INET6;
}

function reasonOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function latest<S>(entries: readonly Entry<S>[]): Entry<S> {
  let best = entries[0]!;
  for (const e of entries) if (e.seq > best.seq) best = e;
  return best;
}

/** Published state assertions of one address or route group. */
interface PublishedState {
  values: Value[];
  handles: Handle[];
}

const rawFields = (v: Value): readonly Value[] => {
  const r = peel(v);
  return r instanceof PRecord ? r.fields : [];
};

/** Everything one reconciler does, in its own facet. */
class AddressRouteDriver implements AddressRouteReconciler {
  readonly facet: Facet;
  readonly stats: AddressRouteStats = {
    addressAdds: 0,
    addressDeletes: 0,
    routeAdds: 0,
    routeDeletes: 0,
    adopted: 0,
  };
  readonly closed: Promise<void>;
  readonly #o: AddressRouteOptions;
  readonly #proto: number;
  readonly #now: () => number;
  readonly #loop: ReconcileLoop;
  #log!: DriverLog;
  readonly #addrGroups = new Map<string, AddressGroup>();
  readonly #routeGroups = new Map<string, RouteGroup>();
  /** Kernel keys of addresses/routes installed or adopted by this run. */
  readonly #ownedAddresses = new Set<string>();
  readonly #ownedRoutes = new Set<string>();
  /** Published state assertions by key. */
  readonly #states = new Map<string, PublishedState>();
  /** Invalid desired values and their failed-state handle. */
  readonly #invalid = new ValueMap<Handle>();
  #seq = 0;
  #kernelGen = 0;
  #leftoversAllowed = false;
  /** The first dump is done. */
  #synced = false;
  #watcher: KernelWatcher | undefined;
  #ready: Promise<void> = Promise.resolve();
  /** Stops the loop; `closed` resolves once no pass is in flight. */
  readonly #closing: () => void;

  constructor(parent: Facet, o: AddressRouteOptions) {
    this.#o = o;
    this.#proto = o.protocol ?? LIMEN_PROTOCOL;
    this.#now = o.now ?? (() => performance.now());
    this.#loop = new ReconcileLoop({
      pass: () => this.#pass(),
      onError: (e) => this.#log.error('failed', { error: reasonOf(e) }),
    });
    let closed!: () => void;
    this.closed = new Promise<void>((r) => (closed = r));
    this.#closing = () => void this.#loop.stop().then(closed);
    this.facet = parent.spawn((f) => {
      // So that `limen status` and the log find them (docs/vocabulary.md, "Failures").
      this.#log = driverLog(f, 'address/route reconciler');
      const _ = sym('_');
      declareFailures(
        f,
        o.config,
        record('ip-address-state', _, _, sym('failed'), _),
        record('ip-route-state', _, _, _, sym('failed'), _),
      );
      f.onStop(this.#closing);
      if (!this.#openWatcher(f)) return;
      this.#observeDesired(f);
    }, 'address-route');
  }

  get ready(): Promise<void> {
    return this.#ready;
  }

  whenIdle(): Promise<void> {
    return this.#loop.whenIdle();
  }

  stop(): void {
    this.facet.stop();
  }

  get #stopped(): boolean {
    return this.#loop.stopped;
  }

  // ---- Published state --------------------------------------------------------------------

  #setState(key: string, values: Value[]): void {
    const old = this.#states.get(key);
    if (
      old !== undefined &&
      old.values.length === values.length &&
      old.values.every((v, i) => is(v, values[i]!))
    )
      return;
    // The bookkeeping changes now; the assertions in a turn (queued if we are in one,
    // after the turn that made `old`'s handles).
    const entry: PublishedState = { values, handles: [] };
    if (values.length === 0) this.#states.delete(key);
    else this.#states.set(key, entry);
    const f = this.facet;
    f.turn(() => {
      entry.handles = values.map((v) => f.assert(this.#o.config, v));
      if (old !== undefined) for (const h of old.handles) f.retract(h);
    });
  }

  #addressState(g: AddressGroup, state: ReconcileState, reason: string): void {
    const seen: Value[] = [];
    for (const e of g.entries) {
      const [ifv = false, addr = false] = rawFields(e.value);
      const v = record('ip-address-state', ifv, addr, sym(state), reason);
      if (!seen.some((s) => is(s, v))) seen.push(v);
    }
    this.#setState(`a:${g.key}`, seen);
  }

  #routeState(g: RouteGroup, state: ReconcileState, reason: string): void {
    const seen: Value[] = [];
    for (const e of g.entries) {
      const [fam = false, dest = false] = rawFields(e.value);
      const v = record('ip-route-state', fam, dest, e.spec.metric, sym(state), reason);
      if (!seen.some((s) => is(s, v))) seen.push(v);
    }
    this.#setState(`r:${g.key}`, seen);
  }

  async #request(type: number, flags: number, payload: Uint8Array, what: string): Promise<void> {
    const w = this.#watcher;
    if (w === undefined) throw new NetlinkClosedError(`${what}: no netlink socket`);
    await w.request(type, flags, payload, what);
  }

  // ---- One pass: compare desired with the kernel and act ----------------------------------

  async #pass(): Promise<void> {
    const w = this.#watcher!;
    // Act only on a complete picture of the kernel; the end of the dump schedules a pass.
    if (!this.#synced || w.isSyncing) return;
    const byName = new Map<string, LinkInfo>();
    for (const l of w.model.links.values()) byName.set(l.name, l);
    const wantedAddresses = new Set<string>();
    const wantedRoutes = new Set<string>();
    for (const g of [...this.#addrGroups.values()]) {
      if (this.#stopped) return;
      if (this.#addrGroups.get(g.key) !== g) continue;
      const kkey = await this.#reconcileAddress(g, byName);
      if (kkey !== undefined) wantedAddresses.add(kkey);
    }
    const routesByBase = new Map<string, RouteInfo[]>();
    for (const r of w.model.routes.values()) {
      const list = routesByBase.get(r.baseKey);
      if (list === undefined) routesByBase.set(r.baseKey, [r]);
      else list.push(r);
    }
    for (const g of [...this.#routeGroups.values()]) {
      if (this.#stopped) return;
      if (this.#routeGroups.get(g.key) !== g) continue;
      const base = await this.#reconcileRoute(g, byName, routesByBase);
      if (base !== undefined) wantedRoutes.add(base);
    }
    await this.#deleteUnwanted(wantedAddresses, wantedRoutes);
  }

  /**
   * What carries our mark but is no longer wanted: ours from this run at once,
   * leftovers of an earlier run once the configuration has settled.
   */
  async #deleteUnwanted(wantedAddresses: Set<string>, wantedRoutes: Set<string>): Promise<void> {
    const w = this.#watcher!;
    for (const a of [...w.model.addresses.values()]) {
      if (this.#stopped) return;
      // Without IFA_PROTO (Linux < 6.3) only what this run installed is known to be ours.
      const owned = this.#ownedAddresses.has(a.key);
      if ((a.proto !== this.#proto && !owned) || wantedAddresses.has(a.key)) continue;
      if (!owned && !this.#leftoversAllowed) continue;
      await this.#deleteAddress(a);
    }
    for (const r of [...w.model.routes.values()]) {
      if (this.#stopped) return;
      if (r.protocol !== this.#proto || wantedRoutes.has(r.baseKey)) continue;
      if (!this.#ownedRoutes.has(r.key) && !this.#leftoversAllowed) continue;
      await this.#deleteRoute(r);
    }
  }

  async #reconcileAddress(
    g: AddressGroup,
    byName: Map<string, LinkInfo>,
  ): Promise<string | undefined> {
    const e = latest(g.entries);
    const s = e.spec;
    const link = byName.get(s.ifname);
    if (link === undefined) {
      this.#addressState(g, 'pending', `interface ${s.ifname} does not exist`);
      return undefined;
    }
    const kkey = addressKey(link.index, familyOf(s.version), formatIp(s.bytes), s.prefixlen);
    const k: AddressInfo | undefined = this.#watcher!.model.addresses.get(kkey);
    if (k !== undefined && k.proto !== this.#proto && !this.#ownedAddresses.has(kkey)) {
      this.#addressState(g, 'installed', 'present, not installed by limen: left alone');
      return undefined;
    }
    const lifetimes = this.#lifetimesToApply(g, e, k, kkey);
    if (lifetimes === 'done') return kkey;
    if (g.failedSeq === e.seq && g.failedGen === this.#kernelGen) return kkey;
    try {
      await this.#request(
        RTM.NEWADDR,
        NLM_F.CREATE | NLM_F.REPLACE,
        newAddressPayload({
          index: link.index,
          version: s.version,
          bytes: s.bytes,
          prefixlen: s.prefixlen,
          valid: lifetimes.valid,
          preferred: lifetimes.preferred,
          proto: this.#proto,
        }),
        `add address ${s.text} to ${s.ifname}`,
      );
    } catch (err) {
      if (this.#stopped) return kkey;
      g.failedSeq = e.seq;
      g.failedGen = this.#kernelGen;
      this.#addressState(g, isTransient(err) ? 'pending' : 'failed', reasonOf(err));
      return kkey;
    }
    this.stats.addressAdds++;
    this.#ownedAddresses.add(kkey);
    if (g.appliedSeq !== e.seq) g.appliedAt = this.#now();
    g.appliedSeq = e.seq;
    this.#addressState(g, 'installed', g.note);
    return kkey;
  }

  /**
   * The lifetimes to (re)install an address with, or 'done' when the kernel already
   * holds what is wanted (adopted, or applied and still there) or it has expired.
   */
  #lifetimesToApply(
    g: AddressGroup,
    e: Entry<AddressSpec>,
    k: AddressInfo | undefined,
    kkey: string,
  ): { valid: number | undefined; preferred: number | undefined } | 'done' {
    const s = e.spec;
    let valid = s.valid;
    let preferred = s.preferred;
    if (k !== undefined) {
      if (!this.#ownedAddresses.has(kkey)) {
        this.#ownedAddresses.add(kkey);
        this.stats.adopted++;
        g.note = 'adopted';
        if (valid === undefined && k.valid === INFINITY_LIFE_TIME) g.appliedSeq = e.seq;
      }
      if (g.appliedSeq === e.seq) {
        if (k.flags & IFA_F.DADFAILED)
          this.#addressState(
            g,
            'failed',
            'duplicate address detection failed: another host has it',
          );
        else this.#addressState(g, 'installed', k.flags & IFA_F.TENTATIVE ? 'tentative' : g.note);
        return 'done';
      }
    } else if (g.appliedSeq === e.seq) {
      // Removed behind our back (or expired): put it back with what is left of its lifetimes.
      const elapsed = Math.floor((this.#now() - g.appliedAt) / 1000);
      if (valid !== undefined) {
        valid -= elapsed;
        if (valid <= 0) {
          this.#addressState(g, 'failed', 'its valid lifetime expired');
          return 'done';
        }
        preferred = Math.max(0, Math.min(valid, (preferred ?? valid) - elapsed));
      }
      this.#log.warn('address removed by someone else; restoring it', {
        interface: s.ifname,
        address: s.text,
      });
    }
    return { valid, preferred };
  }

  async #deleteAddress(a: AddressInfo): Promise<void> {
    const ip = parseIp(a.address);
    if (ip === undefined) return;
    try {
      await this.#request(
        RTM.DELADDR,
        0,
        delAddressPayload({
          index: a.index,
          version: ip.version,
          bytes: ip.bytes,
          prefixlen: a.prefixlen,
          proto: this.#proto,
        }),
        `delete address ${a.address}/${a.prefixlen}`,
      );
      this.stats.addressDeletes++;
    } catch (err) {
      if (
        !this.#stopped &&
        !(err instanceof NetlinkRequestError && err.errnoName === 'EADDRNOTAVAIL')
      )
        this.#log.warn('could not delete an address', { error: reasonOf(err) });
    }
    this.#ownedAddresses.delete(a.key);
  }

  async #reconcileRoute(
    g: RouteGroup,
    byName: Map<string, LinkInfo>,
    routesByBase: Map<string, RouteInfo[]>,
  ): Promise<string | undefined> {
    const e = latest(g.entries);
    const s = e.spec;
    const base = routeBaseKey(
      familyOf(s.version),
      RT_TABLE.MAIN,
      s.dstText,
      s.dstLen,
      0,
      s.priority,
    );
    let oif = 0;
    if (s.dev !== undefined) {
      const link = byName.get(s.dev);
      if (link === undefined) {
        this.#routeState(g, 'pending', `interface ${s.dev} does not exist`);
        return base;
      }
      oif = link.index;
    }
    if (this.#routeInPlace(g, s, oif, routesByBase.get(base) ?? [])) return base;
    if (g.failedSeq === e.seq && g.failedGen === this.#kernelGen) return base;
    const req: RouteRequest = {
      version: s.version,
      dst: s.dst,
      dstLen: s.dstLen,
      table: RT_TABLE.MAIN,
      protocol: this.#proto,
      priority: s.priority,
      gateway: s.via,
      oif,
      type: RTN_OF[s.type],
    };
    const dest = s.dstLen === 0 ? 'default' : `${s.dstText}/${s.dstLen}`;
    try {
      await this.#request(
        RTM.NEWROUTE,
        NLM_F.CREATE | NLM_F.REPLACE,
        newRoutePayload(req),
        `add route ${dest}`,
      );
    } catch (err) {
      if (this.#stopped) return base;
      g.failedSeq = e.seq;
      g.failedGen = this.#kernelGen;
      this.#routeState(g, isTransient(err) ? 'pending' : 'failed', reasonOf(err));
      return base;
    }
    this.stats.routeAdds++;
    for (const r of this.#watcher!.model.routes.values())
      if (r.baseKey === base && r.protocol === this.#proto) this.#ownedRoutes.add(r.key);
    g.note = '';
    this.#routeState(g, 'installed', '');
    return base;
  }

  /**
   * True when nothing is to be done for the route: someone else's is there (left alone,
   * or in the way), or ours already matches (adopted from an earlier run, or installed).
   */
  #routeInPlace(g: RouteGroup, s: RouteSpec, oif: number, present: RouteInfo[]): boolean {
    const matches = (r: RouteInfo): boolean =>
      r.type === RTN_OF[s.type] &&
      r.nexthops.length === 1 &&
      r.nexthops[0]!.gateway === s.viaText &&
      (s.dev === undefined || r.nexthops[0]!.oif === oif);
    const ours = present.filter((r) => r.protocol === this.#proto);
    if (ours.length === 0 && present.length > 0) {
      if (present.length === 1 && matches(present[0]!))
        this.#routeState(g, 'installed', 'present, not installed by limen: left alone');
      else
        this.#routeState(
          g,
          'failed',
          'a route with this destination and metric exists that limen did not install',
        );
      return true;
    }
    if (ours.length === 1 && matches(ours[0]!)) {
      if (!this.#ownedRoutes.has(ours[0]!.key)) {
        this.#ownedRoutes.add(ours[0]!.key);
        this.stats.adopted++;
        g.note = 'adopted';
      }
      this.#routeState(g, 'installed', g.note);
      return true;
    }
    return false;
  }

  async #deleteRoute(r: RouteInfo): Promise<void> {
    const dst = r.dstLen === 0 ? undefined : parseIp(r.dst);
    const version: IpVersion = r.family === AF.INET6 ? 6 : 4;
    const nh = r.nexthops.length === 1 ? r.nexthops[0] : undefined;
    const gw = nh?.gateway === undefined ? undefined : parseIp(nh.gateway);
    try {
      await this.#request(
        RTM.DELROUTE,
        0,
        delRoutePayload({
          version,
          dst: dst?.bytes ?? new Uint8Array(version === 4 ? 4 : 16),
          dstLen: r.dstLen,
          table: r.table,
          protocol: this.#proto,
          priority: r.priority,
          gateway: gw?.bytes,
          oif: nh?.oif ?? 0,
        }),
        `delete route ${r.dstLen === 0 ? 'default' : `${r.dst}/${r.dstLen}`}`,
      );
      this.stats.routeDeletes++;
    } catch (err) {
      if (!this.#stopped && !(err instanceof NetlinkRequestError && err.errnoName === 'ESRCH'))
        this.#log.warn('could not delete a route', { error: reasonOf(err) });
    }
    this.#ownedRoutes.delete(r.key);
  }

  // ---- Wiring -------------------------------------------------------------------------------

  /** Opens the kernel watcher; false (and the reconciler stopped) when netlink is unavailable. */
  #openWatcher(f: Facet): boolean {
    const o = this.#o;
    try {
      this.#watcher = new KernelWatcher({
        recvBufferSize: o.recvBufferSize,
        logger: f.engine.logger,
        transport: o.transport,
      });
    } catch (e) {
      this.#log.error('netlink is not available', {
        error: reasonOf(e),
      });
      this.#ready = Promise.reject(e instanceof Error ? e : new Error(String(e)));
      this.#ready.catch(() => {});
      this.#closing();
      return false;
    }
    const w = this.#watcher;
    this.#ready = w.ready;
    f.onStop(() => w.close());
    // After a resync (lost events, a new socket) failed requests are worth another try.
    for (const sub of [
      w.onChanges(() => this.#kernelChanged()),
      w.onSynced(() => this.#kernelChanged()),
    ])
      f.onStop(() => sub.dispose());
    let graceTimer: NodeJS.Timeout | undefined;
    f.onStop(() => clearTimeout(graceTimer));
    const allowLeftovers = () => {
      if (this.#stopped || this.#leftoversAllowed) return;
      this.#leftoversAllowed = true;
      this.#loop.schedule();
    };
    void w.ready.then(
      () => {
        if (this.#stopped) return;
        this.#synced = true;
        this.#loop.schedule();
        if (o.settled !== undefined) void o.settled.then(allowLeftovers, allowLeftovers);
        else graceTimer = setTimeout(allowLeftovers, o.leftoverGraceMs ?? 10_000);
      },
      () => {},
    );
    return true;
  }

  #kernelChanged(): void {
    this.#kernelGen++;
    this.#loop.schedule();
  }

  /** Follows `<ip-address …>` and `<ip-route …>` in $config. */
  #observeDesired(f: Facet): void {
    const config = this.#o.config;
    f.observe(config, P.rec('ip-address'), {
      onAdd: (value) => {
        const spec = checkIpAddress(value);
        if (Array.isArray(spec)) {
          const [ifv = false, addr = false] = rawFields(value);
          this.#failInvalid(
            value,
            record('ip-address-state', ifv, addr, sym('failed'), spec.join('; ')),
          );
          return;
        }
        const key = `${spec.ifname}|${spec.text}`;
        this.#addEntry(this.#addrGroups, key, { value, seq: ++this.#seq, spec }, () => ({
          key,
          entries: [],
          appliedSeq: 0,
          appliedAt: 0,
          failedSeq: 0,
          failedGen: -1,
          note: '',
        }));
      },
      onRemove: (value) => this.#withdraw(value, this.#addrGroups, 'a'),
    });
    f.observe(config, P.rec('ip-route'), {
      onAdd: (value) => {
        const spec = checkIpRoute(value);
        if (Array.isArray(spec)) {
          const [fam = false, dest = false, o] = rawFields(value);
          const d = o === undefined ? undefined : peel(o);
          const m = d instanceof Dict ? d.get(sym('metric')) : undefined;
          this.#failInvalid(
            value,
            record('ip-route-state', fam, dest, m ?? 0, sym('failed'), spec.join('; ')),
          );
          return;
        }
        const key = `${spec.version}|${spec.dstText}/${spec.dstLen}|${spec.priority}`;
        this.#addEntry(this.#routeGroups, key, { value, seq: ++this.#seq, spec }, () => ({
          key,
          entries: [],
          failedSeq: 0,
          failedGen: -1,
          note: '',
        }));
      },
      onRemove: (value) => this.#withdraw(value, this.#routeGroups, 'r'),
    });
  }

  #failInvalid(value: Value, stateValue: Value): void {
    this.#invalid.set(value, this.facet.assert(this.#o.config, stateValue));
  }

  #addEntry<G extends { key: string; entries: Entry<S>[] }, S>(
    groups: Map<string, G>,
    key: string,
    entry: Entry<S>,
    make: () => G,
  ): void {
    let g = groups.get(key);
    if (g === undefined) {
      g = make();
      groups.set(key, g);
    }
    g.entries.push(entry);
    this.#loop.schedule();
  }

  /** A retracted desired value: drop its failure report if it was invalid, else its entry. */
  #withdraw<S>(
    value: Value,
    groups: Map<string, { key: string; entries: Entry<S>[] }>,
    prefix: string,
  ): void {
    const h = this.#invalid.get(value);
    if (h !== undefined) {
      this.#invalid.delete(value);
      this.facet.retract(h);
      return;
    }
    for (const g of groups.values()) {
      const i = g.entries.findIndex((e) => is(e.value, value));
      if (i < 0) continue;
      g.entries.splice(i, 1);
      if (g.entries.length === 0) {
        groups.delete(g.key);
        this.#setState(`${prefix}:${g.key}`, []);
      }
      break;
    }
    this.#loop.schedule();
  }
}

/** Starts the reconciler in a child facet of `parent`. */
export function startAddressRouteReconciler(
  parent: Facet,
  opts: AddressRouteOptions,
): AddressRouteReconciler {
  return new AddressRouteDriver(parent, opts);
}
