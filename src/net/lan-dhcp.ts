// The LAN driver: for each `<lan-dhcp IF {…}>` in $config it writes a dnsmasq
// configuration and has the supervisor run dnsmasq on IF (DHCP server and DNS
// forwarder), keeps dnsmasq's upstream servers equal to the `<dns-server ADDR
// SOURCE>` assertions, and publishes its leases as `<dhcp-client IF MAC IP
// HOSTNAME EXPIRES>` in $machine.
//
// Invariants: a spec is validated as a whole, and every problem is published as
// `<lan-dhcp-error IF MESSAGE>`; an invalid or ambiguous spec never replaces the
// one running. A change to the spec changes the daemon spec (it carries the
// configuration's hash), so the supervisor restarts dnsmasq, which keeps its
// leases (the lease file survives). A change of upstream servers only rewrites
// the resolv file, which dnsmasq re-reads on its own (inotify): no restart, no
// lease lost. Files live under `${runDir}/lan/IF/` and are written atomically.

import { watch, type FSWatcher } from 'node:fs';
import { chmod, mkdir, readFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { writeFileAtomic } from '../platform/atomic-file.ts';
import { UserError } from '../base/errors.ts';
import {
  type Driver,
  driverLog,
  P,
  during,
  type Facet,
  type Handle,
  type Ref,
  anyRecord,
  declareFailures,
} from '../dataspace/index.ts';
import {
  Dict,
  Sym,
  ValueMap,
  dict,
  peel,
  record,
  stringify,
  strip,
  sym,
  type Record,
  type Value,
} from '../preserves/index.ts';
import { isIpv6, parseDomainName, parseIpv4 } from './inet-values.ts';
import { showValue } from '../preserves/index.ts';
import { nearestKey } from '../base/suggest.ts';
import { isInterfaceName } from '../base/interface-name.ts';

// ---- The spec --------------------------------------------------------------------------

export interface StaticLease {
  /** Lower-case, colon-separated. */
  readonly mac: string;
  readonly ip: string;
  readonly hostname: string | undefined;
}

/** A validated `<lan-dhcp IF {…}>`. */
export interface LanDhcpConfig {
  readonly ifname: string;
  readonly range: readonly [string, string];
  /** Seconds, or 'infinite'. */
  readonly lease: number | 'infinite';
  /** DNS servers announced to clients; empty means this router (dnsmasq itself). */
  readonly dns: readonly string[];
  readonly staticLeases: readonly StaticLease[];
  readonly domain: string | undefined;
  /**
   * dnsmasq pings an address before it first offers it (its default: a 3 s wait for a
   * reply that does not come); false: it offers at once (`no-ping`). docs/vocabulary.md.
   */
  readonly pingCheck: boolean;
}

export type LanDhcpReadResult =
  | { readonly ok: true; readonly config: LanDhcpConfig }
  | { readonly ok: false; readonly problems: readonly string[] };

/** A `<lan-dhcp …>` that cannot be used; carries every problem. */
export class LanDhcpConfigError extends UserError {
  readonly code = 'LIMEN_LAN_DHCP_CONFIG';
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`invalid lan-dhcp: ${problems.join('; ')}`);
    this.problems = problems;
  }
}

export const LAN_DHCP_KEYS = [
  'range',
  'lease',
  'dns',
  'static-leases',
  'domain',
  'ping-check',
] as const;
/** dnsmasq raises shorter leases to two minutes; we refuse them instead of surprising. */
export const MIN_LEASE_SECONDS = 120;
export const DEFAULT_LEASE_SECONDS = 43_200;
const MAX_LEASE_SECONDS = 2 ** 31 - 1;

const MAC = /^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$/;
const HOSTNAME = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/** The interface name of `<lan-dhcp IF …>`, or why it is not one. */
export function readIfname(v: Value): string | { readonly problem: string } {
  const x = peel(v);
  if (isInterfaceName(x)) return x;
  return {
    problem:
      `IF must be an interface name as a string (1 to 15 letters, digits, '_', '.', '@', ` +
      `'+' or '-'), got ${showValue(v)}`,
  };
}

/** Validates `<lan-dhcp IF SPEC>`'s fields, collecting every problem. */
export function readLanDhcp(ifnameValue: Value, specValue: Value): LanDhcpReadResult {
  const problems: string[] = [];
  const ifname = readIfname(ifnameValue);
  if (typeof ifname !== 'string') problems.push(ifname.problem);
  const spec = peel(specValue);
  if (!(spec instanceof Dict)) {
    problems.push(
      `the spec must be a dictionary {range: ["START" "END"] lease: SECONDS dns: […] ` +
        `static-leases: [[MAC IP HOSTNAME] …] domain: "lan"}, got ${showValue(specValue)}`,
    );
    return { ok: false, problems };
  }
  const entries = new Map<string, Value>();
  for (const [k, x] of spec) {
    const key = peel(k);
    const name = key instanceof Sym ? key.name : undefined;
    if (name === undefined) {
      const hint = typeof key === 'string' ? ` (write ${key}: without quotes)` : '';
      problems.push(`keys must be symbols, got ${showValue(k)}${hint}`);
      continue;
    }
    if (!(LAN_DHCP_KEYS as readonly string[]).includes(name)) {
      const s = nearestKey(name, LAN_DHCP_KEYS);
      problems.push(
        `unknown key '${name}'` +
          (s !== undefined
            ? ` (did you mean '${s}'?)`
            : ` (known keys: ${LAN_DHCP_KEYS.join(', ')})`),
      );
      continue;
    }
    entries.set(name, x);
  }

  const ipv4 = (v: Value, what: string): string | undefined => {
    const s = peel(v);
    if (typeof s === 'string' && parseIpv4(s) !== undefined) return s;
    problems.push(
      `${what} must be an IPv4 address as a string, like "192.168.1.100", got ${showValue(v)}`,
    );
    return undefined;
  };

  let range: [string, string] | undefined;
  const rangeValue = entries.get('range');
  if (rangeValue === undefined)
    problems.push(`'range' is missing: which addresses may clients get?`);
  else {
    const r = peel(rangeValue);
    if (!Array.isArray(r) || r.length !== 2)
      problems.push(`range must be ["START" "END"], got ${showValue(rangeValue)}`);
    else {
      const seq = r as readonly Value[];
      const start = ipv4(seq[0]!, 'the range START');
      const end = ipv4(seq[1]!, 'the range END');
      if (start !== undefined && end !== undefined) {
        if (parseIpv4(start)! > parseIpv4(end)!)
          problems.push(`the range starts at ${start}, after its end ${end}: swap them`);
        else if (parseIpv4(start)! >>> 16 !== parseIpv4(end)! >>> 16)
          problems.push(`the range ${start} to ${end} is too wide: keep it inside one subnet`);
        else range = [start, end];
      }
    }
  }

  let lease: number | 'infinite' = DEFAULT_LEASE_SECONDS;
  const leaseValue = entries.get('lease');
  if (leaseValue !== undefined) {
    const l = peel(leaseValue);
    if (l instanceof Sym && l.name === 'infinite') lease = 'infinite';
    else if (typeof l === 'number' && l >= MIN_LEASE_SECONDS && l <= MAX_LEASE_SECONDS) lease = l;
    else
      problems.push(
        `lease must be a number of seconds from ${MIN_LEASE_SECONDS} to ${MAX_LEASE_SECONDS}, ` +
          `or infinite, got ${showValue(leaseValue)}`,
      );
  }

  const dns: string[] = [];
  const dnsValue = entries.get('dns');
  if (dnsValue !== undefined) {
    const d = peel(dnsValue);
    if (!Array.isArray(d))
      problems.push(
        `dns must be a sequence of IPv4 addresses, like ["192.168.1.1"], got ${showValue(dnsValue)}`,
      );
    else
      for (const a of d as readonly Value[]) {
        const s = ipv4(a, 'each dns server');
        if (s !== undefined && !dns.includes(s)) dns.push(s);
      }
  }

  const staticLeases: StaticLease[] = [];
  const leasesValue = entries.get('static-leases');
  if (leasesValue !== undefined) {
    const ls = peel(leasesValue);
    if (!Array.isArray(ls))
      problems.push(
        `static-leases must be a sequence of [MAC IP HOSTNAME], got ${showValue(leasesValue)}`,
      );
    else
      for (const item of ls as readonly Value[]) {
        const l = readStaticLease(item, problems);
        if (l === undefined) continue;
        const dupMac = staticLeases.find((o) => o.mac === l.mac);
        const dupIp = staticLeases.find((o) => o.ip === l.ip);
        if (dupMac !== undefined) problems.push(`static-leases: ${l.mac} is listed twice`);
        else if (dupIp !== undefined)
          problems.push(`static-leases: ${l.ip} is given to both ${dupIp.mac} and ${l.mac}`);
        else staticLeases.push(l);
      }
  }

  let domain: string | undefined;
  const domainValue = entries.get('domain');
  if (domainValue !== undefined) {
    const d = peel(domainValue);
    const parsed = typeof d === 'string' ? parseDomainName(d) : undefined;
    if (parsed === undefined)
      problems.push(
        `domain must be a domain name as a string, like "lan", got ${showValue(domainValue)}`,
      );
    else domain = parsed;
  }

  let pingCheck = true;
  const pingValue = entries.get('ping-check');
  if (pingValue !== undefined) {
    const p = peel(pingValue);
    if (typeof p === 'boolean') pingCheck = p;
    else problems.push(`ping-check must be #t or #f, got ${showValue(pingValue)}`);
  }

  if (problems.length > 0 || range === undefined || typeof ifname !== 'string')
    return { ok: false, problems };
  return { ok: true, config: { ifname, range, lease, dns, staticLeases, domain, pingCheck } };
}

/** Like readLanDhcp, but throws LanDhcpConfigError with every problem. */
export function parseLanDhcp(ifnameValue: Value, specValue: Value): LanDhcpConfig {
  const r = readLanDhcp(ifnameValue, specValue);
  if (!r.ok) throw new LanDhcpConfigError(r.problems);
  return r.config;
}

function readStaticLease(item: Value, problems: string[]): StaticLease | undefined {
  const usage = `each static lease is ["MAC" "IP" "HOSTNAME"] (HOSTNAME may be #f)`;
  const l = peel(item);
  if (!Array.isArray(l) || (l.length !== 3 && l.length !== 2)) {
    problems.push(`${usage}, got ${showValue(item)}`);
    return undefined;
  }
  const [macV, ipV, hostV] = l as readonly Value[];
  const mac = peel(macV!);
  const ip = peel(ipV!);
  const host = hostV === undefined ? false : peel(hostV);
  let ok = true;
  if (typeof mac !== 'string' || !MAC.test(mac)) {
    problems.push(
      `static lease ${showValue(item)}: ${showValue(macV!)} is not a MAC address like "02:00:5e:10:00:01"`,
    );
    ok = false;
  }
  if (typeof ip !== 'string' || parseIpv4(ip) === undefined) {
    problems.push(`static lease ${showValue(item)}: ${showValue(ipV!)} is not an IPv4 address`);
    ok = false;
  }
  if (host !== false && (typeof host !== 'string' || !HOSTNAME.test(host))) {
    problems.push(
      `static lease ${showValue(item)}: the hostname must be one DNS label (letters, digits, '-'), ` +
        `or #f`,
    );
    ok = false;
  }
  if (!ok) return undefined;
  return {
    mac: (mac as string).toLowerCase(),
    ip: ip as string,
    hostname: host === false ? undefined : (host as string),
  };
}

// ---- Files -----------------------------------------------------------------------------

export interface DnsmasqPaths {
  readonly resolvFile: string;
  readonly leaseFile: string;
}

export interface DnsmasqConfOptions {
  /** dnsmasq's --user (it drops root to it after binding); default dnsmasq's own. */
  readonly user?: string | undefined;
  /**
   * IF has IPv6 prefixes (`<lan-ipv6 IF …>`): router advertisements and stateless
   * DHCPv6 for every /64 IF holds (docs/vocabulary.md, "LAN: IPv6 prefixes").
   */
  readonly ipv6?: boolean | undefined;
}

/** The dnsmasq configuration file for one LAN interface. */
export function renderDnsmasqConf(
  c: LanDhcpConfig,
  paths: DnsmasqPaths,
  o: DnsmasqConfOptions = {},
): string {
  const lines = [
    `# Generated by limen from <lan-dhcp "${c.ifname}" …>. Do not edit: it is rewritten.`,
    `interface=${c.ifname}`,
    // Several instances (one per LAN) coexist: each binds its own interface's
    // addresses, follows them as they come and go, and leaves loopback alone.
    'except-interface=lo',
    'bind-dynamic',
    'pid-file=',
    'log-facility=-',
    `resolv-file=${paths.resolvFile}`,
    'clear-on-reload',
    'domain-needed',
    'bogus-priv',
    'dhcp-authoritative',
    `dhcp-leasefile=${paths.leaseFile}`,
    `dhcp-range=${c.range[0]},${c.range[1]},${c.lease === 'infinite' ? 'infinite' : String(c.lease)}`,
  ];
  // dnsmasq blocks for ~3 s on the ping of every new address; see docs/vocabulary.md.
  if (!c.pingCheck) lines.push('no-ping');
  if (c.dns.length > 0) lines.push(`dhcp-option=option:dns-server,${c.dns.join(',')}`);
  if (c.domain !== undefined) lines.push(`domain=${c.domain}`, `local=/${c.domain}/`);
  if (o.ipv6 === true) {
    // A prefix per global address of IF, with the address's lifetimes (the delegated
    // prefix's): SLAAC and DNS by stateless DHCPv6 (the A and O bits). When an
    // address goes, dnsmasq keeps announcing its prefix, deprecated (preferred 0),
    // until it expires (at most 2 h): the LAN is renumbered, not silently left.
    // RDNSS is dnsmasq's link-local address, which survives renumbering.
    lines.push('enable-ra', `dhcp-range=::,constructor:${c.ifname},ra-stateless,64`);
    if (c.domain !== undefined) lines.push(`dhcp-option=option6:domain-search,${c.domain}`);
  }
  for (const l of c.staticLeases)
    lines.push(`dhcp-host=${l.mac},${l.ip}${l.hostname !== undefined ? `,${l.hostname}` : ''}`);
  if (o.user !== undefined) lines.push(`user=${o.user}`);
  lines.push('');
  return lines.join('\n');
}

/** The resolv file dnsmasq reads its upstream servers from. */
export function renderResolv(servers: readonly string[]): string {
  return [
    '# Generated by limen from the <dns-server …> assertions. Do not edit.',
    ...servers.map((s) => `nameserver ${s}`),
    '',
  ].join('\n');
}

/** One line of dnsmasq's lease file. */
export interface Lease {
  /** Seconds since the epoch; undefined for an infinite lease. */
  readonly expires: number | undefined;
  readonly mac: string;
  readonly ip: string;
  readonly hostname: string | undefined;
}

/**
 * Reads dnsmasq's lease file: `EXPIRES MAC IP HOSTNAME CLIENT-ID` per IPv4 lease
 * (`*` for no hostname, 0 for an infinite lease), then DHCPv6 leases after a
 * `duid` line (ignored). A last line without its newline is being written: skipped.
 */
export function parseLeaseFile(text: string): Lease[] {
  const lines = text.split('\n');
  if (!text.endsWith('\n')) lines.pop();
  const out: Lease[] = [];
  for (const line of lines) {
    const f = line.trim().split(/\s+/);
    if (f[0] === 'duid') break;
    if (f.length < 4) continue;
    const [exp, mac, ip, host] = f as [string, string, string, string];
    if (!/^[0-9]+$/.test(exp) || parseIpv4(ip) === undefined) continue;
    const expires = Number(exp);
    out.push({
      expires: expires === 0 ? undefined : expires,
      mac: mac.toLowerCase(),
      ip,
      hostname: host === '*' ? undefined : host,
    });
  }
  return out;
}

/** `<dhcp-client IF MAC IP HOSTNAME EXPIRES>`: HOSTNAME #f when none, EXPIRES `never` when infinite. */
export function dhcpClientValue(ifname: string, l: Lease): Value {
  return record('dhcp-client', ifname, l.mac, l.ip, l.hostname ?? false, l.expires ?? sym('never'));
}

/** The service that runs dnsmasq for an interface. */
export function dnsmasqService(ifname: string): Record {
  return record('daemon', record('dnsmasq', ifname));
}

function hashOf(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}

// ---- The driver ------------------------------------------------------------------------

export interface LanDhcpOptions {
  readonly config: Ref;
  readonly machine: Ref;
  /** Files go under `${runDir}/lan/IF/`. */
  readonly runDir: string;
  /** The dnsmasq program; default 'dnsmasq'. */
  readonly dnsmasq?: string;
  /** Prepended to dnsmasq's argv, e.g. ['ip', 'netns', 'exec', 'NS'] in tests. */
  readonly commandPrefix?: readonly string[];
  /** dnsmasq's --user (default: dnsmasq's own, usually nobody); it must be able to read `${runDir}/lan/IF/`. */
  readonly user?: string;
  /** How long lease-file changes are collected before it is read (ms); default 20. */
  readonly leaseDebounceMs?: number;
  /**
   * A plan (`limen diff`): assert what the driver would (dnsmasq's daemon spec, errors)
   * and nothing more: no file written, no lease file watched.
   */
  readonly dryRun?: boolean;
}

export interface LanDhcp extends Driver {
  /** Where an interface's files are. */
  directory(ifname: string): string;
}

/** Starts the LAN driver in a child facet of `parent`. */
export function startLanDhcp(parent: Facet, options: LanDhcpOptions): LanDhcp {
  const directory = (ifname: string): string => join(options.runDir, 'lan', ifname);
  const facet = parent.spawn((f) => {
    // So that `limen status` and the log find them (docs/vocabulary.md, "Failures").
    declareFailures(f, options.config, anyRecord('lan-dhcp-error', 2));
    during(
      f,
      options.config,
      P.rec('lan-dhcp', P.bind('ifname')),
      (child, c) => {
        const ifnameValue = strip(c.get('ifname')!);
        new LanInterface(child, options, ifnameValue, directory);
      },
      'lan-dhcp',
    );
  }, 'lan-dhcp');
  return { facet, directory, stop: () => facet.stop() };
}

/** Everything limen does for one `<lan-dhcp IF …>` interface; lives in IF's facet. */
class LanInterface {
  readonly facet: Facet;
  readonly o: LanDhcpOptions;
  readonly ifnameValue: Value;
  /** Undefined when the IF field is not a usable name (only errors are published then). */
  readonly ifname: string | undefined;
  readonly dir: string | undefined;
  /** The spec field of each well-formed `<lan-dhcp IF SPEC>`, counted. */
  readonly specs = new ValueMap<number>();
  /** Records `<lan-dhcp IF …>` with the wrong number of fields. */
  readonly malformed = new ValueMap<number>();
  readonly servers = new ValueMap<number>();
  /** `<lan-ipv6 IF …>` in $config, counted: IF gets router advertisements. */
  readonly ipv6 = new ValueMap<number>();
  /** IF's IPv4 addresses in $machine, as "ADDR/LEN". */
  readonly addresses = new ValueMap<number>();
  readonly errors = new Map<string, Handle>();
  readonly leases = new Map<string, Handle>();
  /** The configuration dnsmasq runs with (or will, once written). */
  running: LanDhcpConfig | undefined;
  #reconcileQueued = false;
  #want: { conf: string | undefined; resolv: string } | undefined;
  #syncing = false;
  #writtenConf: string | undefined;
  #writtenResolv: string | undefined;
  #daemonHandle: Handle | undefined;
  #requireHandle: Handle | undefined;
  #watcher: FSWatcher | undefined;
  #leaseTimer: NodeJS.Timeout | undefined;
  #readingLeases = false;
  #leasesAgain = false;
  #lastLeaseText: string | undefined;
  #parsedLeases: readonly Lease[] = [];
  #expiryTimer: NodeJS.Timeout | undefined;

  constructor(
    facet: Facet,
    o: LanDhcpOptions,
    ifnameValue: Value,
    directory: (ifname: string) => string,
  ) {
    this.facet = facet;
    this.o = o;
    this.ifnameValue = ifnameValue;
    const name = readIfname(ifnameValue);
    this.ifname = typeof name === 'string' ? name : undefined;
    this.dir = this.ifname === undefined ? undefined : directory(this.ifname);
    const count = (m: ValueMap<number>, v: Value, d: number): void => {
      const n = (m.get(v) ?? 0) + d;
      if (n > 0) m.set(v, n);
      else m.delete(v);
      this.queueReconcile();
    };
    facet.observe(o.config, P.rec('lan-dhcp', P.lit(ifnameValue)), {
      onAdd: (v) => {
        const r = peel(v) as Record;
        if (r.fields.length === 2) count(this.specs, r.fields[1]!, +1);
        else count(this.malformed, v, +1);
      },
      onRemove: (v) => {
        const r = peel(v) as Record;
        if (r.fields.length === 2) count(this.specs, r.fields[1]!, -1);
        else count(this.malformed, v, -1);
      },
    });
    facet.observe(o.config, P.rec('lan-ipv6', P.lit(ifnameValue), P._), {
      onAdd: (v) => count(this.ipv6, v, +1),
      onRemove: (v) => count(this.ipv6, v, -1),
    });
    facet.observe(o.config, P.rec('dns-server', P.bind('addr'), P._), {
      onAdd: (_v, c) => count(this.servers, c.get('addr')!, +1),
      onRemove: (_v, c) => count(this.servers, c.get('addr')!, -1),
    });
    facet.observe(
      o.machine,
      P.rec('address', P.lit(ifnameValue), P.lit(sym('ipv4')), P.bind('addr'), P.bind('len')),
      {
        onAdd: (_v, c) => count(this.addresses, [c.get('addr')!, c.get('len')!], +1),
        onRemove: (_v, c) => count(this.addresses, [c.get('addr')!, c.get('len')!], -1),
      },
    );
    facet.onStop(() => {
      this.#watcher?.close();
      this.#watcher = undefined;
      clearTimeout(this.#leaseTimer);
      clearTimeout(this.#expiryTimer);
    });
    this.queueReconcile();
  }

  get service(): Record | undefined {
    return this.ifname === undefined ? undefined : dnsmasqService(this.ifname);
  }

  /** Once per burst of changes: the notifications of one commit all arrive first. */
  queueReconcile(): void {
    if (this.#reconcileQueued) return;
    this.#reconcileQueued = true;
    this.facet.turn(() => {
      this.#reconcileQueued = false;
      this.reconcile();
    });
  }

  reconcile(): void {
    const problems: string[] = [];
    for (const [v] of this.malformed)
      problems.push(`${showValue(v)}: expected <lan-dhcp "IF" {range: ["START" "END"] …}>`);
    let config: LanDhcpConfig | undefined;
    if (this.specs.size > 1) {
      problems.push(
        `${this.specs.size} different lan-dhcp specs for this interface: keep one` +
          (this.running !== undefined ? ' (the one running stays)' : ''),
      );
    } else if (this.specs.size === 1) {
      const spec = [...this.specs.keys()][0]!;
      const r = readLanDhcp(this.ifnameValue, spec);
      if (r.ok) config = r.config;
      else
        problems.push(
          ...r.problems.map(
            (p) => p + (this.running !== undefined ? ' (the previous configuration stays)' : ''),
          ),
        );
    } else if (this.ifname === undefined) {
      const r = readIfname(this.ifnameValue);
      if (typeof r !== 'string') problems.push(r.problem);
    }
    const effective = config ?? this.running;
    if (effective !== undefined) {
      const outside = this.rangeOutsideSubnets(effective);
      if (outside !== undefined) problems.push(outside);
    }
    this.#setErrors(problems);
    if (this.dir === undefined || this.ifname === undefined) return;
    if (config !== undefined) this.running = config;
    if (this.#daemonHandle !== undefined) this.#requireOnceServable();
    const servers = [...this.servers.keys()]
      .map((v) => peel(v))
      .filter(
        (s): s is string => typeof s === 'string' && (parseIpv4(s) !== undefined || isIpv6(s)),
      )
      .sort();
    this.#want = {
      conf:
        this.running === undefined
          ? undefined
          : renderDnsmasqConf(this.running, this.paths(), {
              user: this.o.user,
              ipv6: this.ipv6.size > 0,
            }),
      resolv: renderResolv(servers),
    };
    if (this.o.dryRun === true) {
      const conf = this.#want.conf;
      this.#want = undefined;
      if (conf !== undefined && conf !== this.#writtenConf) {
        this.#writtenConf = conf;
        this.#assertDaemon(hashOf(conf));
      }
      return;
    }
    void this.#sync();
  }

  paths(): DnsmasqPaths {
    return { resolvFile: join(this.dir!, 'resolv.conf'), leaseFile: join(this.dir!, 'leases') };
  }

  /** A problem if IF has IPv4 addresses and none of their subnets holds the range. */
  rangeOutsideSubnets(c: LanDhcpConfig): string | undefined {
    if (this.addresses.size === 0) return undefined;
    const start = parseIpv4(c.range[0])!;
    const end = parseIpv4(c.range[1])!;
    const subnets: string[] = [];
    for (const [v] of this.addresses) {
      const [a, l] = v as readonly Value[];
      const addr = typeof a === 'string' ? parseIpv4(a) : undefined;
      if (addr === undefined || typeof l !== 'number' || l < 0 || l > 32) continue;
      subnets.push(`${a as string}/${l}`);
      const mask = l === 0 ? 0 : (~0 << (32 - l)) >>> 0;
      if (
        (start & mask) >>> 0 === (addr & mask) >>> 0 &&
        (end & mask) >>> 0 === (addr & mask) >>> 0
      )
        return undefined;
    }
    if (subnets.length === 0) return undefined;
    return (
      `the range ${c.range[0]} to ${c.range[1]} is outside ${c.ifname}'s subnets ` +
      `(${subnets.sort().join(', ')}): dnsmasq will not answer until it is inside one`
    );
  }

  #setErrors(messages: readonly string[]): void {
    const want = new Set(messages);
    for (const m of want)
      if (!this.errors.has(m))
        this.errors.set(
          m,
          this.facet.assert(this.o.config, record('lan-dhcp-error', this.ifnameValue, m)),
        );
    for (const [m, h] of this.errors) {
      if (want.has(m)) continue;
      this.facet.retract(h);
      this.errors.delete(m);
    }
  }

  /** Writes what reconcile wants, in order; one writer at a time, latest wins. */
  async #sync(): Promise<void> {
    if (this.#syncing) return;
    this.#syncing = true;
    const signal = this.facet.signal;
    try {
      if (this.#writtenResolv === undefined) {
        // dnsmasq runs as another user (--user): RUN/lan and RUN/lan/IF must be
        // searchable by it whatever the umask (mkdir's mode passes through it).
        await mkdir(this.dir!, { recursive: true, mode: 0o755 });
        await chmod(dirname(this.dir!), 0o755);
        await chmod(this.dir!, 0o755);
      }
      while (this.#want !== undefined && !signal.aborted) {
        const want = this.#want;
        this.#want = undefined;
        const { resolvFile } = this.paths();
        if (want.resolv !== this.#writtenResolv) {
          await writeFileAtomic(resolvFile, want.resolv, { mode: 0o644, signal });
          this.#writtenResolv = want.resolv;
        }
        if (want.conf !== undefined && want.conf !== this.#writtenConf) {
          await writeFileAtomic(join(this.dir!, 'dnsmasq.conf'), want.conf, {
            mode: 0o644,
            signal,
          });
          this.#writtenConf = want.conf;
          const hash = hashOf(want.conf);
          this.#turn(() => this.#assertDaemon(hash));
        }
      }
    } catch (e) {
      if (!signal.aborted)
        this.#turn(() =>
          this.#setErrors([
            ...this.errors.keys(),
            `cannot write dnsmasq's files in ${this.dir!}: ${e instanceof Error ? e.message : String(e)}`,
          ]),
        );
    } finally {
      this.#syncing = false;
    }
  }

  #turn(fn: () => void): void {
    if (this.facet.isAlive) this.facet.turn(fn);
  }

  #assertDaemon(hash: string): void {
    const service = this.service!;
    const id = service.fields[0]!;
    const spec = dict({
      argv: [
        ...(this.o.commandPrefix ?? []),
        this.o.dnsmasq ?? 'dnsmasq',
        '--keep-in-foreground',
        `--conf-file=${join(this.dir!, 'dnsmasq.conf')}`,
      ],
      // The configuration's hash: a new configuration is a new spec, so dnsmasq restarts.
      env: dict({ LIMEN_LAN_CONFIG: hash }),
      restart: sym('always'),
    });
    this.#daemonHandle = this.facet.replace(
      this.#daemonHandle,
      this.o.config,
      record('daemon', id, spec),
    );
    this.#requireOnceServable();
  }

  /**
   * Requires the dnsmasq service once IF has an IPv4 address: before that dnsmasq
   * cannot answer (a client that asked meanwhile would wait for its next retry, seconds
   * later). Once required it stays required, so an address that comes and goes does
   * not restart dnsmasq.
   */
  #requireOnceServable(): void {
    if (this.#requireHandle !== undefined || this.running === undefined) return;
    if (this.addresses.size === 0) return;
    this.#requireHandle = this.facet.assert(
      this.o.config,
      record('require-service', this.service!),
    );
    // The LAN's DHCP and DNS keep running in maintenance mode (docs/safe-change.md).
    this.facet.assert(this.o.config, record('recovery-service', this.service!));
    // Leases are published while limen runs a DHCP server here, not before.
    if (this.o.dryRun !== true) this.#watchLeases();
  }

  #watchLeases(): void {
    if (this.#watcher !== undefined) return;
    try {
      this.#watcher = watch(this.dir!, (_event, filename) => {
        if (filename === null || filename === 'leases') this.#scheduleLeaseRead();
      });
      this.#watcher.on('error', () => this.#scheduleLeaseRead());
    } catch (e) {
      this.#log('warn', `cannot watch ${this.dir!}: ${String(e)}`);
    }
    this.#scheduleLeaseRead();
  }

  #scheduleLeaseRead(): void {
    if (this.#leaseTimer !== undefined || !this.facet.isAlive) return;
    this.#leaseTimer = setTimeout(() => {
      this.#leaseTimer = undefined;
      void this.#readLeases();
    }, this.o.leaseDebounceMs ?? 20);
  }

  async #readLeases(): Promise<void> {
    if (this.#readingLeases) {
      this.#leasesAgain = true;
      return;
    }
    this.#readingLeases = true;
    try {
      do {
        this.#leasesAgain = false;
        let text: string;
        try {
          text = await readFile(this.paths().leaseFile, {
            encoding: 'utf8',
            signal: this.facet.signal,
          });
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
          text = '';
        }
        if (text === this.#lastLeaseText) continue;
        this.#lastLeaseText = text;
        this.#parsedLeases = parseLeaseFile(text);
        this.#turn(() => this.#publishLeases());
      } while (this.#leasesAgain && this.facet.isAlive);
    } catch (e) {
      if (!this.facet.signal.aborted)
        this.#log('warn', `cannot read ${this.paths().leaseFile}: ${String(e)}`);
    } finally {
      this.#readingLeases = false;
    }
  }

  /** Publishes the unexpired leases, and comes back when the next one expires. */
  #publishLeases(): void {
    const nowMs = this.facet.engine.now();
    const now = Math.floor(nowMs / 1000);
    const want = new Map<string, Value>();
    let next: number | undefined;
    for (const l of this.#parsedLeases) {
      if (l.expires !== undefined && l.expires <= now) continue;
      if (l.expires !== undefined && (next === undefined || l.expires < next)) next = l.expires;
      const v = dhcpClientValue(this.ifname!, l);
      want.set(stringify(v), v);
    }
    clearTimeout(this.#expiryTimer);
    this.#expiryTimer = undefined;
    if (next !== undefined) {
      // dnsmasq rewrites its file when a lease expires, but a file it no longer
      // maintains (dnsmasq stopped or failing) must not keep a client forever.
      const delay = Math.min(Math.max(next * 1000 - nowMs, 0) + 1000, 2 ** 31 - 1);
      this.#expiryTimer = setTimeout(() => this.#turn(() => this.#publishLeases()), delay);
    }
    for (const [k, v] of want)
      if (!this.leases.has(k)) this.leases.set(k, this.facet.assert(this.o.machine, v));
    for (const [k, h] of this.leases) {
      if (want.has(k)) continue;
      this.facet.retract(h);
      this.leases.delete(k);
    }
  }

  #log(level: 'warn' | 'error', message: string): void {
    driverLog(this.facet, `lan-dhcp ${this.ifname ?? showValue(this.ifnameValue)}`)[level](message);
  }
}
