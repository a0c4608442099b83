// The `dhcpv6` interface protocol (docs/architecture.md, "The provider contract"):
// `<configure-interface IF <dhcpv6 {address: #t prefix: #t prefix-hint: 56}>>` lets
// the kernel take IF's SLAAC address and default route from router advertisements
// (`<sysctl "net.ipv6.conf.IF.accept_ra" 2>` while IF exists: even while
// forwarding), and runs dhcpcd (Debian's dhcpcd-base) for IF while it has carrier and
// a link-local address, for an address (IA_NA) and a delegated prefix (IA_PD). IF
// may be a PPP link's (`ppp-wan0`), which comes and goes with its session: its
// absence is no failure, and each session gets a dhcpcd of its own. dhcpcd
// configures nothing (`--noconfigure`, `noipv6rs`: it never sees an RA); its hook,
// libexec/dhcpcd-script, hands the reply over as service outputs, which
// interpretDhcpv6 (pure) validates into one
// ProvidedConfig: the IA_NA addresses (/128) with their lifetimes, DNS servers and
// search domains (DHCPv6's, and the RA's RDNSS and DNSSL that the interface monitor
// reads from the kernel: `<ra-dns IF …>`, `<ra-search IF …>` in $machine), the
// delegated prefixes, and, reported only, the kernel's SLAAC addresses and RA
// default route on IF (read from $machine; never desired, so never installed twice). `<dhcpv6-lease IF {…}>` says a lease is held (ifdown ends it with
// `! <dhcpv6-release IF>`: SIGALRM, a DHCPv6 RELEASE, and dhcpcd exits until `limen
// ifup IF` or the next carrier); `! <dhcpv6-renew IF>` renews now (SIGUSR1);
// `<dhcpv6-error IF MESSAGE>` what is wrong.
//
// Invariants: nothing of a lease is asserted before its `event` output exists; a
// hostile value (a prefix longer than /64, zero or inverted lifetimes, a DNS server
// that is not a unicast IPv6 address, non-printable text) is refused with a message
// and left out, never installed; stopping withdraws everything (the kernel keeps the
// SLAAC address and RA route, which are the kernel's).

import { Dict, Record, Sym, peel, printable, record, sym, type Value } from '../preserves/index.ts';
import {
  P,
  anyRecord,
  declareFailures,
  during,
  type Driver,
  type Facet,
  type Ref,
} from '../dataspace/index.ts';
import { isInterfaceName } from '../base/interface-name.ts';
import { ipv6Bits, ipv6UnicastProblem, parseDomainName } from './inet-values.ts';
export { ipv6Bits, ipv6UnicastProblem } from './inet-values.ts';
import { providedAssertions, type ProvidedAddress, type ProvidedRoute } from './provided.ts';
import { followOutputs } from './service-outputs.ts';

/** A validated `<dhcpv6 {…}>`. */
export interface Dhcpv6Options {
  /** Ask for an address (IA_NA). */
  readonly address: boolean;
  /** Ask for a delegated prefix (IA_PD). */
  readonly prefix: boolean;
  /** The prefix length to hint at (IA_PD), or undefined: the server chooses. */
  readonly prefixHint: number | undefined;
}

const KEYS = ['address', 'prefix', 'prefix-hint'] as const;
/** DHCPv6's infinite lifetime (0xffffffff seconds). */
export const INFINITE_LIFETIME = 4294967295;

/** Reads `<dhcpv6>` or `<dhcpv6 {…}>`: the options, or every problem. */
export function readDhcpv6(
  method: Value,
): { ok: true; options: Dhcpv6Options } | { ok: false; problems: string[] } {
  const m = peel(method);
  const problems: string[] = [];
  if (!(m instanceof Record) || m.fields.length > 1)
    return { ok: false, problems: ['expected <dhcpv6> or <dhcpv6 {address: #t prefix-hint: 56}>'] };
  const d = m.fields.length === 0 ? new Dict() : peel(m.fields[0]!);
  if (!(d instanceof Dict))
    return { ok: false, problems: ['expected <dhcpv6> or <dhcpv6 {address: #t prefix-hint: 56}>'] };
  for (const [k] of d) {
    const key = peel(k);
    if (!(key instanceof Sym) || !(KEYS as readonly string[]).includes(key.name))
      problems.push(
        `unknown option ${key instanceof Sym ? printable(key.name) : '?'} (known: ${KEYS.join(', ')})`,
      );
  }
  const flag = (k: string): boolean => {
    const v = d.get(sym(k));
    if (v === undefined) return true;
    const b = peel(v);
    if (typeof b === 'boolean') return b;
    problems.push(`${k} must be #t or #f`);
    return true;
  };
  const address = flag('address');
  const prefix = flag('prefix');
  let prefixHint: number | undefined;
  const hint = d.get(sym('prefix-hint'));
  if (hint !== undefined) {
    const n = peel(hint);
    if (typeof n === 'number' && Number.isInteger(n) && n >= 32 && n <= 64) prefixHint = n;
    else problems.push('prefix-hint must be a prefix length from 32 to 64');
    if (!prefix) problems.push('prefix-hint asks for a prefix, but prefix is #f');
  }
  return problems.length > 0
    ? { ok: false, problems }
    : { ok: true, options: { address, prefix, prefixHint } };
}

/** dhcpcd's configuration for IF, one line each (written by the service's shell). */
export function dhcpcdConfig(ifname: string, o: Dhcpv6Options): string[] {
  return [
    // The kernel takes RAs (accept_ra=2); dhcpcd would set accept_ra to 0 if it did.
    'noipv6rs',
    'option dhcp6_name_servers',
    // The search domains as raw bytes: dhcpcd's text of them is ambiguous (a space
    // inside a name reads as two names); the hook decodes them (libexec/dhcpcd-script).
    'define6 24 binhex domain_search_raw',
    'option dhcp6_domain_search_raw',
    `interface ${ifname}`,
    ...(o.address ? ['ia_na 1'] : []),
    ...(o.prefix ? [o.prefixHint === undefined ? 'ia_pd 2' : `ia_pd 2/::/${o.prefixHint}`] : []),
    // Neither: stateless DHCPv6, for DNS alone.
    ...(!o.address && !o.prefix ? ['inform6'] : []),
  ];
}

/**
 * The service's argv: in a mount namespace of its own, a shell writes the
 * configuration into a dot-file of the outputs directory (which limen does not read
 * as an output), binds limen's own directories over dhcpcd's fixed ones, and execs
 * dhcpcd in the foreground, IPv6 only, configuring nothing, with limen's hook.
 * dhcpcd keeps its DUID and lease copies in /var/lib/dhcpcd and its pid file in
 * /run/dhcpcd, which every network namespace shares: bound over them, STATE/dhcpcd
 * (the router's DUID, kept across restarts) and a dot-directory of the outputs
 * (per service run), so two routers on one machine (labs, tests) never meet there
 * (one refusing to start "already running", or rebinding the other's lease).
 */
export function dhcpcdArgv(
  ifname: string,
  hook: string,
  o: Dhcpv6Options,
  stateDir: string,
): string[] {
  return [
    'unshare',
    '--mount',
    '--propagation',
    'private',
    '--',
    'sh',
    '-c',
    'if=$1; hook=$2; state=$3; shift 3; conf=$LIMEN_OUTPUTS/.dhcpcd.conf; ' +
      'run=$LIMEN_OUTPUTS/.dhcpcd-run; ' +
      'printf "%s\\n" "$@" >"$conf" || exit 1; ' +
      'mkdir -p "$state" "$run" /var/lib/dhcpcd /run/dhcpcd || exit 1; ' +
      'mount --bind "$state" /var/lib/dhcpcd && mount --bind "$run" /run/dhcpcd || exit 1; ' +
      'exec dhcpcd -6 -B --noconfigure -f "$conf" -c "$hook" -e "LIMEN_OUTPUTS=$LIMEN_OUTPUTS" "$if"',
    'dhcpcd',
    ifname,
    hook,
    `${stateDir}/dhcpcd`,
    ...dhcpcdConfig(ifname, o),
  ];
}

/** The sysctl key that makes the kernel take RAs on IF while forwarding. */
export function acceptRaKey(ifname: string): string {
  return ifname.includes('.')
    ? `net/ipv6/conf/${ifname}/accept_ra`
    : `net.ipv6.conf.${ifname}.accept_ra`;
}

// ---- Interpreting the outputs (pure) ------------------------------------------------------

/** What the kernel holds on IF by itself, as $machine reports it. */
export interface KernelIpv6 {
  /** Global addresses "ADDR/LEN" with a finite lifetime (SLAAC). */
  readonly addresses: readonly string[];
  /** Default routes via a link-local router (from an RA): gateway and metric. */
  readonly routes: readonly { readonly via: string; readonly metric: number }[];
  /** DNS servers from the RAs' RDNSS options (unchecked: as routers sent them). */
  readonly raDns?: readonly string[];
  /** Search domains from the RAs' DNSSL options (unchecked). */
  readonly raDomains?: readonly string[];
}

export interface Dhcpv6Interpretation {
  readonly assertions: readonly Value[];
  readonly problems: readonly string[];
}

const source = (ifname: string): Value => record('dhcpv6', ifname);

function canonical(text: string): string {
  return new URL(`http://[${text}]/`).hostname.slice(1, -1);
}

/**
 * What dhcpcd-script's outputs (key → value) and the kernel's own IPv6 state on IF
 * mean: the provided configuration and `<dhcpv6-lease …>`, or `<dhcpv6-error …>`s.
 */
export function interpretDhcpv6(
  ifname: string,
  outputs: ReadonlyMap<string, Value>,
  kernel: KernelIpv6 = { addresses: [], routes: [] },
): Dhcpv6Interpretation {
  const problems: string[] = [];
  const kernelReport = (leased: readonly ProvidedAddress[]) => ({
    // An IA_NA address is in the kernel too (limen installed it): not the kernel's own.
    addresses: kernel.addresses
      .filter((cidr) => !leased.some((a) => a.cidr === cidr))
      .map((cidr): ProvidedAddress => ({ cidr })),
    routes: kernel.routes.map((r): ProvidedRoute => ({
      family: 'ipv6',
      destination: 'default',
      via: r.via,
      metric: r.metric,
    })),
  });
  const base = { ifname, source: source(ifname), routes: [], ntp: [] };
  const text = (key: string, v: Value): string | undefined => {
    const s = peel(v);
    if (typeof s !== 'string') {
      problems.push(`${key}: expected text`);
      return undefined;
    }
    if (/[^\x21-\x7e]/.test(s)) {
      problems.push(`${key}: ${quote(s)} holds spaces or characters that are not printable`);
      return undefined;
    }
    return s;
  };
  /** DNS servers and search domains checked alike, whether DHCPv6 or an RA gave them. */
  const addDns = (dns: string[], key: string, item: Value): void => {
    const a = text(key, item);
    if (a === undefined) return;
    const p = ipv6UnicastProblem(a);
    if (p !== undefined) problems.push(`${key}: ${quote(a)} is ${p}`);
    else if (!dns.includes(canonical(a))) dns.push(canonical(a));
  };
  const addDomain = (domains: string[], key: string, item: Value): void => {
    const s = text(key, item);
    if (s === undefined) return;
    const d = parseDomainName(s);
    if (d === undefined) problems.push(`${key}: ${quote(s)} is not a domain name`);
    else if (!domains.includes(d.toLowerCase())) domains.push(d.toLowerCase());
  };
  /** The RA's, after DHCPv6's: one list, each value once. */
  const withRa = (dns: readonly string[], domains: readonly string[]) => {
    const d = [...dns];
    const s = [...domains];
    for (const a of kernel.raDns ?? []) addDns(d, 'ra-dns', a);
    for (const x of kernel.raDomains ?? []) addDomain(s, 'ra-search', x);
    return { dns: d, domains: s };
  };
  const failures = () => problems.map((m) => record('dhcpv6-error', ifname, m));
  const eventValue = peel(outputs.get('event') ?? false);
  if (typeof eventValue !== 'string' || outputs.get('event') === undefined) {
    const out = providedAssertions({
      ...base,
      addresses: [],
      ...withRa([], []),
      kernel: kernelReport([]),
    });
    out.push(...failures());
    return { assertions: out, problems };
  }
  const event = printable(eventValue);

  const list = (key: string): readonly Value[] => {
    const v = outputs.get(key);
    if (v === undefined) return [];
    const s = peel(v);
    if (Array.isArray(s)) return s as readonly Value[];
    problems.push(`${key}: expected a sequence`);
    return [];
  };
  /**
   * What came with a valid lifetime of 0: the server withdrawing it (RFC 8415 18.2.10.1:
   * a renumbering ISP sends the old prefix so), never installed; an error only when the
   * lease has nothing else (a server that offers only what is already expired).
   */
  const withdrawn: string[] = [];
  /** Preferred and valid lifetimes: valid 1 to infinite, preferred at most valid. */
  const lifetimes = (
    what: string,
    pl: Value | undefined,
    vl: Value | undefined,
  ): { preferred: number; valid: number } | undefined => {
    const p = peel(pl ?? false);
    const v = peel(vl ?? false);
    const ok = (n: unknown): n is number =>
      typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= INFINITE_LIFETIME;
    if (!ok(p) || !ok(v)) {
      problems.push(`${what}: lifetimes must be whole numbers of seconds`);
      return undefined;
    }
    if (v === 0) {
      withdrawn.push(what);
      return undefined;
    }
    if (p > v) {
      problems.push(`${what}: preferred lifetime ${p} is longer than valid lifetime ${v}`);
      return undefined;
    }
    return { preferred: p, valid: v };
  };
  const seconds = (n: number) => (n === INFINITE_LIFETIME ? undefined : n);

  const addresses: ProvidedAddress[] = [];
  for (const item of list('addresses')) {
    const fields = peel(item);
    if (!Array.isArray(fields) || fields.length !== 3) {
      problems.push('addresses: expected ["ADDRESS" PREFERRED VALID]');
      continue;
    }
    const a = text('address', fields[0] as Value);
    if (a === undefined) continue;
    const p = ipv6UnicastProblem(a);
    if (p !== undefined) {
      problems.push(`address: ${quote(a)} is ${p}`);
      continue;
    }
    const l = lifetimes(`address ${canonical(a)}`, fields[1] as Value, fields[2] as Value);
    if (l === undefined) continue;
    const cidr = `${canonical(a)}/128`;
    if (addresses.some((x) => x.cidr === cidr)) continue;
    addresses.push({
      cidr,
      validSeconds: seconds(l.valid),
      preferredSeconds: seconds(l.preferred),
      renewed: event,
    });
  }

  const prefixes: ProvidedAddress[] = [];
  for (const item of list('prefixes')) {
    const fields = peel(item);
    if (!Array.isArray(fields) || fields.length !== 4) {
      problems.push('prefixes: expected ["PREFIX" LENGTH PREFERRED VALID]');
      continue;
    }
    const a = text('prefix', fields[0] as Value);
    if (a === undefined) continue;
    const len = peel(fields[1] as Value);
    if (typeof len !== 'number' || !Number.isInteger(len) || len < 1 || len > 128) {
      problems.push(`prefix ${quote(a)}: the length is not a number from 1 to 128`);
      continue;
    }
    if (len > 64) {
      problems.push(
        `prefix ${quote(`${a}/${len}`)}: longer than /64, so it holds no /64 for a LAN: refused`,
      );
      continue;
    }
    const bits = ipv6Bits(a);
    const p = ipv6UnicastProblem(a);
    if (bits === undefined || (p !== undefined && p !== 'the unspecified address')) {
      problems.push(`prefix: ${quote(a)} is ${p ?? 'not an IPv6 address'}`);
      continue;
    }
    if (bits === 0n || (bits & ((1n << BigInt(128 - len)) - 1n)) !== 0n) {
      problems.push(`prefix ${quote(`${a}/${len}`)}: not a network (bits set beyond /${len})`);
      continue;
    }
    const cidr = `${canonical(a)}/${len}`;
    const l = lifetimes(`prefix ${cidr}`, fields[2] as Value, fields[3] as Value);
    if (l === undefined) continue;
    if (prefixes.some((x) => x.cidr === cidr)) continue;
    prefixes.push({
      cidr,
      validSeconds: seconds(l.valid),
      preferredSeconds: seconds(l.preferred),
      renewed: event,
    });
  }

  const dns: string[] = [];
  for (const item of list('dns')) addDns(dns, 'dns', item);
  const domains: string[] = [];
  for (const item of list('domains')) addDomain(domains, 'domains', item);
  let server: string | undefined;
  const serverValue = outputs.get('server');
  if (serverValue !== undefined) {
    const s = peel(serverValue);
    if (typeof s === 'string' && /^[0-9a-fA-F]{0,260}$/.test(s)) server = s.toLowerCase();
    else problems.push('server: not a DUID in hex');
  }

  if (withdrawn.length > 0 && addresses.length === 0 && prefixes.length === 0)
    for (const what of withdrawn) problems.push(`${what}: a valid lifetime of 0 (expired)`);
  const out = providedAssertions({
    ...base,
    addresses,
    ...withRa(dns, domains),
    delegatedPrefixes: prefixes,
    kernel: kernelReport(addresses),
  });
  const status = new Dict([
    [sym('addresses'), addresses.map((a) => a.cidr)],
    [sym('prefixes'), prefixes.map((a) => a.cidr)],
    [sym('dns'), dns],
    [sym('domains'), domains],
    [sym('event'), event],
  ] as [Value, Value][]);
  if (withdrawn.length > 0) status.set(sym('withdrawn'), withdrawn);
  if (server !== undefined && server !== '') status.set(sym('server'), server);
  out.push(record('dhcpv6-lease', ifname, status));
  out.push(...failures());
  return { assertions: out, problems };
}

function quote(s: string): string {
  return JSON.stringify(printable(s));
}

// ---- The driver ---------------------------------------------------------------------------

export interface Dhcpv6DriverOptions {
  readonly config: Ref;
  readonly machine: Ref;
}

/** Starts the `dhcpv6` protocol's driver in a child facet of `parent`. */
export function startDhcpv6(parent: Facet, o: Dhcpv6DriverOptions): Driver {
  const facet = parent.spawn((f) => {
    declareFailures(f, o.config, anyRecord('dhcpv6-error', 2));
    during(
      f,
      o.config,
      P.rec('configure-interface', P.bind('if'), P.bind('method', P.rec('dhcpv6'))),
      (child, c) => {
        const ifname = peel(c.get('if')!);
        if (typeof ifname !== 'string') return;
        if (!isInterfaceName(ifname)) {
          child.assert(o.config, record('dhcpv6-error', ifname, 'not an interface name'));
          return;
        }
        const r = readDhcpv6(c.get('method')!);
        if (!r.ok) {
          for (const m of r.problems) child.assert(o.config, record('dhcpv6-error', ifname, m));
          return;
        }
        runInterface(child, o, ifname, r.options);
      },
      'dhcpv6: configure-interface',
    );
  }, 'dhcpv6');
  return { facet, stop: () => facet.stop() };
}

function runInterface(f: Facet, o: Dhcpv6DriverOptions, ifname: string, opts: Dhcpv6Options) {
  const service = record('daemon', record('dhcpcd', ifname));
  // The kernel takes RAs on IF even while the router forwards: set whenever IF exists
  // (anew each time, as the sysctl driver writes it on an interface's appearance), and
  // asked for only then, so that a PPP link between sessions is no `<sysctl-error …>`.
  during(f, o.machine, P.rec('interface', P.lit(ifname)), (g) =>
    g.assert(o.config, record('sysctl', acceptRaKey(ifname), '2')),
  );
  const carrier = P.rec('interface', P.lit(ifname), P._, P._, P._, P._, P.lit(sym('carrier')), P._);
  // dhcpcd turns the kernel's link-local addresses off as it starts (addr_gen_mode
  // "none": it means to make its own, which it does not with --noconfigure), and its
  // hook turns them back on. Started before the kernel made IF's link-local address
  // (carrier comes before the operstate the kernel waits for), it could leave IF
  // without one; so dhcpcd starts once IF has one, and stops when it goes (the link
  // went down: it comes back once dhcpcd has stopped and its hook has run). On a PPP
  // link, which has carrier from LCP on, IPV6CP sets the address later, and dhcpcd
  // 9.4 would never see it: it reads a new address from netlink's IFA_ADDRESS, which
  // on a point-to-point link is the peer's, and ignores it as not its own.
  const linkLocal = P.rec(
    'address',
    P.lit(ifname),
    P.lit(sym('ipv6')),
    P._,
    P._,
    P.dict({ scope: P.lit(sym('link')) }),
  );
  const paths = P.dict({ libexec: P.bind('libexec'), state: P.bind('state') });
  during(f, o.config, P.rec('limen-paths', paths), (p, c) => {
    const libexec = peel(c.get('libexec')!);
    const state = peel(c.get('state')!);
    if (typeof libexec !== 'string' || typeof state !== 'string') return;
    during(p, o.machine, carrier, (q) =>
      during(q, o.machine, linkLocal, (g) => {
        g.assert(
          o.config,
          record(
            'daemon',
            record('dhcpcd', ifname),
            new Dict([
              [sym('argv'), dhcpcdArgv(ifname, `${libexec}/dhcpcd-script`, opts, state)],
              // A RELEASE (SIGALRM) makes dhcpcd exit 0: it stays down until ifup.
              [sym('restart'), sym('on-error')],
              // dhcpcd stops its privilege-separation proxies itself: signalled with it
              // (while it ran its hook on losing carrier), it sometimes hung until SIGKILL.
              [sym('stopScope'), sym('main')],
            ] as [Value, Value][]),
          ),
        );
        g.assert(o.config, record('require-service', service));
        g.assert(o.config, record('recovery-service', service));
      }),
    );
  });
  f.observe(o.config, P.rec('dhcpv6-release', P.lit(ifname)), {
    onMessage: () => f.send(o.config, record('signal-service', service, sym('SIGALRM'))),
  });
  // A renew now (SIGUSR1), as `<dhcp-renew IF>` is for udhcpc.
  f.observe(o.config, P.rec('dhcpv6-renew', P.lit(ifname)), {
    onMessage: () => f.send(o.config, record('signal-service', service, sym('SIGUSR1'))),
  });
  f.observe(o.config, P.rec('interface-retry', P.lit(ifname)), {
    onMessage: () => f.send(o.config, record('restart-service', service)),
  });

  // The kernel's own IPv6 state on IF, reported through the contract.
  const addresses = new Map<string, number>();
  const routes = new Map<string, number>();
  const bump = (m: Map<string, number>, k: string, d: number) => {
    const n = (m.get(k) ?? 0) + d;
    if (n > 0) m.set(k, n);
    else m.delete(k);
  };
  // The RA's route stays in the kernel (linkdown) while IF has no carrier: not reported.
  // (A count: a change of IF's record adds the new one before it removes the old.)
  let carrierNow = 0;
  const raDns = new Map<string, number>();
  const raDomains = new Map<string, number>();
  const kernel = (): KernelIpv6 => ({
    addresses: [...addresses.keys()].sort(),
    routes: [...(carrierNow > 0 ? routes.keys() : [])].sort().map((k) => {
      const [via, metric] = k.split(' ');
      return { via: via!, metric: Number(metric) };
    }),
    raDns: [...raDns.keys()].sort(),
    raDomains: [...raDomains.keys()].sort(),
  });
  const refresh = followOutputs(
    f,
    o.config,
    service,
    (latest) => interpretDhcpv6(ifname, latest, kernel()).assertions,
    `dhcpv6: ${ifname}`,
  );
  const onAddress = (d: number) => (_v: Value, c: Map<string, Value>) => {
    const a = peel(c.get('a')!);
    const len = peel(c.get('len')!);
    const opts = peel(c.get('o')!);
    if (typeof a !== 'string' || typeof len !== 'number' || !(opts instanceof Dict)) return;
    // SLAAC's: global, with a finite valid lifetime (static ones are forever).
    if (!is(opts.get(sym('scope')), sym('global'))) return;
    if (typeof peel(opts.get(sym('valid')) ?? false) !== 'number') return;
    bump(addresses, `${a}/${len}`, d);
    refresh();
  };
  f.observe(
    o.machine,
    P.rec('address', P.lit(ifname), P.lit(sym('ipv6')), P.bind('a'), P.bind('len'), P.bind('o')),
    { onAdd: onAddress(+1), onRemove: onAddress(-1) },
  );
  const onCarrier = (d: number) => () => {
    carrierNow += d;
    refresh();
  };
  f.observe(o.machine, carrier, { onAdd: onCarrier(+1), onRemove: onCarrier(-1) });
  const onRoute = (d: number) => (_v: Value, c: Map<string, Value>) => {
    const via = peel(c.get('via')!);
    const metric = peel(c.get('metric')!);
    if (typeof via !== 'string' || typeof metric !== 'number') return;
    if (ipv6UnicastProblem(via) !== 'a link-local address') return;
    bump(routes, `${via} ${metric}`, d);
    refresh();
  };
  f.observe(
    o.machine,
    P.rec(
      'route',
      P.lit(sym('ipv6')),
      P.lit('default'),
      P.bind('metric'),
      P.lit(sym('main')),
      P.lit(ifname),
      P.bind('via'),
    ),
    { onAdd: onRoute(+1), onRemove: onRoute(-1) },
  );
  // The RAs' DNS (one assertion per router that sent it): checked with DHCPv6's.
  const onRa = (m: Map<string, number>, d: number) => (_v: Value, c: Map<string, Value>) => {
    const x = peel(c.get('x')!);
    if (typeof x !== 'string') return;
    bump(m, x, d);
    refresh();
  };
  for (const [label, m] of [
    ['ra-dns', raDns],
    ['ra-search', raDomains],
  ] as const)
    f.observe(o.machine, P.rec(label, P.lit(ifname), P.bind('x'), P._), {
      onAdd: onRa(m, +1),
      onRemove: onRa(m, -1),
    });
}

function is(a: Value | undefined, b: Value): boolean {
  const x = a === undefined ? undefined : peel(a);
  return x instanceof Sym && b instanceof Sym && x.name === b.name;
}
