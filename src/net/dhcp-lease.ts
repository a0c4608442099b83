// The `dhcp` interface protocol's lease interpreter (the WAN side; a LAN client's
// lease is `<dhcp-client IF MAC IP …>`, lan-dhcp.ts): turns the lease outputs that
// libexec/udhcpc-script writes for `<daemon <udhcpc IF>>` (`<output <daemon <udhcpc
// IF>> KEY VALUE>` in $config) into the protocol's provided configuration
// (provided.ts: the address, its lifetime refreshed on every renew, the default
// route, DNS servers and search domains, NTP servers), and `<dhcp-lease IF {…}>` for
// status. (Running udhcpc while IF has carrier is config/core/network-dhcp.pr's job;
// releasing the lease on ifdown is described in protocols.ts.)
//
// Invariants: nothing is asserted until the `event` output exists (the script
// writes it last and removes it first, so a lease is never used half-written);
// every value is validated, and one that a hostile or broken server got wrong
// is reported as `<dhcp-error IF MESSAGE>` and not installed (a bad address,
// prefix or lease withdraws the whole lease); the assertions for an interface
// are replaced by a diff, so a value that stays the same across a renew never
// flaps; when the outputs go, everything goes with the facet that made it.

import { Dict, Record, Sym, peel, record, sym, type Value } from '../preserves/index.ts';
import {
  type Driver,
  P,
  during,
  type Facet,
  type Ref,
  anyRecord,
  declareFailures,
} from '../dataspace/index.ts';
import {
  ipv4HostProblem,
  parseDomainName,
  parseIpv4,
  parsePrefix,
  prefixFromMask,
} from './inet-values.ts';
import { printable } from '../preserves/index.ts';
import { providedAssertions } from './provided.ts';
import { followOutputs } from './service-outputs.ts';

export interface DhcpLeasesOptions {
  /** Where the outputs are read and the desired state is asserted. */
  readonly config: Ref;
  /** The metric of the default route a lease gives. Default 100. */
  readonly routeMetric?: number;
}

/** A usable lease, as validated from the outputs. */
export interface DhcpLease {
  readonly ifname: string;
  readonly address: string;
  readonly prefix: number;
  /** Seconds; undefined for an infinite lease. */
  readonly leaseSeconds: number | undefined;
  readonly router: string | undefined;
  readonly server: string | undefined;
  readonly dns: readonly string[];
  readonly domains: readonly string[];
  readonly ntp: readonly string[];
  readonly hostname: string | undefined;
  /** The script's last event ("renew 3"): changes on every bound or renew. */
  readonly event: string;
}

/** What one interface's outputs mean. */
export interface LeaseInterpretation {
  /** Undefined when there is no complete lease, or it is unusable (see problems). */
  readonly lease: DhcpLease | undefined;
  /** The desired state to assert into $config, `<dhcp-error …>`s included. */
  readonly assertions: readonly Value[];
  /** One message per thing wrong with the outputs. */
  readonly problems: readonly string[];
}

export interface DhcpLeases extends Driver {
  /** The usable leases now, by interface. */
  leases(): ReadonlyMap<string, DhcpLease>;
}

/** DHCP's "infinite" lease time (0xffffffff seconds). */
export const INFINITE_LEASE = 4294967295;
export const DEFAULT_DHCP_ROUTE_METRIC = 100;

/** Starts the driver in a child facet of `parent`. */
export function startDhcpLeases(parent: Facet, options: DhcpLeasesOptions): DhcpLeases {
  const metric = options.routeMetric ?? DEFAULT_DHCP_ROUTE_METRIC;
  if (!Number.isSafeInteger(metric) || metric < 0 || metric > 0xffffffff)
    throw new RangeError(`routeMetric must be an integer from 0 to 4294967295, got ${metric}`);
  const config = options.config;
  const leases = new Map<string, DhcpLease>();
  const service = P.bind('service', P.exact(P.rec('daemon', P.rec('udhcpc', P._))));
  const facet = parent.spawn((f) => {
    // So that `limen status` and the log find them (docs/vocabulary.md, "Failures").
    declareFailures(f, config, anyRecord('dhcp-error', 2));
    during(
      f,
      config,
      P.rec('output', service, P._, P._),
      (child, c) => {
        const svc = c.get('service')!;
        const ifname = peel(((peel(svc) as Record).fields[0] as Record).fields[0]!);
        // The shipped script names interfaces with strings; anything else is not ours.
        if (typeof ifname !== 'string') return;
        followLease(child, config, svc, ifname, metric, leases);
      },
      'dhcp-lease: outputs',
    );
  }, 'dhcp-lease');
  return {
    facet,
    leases: () => leases,
    stop: () => facet.stop(),
  };
}

function followLease(
  facet: Facet,
  config: Ref,
  service: Value,
  ifname: string,
  metric: number,
  leases: Map<string, DhcpLease>,
): void {
  facet.onStop(() => leases.delete(ifname));
  followOutputs(
    facet,
    config,
    service,
    (latest) => {
      const r = interpretLease(ifname, latest, { routeMetric: metric });
      if (r.lease === undefined) leases.delete(ifname);
      else leases.set(ifname, r.lease);
      return r.assertions;
    },
    `dhcp-lease: ${ifname}`,
  );
}

// ---- Interpreting the outputs (pure) ------------------------------------------------------

const dhcpSource = (ifname: string): Value => record('dhcp', ifname);

/**
 * What a set of lease outputs (key → value, as `<output …>` carries them) means for
 * interface `ifname`. Pure, so that every hostile combination can be tested directly.
 */
export function interpretLease(
  ifname: string,
  outputs: ReadonlyMap<string, Value>,
  options: { readonly routeMetric?: number } = {},
): LeaseInterpretation {
  const metric = options.routeMetric ?? DEFAULT_DHCP_ROUTE_METRIC;
  const problems: string[] = [];
  const eventValue = outputs.get('event');
  // No event: no lease, or one being written or withdrawn. Nothing to say yet.
  if (eventValue === undefined) return { lease: undefined, assertions: [], problems };

  const text = (key: string): string | undefined => {
    const v = outputs.get(key);
    if (v === undefined) return undefined;
    const s = peel(v);
    if (typeof s === 'string') return s;
    problems.push(`${key}: expected text, got ${describe(v)}`);
    return undefined;
  };

  const event = text('event');
  const address = text('ip');
  const prefixText = text('prefix');
  const maskText = text('mask');
  const leaseText = text('lease');

  // The address, its prefix and its lifetime: without all three, no lease.
  let ok = true;
  if (address === undefined) {
    if (outputs.get('ip') === undefined) problems.push('ip: missing');
    ok = false;
  } else {
    const p = ipv4HostProblem(address);
    if (p !== undefined) {
      problems.push(`ip: ${quote(address)} is ${p}`);
      ok = false;
    }
  }
  // udhcpc gives both; either will do, but a bad or disagreeing one voids the lease.
  let prefix: number | undefined;
  const fromPrefix = prefixText === undefined ? undefined : parsePrefix(prefixText, 32);
  const fromMask = maskText === undefined ? undefined : prefixFromMask(maskText);
  if (prefixText !== undefined && (fromPrefix === undefined || fromPrefix === 0)) {
    problems.push(`prefix: ${quote(prefixText)} is not a prefix length from 1 to 32`);
    ok = false;
  } else if (maskText !== undefined && (fromMask === undefined || fromMask === 0)) {
    problems.push(`mask: ${quote(maskText)} is not a netmask`);
    ok = false;
  } else if (fromPrefix !== undefined && fromMask !== undefined && fromPrefix !== fromMask) {
    problems.push(`prefix ${fromPrefix} and mask ${printable(maskText ?? '')} disagree`);
    ok = false;
  } else {
    prefix = fromPrefix ?? fromMask;
    if (prefix === undefined) {
      problems.push('prefix: missing (and no mask)');
      ok = false;
    }
  }
  let leaseSeconds: number | undefined;
  if (leaseText !== undefined) {
    const n = /^[0-9]{1,10}$/.test(leaseText) ? Number(leaseText) : NaN;
    if (!(n >= 1 && n <= INFINITE_LEASE)) {
      problems.push(
        `lease: ${quote(leaseText)} is not a number of seconds from 1 to ${INFINITE_LEASE}`,
      );
      ok = false;
    } else if (n !== INFINITE_LEASE) leaseSeconds = n;
  }
  if (event === undefined) ok = false;

  // The rest: a bad value is reported and left out, the lease stays.
  let router = text('router');
  if (router !== undefined) {
    const p = ipv4HostProblem(router);
    if (p !== undefined) {
      problems.push(`router: ${quote(router)} is ${p}`);
      router = undefined;
    }
  }
  let server = text('serverid');
  if (server !== undefined && parseIpv4(server) === undefined) {
    problems.push(`serverid: ${quote(server)} is not an IPv4 address`);
    server = undefined;
  }
  const dns = addressList(outputs, 'dns', problems);
  const ntp = addressList(outputs, 'ntpsrv', problems);
  const domains: string[] = [];
  const domainText = text('domain');
  if (domainText !== undefined) {
    // Option 15 holds one name, but some servers put a space-separated list in it.
    for (const word of domainText.split(/\s+/).filter((w) => w !== '')) {
      const d = parseDomainName(word);
      if (d === undefined) problems.push(`domain: ${quote(word)} is not a domain name`);
      else if (!domains.includes(d.toLowerCase())) domains.push(d.toLowerCase());
    }
  }
  let hostname = text('hostname');
  if (hostname !== undefined && parseDomainName(hostname) === undefined) {
    problems.push(`hostname: ${quote(hostname)} is not a host name`);
    hostname = undefined;
  }

  const errors = problems.map((m) => record('dhcp-error', ifname, m));
  if (!ok || address === undefined || prefix === undefined || event === undefined)
    return { lease: undefined, assertions: errors, problems };

  const lease: DhcpLease = {
    ifname,
    address,
    prefix,
    leaseSeconds,
    router,
    server,
    dns,
    domains,
    ntp,
    hostname,
    event,
  };
  return { lease, assertions: [...leaseAssertions(lease, metric), ...errors], problems };
}

/** The desired state a usable lease gives. */
export function leaseAssertions(
  lease: DhcpLease,
  routeMetric = DEFAULT_DHCP_ROUTE_METRIC,
): Value[] {
  const { ifname } = lease;
  const out = providedAssertions({
    ifname,
    source: dhcpSource(ifname),
    addresses: [
      {
        cidr: `${lease.address}/${lease.prefix}`,
        validSeconds: lease.leaseSeconds,
        preferredSeconds: lease.leaseSeconds,
        renewed: lease.event,
      },
    ],
    routes:
      lease.router === undefined
        ? []
        : [{ family: 'ipv4', destination: 'default', via: lease.router, metric: routeMetric }],
    dns: lease.dns,
    domains: lease.domains,
    ntp: lease.ntp,
  });
  const status: [Value, Value][] = [
    [sym('ip'), lease.address],
    [sym('prefix'), lease.prefix],
    [sym('lease'), lease.leaseSeconds ?? sym('infinite')],
    [sym('dns'), [...lease.dns]],
    [sym('domains'), [...lease.domains]],
    [sym('ntp'), [...lease.ntp]],
    [sym('event'), lease.event],
  ];
  if (lease.router !== undefined) status.push([sym('router'), lease.router]);
  if (lease.server !== undefined) status.push([sym('server'), lease.server]);
  if (lease.hostname !== undefined) status.push([sym('hostname'), lease.hostname]);
  out.push(record('dhcp-lease', ifname, new Dict(status)));
  return out;
}

/** A `.pr` output holding a sequence of IPv4 addresses; bad items are reported and dropped. */
function addressList(
  outputs: ReadonlyMap<string, Value>,
  key: string,
  problems: string[],
): string[] {
  const v = outputs.get(key);
  if (v === undefined) return [];
  const seq = peel(v);
  if (!Array.isArray(seq)) {
    problems.push(`${key}: expected a sequence of addresses, got ${describe(v)}`);
    return [];
  }
  const out: string[] = [];
  for (const item of seq as readonly Value[]) {
    const s = peel(item);
    if (typeof s !== 'string') {
      problems.push(`${key}: expected an address (a string), got ${describe(item)}`);
      continue;
    }
    const p = ipv4HostProblem(s);
    if (p !== undefined) problems.push(`${key}: ${quote(s)} is ${p}`);
    else if (!out.includes(s)) out.push(s);
  }
  return out;
}

function quote(s: string): string {
  return JSON.stringify(printable(s));
}

function describe(v: Value): string {
  const x = peel(v);
  if (Array.isArray(x)) return 'a sequence';
  if (x instanceof Record) return 'a record';
  if (x instanceof Sym) return `the symbol ${printable(x.name)}`;
  if (x instanceof Dict) return 'a dictionary';
  return `a ${typeof x}`;
}
