// The address-provider contract's shared half (docs/architecture.md, "The provider
// contract"): every interface protocol (static, dhcp, and the ones to come: pppoe,
// l2tp, dhcpv6) describes what it learned as one ProvidedConfig, and this module
// alone turns that into the desired state the kernel drivers act on: `<ip-address
// IF "ADDR/LEN" {…}>`, `<ip-route FAMILY DEST {via dev metric}>`, `<dns-server A
// SOURCE>`, `<dns-search D SOURCE>`, `<ntp-server A SOURCE>`, `<interface-mtu IF N>`,
// `<interface-over UPPER LOWER>` and `<delegated-prefix IF "PREFIX/LEN" {…} SOURCE>`, and
// reports what the kernel configured by itself (`<kernel-address …>`, `<kernel-route …>`). A protocol never builds those
// records itself, so a default route of either family, an MTU or a delegated prefix
// means the same whatever protocol learned it.

import { Dict, record, sym, type Value } from '../preserves/index.ts';

/** An address with its prefix length; lifetimes in seconds (absent: forever). */
export interface ProvidedAddress {
  /** "ADDR/LEN". */
  readonly cidr: string;
  readonly validSeconds?: number | undefined;
  readonly preferredSeconds?: number | undefined;
  /** Changes on every renewal (DHCP's event), so the address's lifetimes are refreshed. */
  readonly renewed?: string | undefined;
}

export interface ProvidedRoute {
  readonly family: 'ipv4' | 'ipv6';
  /** "default" or "PREFIX/LEN". */
  readonly destination: string;
  readonly via?: string | undefined;
  readonly metric: number;
}

/** What one protocol learned for one interface: the one shape every protocol publishes. */
export interface ProvidedConfig {
  /**
   * The interface the settings apply to: the configured one, or the one the protocol
   * created (a PPP link's ppp0).
   */
  readonly ifname: string;
  /**
   * The configured interface, when `ifname` is one the protocol created over it
   * (`<interface-over "ppp-wan0" "wan0">`: a firewall zone naming wan0 takes it in).
   */
  readonly over?: string | undefined;
  /** Where DNS and NTP servers came from, in their assertions: `<dhcp "wan0">`, `static`. */
  readonly source: Value;
  readonly addresses: readonly ProvidedAddress[];
  readonly routes: readonly ProvidedRoute[];
  readonly dns: readonly string[];
  readonly domains: readonly string[];
  readonly ntp: readonly string[];
  readonly mtu?: number | undefined;
  /** Prefixes delegated to this router (DHCPv6 IA_PD), for its LAN interfaces. */
  readonly delegatedPrefixes?: readonly ProvidedAddress[] | undefined;
  /**
   * What the kernel configured by itself for this protocol (an RA's SLAAC address and
   * default route, with accept_ra=2): reported as `<kernel-address IF "ADDR/LEN" {}
   * SOURCE>` and `<kernel-route FAMILY DEST {via dev metric} SOURCE>`, never desired,
   * so that nothing is installed twice and the kernel keeps the RA's lifetimes.
   */
  readonly kernel?:
    | { readonly addresses: readonly ProvidedAddress[]; readonly routes: readonly ProvidedRoute[] }
    | undefined;
}

function routeSpec(p: ProvidedConfig, r: ProvidedRoute): Dict {
  const spec = new Dict();
  if (r.via !== undefined) spec.set(sym('via'), r.via);
  spec.set(sym('dev'), p.ifname);
  spec.set(sym('metric'), r.metric);
  return spec;
}

function lifetimes(a: ProvidedAddress): Dict {
  const d = new Dict();
  if (a.validSeconds !== undefined) d.set(sym('valid'), a.validSeconds);
  if (a.preferredSeconds !== undefined) d.set(sym('preferred'), a.preferredSeconds);
  if (a.renewed !== undefined) d.set(sym('renewed'), a.renewed);
  return d;
}

/** The desired state a protocol's provided configuration gives: the one shared path. */
export function providedAssertions(p: ProvidedConfig): Value[] {
  const out: Value[] = [];
  if (p.over !== undefined && p.over !== p.ifname)
    out.push(record('interface-over', p.ifname, p.over));
  for (const a of p.addresses) out.push(record('ip-address', p.ifname, a.cidr, lifetimes(a)));
  for (const r of p.routes)
    out.push(record('ip-route', sym(r.family), r.destination, routeSpec(p, r)));
  for (const a of p.dns) out.push(record('dns-server', a, p.source));
  for (const d of p.domains) out.push(record('dns-search', d, p.source));
  for (const a of p.ntp) out.push(record('ntp-server', a, p.source));
  if (p.mtu !== undefined) out.push(record('interface-mtu', p.ifname, p.mtu));
  for (const d of p.delegatedPrefixes ?? [])
    out.push(record('delegated-prefix', p.ifname, d.cidr, lifetimes(d), p.source));
  for (const a of p.kernel?.addresses ?? [])
    out.push(record('kernel-address', p.ifname, a.cidr, lifetimes(a), p.source));
  for (const r of p.kernel?.routes ?? [])
    out.push(record('kernel-route', sym(r.family), r.destination, routeSpec(p, r), p.source));
  return out;
}
