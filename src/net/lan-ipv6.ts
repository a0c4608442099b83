// The LAN's IPv6 prefixes: for each `<lan-ipv6 IF {subnet: N ula: B}>` it carves the
// /64 with id N out of every `<delegated-prefix WAN "P/LEN" {…} SOURCE>` (and out of
// the router's ULA /48) and desires the router's address P::1/64 on IF through the
// provider contract, with the delegated prefix's lifetimes (source `<lan-ipv6 IF>`).
// The LAN's dnsmasq announces what IF holds (src/net/lan-dhcp.ts, RA constructor).
//
// Invariants: when a delegated prefix goes, its LAN addresses go with it; a subnet id
// that does not fit a prefix is refused for that prefix (`<lan-ipv6-error IF M>`),
// never truncated. The ULA /48 is made once, when the first `<lan-ipv6 …>` appears,
// and kept in `${stateDir}/ula-prefix` (written atomically); a file that is not a ULA prefix is reported, never replaced.
// Stopping the driver retracts its desired addresses (the reconciler then removes them).

import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../platform/atomic-file.ts';
import {
  P,
  anyRecord,
  declareFailures,
  driverLog,
  during,
  type Driver,
  type Facet,
  type Handle,
  type Ref,
} from '../dataspace/index.ts';
import {
  Dict,
  ValueMap,
  peel,
  record,
  stringify,
  strip,
  sym,
  type Value,
} from '../preserves/index.ts';
import { providedAssertions, type ProvidedAddress } from './provided.ts';
import { carveSubnet, parseUlaPrefix, readLanIpv6, ulaPrefixFrom } from './lan-prefix.ts';

export const ULA_FILE = 'ula-prefix';

/**
 * The router's ULA /48 from `path`, made (from 5 random bytes) and written atomically
 * if the file does not exist; `create: false` only reads (a plan). Throws on a file
 * that holds something else: replacing it would renumber every LAN host.
 */
export async function loadOrCreateUla(
  path: string,
  o: { create?: boolean; random?: () => Uint8Array } = {},
): Promise<string | undefined> {
  let text: string | undefined;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  if (text !== undefined) {
    const p = parseUlaPrefix(text);
    if (p === undefined)
      throw new Error(`${path} does not hold a ULA prefix (fdXX:XXXX:XXXX::/48): fix or remove it`);
    return p;
  }
  if (o.create === false) return undefined;
  const prefix = ulaPrefixFrom((o.random ?? (() => randomBytes(5)))());
  await writeFileAtomic(path, `${prefix}\n`, { mode: 0o644 });
  return prefix;
}

export interface LanIpv6Options {
  readonly config: Ref;
  /** The ULA /48 is kept in `${stateDir}/ula-prefix`. */
  readonly stateDir: string;
  /** A plan: read the ULA file but never create it. */
  readonly dryRun?: boolean;
  /** Tests: the ULA's random global id. */
  readonly random?: () => Uint8Array;
}

/** Starts the LAN IPv6 prefix driver in a child facet of `parent`. */
export function startLanIpv6(parent: Facet, o: LanIpv6Options): Driver {
  const facet = parent.spawn((f) => {
    declareFailures(f, o.config, anyRecord('lan-ipv6-error', 2));
    const state: UlaState = { prefix: undefined, problem: undefined, interfaces: new Set() };
    const path = join(o.stateDir, ULA_FILE);
    // Made when the first LAN interface asks for IPv6, not by every daemon.
    let loading = false;
    const loadUla = (): void => {
      if (loading) return;
      loading = true;
      loadOrCreateUla(path, {
        create: o.dryRun !== true,
        ...(o.random ? { random: o.random } : {}),
      })
        .then(
          (p) => ({ prefix: p, problem: undefined }),
          (e: unknown) => ({
            prefix: undefined,
            problem: `ULA: ${e instanceof Error ? e.message : String(e)}`,
          }),
        )
        .then(
          (r) => {
            if (!f.isAlive) return;
            f.turn(() => {
              state.prefix = r.prefix;
              state.problem = r.problem;
              if (r.problem !== undefined) driverLog(f, 'lan-ipv6').error(r.problem);
              for (const i of state.interfaces) i.queueReconcile();
            });
          },
          () => undefined,
        );
    };
    during(
      f,
      o.config,
      P.rec('lan-ipv6', P.bind('ifname')),
      (child, c) => {
        const i = new LanIpv6Interface(child, o, strip(c.get('ifname')!), state);
        state.interfaces.add(i);
        loadUla();
        child.onStop(() => state.interfaces.delete(i));
      },
      'lan-ipv6',
    );
  }, 'lan-ipv6');
  return { facet, stop: () => facet.stop() };
}

interface UlaState {
  prefix: string | undefined;
  problem: string | undefined;
  readonly interfaces: Set<LanIpv6Interface>;
}

function lifetimeOf(d: Value, key: string): number | undefined {
  const x = peel(d);
  if (!(x instanceof Dict)) return undefined;
  const v = x.get(sym(key));
  return typeof v === 'number' ? v : undefined;
}

function renewedOf(d: Value): string | undefined {
  const x = peel(d);
  if (!(x instanceof Dict)) return undefined;
  const v = x.get(sym('renewed'));
  return typeof v === 'string' ? v : undefined;
}

/** One `<lan-ipv6 IF …>` interface; lives in IF's facet. */
class LanIpv6Interface {
  readonly facet: Facet;
  readonly o: LanIpv6Options;
  readonly ifnameValue: Value;
  readonly ula: UlaState;
  readonly specs = new ValueMap<number>();
  /** `[PREFIX LIFETIMES]` of every delegated prefix, counted. */
  readonly prefixes = new ValueMap<number>();
  readonly published = new Map<string, Handle>();
  /** `<lan-dhcp IF …>`s: the dnsmasq that announces IF's prefixes. */
  readonly lanDhcp = new ValueMap<number>();
  #queued = false;

  constructor(facet: Facet, o: LanIpv6Options, ifnameValue: Value, ula: UlaState) {
    this.facet = facet;
    this.o = o;
    this.ifnameValue = ifnameValue;
    this.ula = ula;
    const count = (m: ValueMap<number>, v: Value, d: number): void => {
      const n = (m.get(v) ?? 0) + d;
      if (n > 0) m.set(v, n);
      else m.delete(v);
      this.queueReconcile();
    };
    facet.observe(o.config, P.rec('lan-ipv6', P.lit(ifnameValue), P.bind('spec')), {
      onAdd: (_v, c) => count(this.specs, c.get('spec')!, +1),
      onRemove: (_v, c) => count(this.specs, c.get('spec')!, -1),
    });
    facet.observe(o.config, P.rec('lan-dhcp', P.lit(ifnameValue), P._), {
      onAdd: (v) => count(this.lanDhcp, v, +1),
      onRemove: (v) => count(this.lanDhcp, v, -1),
    });
    facet.observe(o.config, P.rec('delegated-prefix', P._, P.bind('prefix'), P.bind('life'), P._), {
      onAdd: (_v, c) => count(this.prefixes, [c.get('prefix')!, c.get('life')!], +1),
      onRemove: (_v, c) => count(this.prefixes, [c.get('prefix')!, c.get('life')!], -1),
    });
    this.queueReconcile();
  }

  queueReconcile(): void {
    if (this.#queued) return;
    this.#queued = true;
    this.facet.turn(() => {
      this.#queued = false;
      this.reconcile();
    });
  }

  reconcile(): void {
    const ifname = this.ifnameValue;
    const problems: string[] = [];
    const want: Value[] = [];
    if (this.specs.size > 1)
      problems.push(`${this.specs.size} different lan-ipv6 specs for this interface: keep one`);
    else if (this.specs.size === 1) {
      const r = readLanIpv6(ifname, [...this.specs.keys()][0]!);
      if (!r.ok) problems.push(...r.problems);
      else {
        const c = r.config;
        const addresses: ProvidedAddress[] = [];
        const seen = new Set<string>();
        for (const [pair] of this.prefixes) {
          const [p, life] = pair as readonly Value[];
          const prefix = peel(p!);
          if (typeof prefix !== 'string') continue;
          const s = carveSubnet(prefix, c.subnet);
          if ('problem' in s) {
            problems.push(`delegated prefix: ${s.problem}`);
            continue;
          }
          // One prefix delegated with two lifetimes (a renew in flight): the first one.
          if (seen.has(s.router)) continue;
          seen.add(s.router);
          addresses.push({
            cidr: s.router,
            validSeconds: lifetimeOf(life!, 'valid'),
            preferredSeconds: lifetimeOf(life!, 'preferred'),
            renewed: renewedOf(life!),
          });
          want.push(record('lan-ipv6-subnet', ifname, s.network, prefix));
        }
        if (c.ula && this.ula.prefix !== undefined) {
          const s = carveSubnet(this.ula.prefix, c.subnet);
          if ('problem' in s) problems.push(`ULA: ${s.problem}`);
          else {
            addresses.push({ cidr: s.router });
            want.push(record('lan-ipv6-subnet', ifname, s.network, this.ula.prefix));
          }
        }
        if (c.ula && this.ula.problem !== undefined) problems.push(this.ula.problem);
        if (this.lanDhcp.size === 0)
          problems.push(
            `no <lan-dhcp "${c.ifname}" …>: the router's addresses are installed, but router ` +
              `advertisements come from the LAN's dnsmasq, so LAN hosts get no IPv6 address`,
          );
        want.push(
          ...providedAssertions({
            ifname: c.ifname,
            source: record('lan-ipv6', c.ifname),
            addresses,
            routes: [],
            dns: [],
            domains: [],
            ntp: [],
          }),
        );
      }
    }
    for (const m of new Set(problems)) want.push(record('lan-ipv6-error', ifname, m));
    this.#publish(want);
  }

  /** Asserts what is wanted and not yet asserted before retracting the rest: no flap. */
  #publish(values: readonly Value[]): void {
    const want = new Map(values.map((v) => [stringify(v), v] as const));
    for (const [k, v] of want)
      if (!this.published.has(k)) this.published.set(k, this.facet.assert(this.o.config, v));
    for (const [k, h] of this.published) {
      if (want.has(k)) continue;
      this.facet.retract(h);
      this.published.delete(k);
    }
  }
}
