// What the PPP-based interface protocols share (pppoe.ts, l2tp.ts): the link that
// pppd's ip-up hook (libexec/ppp-hook) hands over as service outputs, turned into a
// ProvidedConfig (the address on the PPP interface, the default route through it,
// the peer's DNS servers) and `<ppp-session IF {…}>`; the reading of a method's
// options with every problem reported; and the dialling, which stops instead of
// redialling when the ISP refuses the credentials.

import {
  Dict,
  Sym,
  is,
  peel,
  record,
  strip,
  sym,
  type Record,
  type Value,
} from '../preserves/index.ts';
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
import { isInterfaceName } from '../base/interface-name.ts';
import { ipv4HostProblem } from './inet-values.ts';
import { providedAssertions } from './provided.ts';

/** The route metric of a PPP link's default route (as a DHCP lease's). */
export const PPP_ROUTE_METRIC = 100;

/** How a protocol's PPP link is published. */
export interface PppLinkKind {
  /** The source its DNS servers are named by: `<PROTOCOL IF>`. */
  readonly protocol: string;
  /** The default route's metric. */
  readonly metric: number;
  /** True when the PPP interface is made over the configured one (`<interface-over>`). */
  readonly over: boolean;
}

export const PPPOE_LINK: PppLinkKind = { protocol: 'pppoe', metric: PPP_ROUTE_METRIC, over: true };

export interface PppDriverOptions {
  readonly config: Ref;
  readonly machine: Ref;
  /** $log, where pppd's output lines arrive (`<log TIME {service line …}>`): auth failures. */
  readonly log?: Ref | undefined;
}

/** One dialler: the service and its `<daemon …>` spec, and what an auth failure says. */
export interface PppDial {
  readonly nic: string;
  readonly protocol: string;
  /** `<daemon NAME>`. */
  readonly service: Record;
  readonly spec: Value;
  readonly user: string;
  readonly authRetry: number;
}

/**
 * A method's dictionary `<NAME {key: value …}>` read with every problem reported:
 * unknown keys, and each value as text (printable, no spaces) or a bounded count.
 */
export function methodOptions(method: Value, keys: readonly string[], example: string) {
  const problems: string[] = [];
  const m = peel(method) as Record;
  const d = m.fields.length === 1 ? peel(m.fields[0]!) : undefined;
  if (!(d instanceof Dict)) {
    problems.push(`expected ${example}`);
    return undefined;
  }
  const get = (k: string) => {
    const v = d.get(sym(k));
    return v === undefined ? undefined : peel(v);
  };
  for (const [k] of d) {
    const key = peel(k);
    if (!(key instanceof Sym) || !keys.includes(key.name))
      problems.push(
        `unknown option ${String(key instanceof Sym ? key.name : '?')} (known: ${keys.join(', ')})`,
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
  /** An absolute path to a file (the password file), safe inside single quotes. */
  const path = (k: string): string | undefined => {
    const v = text(k, true);
    if (v !== undefined && (!v.startsWith('/') || v.includes("'")))
      problems.push(`${k} must be an absolute path without quotes`);
    return v;
  };
  return { problems, text, count, path };
}

/** What a PPP link's outputs mean: the provided configuration, or nothing yet, and the problems. */
export function interpretPppLink(
  nic: string,
  outputs: ReadonlyMap<string, Value>,
  link: PppLinkKind = PPPOE_LINK,
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
        over: link.over ? nic : undefined,
        source: record(link.protocol, nic),
        addresses: [{ cidr: `${local}/32` }],
        routes: [{ family: 'ipv4', destination: 'default', metric: link.metric }],
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

/** pppd's own words when the ISP refuses the credentials (chap-new.c, upap.c, eap.c). */
const AUTH_FAILED = /^(CHAP|PAP|MS-CHAP(?:-v2)?|EAP) authentication failed\b/;

/** The authentication protocol named in a pppd line saying the ISP refused us, if it does. */
export function authFailure(line: string): string | undefined {
  return AUTH_FAILED.exec(line)?.[1];
}

/**
 * A PPP link's daemon (pppd, or xl2tpd and its pppd) in facet g, alive while it may dial. When the ISP refuses the
 * credentials, pppd is stopped rather than left redialling every holdoff:
 * `<interface-failed NIC "PROTOCOL: authentication failed …">` holds until `auth-retry`
 * seconds have passed or `limen ifup NIC` (`! <interface-retry NIC>`) asks again; a
 * new pppd rereads the password file.
 */
export function dialPpp(g: Facet, o: PppDriverOptions, d: PppDial): void {
  const { nic, service } = d;
  let attempt: Facet | undefined;
  let refused: Facet | undefined;
  let timer: NodeJS.Timeout | undefined;
  const start = () => {
    attempt = g.spawn((a) => {
      a.assert(o.config, record('require-service', service));
      a.assert(o.config, record('recovery-service', service));
      a.assert(o.config, record('daemon', (strip(service) as Record).fields[0]!, d.spec));
    }, `${d.protocol}: dialling on ${nic}`);
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
      `${d.protocol}: authentication failed (${protocol}): the ISP refused user "${d.user}"; ` +
      `dialling again in ${d.authRetry} s or at \`limen ifup ${nic}\``;
    refused = g.spawn((r) => r.assert(o.config, record('interface-failed', nic, reason)));
    timer = setTimeout(() => g.turn(retry), d.authRetry * 1000);
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

/**
 * A PPP protocol's driver: for each `<configure-interface IF <NAME …>>`, its options
 * read (every problem an `<interface-failed IF "NAME: …">`), then `run` in a facet
 * that lives as long as that assertion.
 */
export function startPppProtocol<T>(
  parent: Facet,
  o: PppDriverOptions,
  name: string,
  read: (
    ifname: string,
    method: Value,
  ) => { ok: true; options: T } | { ok: false; problems: string[] },
  run: (child: Facet, nic: string, options: T) => void,
): Driver {
  return spawnDriver(parent, name, (f) => {
    declareFailures(f, o.config, anyRecord('ppp-error', 2), anyRecord('interface-failed', 2));
    during(
      f,
      o.config,
      P.rec('configure-interface', P.bind('if'), P.bind('method', P.rec(name))),
      (child, c) => {
        const ifValue = c.get('if')!;
        const nic = peel(ifValue);
        if (typeof nic !== 'string' || !isInterfaceName(nic)) {
          child.assert(
            o.config,
            record('interface-failed', ifValue, `${name}: not an interface name`),
          );
          return;
        }
        const r = read(nic, c.get('method')!);
        if (!r.ok) {
          child.assert(
            o.config,
            record('interface-failed', ifValue, `${name}: ${r.problems.join('; ')}`),
          );
          return;
        }
        run(child, nic, r.options);
      },
      name,
    );
  });
}
