// The `pppoe` interface protocol (docs/architecture.md, "The provider contract"):
// `<configure-interface IF <pppoe {user: "NAME" password-file: "/PATH" …}>>` runs
// pppd with its PPPoE plugin on IF under the supervisor (`nodetach`, so the
// supervisor owns it; `persist`, so pppd redials by itself after `holdoff`) while
// IF has carrier and the kernel has PPPoE (`<kernel-feature pppoe present>`), and turns the link that pppd's ip-up hook (libexec/ppp-hook)
// hands over as service outputs into a ProvidedConfig: the address on the PPP
// interface pppd created, the default route through it, the peer's DNS servers.
// `<ppp-session IF {…}>` says a session is up (ifdown ends it with `! <ppp-hangup
// IF>`), and `<ppp-error IF MESSAGE>` what is wrong with the hook's outputs.
//
// The secret never appears on a command line, in a log, in `limen status` or in an
// assertion: pppd reads it from descriptor 3 (its passwordfd.so plugin), which a
// shell opens on the password file just before it execs pppd; only the file's path
// is in the daemon's spec. No secrets file in /etc/ppp is written.

import { Dict, record, sym, type Value } from '../preserves/index.ts';
import { P, during, type Driver, type Facet } from '../dataspace/index.ts';
import { isInterfaceName, MAX_INTERFACE_NAME } from '../base/interface-name.ts';
import { followOutputs } from './service-outputs.ts';
import {
  dialPpp,
  interpretPppLink,
  methodOptions,
  startPppProtocol,
  type PppDriverOptions,
} from './ppp-link.ts';

export { authFailure, interpretPppLink, PPP_ROUTE_METRIC } from './ppp-link.ts';

/** A validated `<pppoe {…}>`. */
export interface PppoeOptions {
  readonly user: string;
  /** An absolute path; pppd reads the secret from it through descriptor 3. */
  readonly passwordFile: string;
  readonly service: string | undefined;
  readonly ac: string | undefined;
  readonly mtu: number;
  readonly mru: number;
  readonly lcpEchoInterval: number;
  readonly lcpEchoFailure: number;
  readonly holdoff: number;
  /** Seconds before dialling again after the ISP refused the credentials. */
  readonly authRetry: number;
  /** The PPP interface pppd creates; default `ppp-IF` (cut to 15 characters). */
  readonly ifname: string;
}

const KEYS = [
  'user',
  'password-file',
  'service',
  'ac',
  'mtu',
  'mru',
  'lcp-echo-interval',
  'lcp-echo-failure',
  'holdoff',
  'auth-retry',
  'ifname',
] as const;

/** Reads `<pppoe {…}>` for interface IF: the options, or every problem. */
export function readPppoe(
  ifname: string,
  method: Value,
): { ok: true; options: PppoeOptions } | { ok: false; problems: string[] } {
  const r = methodOptions(method, KEYS, '<pppoe {user: "NAME" password-file: "/PATH" …}>');
  if (r === undefined)
    return { ok: false, problems: ['expected <pppoe {user: "NAME" password-file: "/PATH" …}>'] };
  const { problems, text, count, path } = r;
  const user = text('user', true);
  const passwordFile = path('password-file');
  const own = text('ifname', false) ?? `ppp-${ifname}`.slice(0, MAX_INTERFACE_NAME);
  if (!isInterfaceName(own)) problems.push(`ifname ${String(own)} is not an interface name`);
  const options: PppoeOptions = {
    user: user ?? '',
    passwordFile: passwordFile ?? '',
    service: text('service', false),
    ac: text('ac', false),
    mtu: count('mtu', 1492, 576, 1500),
    mru: count('mru', 1492, 576, 1500),
    lcpEchoInterval: count('lcp-echo-interval', 5, 1, 3600),
    lcpEchoFailure: count('lcp-echo-failure', 3, 1, 100),
    holdoff: count('holdoff', 5, 0, 3600),
    authRetry: count('auth-retry', 300, 1, 86400),
    ifname: own,
  };
  return problems.length > 0 ? { ok: false, problems } : { ok: true, options };
}

/**
 * pppd's argv for IF: a shell that opens the password file on descriptor 3 and
 * execs pppd with `ipparam limen:$LIMEN_OUTPUTS` (the supervisor's outputs directory
 * for the service, which the hook writes to).
 */
export function pppdArgv(nic: string, o: PppoeOptions): string[] {
  const args = [
    ...['plugin', 'pppoe.so', `nic-${nic}`, 'nodetach', 'noauth', 'user', o.user],
    ...['ifname', o.ifname, 'linkname', `limen-${nic}`, 'noipdefault', 'nodefaultroute'],
    ...['usepeerdns', 'persist', 'maxfail', '0', 'holdoff', String(o.holdoff)],
    // IPV6CP too: the link gets its link-local address (DHCPv6 over it is issue 15's).
    '+ipv6',
    ...['mtu', String(o.mtu), 'mru', String(o.mru)],
    ...['lcp-echo-interval', String(o.lcpEchoInterval)],
    ...['lcp-echo-failure', String(o.lcpEchoFailure)],
    ...(o.service === undefined ? [] : ['rp_pppoe_service', o.service]),
    ...(o.ac === undefined ? [] : ['rp_pppoe_ac', o.ac]),
    ...['plugin', 'passwordfd.so', 'passwordfd', '3'],
  ];
  return [
    'sh',
    '-c',
    'file=$1; shift; exec pppd "$@" ipparam "limen:$LIMEN_OUTPUTS" 3<"$file"',
    'pppd',
    o.passwordFile,
    ...args,
  ];
}

export type PppoeOptionsDriver = PppDriverOptions;

/** Starts the `pppoe` protocol's driver in a child facet of `parent`. */
export function startPppoe(parent: Facet, o: PppoeOptionsDriver): Driver {
  return startPppProtocol(parent, o, 'pppoe', readPppoe, (child, nic, options) =>
    runLink(child, o, nic, options),
  );
}

/** pppd on NIC while it has carrier, and its link's outputs followed. */
function runLink(f: Facet, o: PppoeOptionsDriver, nic: string, options: PppoeOptions): void {
  const service = record('daemon', record('pppd', nic));
  const carrier = P.rec('interface', P.lit(nic), P._, P._, P._, P._, P.lit(sym('carrier')), P._);
  // Only with a kernel that has PPPoE (kernel-features.ts says so, or why not).
  const kernel = P.rec('kernel-feature', P.lit(sym('pppoe')), P.lit(sym('present')));
  during(f, o.machine, kernel, (k) =>
    during(k, o.machine, carrier, (g) =>
      dialPpp(g, o, {
        nic,
        protocol: 'pppoe',
        service,
        spec: new Dict([
          [sym('argv'), pppdArgv(nic, options)],
          [sym('restart'), sym('always')],
        ]),
        user: options.user,
        authRetry: options.authRetry,
      }),
    ),
  );
  followOutputs(
    f,
    o.config,
    service,
    (latest) => interpretPppLink(nic, latest).assertions,
    `pppoe: ${nic}`,
  );
}
