// The `l2tp` interface protocol (docs/architecture.md, "The provider contract"):
// `<configure-interface IF <l2tp {server: "LNS" via: "wan0" user: "NAME"
// password-file: "/PATH" …}>>` runs xl2tpd as the LAC (L2TP access concentrator;
// the kernel's L2TP data path, pppol2tp) under the supervisor, once the underlying
// WAN `via` is configured and has a default gateway. Its pppd creates the PPP
// interface IF itself, whose link pppd's ip-up hook (libexec/ppp-hook) hands over
// as for PPPoE (src/net/ppp-link.ts): the address on IF, the default route through
// it (metric 50, below a DHCP lease's 100, so the tunnel is preferred while it is
// up), the LNS's DNS servers. The route to the LNS itself is pinned to the
// underlying WAN's gateway (`<ip-route ipv4 "LNS/32" {via dev: VIA metric: 0}>`),
// so the tunnel never routes through itself.
//
// The secret never appears on a command line, in a log, in `limen status` or in an
// assertion: xl2tpd starts its pppd itself (so no descriptor can carry the secret
// to every redial, as passwordfd.so does for PPPoE, and pppd's passprompt plugin
// serves PAP only), so the shell that starts xl2tpd copies it with builtins into
// pppd's options file in the service's private directory (mode 0600 in a 0700
// directory under limen's run directory, emptied with the service's outputs); only
// the password file's path is in the configuration.

import { Dict, record, sym, type Value } from '../preserves/index.ts';
import { P, during, type Driver, type Facet } from '../dataspace/index.ts';
import { isInterfaceName } from '../base/interface-name.ts';
import { ipv4HostProblem } from './inet-values.ts';
import { providedAssertions } from './provided.ts';
import { followOutputs } from './service-outputs.ts';
import {
  dialPpp,
  interpretPppLink,
  methodOptions,
  startPppProtocol,
  type PppDriverOptions,
  type PppLinkKind,
} from './ppp-link.ts';

/** A validated `<l2tp {…}>`. */
export interface L2tpOptions {
  /** The LNS's IPv4 address. */
  readonly server: string;
  /** The underlying WAN interface the tunnel runs over. */
  readonly via: string;
  readonly user: string;
  readonly passwordFile: string;
  readonly mtu: number;
  readonly lcpEchoInterval: number;
  readonly lcpEchoFailure: number;
  /** Seconds between xl2tpd's redials. */
  readonly redialTimeout: number;
  readonly authRetry: number;
}

const KEYS = [
  'server',
  'via',
  'user',
  'password-file',
  'mtu',
  'lcp-echo-interval',
  'lcp-echo-failure',
  'redial-timeout',
  'auth-retry',
] as const;

const EXAMPLE = '<l2tp {server: "ADDRESS" via: "wan0" user: "NAME" password-file: "/PATH" …}>';

/** An L2TP link's default route wins over the underlying WAN's (a DHCP lease's 100). */
export const L2TP_LINK: PppLinkKind = { protocol: 'l2tp', metric: 50, over: false };

/** Reads `<l2tp {…}>` for interface IF (the PPP interface it creates): the options, or every problem. */
export function readL2tp(
  ifname: string,
  method: Value,
): { ok: true; options: L2tpOptions } | { ok: false; problems: string[] } {
  const r = methodOptions(method, KEYS, EXAMPLE);
  if (r === undefined) return { ok: false, problems: [`expected ${EXAMPLE}`] };
  const { problems, text, count, path } = r;
  const server = text('server', true);
  if (server !== undefined && ipv4HostProblem(server) !== undefined)
    problems.push(`server ${server}: ${ipv4HostProblem(server)!} (an IPv4 address)`);
  const via = text('via', true);
  if (via !== undefined && !isInterfaceName(via))
    problems.push(`via ${String(via)} is not an interface name`);
  if (via === ifname) problems.push('via must be another interface: the tunnel runs over it');
  const options: L2tpOptions = {
    server: server ?? '',
    via: via ?? '',
    user: text('user', true) ?? '',
    passwordFile: path('password-file') ?? '',
    mtu: count('mtu', 1400, 576, 1460),
    lcpEchoInterval: count('lcp-echo-interval', 5, 1, 3600),
    lcpEchoFailure: count('lcp-echo-failure', 3, 1, 100),
    redialTimeout: count('redial-timeout', 5, 1, 3600),
    authRetry: count('auth-retry', 300, 1, 86400),
  };
  return problems.length > 0 ? { ok: false, problems } : { ok: true, options };
}

/**
 * The shell that writes xl2tpd's configuration and pppd's options (with the secret)
 * into `$LIMEN_OUTPUTS/.l2tp` (a dot-directory: never read as outputs; the
 * supervisor empties it between runs), then execs xl2tpd in the foreground. Every
 * value reaches it as an argument, and was checked: printable, no spaces or quotes.
 */
const XL2TPD_SCRIPT = `set -eu
umask 077
dir="$LIMEN_OUTPUTS/.l2tp"
mkdir -p "$dir"; chmod 700 "$dir"
{
  printf '%s\\n' "name $3" "ifname $2" noauth noipdefault nodefaultroute usepeerdns \\
    "mtu $5" "mru $5" "lcp-echo-interval $6" "lcp-echo-failure $7" "logfd 2" \\
    "ipparam limen:$LIMEN_OUTPUTS"
  secret=$(sed 's/[\\\\"]/\\\\&/g' -- "$4")
  printf 'password "%s"\\n' "$secret"
} > "$dir/options"
printf '%s\\n' '[global]' 'access control = no' '[lac limen]' "lns = $1" \\
  "pppoptfile = $dir/options" 'pass peer = no' 'autodial = yes' 'redial = yes' \\
  "redial timeout = $8" 'length bit = yes' > "$dir/xl2tpd.conf"
exec xl2tpd -D -c "$dir/xl2tpd.conf" -s /dev/null -p "$dir/pid" -C "$dir/control"`;

/** xl2tpd's argv for the PPP interface IF. */
export function xl2tpdArgv(ifname: string, o: L2tpOptions): string[] {
  return [
    'sh',
    '-c',
    XL2TPD_SCRIPT,
    'xl2tpd',
    o.server,
    ifname,
    o.user,
    o.passwordFile,
    String(o.mtu),
    String(o.lcpEchoInterval),
    String(o.lcpEchoFailure),
    String(o.redialTimeout),
  ];
}

/** Starts the `l2tp` protocol's driver in a child facet of `parent`. */
export function startL2tp(parent: Facet, o: PppDriverOptions): Driver {
  return startPppProtocol(parent, o, 'l2tp', readL2tp, (child, ifname, options) =>
    runTunnel(child, o, ifname, options),
  );
}

/** The route to the LNS over the underlying WAN's gateway, through the provider contract. */
export function lnsRoute(ifname: string, o: L2tpOptions, gateway: string): Value[] {
  return providedAssertions({
    ifname: o.via,
    source: record('l2tp', ifname),
    addresses: [],
    routes: [{ family: 'ipv4', destination: `${o.server}/32`, via: gateway, metric: 0 }],
    dns: [],
    domains: [],
    ntp: [],
  });
}

/**
 * xl2tpd while the underlying WAN is configured and has a default gateway (the LNS
 * pinned to it), until `! <l2tp-hangup IF>` (ifdown) holds it down; `! <interface-retry
 * IF>` (ifup) lets it dial again. The link's outputs are followed.
 */
function runTunnel(f: Facet, o: PppDriverOptions, ifname: string, options: L2tpOptions): void {
  const service = record('daemon', record('xl2tpd', ifname));
  const kernel = P.rec('kernel-feature', P.lit(sym('l2tp')), P.lit(sym('present')));
  const configured = P.rec('interface-configured', P.lit(options.via));
  const gateway = P.rec(
    'route',
    P.lit(sym('ipv4')),
    P.lit('default'),
    P._,
    P.lit(sym('main')),
    P.lit(options.via),
    P.bind('gw'),
  );
  let held = false;
  let up: Facet | undefined;
  const tunnel = (g: Facet, gw: Value) => {
    if (typeof gw !== 'string') return;
    for (const v of lnsRoute(ifname, options, gw)) g.assert(o.config, v);
    const start = () => {
      up = g.spawn((d) =>
        dialPpp(d, o, {
          nic: ifname,
          protocol: 'l2tp',
          service,
          spec: new Dict([
            [sym('argv'), xl2tpdArgv(ifname, options)],
            [sym('restart'), sym('always')],
          ]),
          user: options.user,
          authRetry: options.authRetry,
        }),
      );
    };
    if (!held) start();
    g.observe(o.config, P.rec('l2tp-hangup', P.lit(ifname)), {
      onMessage: () => {
        held = true;
        up?.stop();
        up = undefined;
      },
    });
    g.observe(o.config, P.rec('interface-retry', P.lit(ifname)), {
      onMessage: () => {
        held = false;
        if (up === undefined || !up.isAlive) start();
      },
    });
  };
  during(f, o.machine, kernel, (k) =>
    during(k, o.config, configured, (c) =>
      during(c, o.machine, gateway, (g, cap) => tunnel(g, cap.get('gw')!)),
    ),
  );
  followOutputs(
    f,
    o.config,
    service,
    (latest) => interpretPppLink(ifname, latest, L2TP_LINK).assertions,
    `l2tp: ${ifname}`,
  );
}
