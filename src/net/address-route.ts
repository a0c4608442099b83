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

import { performance } from 'node:perf_hooks';
import { P, type Facet, type Handle, type Ref } from '../dataspace/index.ts';
import {
  Dict,
  Sym,
  ValueMap,
  Record as PRecord,
  is,
  peel,
  record,
  stringify,
  sym,
  type Value,
} from '../preserves/index.ts';
import {
  AF,
  IFA_F,
  INFINITY_LIFE_TIME,
  NLM_F,
  RTM,
  RT_TABLE,
  delAddressPayload,
  delRoutePayload,
  formatIp,
  isNetworkPrefix,
  newAddressPayload,
  newRoutePayload,
  parseIp,
  parsePrefix,
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
import { INTERFACE_NAME_RULE, isInterfaceName } from '../base/interface-name.ts';

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

export interface AddressRouteReconciler {
  readonly facet: Facet;
  /** Resolves after the first dump of the kernel's state; rejects if netlink is unavailable. */
  readonly ready: Promise<void>;
  /** Resolves once stopped and no kernel request is in flight. */
  readonly closed: Promise<void>;
  readonly stats: Readonly<AddressRouteStats>;
  /** Resolves when every desired change so far has been tried on the kernel. */
  whenIdle(): Promise<void>;
  stop(): void;
}

// ---- Desired state: validation (pure) --------------------------------------------------------

export type ReconcileState = 'installed' | 'pending' | 'failed';

export interface AddressSpec {
  readonly ifname: string;
  readonly version: IpVersion;
  readonly bytes: Uint8Array;
  readonly prefixlen: number;
  /** Canonical "ADDR/LEN". */
  readonly text: string;
  /** Seconds; undefined means forever. */
  readonly valid: number | undefined;
  readonly preferred: number | undefined;
}

export interface RouteSpec {
  readonly version: IpVersion;
  readonly dst: Uint8Array;
  readonly dstLen: number;
  /** Canonical destination address ("" for default). */
  readonly dstText: string;
  readonly via: Uint8Array | undefined;
  readonly viaText: string | undefined;
  readonly dev: string | undefined;
  /** As asserted (default 0). */
  readonly metric: number;
  /** What the kernel stores: IPv6 turns metric 0 into 1024. */
  readonly priority: number;
}

const MAX_U32 = 0xffffffff;

function text(v: Value | undefined): string {
  return v === undefined ? 'nothing' : stringify(v);
}

function checkIfname(v: Value | undefined, what: string, errors: string[]): string | undefined {
  const s = v === undefined ? undefined : peel(v);
  if (isInterfaceName(s)) return s;
  errors.push(`${what} must be ${INTERFACE_NAME_RULE} as a string, not ${text(v)}`);
  return undefined;
}

function checkOptions(
  v: Value | undefined,
  known: readonly string[],
  what: string,
  errors: string[],
): Dict {
  if (v === undefined) return new Dict();
  const d = peel(v);
  if (!(d instanceof Dict)) {
    errors.push(`the options of ${what} must be a dictionary, not ${text(v)}`);
    return new Dict();
  }
  for (const k of d.keys()) {
    const key = peel(k);
    if (!(key instanceof Sym) || !known.includes(key.name))
      errors.push(`unknown option ${text(k)} in ${what} (known: ${known.join(', ')})`);
  }
  return d;
}

function lifetimeOf(d: Dict, key: string, errors: string[]): number | undefined {
  const raw = d.get(sym(key));
  if (raw === undefined) return undefined;
  const v = peel(raw);
  if (v instanceof Sym && v.name === 'forever') return undefined;
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < MAX_U32) return v;
  errors.push(
    `${key} must be a number of seconds (0 to ${MAX_U32 - 1}) or forever, not ${text(raw)}`,
  );
  return undefined;
}

/** Checks `<ip-address IF "ADDR/LEN" {valid preferred renewed}>`; collects every problem. */
export function checkIpAddress(v: Value): AddressSpec | string[] {
  const errors: string[] = [];
  const r = peel(v);
  if (!(r instanceof PRecord)) return ['not a record'];
  const fields = r.fields;
  if (fields.length < 2 || fields.length > 3)
    errors.push(`<ip-address IF "ADDR/LEN" {…}> takes 2 or 3 fields, not ${fields.length}`);
  const ifname = checkIfname(fields[0], 'IF', errors);
  const addrRaw = fields[1] === undefined ? undefined : peel(fields[1]);
  let prefix: ReturnType<typeof parsePrefix> = 'missing';
  if (typeof addrRaw !== 'string') errors.push(`ADDR/LEN must be a string, not ${text(fields[1])}`);
  else {
    prefix = parsePrefix(addrRaw);
    if (typeof prefix === 'string') errors.push(prefix);
  }
  const opts = checkOptions(fields[2], ['valid', 'preferred', 'renewed'], 'ip-address', errors);
  const valid = lifetimeOf(opts, 'valid', errors);
  let preferred = lifetimeOf(opts, 'preferred', errors);
  if (valid !== undefined && valid === 0) errors.push('valid must be at least 1 second');
  if (valid !== undefined && preferred !== undefined && preferred > valid)
    errors.push(`preferred (${preferred}) must not exceed valid (${valid})`);
  if (valid !== undefined && preferred === undefined) preferred = valid;
  if (errors.length > 0 || ifname === undefined || typeof prefix === 'string') return errors;
  return {
    ifname,
    version: prefix.version,
    bytes: prefix.bytes,
    prefixlen: prefix.length,
    text: `${formatIp(prefix.bytes)}/${prefix.length}`,
    valid,
    preferred,
  };
}

/** Checks `<ip-route FAMILY DEST {via dev metric}>`; collects every problem. */
export function checkIpRoute(v: Value): RouteSpec | string[] {
  const errors: string[] = [];
  const r = peel(v);
  if (!(r instanceof PRecord)) return ['not a record'];
  const fields = r.fields;
  if (fields.length < 2 || fields.length > 3)
    errors.push(`<ip-route FAMILY DEST {…}> takes 2 or 3 fields, not ${fields.length}`);
  const fam = fields[0] === undefined ? undefined : peel(fields[0]);
  let version: IpVersion | undefined;
  if (fam instanceof Sym && (fam.name === 'ipv4' || fam.name === 'ipv6'))
    version = fam.name === 'ipv4' ? 4 : 6;
  else errors.push(`FAMILY must be ipv4 or ipv6, not ${text(fields[0])}`);
  const destRaw = fields[1] === undefined ? undefined : peel(fields[1]);
  let dst: Uint8Array | undefined;
  let dstLen = 0;
  if (destRaw === 'default') {
    dst = new Uint8Array(version === 6 ? 16 : 4);
  } else if (typeof destRaw === 'string') {
    const p = parsePrefix(destRaw, 'host');
    if (typeof p === 'string') errors.push(p);
    else if (version !== undefined && p.version !== version)
      errors.push(`DEST ${destRaw} is not an IPv${version} prefix`);
    else if (!isNetworkPrefix(p))
      errors.push(`DEST ${destRaw} has bits set beyond its prefix length`);
    else {
      dst = p.bytes;
      dstLen = p.length;
    }
  } else errors.push(`DEST must be "default" or a string "ADDR/LEN", not ${text(fields[1])}`);
  const opts = checkOptions(fields[2], ['via', 'dev', 'metric'], 'ip-route', errors);
  let via: Uint8Array | undefined;
  const viaRaw = opts.get(sym('via'));
  if (viaRaw !== undefined) {
    const s = peel(viaRaw);
    const ip = typeof s === 'string' ? parseIp(s) : undefined;
    if (ip === undefined) errors.push(`via must be an IP address, not ${text(viaRaw)}`);
    else if (version !== undefined && ip.version !== version)
      errors.push(`via ${text(viaRaw)} is not an IPv${version} address`);
    else via = ip.bytes;
  }
  const devRaw = opts.get(sym('dev'));
  const dev = devRaw === undefined ? undefined : checkIfname(devRaw, 'dev', errors);
  const metricRaw = opts.get(sym('metric'));
  let metric = 0;
  if (metricRaw !== undefined) {
    const m = peel(metricRaw);
    if (typeof m === 'number' && Number.isInteger(m) && m >= 0 && m <= MAX_U32) metric = m;
    else errors.push(`metric must be an integer from 0 to ${MAX_U32}, not ${text(metricRaw)}`);
  }
  if (viaRaw === undefined && devRaw === undefined) errors.push('a route needs via, dev, or both');
  if (errors.length > 0 || version === undefined || dst === undefined) return errors;
  return {
    version,
    dst,
    dstLen,
    dstText: dstLen === 0 ? '' : formatIp(dst),
    via,
    viaText: via === undefined ? undefined : formatIp(via),
    dev,
    metric,
    priority: version === 6 && metric === 0 ? 1024 : metric,
  };
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

/** Starts the reconciler in a child facet of `parent`. */
export function startAddressRouteReconciler(
  parent: Facet,
  opts: AddressRouteOptions,
): AddressRouteReconciler {
  const proto = opts.protocol ?? LIMEN_PROTOCOL;
  const now = opts.now ?? (() => performance.now());
  const stats: AddressRouteStats = {
    addressAdds: 0,
    addressDeletes: 0,
    routeAdds: 0,
    routeDeletes: 0,
    adopted: 0,
  };
  const addrGroups = new Map<string, AddressGroup>();
  const routeGroups = new Map<string, RouteGroup>();
  /** Kernel keys of addresses/routes installed or adopted by this run. */
  const ownedAddresses = new Set<string>();
  const ownedRoutes = new Set<string>();
  /** Published state assertions by key. */
  const states = new Map<string, { values: Value[]; handles: Handle[] }>();
  /** Invalid desired values and their failed-state handle. */
  const invalid = new ValueMap<Handle>();
  let seq = 0;
  let kernelGen = 0;
  let leftoversAllowed = false;
  /** The first dump is done. */
  let synced = false;
  let stopped = false;
  let watcher: KernelWatcher | undefined;
  let ready: Promise<void> = Promise.resolve();
  let closedResolve!: () => void;
  const closed = new Promise<void>((r) => (closedResolve = r));
  let running = false;
  let dirty = false;
  let scheduled = false;
  let idleWaiters: (() => void)[] = [];

  const facet = parent.spawn((f) => {
    // So that `limen status` and the log find them (docs/vocabulary.md, "Failures").
    const _ = sym('_');
    f.assert(
      opts.config,
      record('failure-shape', record('ip-address-state', _, _, sym('failed'), _)),
    );
    f.assert(
      opts.config,
      record('failure-shape', record('ip-route-state', _, _, _, sym('failed'), _)),
    );
    const setState = (key: string, values: Value[]): void => {
      const old = states.get(key);
      if (
        old !== undefined &&
        old.values.length === values.length &&
        old.values.every((v, i) => is(v, values[i]!))
      )
        return;
      // The bookkeeping changes now; the assertions in a turn (queued if we are in one,
      // after the turn that made `old`'s handles).
      const entry = { values, handles: [] as Handle[] };
      if (values.length === 0) states.delete(key);
      else states.set(key, entry);
      f.turn(() => {
        entry.handles = values.map((v) => f.assert(opts.config, v));
        if (old !== undefined) for (const h of old.handles) f.retract(h);
      });
    };
    const rawFields = (v: Value): readonly Value[] => {
      const r = peel(v);
      return r instanceof PRecord ? r.fields : [];
    };
    const addressState = (g: AddressGroup, state: ReconcileState, reason: string): void => {
      const seen: Value[] = [];
      for (const e of g.entries) {
        const [ifv = false, addr = false] = rawFields(e.value);
        const v = record('ip-address-state', ifv, addr, sym(state), reason);
        if (!seen.some((s) => is(s, v))) seen.push(v);
      }
      setState(`a:${g.key}`, seen);
    };
    const routeState = (g: RouteGroup, state: ReconcileState, reason: string): void => {
      const seen: Value[] = [];
      for (const e of g.entries) {
        const [fam = false, dest = false] = rawFields(e.value);
        const v = record('ip-route-state', fam, dest, e.spec.metric, sym(state), reason);
        if (!seen.some((s) => is(s, v))) seen.push(v);
      }
      setState(`r:${g.key}`, seen);
    };

    const schedule = (): void => {
      dirty = true;
      if (running || scheduled || stopped) return;
      // After the current burst of turns, so that a retraction and the assertion that
      // replaces it (in separate turns) are seen together and nothing is torn down.
      scheduled = true;
      setImmediate(() => {
        scheduled = false;
        void run();
      });
    };

    const run = async (): Promise<void> => {
      if (running || stopped) return;
      running = true;
      try {
        while (dirty && !stopped) {
          dirty = false;
          await pass();
        }
      } catch (e) {
        if (!stopped)
          f.engine.logger.error('address/route reconciler failed', { error: reasonOf(e) });
      } finally {
        running = false;
        if (stopped) closedResolve();
        else if (dirty) schedule();
        else {
          const w = idleWaiters;
          idleWaiters = [];
          for (const fn of w) fn();
        }
      }
    };

    const request = async (type: number, flags: number, payload: Uint8Array, what: string) => {
      if (watcher === undefined) throw new NetlinkClosedError(`${what}: no netlink socket`);
      await watcher.request(type, flags, payload, what);
    };

    // ---- One pass: compare desired with the kernel and act --------------------------------

    const pass = async (): Promise<void> => {
      const w = watcher!;
      // Act only on a complete picture of the kernel; the end of the dump schedules a pass.
      if (!synced || w.isSyncing) return;
      const byName = new Map<string, LinkInfo>();
      for (const l of w.model.links.values()) byName.set(l.name, l);
      const wantedAddresses = new Set<string>();
      const wantedRoutes = new Set<string>();

      for (const g of [...addrGroups.values()]) {
        if (stopped) return;
        if (addrGroups.get(g.key) !== g) continue;
        const kkey = await reconcileAddress(g, byName);
        if (kkey !== undefined) wantedAddresses.add(kkey);
      }
      const routesByBase = new Map<string, RouteInfo[]>();
      for (const r of w.model.routes.values()) {
        const list = routesByBase.get(r.baseKey);
        if (list === undefined) routesByBase.set(r.baseKey, [r]);
        else list.push(r);
      }
      for (const g of [...routeGroups.values()]) {
        if (stopped) return;
        if (routeGroups.get(g.key) !== g) continue;
        const base = await reconcileRoute(g, byName, routesByBase);
        if (base !== undefined) wantedRoutes.add(base);
      }

      // What carries our mark but is no longer wanted: ours from this run at once,
      // leftovers of an earlier run once the configuration has settled.
      for (const a of [...w.model.addresses.values()]) {
        if (stopped) return;
        // Without IFA_PROTO (Linux < 6.3) only what this run installed is known to be ours.
        const ours = a.proto === proto || ownedAddresses.has(a.key);
        if (!ours || wantedAddresses.has(a.key)) continue;
        if (!ownedAddresses.has(a.key) && !leftoversAllowed) continue;
        await deleteAddress(a);
      }
      for (const r of [...w.model.routes.values()]) {
        if (stopped) return;
        if (r.protocol !== proto || wantedRoutes.has(r.baseKey)) continue;
        if (!ownedRoutes.has(r.key) && !leftoversAllowed) continue;
        await deleteRoute(r);
      }
    };

    const reconcileAddress = async (
      g: AddressGroup,
      byName: Map<string, LinkInfo>,
    ): Promise<string | undefined> => {
      const e = latest(g.entries);
      const s = e.spec;
      const link = byName.get(s.ifname);
      if (link === undefined) {
        addressState(g, 'pending', `interface ${s.ifname} does not exist`);
        return undefined;
      }
      const family = familyOf(s.version);
      const kkey = addressKey(link.index, family, formatIp(s.bytes), s.prefixlen);
      const k: AddressInfo | undefined = watcher!.model.addresses.get(kkey);
      if (k !== undefined && k.proto !== proto && !ownedAddresses.has(kkey)) {
        addressState(g, 'installed', 'present, not installed by limen: left alone');
        return undefined;
      }
      let valid = s.valid;
      let preferred = s.preferred;
      if (k !== undefined) {
        if (!ownedAddresses.has(kkey)) {
          ownedAddresses.add(kkey);
          stats.adopted++;
          g.note = 'adopted';
          if (valid === undefined && k.valid === INFINITY_LIFE_TIME) g.appliedSeq = e.seq;
        }
        if (g.appliedSeq === e.seq) {
          if (k.flags & IFA_F.DADFAILED)
            addressState(g, 'failed', 'duplicate address detection failed: another host has it');
          else addressState(g, 'installed', k.flags & IFA_F.TENTATIVE ? 'tentative' : g.note);
          return kkey;
        }
      } else if (g.appliedSeq === e.seq) {
        // Removed behind our back (or expired): put it back with what is left of its lifetimes.
        const elapsed = Math.floor((now() - g.appliedAt) / 1000);
        if (valid !== undefined) {
          valid -= elapsed;
          if (valid <= 0) {
            addressState(g, 'failed', 'its valid lifetime expired');
            return kkey;
          }
          preferred = Math.max(0, Math.min(valid, (preferred ?? valid) - elapsed));
        }
        f.engine.logger.warn('address removed by someone else; restoring it', {
          interface: s.ifname,
          address: s.text,
        });
      }
      if (g.failedSeq === e.seq && g.failedGen === kernelGen) return kkey;
      try {
        await request(
          RTM.NEWADDR,
          NLM_F.CREATE | NLM_F.REPLACE,
          newAddressPayload({
            index: link.index,
            version: s.version,
            bytes: s.bytes,
            prefixlen: s.prefixlen,
            valid,
            preferred,
            proto,
          }),
          `add address ${s.text} to ${s.ifname}`,
        );
      } catch (err) {
        if (stopped) return kkey;
        g.failedSeq = e.seq;
        g.failedGen = kernelGen;
        const retry = isTransient(err);
        addressState(g, retry ? 'pending' : 'failed', reasonOf(err));
        return kkey;
      }
      stats.addressAdds++;
      ownedAddresses.add(kkey);
      if (g.appliedSeq !== e.seq) g.appliedAt = now();
      g.appliedSeq = e.seq;
      addressState(g, 'installed', g.note);
      return kkey;
    };

    const deleteAddress = async (a: AddressInfo): Promise<void> => {
      const ip = parseIp(a.address);
      if (ip === undefined) return;
      try {
        await request(
          RTM.DELADDR,
          0,
          delAddressPayload({
            index: a.index,
            version: ip.version,
            bytes: ip.bytes,
            prefixlen: a.prefixlen,
            proto,
          }),
          `delete address ${a.address}/${a.prefixlen}`,
        );
        stats.addressDeletes++;
      } catch (err) {
        if (!stopped && !(err instanceof NetlinkRequestError && err.errnoName === 'EADDRNOTAVAIL'))
          f.engine.logger.warn('could not delete an address', { error: reasonOf(err) });
      }
      ownedAddresses.delete(a.key);
    };

    const routeMatches = (r: RouteInfo, s: RouteSpec, oif: number): boolean =>
      r.nexthops.length === 1 &&
      r.nexthops[0]!.gateway === s.viaText &&
      (s.dev === undefined || r.nexthops[0]!.oif === oif);

    const reconcileRoute = async (
      g: RouteGroup,
      byName: Map<string, LinkInfo>,
      routesByBase: Map<string, RouteInfo[]>,
    ): Promise<string | undefined> => {
      const e = latest(g.entries);
      const s = e.spec;
      const family = familyOf(s.version);
      const base = routeBaseKey(family, RT_TABLE.MAIN, s.dstText, s.dstLen, 0, s.priority);
      let oif = 0;
      if (s.dev !== undefined) {
        const link = byName.get(s.dev);
        if (link === undefined) {
          routeState(g, 'pending', `interface ${s.dev} does not exist`);
          return base;
        }
        oif = link.index;
      }
      const present = routesByBase.get(base) ?? [];
      const ours = present.filter((r) => r.protocol === proto);
      if (ours.length === 0 && present.length > 0) {
        if (present.length === 1 && routeMatches(present[0]!, s, oif))
          routeState(g, 'installed', 'present, not installed by limen: left alone');
        else
          routeState(
            g,
            'failed',
            'a route with this destination and metric exists that limen did not install',
          );
        return base;
      }
      if (ours.length === 1 && routeMatches(ours[0]!, s, oif)) {
        if (!ownedRoutes.has(ours[0]!.key)) {
          ownedRoutes.add(ours[0]!.key);
          stats.adopted++;
          g.note = 'adopted';
        }
        routeState(g, 'installed', g.note);
        return base;
      }
      if (g.failedSeq === e.seq && g.failedGen === kernelGen) return base;
      const req: RouteRequest = {
        version: s.version,
        dst: s.dst,
        dstLen: s.dstLen,
        table: RT_TABLE.MAIN,
        protocol: proto,
        priority: s.priority,
        gateway: s.via,
        oif,
      };
      const dest = s.dstLen === 0 ? 'default' : `${s.dstText}/${s.dstLen}`;
      try {
        await request(
          RTM.NEWROUTE,
          NLM_F.CREATE | NLM_F.REPLACE,
          newRoutePayload(req),
          `add route ${dest}`,
        );
      } catch (err) {
        if (stopped) return base;
        g.failedSeq = e.seq;
        g.failedGen = kernelGen;
        const retry = isTransient(err);
        routeState(g, retry ? 'pending' : 'failed', reasonOf(err));
        return base;
      }
      stats.routeAdds++;
      for (const r of watcher!.model.routes.values())
        if (r.baseKey === base && r.protocol === proto) ownedRoutes.add(r.key);
      g.note = '';
      routeState(g, 'installed', '');
      return base;
    };

    const deleteRoute = async (r: RouteInfo): Promise<void> => {
      const dst = r.dstLen === 0 ? undefined : parseIp(r.dst);
      const version: IpVersion = r.family === AF.INET6 ? 6 : 4;
      const nh = r.nexthops.length === 1 ? r.nexthops[0] : undefined;
      const gw = nh?.gateway === undefined ? undefined : parseIp(nh.gateway);
      try {
        await request(
          RTM.DELROUTE,
          0,
          delRoutePayload({
            version,
            dst: dst?.bytes ?? new Uint8Array(version === 4 ? 4 : 16),
            dstLen: r.dstLen,
            table: r.table,
            protocol: proto,
            priority: r.priority,
            gateway: gw?.bytes,
            oif: nh?.oif ?? 0,
          }),
          `delete route ${r.dstLen === 0 ? 'default' : `${r.dst}/${r.dstLen}`}`,
        );
        stats.routeDeletes++;
      } catch (err) {
        if (!stopped && !(err instanceof NetlinkRequestError && err.errnoName === 'ESRCH'))
          f.engine.logger.warn('could not delete a route', { error: reasonOf(err) });
      }
      ownedRoutes.delete(r.key);
    };

    // ---- Wiring -----------------------------------------------------------------------------

    try {
      watcher = new KernelWatcher({
        recvBufferSize: opts.recvBufferSize,
        logger: f.engine.logger,
        transport: opts.transport,
      });
    } catch (e) {
      f.engine.logger.error('address/route reconciler: netlink is not available', {
        error: reasonOf(e),
      });
      ready = Promise.reject(e instanceof Error ? e : new Error(String(e)));
      ready.catch(() => {});
      stopped = true;
      closedResolve();
      return;
    }
    const w = watcher;
    ready = w.ready;
    f.onStop(() => {
      stopped = true;
      w.close();
      if (!running) closedResolve();
      const waiters = idleWaiters;
      idleWaiters = [];
      for (const fn of waiters) fn();
    });
    const sub = w.onChanges(() => {
      kernelGen++;
      schedule();
    });
    f.onStop(() => sub.dispose());
    // After a resync (lost events, a new socket) failed requests are worth another try.
    const syncedSub = w.onSynced(() => {
      kernelGen++;
      schedule();
    });
    f.onStop(() => syncedSub.dispose());
    let graceTimer: NodeJS.Timeout | undefined;
    f.onStop(() => clearTimeout(graceTimer));
    const allowLeftovers = () => {
      if (stopped || leftoversAllowed) return;
      leftoversAllowed = true;
      schedule();
    };
    void w.ready.then(
      () => {
        if (stopped) return;
        synced = true;
        schedule();
        if (opts.settled !== undefined) void opts.settled.then(allowLeftovers, allowLeftovers);
        else graceTimer = setTimeout(allowLeftovers, opts.leftoverGraceMs ?? 10_000);
      },
      () => {},
    );

    const addEntry = <S>(
      groups: Map<string, { key: string; entries: Entry<S>[] }>,
      key: string,
      make: () => { key: string; entries: Entry<S>[] },
      entry: Entry<S>,
    ) => {
      let g = groups.get(key);
      if (g === undefined) {
        g = make();
        groups.set(key, g);
      }
      g.entries.push(entry);
    };
    const removeEntry = <S>(
      groups: Map<string, { key: string; entries: Entry<S>[] }>,
      prefix: string,
      value: Value,
    ) => {
      for (const g of groups.values()) {
        const i = g.entries.findIndex((e) => is(e.value, value));
        if (i < 0) continue;
        g.entries.splice(i, 1);
        if (g.entries.length === 0) {
          groups.delete(g.key);
          setState(`${prefix}:${g.key}`, []);
        }
        return;
      }
    };
    const failInvalid = (value: Value, stateValue: Value) => {
      invalid.set(value, f.assert(opts.config, stateValue));
    };

    /** A retracted desired value: drop its failure report if it was invalid, else its entry. */
    const withdraw = (value: Value, remove: () => void) => {
      const h = invalid.get(value);
      if (h !== undefined) {
        invalid.delete(value);
        f.retract(h);
        return;
      }
      remove();
      schedule();
    };
    f.observe(opts.config, P.rec('ip-address'), {
      onAdd: (value) => {
        const spec = checkIpAddress(value);
        if (Array.isArray(spec)) {
          const [ifv = false, addr = false] = rawFields(value);
          failInvalid(value, record('ip-address-state', ifv, addr, sym('failed'), spec.join('; ')));
          return;
        }
        const s = spec;
        const key = `${s.ifname}|${s.text}`;
        addEntry(
          addrGroups,
          key,
          () => ({
            key,
            entries: [],
            appliedSeq: 0,
            appliedAt: 0,
            failedSeq: 0,
            failedGen: -1,
            note: '',
          }),
          { value, seq: ++seq, spec: s },
        );
        schedule();
      },
      onRemove: (value) => withdraw(value, () => removeEntry(addrGroups, 'a', value)),
    });
    f.observe(opts.config, P.rec('ip-route'), {
      onAdd: (value) => {
        const spec = checkIpRoute(value);
        if (Array.isArray(spec)) {
          const [fam = false, dest = false, o] = rawFields(value);
          const d = o === undefined ? undefined : peel(o);
          const m = d instanceof Dict ? d.get(sym('metric')) : undefined;
          failInvalid(
            value,
            record('ip-route-state', fam, dest, m ?? 0, sym('failed'), spec.join('; ')),
          );
          return;
        }
        const s = spec;
        const key = `${s.version}|${s.dstText}/${s.dstLen}|${s.priority}`;
        addEntry(
          routeGroups,
          key,
          () => ({ key, entries: [], failedSeq: 0, failedGen: -1, note: '' }),
          { value, seq: ++seq, spec: s },
        );
        schedule();
      },
      onRemove: (value) => withdraw(value, () => removeEntry(routeGroups, 'r', value)),
    });
  }, 'address-route');

  return {
    facet,
    get ready() {
      return ready;
    },
    closed,
    stats,
    whenIdle: () =>
      !running && !scheduled && !dirty
        ? Promise.resolve()
        : new Promise<void>((r) => idleWaiters.push(r)),
    stop: () => facet.stop(),
  };
}
