// The network drivers' public surface, for the composition root (src/daemon).
// Each driver is started with `startXxx(facet, options)`; drivers never import
// each other.

export {
  startInterfaceMonitor,
  type InterfaceMonitor,
  type InterfaceMonitorOptions,
} from './interface-monitor.ts';
export {
  LIMEN_PROTOCOL,
  startAddressRouteReconciler,
  type AddressRouteOptions,
  type AddressRouteReconciler,
  type AddressRouteStats,
} from './address-route.ts';
export { startSysctl, type SysctlDriver, type SysctlOptions } from './sysctl.ts';
export { NetlinkUnavailableError } from './netlink-socket.ts';
export { netlinkHelpersExited } from './netlink-proxy.ts';
export {
  startDhcpLeases,
  interpretLease,
  type DhcpLeases,
  type DhcpLeasesOptions,
  type DhcpLease,
} from './dhcp-lease.ts';
export {
  startStaticConfig,
  interpretStatic,
  type StaticConfig,
  type StaticConfigOptions,
} from './static-config.ts';
export {
  startResolver,
  renderResolvConf,
  type Resolver,
  type ResolverOptions,
} from './resolver.ts';
export {
  startLanDhcp,
  readLanDhcp,
  parseLanDhcp,
  renderDnsmasqConf,
  dnsmasqService,
  LanDhcpConfigError,
  type LanDhcp,
  type LanDhcpOptions,
  type LanDhcpConfig,
} from './lan-dhcp.ts';
export {
  startFirewall,
  type AppliedRuleset,
  type Firewall,
  type FirewallOptions,
} from './firewall.ts';
export {
  readFirewall,
  renderRuleset,
  generateRuleset,
  FirewallConfigError,
  NftError,
  type FirewallModel,
} from './nft-ruleset.ts';
export * from './kernel-features.ts';
