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

import { Dict, type Record, Sym, is, peel, record, sym, type Value } from '../preserves/index.ts';
import {
  P,
  anyRecord,
  declareFailures,
  during,
  spawnDriver,
  type Driver,
  type Facet,
  type Ref,
} from '../dataspace/index.ts';
import { isInterfaceName, MAX_INTERFACE_NAME } from '../base/interface-name.ts';
import { ipv4HostProblem } from './inet-values.ts';
import { providedAssertions } from './provided.ts';
import { followOutputs } from './service-outputs.ts';

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

/** The route metric of a PPP link's default route (as a DHCP lease's). */
export const PPP_ROUTE_METRIC = 100;

/** Reads `<pppoe {…}>` for interface IF: the options, or every problem. */
export function readPppoe(
  ifname: string,
  method: Value,
): { ok: true; options: PppoeOptions } | { ok: false; problems: string[] } {
  const problems: string[] = [];
  const m = peel(method) as Record;
  const d = m.fields.length === 1 ? peel(m.fields[0]!) : undefined;
  if (!(d instanceof Dict))
    return { ok: false, problems: ['expected <pppoe {user: "NAME" password-file: "/PATH" …}>'] };
  const get = (k: string) => {
    const v = d.get(sym(k));
    return v === undefined ? undefined : peel(v);
  };
  for (const [k] of d) {
    const key = peel(k);
    if (!(key instanceof Sym) || !(KEYS as readonly string[]).includes(key.name))
      problems.push(
        `unknown option ${String(key instanceof Sym ? key.name : '?')} (known: ${KEYS.join(', ')})`,
      );
  }
  const text = (k: string, required: boolean): string | undefined => {
    const v = get(k);
    if (v === undefined) {
      if (required) problems.push(`${k} is required`);
      return undefined;
    }
    if (typeof v !== 'string' || v === '' || /[^\x21-\x7e]/.test(v)) {
      problems.push(`${k} must be a non-empty string of printable characters without spaces`);
      return undefined;
    }
    return v;
  };
  const count = (k: string, fallback: number, min: number, max: number): number => {
    const v = get(k);
    if (v === undefined) return fallback;
    if (typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max) return v;
    problems.push(`${k} must be a whole number from ${min} to ${max}`);
    return fallback;
  };
  const user = text('user', true);
  const passwordFile = text('password-file', true);
  if (passwordFile !== undefined && !passwordFile.startsWith('/'))
    problems.push('password-file must be an absolute path');
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

/** What a PPP link's outputs mean: the provided configuration, or nothing yet, and the problems. */
export function interpretPppLink(
  nic: string,
  outputs: ReadonlyMap<string, Value>,
): { assertions: Value[]; problems: string[] } {
  const problems: string[] = [];
  const str = (k: string) => {
    const v = outputs.get(k);
    const p = v === undefined ? undefined : peel(v);
    return typeof p === 'string' ? p.trim() : undefined;
  };
  const event = str('event');
  if (event === undefined) return { assertions: [], problems };
  const ifname = str('ifname');
  const local = str('local');
  const remote = str('remote');
  if (ifname === undefined || !isInterfaceName(ifname))
    problems.push('ifname: not an interface name');
  const localProblem = local === undefined ? 'missing' : ipv4HostProblem(local);
  if (localProblem !== undefined) problems.push(`local: ${localProblem}`);
  const dnsValue = outputs.get('dns');
  const dnsList = dnsValue === undefined ? [] : peel(dnsValue);
  const dns = [
    ...new Set(
      (Array.isArray(dnsList) ? (dnsList as Value[]) : [])
        .map((v) => peel(v))
        .filter((a): a is string => typeof a === 'string' && ipv4HostProblem(a) === undefined),
    ),
  ];
  const errors = problems.map((p) => record('ppp-error', nic, p));
  if (problems.length > 0 || ifname === undefined || local === undefined)
    return { assertions: errors, problems };
  return {
    assertions: [
      ...providedAssertions({
        ifname,
        over: nic,
        source: record('pppoe', nic),
        addresses: [{ cidr: `${local}/32` }],
        routes: [{ family: 'ipv4', destination: 'default', metric: PPP_ROUTE_METRIC }],
        dns,
        domains: [],
        ntp: [],
      }),
      record(
        'ppp-session',
        nic,
        new Dict([
          [sym('interface'), ifname],
          [sym('local'), local],
          [sym('remote'), remote ?? ''],
          [sym('dns'), dns],
          [sym('event'), event],
        ]),
      ),
    ],
    problems,
  };
}

export interface PppoeOptionsDriver {
  readonly config: Ref;
  readonly machine: Ref;
  /** $log, where pppd's output lines arrive (`<log TIME {service line …}>`): auth failures. */
  readonly log?: Ref | undefined;
}

/** pppd's own words when the ISP refuses the credentials (chap-new.c, upap.c, eap.c). */
const AUTH_FAILED = /^(CHAP|PAP|MS-CHAP(?:-v2)?|EAP) authentication failed\b/;

/** The authentication protocol named in a pppd line saying the ISP refused us, if it does. */
export function authFailure(line: string): string | undefined {
  return AUTH_FAILED.exec(line)?.[1];
}

/** Starts the `pppoe` protocol's driver in a child facet of `parent`. */
export function startPppoe(parent: Facet, o: PppoeOptionsDriver): Driver {
  return spawnDriver(parent, 'pppoe', (f) => {
    declareFailures(f, o.config, anyRecord('ppp-error', 2), anyRecord('interface-failed', 2));
    during(
      f,
      o.config,
      P.rec('configure-interface', P.bind('if'), P.bind('method', P.rec('pppoe'))),
      (child, c) => {
        const ifValue = c.get('if')!;
        const nic = peel(ifValue);
        if (typeof nic !== 'string' || !isInterfaceName(nic)) {
          child.assert(
            o.config,
            record('interface-failed', ifValue, 'pppoe: not an interface name'),
          );
          return;
        }
        const r = readPppoe(nic, c.get('method')!);
        if (!r.ok) {
          child.assert(
            o.config,
            record('interface-failed', ifValue, `pppoe: ${r.problems.join('; ')}`),
          );
          return;
        }
        runLink(child, o, nic, r.options);
      },
      'pppoe',
    );
  });
}

/** pppd on NIC while it has carrier, and its link's outputs followed. */
function runLink(f: Facet, o: PppoeOptionsDriver, nic: string, options: PppoeOptions): void {
  const service = record('daemon', record('pppd', nic));
  const carrier = P.rec('interface', P.lit(nic), P._, P._, P._, P._, P.lit(sym('carrier')), P._);
  // Only with a kernel that has PPPoE (kernel-features.ts says so, or why not).
  const kernel = P.rec('kernel-feature', P.lit(sym('pppoe')), P.lit(sym('present')));
  during(f, o.machine, kernel, (k) =>
    during(k, o.machine, carrier, (g) => dial(g, o, nic, options, service)),
  );
  followOutputs(
    f,
    o.config,
    service,
    (latest) => interpretPppLink(nic, latest).assertions,
    `pppoe: ${nic}`,
  );
}

/**
 * pppd on NIC (in facet g, alive while NIC has carrier). When the ISP refuses the
 * credentials, pppd is stopped rather than left redialling every holdoff:
 * `<interface-failed NIC "pppoe: authentication failed …">` holds until `auth-retry`
 * seconds have passed or `limen ifup NIC` (`! <interface-retry NIC>`) asks again; a
 * new pppd rereads the password file.
 */
function dial(
  g: Facet,
  o: PppoeOptionsDriver,
  nic: string,
  options: PppoeOptions,
  service: Value,
): void {
  let attempt: Facet | undefined;
  let refused: Facet | undefined;
  let timer: NodeJS.Timeout | undefined;
  const start = () => {
    attempt = g.spawn((a) => {
      a.assert(o.config, record('require-service', service));
      a.assert(o.config, record('recovery-service', service));
      a.assert(
        o.config,
        record(
          'daemon',
          record('pppd', nic),
          new Dict([
            [sym('argv'), pppdArgv(nic, options)],
            [sym('restart'), sym('always')],
          ]),
        ),
      );
    }, `pppoe: pppd on ${nic}`);
  };
  const retry = () => {
    clearTimeout(timer);
    refused?.stop();
    refused = undefined;
    if (attempt === undefined) start();
  };
  const refuse = (protocol: string) => {
    if (refused !== undefined) return;
    attempt?.stop();
    attempt = undefined;
    const reason =
      `pppoe: authentication failed (${protocol}): the ISP refused user "${options.user}"; ` +
      `dialling again in ${options.authRetry} s or at \`limen ifup ${nic}\``;
    refused = g.spawn((r) => r.assert(o.config, record('interface-failed', nic, reason)));
    timer = setTimeout(() => g.turn(retry), options.authRetry * 1000);
  };
  g.onStop(() => clearTimeout(timer));
  if (o.log !== undefined) {
    g.observe(o.log, P.rec('log', P._, P._), {
      onMessage: (v) => {
        const fields = peel((peel(v) as Record).fields[1]!);
        if (!(fields instanceof Dict)) return;
        const from = fields.get(sym('service'));
        const line = fields.get(sym('line'));
        if (from === undefined || !is(from, service) || typeof peel(line ?? 0) !== 'string') return;
        const protocol = authFailure(peel(line!) as string);
        if (protocol !== undefined) refuse(protocol);
      },
    });
  }
  g.observe(o.config, P.rec('interface-retry', P.lit(nic)), { onMessage: () => retry() });
  start();
}
