// The patterns the views watch, in the JSON mapping (`?x` and `_` are symbols), with
// the dataspace each lives in (docs/vocabulary.md).

import { rec, sym } from './values.ts';

const _ = sym('_');
const cap = (name: string) => sym('?' + name);

export const currentFailure = rec('current-failure', cap('f'));
export const configureInterface = rec('configure-interface', cap('if'), cap('proto'));
export const firewallZone = rec('firewall-zone', cap('zone'), cap('ifs'));
export const dhcpLease = rec('dhcp-lease', cap('if'), cap('lease'));
export const dnsServer = rec('dns-server', cap('addr'), cap('source'));
export const serviceState = rec('service-state', cap('s'), cap('state'));
export const serviceProcess = rec('service-process', cap('s'), cap('info'));
export const requireService = rec('require-service', cap('s'));
export const dependsOn = rec('depends-on', cap('s'), cap('dep'));

// $machine
export const address = rec(
  'address',
  cap('if'),
  cap('family'),
  cap('addr'),
  cap('len'),
  cap('info'),
);
export const defaultRoute = rec(
  'route',
  cap('family'),
  'default',
  cap('prio'),
  cap('table'),
  cap('ifname'),
  cap('gw'),
);
export const lanClient = rec('lan-client', cap('if'), cap('mac'), cap('info'));
export const networkInterface = rec(
  'interface',
  cap('name'),
  cap('index'),
  cap('type'),
  cap('admin'),
  cap('oper'),
  cap('carrier'),
  cap('mac'),
);

export { _ };
