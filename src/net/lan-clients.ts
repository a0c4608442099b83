// The LAN client list: one `<lan-client IF MAC {hostname ipv4 ipv6 expires}>` in
// $machine for every hardware address on a LAN interface (one with `<lan-dhcp IF …>`
// in $config) that holds a DHCPv4 lease of the LAN's dnsmasq (`<dhcp-client …>`) or
// is the kernel's IPv6 neighbour with a global or ULA address (`<neighbour IF ipv6
// …>`, from the interface monitor): with SLAAC, dnsmasq never hears of a host's IPv6
// addresses, so the neighbour table is where they are seen.
//
// Invariants: a client's value is derived from what is asserted now, and replaced
// at most once per turn, after every change of that turn (a renewed lease or a
// neighbour's new address is one replace, never a retract and an assert seen
// apart); link-local addresses are left out (every host has one, and they name no
// one beyond the link); the list is as bounded as its inputs (the monitor's
// neighbour cap per interface, dnsmasq's leases).

import {
  P,
  during,
  spawnDriver,
  type Driver,
  type Facet,
  type Handle,
  type Ref,
} from '../dataspace/index.ts';
import { dict, is, peel, record, sym, type Value } from '../preserves/index.ts';
import { ipv6UnicastProblem, parseIpv4 } from './inet-values.ts';

/** A lease as `<dhcp-client IF MAC IP HOSTNAME EXPIRES>` says it. */
export interface ClientLease {
  readonly ip: string;
  readonly hostname: string | undefined;
  /** Seconds since the epoch, or undefined: never. */
  readonly expires: number | undefined;
}

/** True for an address a LAN client is known by: global unicast or ULA, not link-local. */
export function isClientIpv6(address: string): boolean {
  return ipv6UnicastProblem(address) === undefined;
}

const ipv4Order = (a: string, b: string) => (parseIpv4(a) ?? 0) - (parseIpv4(b) ?? 0);

/**
 * `<lan-client IF MAC {hostname: H ipv4: [A …] ipv6: [A …] expires: E}>`: HOSTNAME
 * the first lease's that has one, or #f; EXPIRES the latest lease's end (seconds
 * since the epoch, `never`), or #f without a lease. Addresses sorted, each once.
 */
export function lanClientValue(
  ifname: string,
  mac: string,
  leases: readonly ClientLease[],
  ipv6: readonly string[],
): Value {
  const byIp = [...leases].sort((a, b) => ipv4Order(a.ip, b.ip));
  const hostname = byIp.find((l) => l.hostname !== undefined)?.hostname;
  let expires: number | 'never' | undefined;
  for (const l of byIp) {
    if (l.expires === undefined) expires = 'never';
    else if (expires !== 'never' && (expires === undefined || l.expires > expires))
      expires = l.expires;
  }
  return record(
    'lan-client',
    ifname,
    mac,
    dict({
      hostname: hostname ?? false,
      ipv4: [...new Set(byIp.map((l) => l.ip))],
      ipv6: [...new Set(ipv6)].sort(),
      expires: expires === undefined ? false : expires === 'never' ? sym('never') : expires,
    }),
  );
}

export interface LanClientsOptions {
  readonly config: Ref;
  readonly machine: Ref;
}

/** Starts the client list in a child facet of `parent`. */
export function startLanClients(parent: Facet, o: LanClientsOptions): Driver {
  return spawnDriver(parent, 'lan-clients', (f) => {
    during(
      f,
      o.config,
      P.rec('lan-dhcp', P.bind('if'), P._),
      (child, c) => {
        const ifname = peel(c.get('if')!);
        if (typeof ifname === 'string') followInterface(child, o.machine, ifname);
      },
      'lan-clients: lan-dhcp',
    );
  });
}

interface Client {
  /** Each lease assertion, by its fields, with how many times it is asserted. */
  readonly leases: Map<string, { lease: ClientLease; count: number }>;
  /** Global and ULA addresses, with how many neighbour assertions name them. */
  readonly ipv6: Map<string, number>;
  handle: Handle | undefined;
  value: Value | undefined;
}

function followInterface(f: Facet, machine: Ref, ifname: string): void {
  const clients = new Map<string, Client>();
  const dirty = new Set<string>();
  const clientOf = (mac: string): Client => {
    let c = clients.get(mac);
    if (c === undefined)
      clients.set(
        mac,
        (c = { leases: new Map(), ipv6: new Map(), handle: undefined, value: undefined }),
      );
    return c;
  };
  const flush = (): void => {
    for (const mac of dirty) {
      const c = clients.get(mac);
      if (c === undefined) continue;
      const leases = [...c.leases.values()].map((x) => x.lease);
      const value =
        leases.length === 0 && c.ipv6.size === 0
          ? undefined
          : lanClientValue(ifname, mac, leases, [...c.ipv6.keys()]);
      if (value !== undefined && c.value !== undefined && is(value, c.value)) continue;
      c.handle = f.replace(c.handle, machine, value);
      c.value = value;
      if (value === undefined) clients.delete(mac);
    }
    dirty.clear();
  };
  const touch = (mac: string): void => {
    // The first change of a turn queues one flush after it, for every client it touched.
    if (dirty.size === 0) f.turn(flush);
    dirty.add(mac);
  };
  const count = <K>(m: Map<K, number>, k: K, d: number) => {
    const n = (m.get(k) ?? 0) + d;
    if (n > 0) m.set(k, n);
    else m.delete(k);
  };

  const onLease = (d: number) => (_v: Value, c: Map<string, Value>) => {
    const mac = peel(c.get('mac')!);
    const ip = peel(c.get('ip')!);
    const host = peel(c.get('host')!);
    const exp = peel(c.get('exp')!);
    if (typeof mac !== 'string' || typeof ip !== 'string') return;
    const lease: ClientLease = {
      ip,
      hostname: typeof host === 'string' ? host : undefined,
      expires: typeof exp === 'number' ? exp : undefined,
    };
    const key = `${ip} ${lease.hostname ?? ''} ${lease.expires ?? 'never'}`;
    const client = clientOf(mac.toLowerCase());
    const held = client.leases.get(key);
    if (d > 0) client.leases.set(key, { lease, count: (held?.count ?? 0) + 1 });
    else if (held !== undefined && --held.count === 0) client.leases.delete(key);
    touch(mac.toLowerCase());
  };
  f.observe(
    machine,
    P.rec('dhcp-client', P.lit(ifname), P.bind('mac'), P.bind('ip'), P.bind('host'), P.bind('exp')),
    { onAdd: onLease(+1), onRemove: onLease(-1) },
  );

  const onNeighbour = (d: number) => (_v: Value, c: Map<string, Value>) => {
    const mac = peel(c.get('mac')!);
    const a = peel(c.get('a')!);
    if (typeof mac !== 'string' || typeof a !== 'string' || !isClientIpv6(a)) return;
    count(clientOf(mac.toLowerCase()).ipv6, a, d);
    touch(mac.toLowerCase());
  };
  f.observe(
    machine,
    P.rec('neighbour', P.lit(ifname), P.lit(sym('ipv6')), P.bind('a'), P.bind('mac'), P._),
    { onAdd: onNeighbour(+1), onRemove: onNeighbour(-1) },
  );
}
