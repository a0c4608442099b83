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

import { record, type Value } from '../preserves/index.ts';
import type { Facet, Ref } from '../dataspace/index.ts';
import { startDhcpLeases } from './dhcp-lease.ts';
import { startStaticConfig } from './static-config.ts';

export interface ProtocolOptions {
  readonly config: Ref;
  readonly machine: Ref;
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
  /** The families it configures (one protocol of each family per interface). */
  readonly families: readonly ('ipv4' | 'ipv6')[];
  /** Starts its driver in a child facet of `parent`; stopping that facet stops it. */
  start(parent: Facet, o: ProtocolOptions): Facet;
  readonly release?: ProtocolRelease;
  readonly progress?: readonly ProtocolProgress[];
}

export const PROTOCOLS: readonly InterfaceProtocol[] = [
  {
    name: 'dhcp',
    families: ['ipv4'],
    start: (parent, o) => startDhcpLeases(parent, { config: o.config }).facet,
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
    name: 'static',
    families: ['ipv4', 'ipv6'],
    start: (parent, o) => startStaticConfig(parent, { config: o.config }).facet,
  },
];

/** Starts every protocol's driver; the facets returned stop them. */
export function startInterfaceProtocols(parent: Facet, o: ProtocolOptions): Facet[] {
  return PROTOCOLS.map((p) => p.start(parent, o));
}
