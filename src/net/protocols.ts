// Interface protocols (docs/architecture.md, "The provider contract"): each
// `<configure-interface IF <NAME …>>` method is one InterfaceProtocol in PROTOCOLS.
// A protocol's driver is started once and handles every interface configured with
// it: it runs its programs under the supervisor (through `<daemon …>` assertions,
// from its driver or its script in config/core), turns what they learn into one
// ProvidedConfig (src/net/provided.ts), and reports `<interface-failed IF REASON>`
// when it cannot. `<interface-configured IF>` follows from the addresses it provided
// being installed (config/core/network.pr). Going down cleanly is described here,
// so that `limen ifdown` (interface-control.ts) serves every protocol alike.
//
// Sharing an interface: at most one IPv4 and one IPv6 protocol run on one interface
// (dhcp and dhcpv6 on wan0; a protocol that configures both families, such as
// static, counts as both). A protocol may run over an interface another one created
// (dhcpv6 over a PPP link's ppp0): it is configured on that interface's name.

import { Record, Sym, ValueMap, peel, record, type Value } from '../preserves/index.ts';
import {
  P,
  anyRecord,
  declareFailures,
  spawnDriver,
  type Driver,
  type Facet,
  type Handle,
  type Ref,
} from '../dataspace/index.ts';
import { startDhcpLeases } from './dhcp-lease.ts';
import { startStaticConfig } from './static-config.ts';
import { startPppoe } from './pppoe.ts';
import { startL2tp } from './l2tp.ts';
import { startDhcpv6 } from './dhcpv6.ts';
import { ipFamily, type IpFamily } from './inet-values.ts';

export interface ProtocolOptions {
  readonly config: Ref;
  readonly machine: Ref;
  /** $log: the output lines of the programs a protocol runs (absent in a plan's sandbox). */
  readonly log?: Ref | undefined;
}

/** What `limen ifdown` does for a protocol before the link goes down. */
export interface ProtocolRelease {
  /** The `$config` record `<LABEL IF …>` present while the protocol holds a session. */
  readonly session: string;
  /** In progress messages: "the DHCP lease" (releasing …), "the lease" (… is released). */
  readonly what: string;
  readonly short: string;
  /** The message that ends the session (a DHCPRELEASE, a PPP hang-up). */
  readonly message: (ifname: string) => Value;
}

/** A `$config` record `<LABEL IF DETAIL>` worth showing while ifup/ifdown waits. */
export interface ProtocolProgress {
  readonly label: string;
  /** The progress line for DETAIL. */
  readonly say: (ifname: string, detail: string) => string;
}

export interface InterfaceProtocol {
  /** The method's label: `<configure-interface IF <NAME …>>`. */
  readonly name: string;
  /** The families a method configures (one protocol of each family per interface). */
  readonly families: (method: Value) => readonly IpFamily[];
  /** Starts its driver in a child facet of `parent` (src/dataspace/driver.ts). */
  start(parent: Facet, o: ProtocolOptions): Driver;
  readonly release?: ProtocolRelease;
  readonly progress?: readonly ProtocolProgress[];
  /**
   * True when the protocol creates the interface it configures (l2tp's PPP link):
   * ifup does not answer "no such interface" before it exists.
   */
  readonly creates?: boolean;
}

const PPP_PROGRESS: readonly ProtocolProgress[] = [
  { label: 'ppp-session', say: (ifname, d) => `ppp session on ${ifname}: ${d}` },
  { label: 'ppp-error', say: (ifname, d) => `ppp error on ${ifname}: ${d}` },
];

export const PROTOCOLS: readonly InterfaceProtocol[] = [
  {
    name: 'dhcp',
    families: () => ['ipv4'],
    start: (parent, o) => startDhcpLeases(parent, { config: o.config }),
    release: {
      session: 'dhcp-lease',
      what: 'the DHCP lease',
      short: 'the lease',
      message: (ifname) => record('dhcp-release', ifname),
    },
    progress: [
      { label: 'dhcp-lease', say: (ifname, d) => `dhcp lease on ${ifname}: ${d}` },
      { label: 'dhcp-error', say: (ifname, d) => `dhcp error on ${ifname}: ${d}` },
    ],
  },
  {
    name: 'dhcpv6',
    families: () => ['ipv6'],
    start: (parent, o) => startDhcpv6(parent, { config: o.config, machine: o.machine }),
    release: {
      session: 'dhcpv6-lease',
      what: 'the DHCPv6 lease',
      short: 'the lease',
      message: (ifname) => record('dhcpv6-release', ifname),
    },
    progress: [
      { label: 'dhcpv6-lease', say: (ifname, d) => `dhcpv6 lease on ${ifname}: ${d}` },
      { label: 'dhcpv6-error', say: (ifname, d) => `dhcpv6 error on ${ifname}: ${d}` },
    ],
  },
  {
    name: 'pppoe',
    families: () => ['ipv4'],
    start: (parent, o) => startPppoe(parent, o),
    release: {
      session: 'ppp-session',
      what: 'the PPPoE session',
      short: 'the session',
      message: (ifname) => record('ppp-hangup', ifname),
    },
    progress: PPP_PROGRESS,
  },
  {
    name: 'l2tp',
    families: () => ['ipv4'],
    start: (parent, o) => startL2tp(parent, o),
    release: {
      session: 'ppp-session',
      what: 'the L2TP session',
      short: 'the session',
      message: (ifname) => record('l2tp-hangup', ifname),
    },
    progress: PPP_PROGRESS,
    creates: true,
  },
  {
    name: 'static',
    // The family of its address ("ADDR/LEN"); none when that is not an address.
    families: (method) => {
      const m = peel(method);
      const cidr = m instanceof Record ? peel(m.fields[0] ?? false) : undefined;
      const family = typeof cidr === 'string' ? ipFamily(cidr.split('/')[0]!) : undefined;
      return family === undefined ? [] : [family];
    },
    start: (parent, o) => startStaticConfig(parent, { config: o.config }),
  },
];

/** Starts every protocol's driver and the sharing rule. */
export function startInterfaceProtocols(parent: Facet, o: ProtocolOptions): Driver[] {
  return [...PROTOCOLS.map((p) => p.start(parent, o)), startSharingRule(parent, o.config)];
}

/** The protocol named by a `<configure-interface IF METHOD>`'s METHOD, if limen has it. */
export function protocolOf(method: Value): InterfaceProtocol | undefined {
  const m = peel(method);
  const label = m instanceof Record ? peel(m.label) : undefined;
  return label instanceof Sym ? PROTOCOLS.find((p) => p.name === label.name) : undefined;
}

/**
 * One IPv4 and one IPv6 protocol per interface: two of one family on the same
 * interface (dhcp and static on wan0) are `<interface-failed IF "…">`, naming both,
 * while they last. (Each still runs: which one the site meant is for it to say.)
 */
function startSharingRule(parent: Facet, config: Ref): Driver {
  return spawnDriver(parent, 'interface protocols: sharing', (f) => {
    declareFailures(f, config, anyRecord('interface-failed', 2));
    /** Interface → `NAME FAMILY` → count of `<configure-interface IF <NAME …>>`. */
    const byInterface = new ValueMap<Map<string, number>>();
    const reported = new ValueMap<Handle>();
    const check = (ifname: Value) => {
      const keys = [...(byInterface.get(ifname)?.keys() ?? [])].sort();
      const clash = (['ipv4', 'ipv6'] as const)
        .map((family) => keys.filter((k) => k.endsWith(` ${family}`)).map((k) => k.split(' ')[0]!))
        .find((list) => list.length > 1);
      const old = reported.get(ifname);
      if (old !== undefined) f.retract(old);
      reported.delete(ifname);
      if (clash !== undefined)
        reported.set(
          ifname,
          f.assert(
            config,
            record(
              'interface-failed',
              ifname,
              `${clash.join(' and ')} both configure one address family here: keep one (one IPv4 and one IPv6 protocol per interface)`,
            ),
          ),
        );
    };
    const count = (ifname: Value, method: Value, d: number) => {
      const p = protocolOf(method);
      if (p === undefined) return;
      const names = byInterface.get(ifname) ?? new Map<string, number>();
      for (const family of p.families(method)) {
        const key = `${p.name} ${family}`;
        const n = (names.get(key) ?? 0) + d;
        if (n > 0) names.set(key, n);
        else names.delete(key);
      }
      if (names.size > 0) byInterface.set(ifname, names);
      else byInterface.delete(ifname);
      check(ifname);
    };
    f.observe(config, P.rec('configure-interface', P.bind('if'), P.bind('method')), {
      onAdd: (_v, c) => count(c.get('if')!, c.get('method')!, +1),
      onRemove: (_v, c) => count(c.get('if')!, c.get('method')!, -1),
    });
  });
}
