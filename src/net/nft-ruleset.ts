// The firewall's ruleset generator: reads the firewall vocabulary (zones,
// policies, masquerade, port forwards, IPv6 allows, open ports, forwarding,
// custom rules) into a model, collecting every problem, and renders the model
// as one nft script that replaces limen's own table and nothing else. Pure.
//
// Invariants: the script touches only `table inet limen` (it is added, deleted
// and re-created in one transaction, so `nft -f` swaps it atomically); output is
// deterministic (everything sorted), so equal inputs give byte-equal text and
// the same hash; every string that reaches the script was checked against a
// strict character set, so an assertion cannot inject nft syntax (custom rules
// are confined to one rule in one chain of limen's table).

import { LimenError, UserError } from '../base/errors.ts';
import { Record, Sym, peel, type Value } from '../preserves/index.ts';
import { formatIpv6Bits, ipv6Bits, parseIpv4 } from './inet-values.ts';
import { showValue } from '../preserves/index.ts';
import { firewallInterfaceProblem } from '../base/interface-name.ts';

export const FIREWALL_TABLE = 'limen';
export const FIREWALL_FAMILY = 'inet';

/** The labels of the assertions the firewall reads from $config. */
export const FIREWALL_LABELS = [
  'firewall-zone',
  'firewall-policy',
  'masquerade',
  'port-forward',
  'ipv6-allow',
  'firewall-open',
  'firewall-guard',
  'firewall-forward',
  'firewall-rule',
  'interface-over',
] as const;
export type FirewallLabel = (typeof FIREWALL_LABELS)[number];

export const ZONE_POLICIES = ['accept', 'drop', 'reject'] as const;
export type ZonePolicy = (typeof ZONE_POLICIES)[number];

export const PROTOCOLS = ['tcp', 'udp'] as const;
export type Protocol = (typeof PROTOCOLS)[number];

/** Chains a `<firewall-rule CHAIN "TEXT">` may add to. */
export const RULE_CHAINS = ['input', 'forward', 'prerouting', 'postrouting'] as const;
export type RuleChain = (typeof RULE_CHAINS)[number];

/** The zone whose default input policy is accept; every other zone defaults to drop. */
export const TRUSTED_ZONE = 'lan';

export interface Zone {
  readonly name: string;
  /** Interface names (a trailing `*` is a wildcard), sorted, without duplicates. */
  readonly members: readonly string[];
  readonly policy: ZonePolicy;
  /** True when the policy came from a `<firewall-policy>` rather than the default. */
  readonly explicitPolicy: boolean;
}

export interface PortForward {
  readonly zone: string;
  readonly proto: Protocol;
  readonly port: number;
  readonly address: string;
  readonly toPort: number;
}

/** IPv6 from `zone` to `proto` port `port` of the host whose interface identifier is `suffix`. */
export interface Ipv6Allow {
  readonly zone: string;
  readonly proto: Protocol;
  readonly port: number;
  /** The low 64 bits of the host's addresses, canonical text ("::211:22ff:fe33:4455"). */
  readonly suffix: string;
}

export interface OpenPort {
  readonly zone: string;
  readonly proto: Protocol;
  readonly port: number;
}

export interface ZonePair {
  readonly from: string;
  readonly to: string;
}

export interface CustomRule {
  readonly chain: RuleChain;
  readonly text: string;
}

/** The validated firewall configuration. Every list is sorted. */
export interface FirewallModel {
  readonly zones: readonly Zone[];
  readonly masquerades: readonly ZonePair[];
  readonly forwards: readonly ZonePair[];
  readonly portForwards: readonly PortForward[];
  readonly ipv6Allows: readonly Ipv6Allow[];
  readonly opens: readonly OpenPort[];
  /** Ports of the router only the guard's zone reaches (`<firewall-guard …>`). */
  readonly guards: readonly OpenPort[];
  readonly rules: readonly CustomRule[];
}

/** One problem with the firewall's inputs: `message` names the assertion and what to do. */
export interface FirewallProblem {
  readonly code: FirewallProblemCode;
  readonly message: string;
}

export const FirewallProblemCode = {
  /** The assertion does not have the documented shape. */
  Shape: 'LIMEN_FIREWALL_SHAPE',
  /** A field has a value that is not allowed (a bad port, interface name, address…). */
  Value: 'LIMEN_FIREWALL_VALUE',
  /** Two assertions contradict each other (an interface in two zones, two policies). */
  Conflict: 'LIMEN_FIREWALL_CONFLICT',
} as const;
export type FirewallProblemCode = (typeof FirewallProblemCode)[keyof typeof FirewallProblemCode];

export type FirewallReadResult =
  | {
      readonly ok: true;
      readonly model: FirewallModel;
      /** Things that work but probably are not what was meant (a rule naming an undefined zone). */
      readonly warnings: readonly string[];
    }
  | {
      readonly ok: false;
      readonly problems: readonly FirewallProblem[];
      readonly warnings: readonly string[];
    };

/** The firewall's inputs cannot be turned into a ruleset; carries every problem. */
export class FirewallConfigError extends UserError {
  readonly code = 'LIMEN_FIREWALL_CONFIG';
  readonly problems: readonly FirewallProblem[];
  constructor(problems: readonly FirewallProblem[]) {
    super(`invalid firewall configuration: ${problems.map((p) => p.message).join('; ')}`);
    this.problems = problems;
  }
}

/** A generated ruleset that nft refused, or an nft run that failed. */
export class NftError extends LimenError {
  readonly code: 'LIMEN_NFT_CHECK' | 'LIMEN_NFT_APPLY' | 'LIMEN_NFT_RUN';
  constructor(code: 'LIMEN_NFT_CHECK' | 'LIMEN_NFT_APPLY' | 'LIMEN_NFT_RUN', message: string) {
    super(message);
    this.code = code;
  }
}

// ---- Reading ---------------------------------------------------------------------------

const ZONE_NAME = /^[a-z][a-z0-9_]{0,23}$/;

function symbolName(v: Value): string | undefined {
  const x = peel(v);
  return x instanceof Sym ? x.name : undefined;
}

/** A zone name given as a symbol (the convention) or a string. */
function nameOf(v: Value): string | undefined {
  const x = peel(v);
  if (x instanceof Sym) return x.name;
  if (typeof x === 'string') return x;
  return undefined;
}

function labelOf(v: Value): FirewallLabel | undefined {
  const r = peel(v);
  if (!(r instanceof Record)) return undefined;
  const name = symbolName(r.label);
  return (FIREWALL_LABELS as readonly string[]).includes(name ?? '')
    ? (name as FirewallLabel)
    : undefined;
}

const SHAPES: { readonly [L in FirewallLabel]: string } = {
  'firewall-zone': '<firewall-zone NAME ["IF" …]>',
  'firewall-policy': '<firewall-policy ZONE accept|drop|reject>',
  masquerade: '<masquerade FROM-ZONE TO-ZONE>',
  'port-forward': '<port-forward ZONE tcp|udp PORT "ADDR" PORT>',
  'ipv6-allow': '<ipv6-allow ZONE tcp|udp PORT "::SUFFIX">',
  'firewall-open': '<firewall-open ZONE tcp|udp PORT>',
  'firewall-guard': '<firewall-guard ZONE tcp|udp PORT>',
  'firewall-forward': '<firewall-forward FROM-ZONE TO-ZONE>',
  'firewall-rule': '<firewall-rule input|forward|prerouting|postrouting "RULE">',
  'interface-over': '<interface-over "UPPER" "LOWER">',
};

const ARITY: { readonly [L in FirewallLabel]: number } = {
  'firewall-zone': 2,
  'firewall-policy': 2,
  masquerade: 2,
  'port-forward': 5,
  'ipv6-allow': 4,
  'firewall-open': 3,
  'firewall-guard': 3,
  'firewall-forward': 2,
  'firewall-rule': 2,
  'interface-over': 2,
};

class Reader {
  readonly problems: FirewallProblem[] = [];
  readonly warnings: string[] = [];
  /** zone name → members (from every firewall-zone assertion naming it). */
  readonly zones = new Map<string, Set<string>>();
  /** zone name → policy, with the assertion that set it. */
  readonly policies = new Map<string, { policy: ZonePolicy; from: string }>();
  readonly masquerades = new Map<string, ZonePair>();
  readonly forwards = new Map<string, ZonePair>();
  readonly portForwards = new Map<string, PortForward>();
  readonly ipv6Allows = new Map<string, Ipv6Allow>();
  /** zone → the first ipv6-allow from it. */
  readonly allowsFrom = new Map<string, string>();
  readonly opens = new Map<string, OpenPort>();
  readonly guards = new Map<string, OpenPort>();
  readonly rules = new Map<string, CustomRule>();
  /** lower interface → the interfaces a protocol made over it (`<interface-over UPPER LOWER>`). */
  readonly over = new Map<string, Set<string>>();
  /** Every zone name some rule refers to, with the first assertion that did. */
  readonly references = new Map<string, string>();

  problem(code: FirewallProblemCode, at: Value, message: string): void {
    this.problems.push({ code, message: `${showValue(at)}: ${message}` });
  }

  read(v: Value): void {
    const label = labelOf(v);
    if (label === undefined) return;
    const r = peel(v) as Record;
    if (r.fields.length !== ARITY[label]) {
      this.problem(
        FirewallProblemCode.Shape,
        v,
        `expected ${SHAPES[label]} (${ARITY[label]} fields), found ${r.fields.length}`,
      );
      return;
    }
    const f = r.fields;
    switch (label) {
      case 'firewall-zone':
        return this.zone(v, f[0]!, f[1]!);
      case 'firewall-policy':
        return this.policy(v, f[0]!, f[1]!);
      case 'masquerade':
      case 'firewall-forward': {
        const from = this.zoneRef(v, f[0]!, 'FROM-ZONE');
        const to = this.zoneRef(v, f[1]!, 'TO-ZONE');
        if (from === undefined || to === undefined) return;
        (label === 'masquerade' ? this.masquerades : this.forwards).set(`${from} ${to}`, {
          from,
          to,
        });
        return;
      }
      case 'port-forward':
        return this.portForward(v, f);
      case 'ipv6-allow': {
        const service = this.service(v, f);
        const suffix = this.suffix(v, f[3]!);
        if (service === undefined || suffix === undefined) return;
        const { zone, proto, port } = service;
        if (!this.allowsFrom.has(zone)) this.allowsFrom.set(zone, showValue(v));
        this.ipv6Allows.set(`${zone} ${proto} ${port} ${suffix}`, { ...service, suffix });
        return;
      }
      case 'firewall-open':
      case 'firewall-guard': {
        const service = this.service(v, f);
        if (service === undefined) return;
        (label === 'firewall-open' ? this.opens : this.guards).set(
          `${service.zone} ${service.proto} ${service.port}`,
          service,
        );
        return;
      }
      case 'firewall-rule':
        return this.rule(v, f[0]!, f[1]!);
      case 'interface-over':
        return this.interfaceOver(v, f[0]!, f[1]!);
    }
  }

  interfaceOver(at: Value, upperValue: Value, lowerValue: Value): void {
    const [upper, lower] = [peel(upperValue), peel(lowerValue)];
    if (
      typeof upper !== 'string' ||
      typeof lower !== 'string' ||
      firewallInterfaceProblem(upper) !== undefined ||
      firewallInterfaceProblem(lower) !== undefined ||
      upper.endsWith('*') ||
      lower.endsWith('*')
    ) {
      this.problem(FirewallProblemCode.Value, at, 'expected two interface names');
      return;
    }
    let set = this.over.get(lower);
    if (set === undefined) this.over.set(lower, (set = new Set()));
    set.add(upper);
  }

  /** A zone's members with every interface made over one of them (a PPP link over wan0). */
  withUppers(members: ReadonlySet<string>): Set<string> {
    const all = new Set(members);
    const queue = [...members];
    for (let m = queue.shift(); m !== undefined; m = queue.shift()) {
      for (const upper of this.over.get(m) ?? []) {
        if (all.has(upper)) continue;
        all.add(upper);
        queue.push(upper);
      }
    }
    return all;
  }

  zoneName(at: Value, v: Value, what: string): string | undefined {
    const name = nameOf(v);
    if (name === undefined || !ZONE_NAME.test(name)) {
      this.problem(
        FirewallProblemCode.Value,
        at,
        `${what} ${showValue(v)} is not a zone name: use a symbol of lower-case letters, digits ` +
          `and '_', starting with a letter, at most 24 characters (e.g. lan, wan, guest)`,
      );
      return undefined;
    }
    return name;
  }

  zoneRef(at: Value, v: Value, what: string): string | undefined {
    const name = this.zoneName(at, v, what);
    if (name !== undefined && !this.references.has(name)) this.references.set(name, showValue(at));
    return name;
  }

  zone(at: Value, nameValue: Value, membersValue: Value): void {
    const name = this.zoneName(at, nameValue, 'NAME');
    const members = peel(membersValue);
    if (!Array.isArray(members)) {
      this.problem(
        FirewallProblemCode.Shape,
        at,
        `the members must be a sequence of interface names, as in ["eth1" "wlan0"]`,
      );
      return;
    }
    const found: string[] = [];
    for (const m of members as readonly Value[]) {
      const x = peel(m);
      const ifname = typeof x === 'string' ? x : x instanceof Sym ? x.name : undefined;
      if (ifname === undefined || firewallInterfaceProblem(ifname) !== undefined) {
        this.problem(
          FirewallProblemCode.Value,
          at,
          `${showValue(m)} is not an interface name: 1 to 15 letters, digits, '_', '.', '@', '+' ` +
            `or '-', optionally ending in '*' (a wildcard)`,
        );
        continue;
      }
      found.push(ifname);
    }
    if (name === undefined) return;
    let set = this.zones.get(name);
    if (set === undefined) this.zones.set(name, (set = new Set()));
    for (const m of found) set.add(m);
  }

  policy(at: Value, zoneValue: Value, policyValue: Value): void {
    const zone = this.zoneRef(at, zoneValue, 'ZONE');
    const p = symbolName(policyValue);
    if (p === undefined || !(ZONE_POLICIES as readonly string[]).includes(p)) {
      this.problem(
        FirewallProblemCode.Value,
        at,
        `the policy must be one of the symbols ${ZONE_POLICIES.join(', ')}, got ${showValue(policyValue)}`,
      );
      return;
    }
    if (zone === undefined) return;
    const prev = this.policies.get(zone);
    if (prev !== undefined && prev.policy !== p) {
      this.problem(
        FirewallProblemCode.Conflict,
        at,
        `zone ${zone} already has the policy ${prev.policy} (from ${prev.from}): keep one`,
      );
      return;
    }
    this.policies.set(zone, { policy: p as ZonePolicy, from: showValue(at) });
  }

  proto(at: Value, v: Value): Protocol | undefined {
    const p = symbolName(v) ?? (typeof peel(v) === 'string' ? (peel(v) as string) : undefined);
    if (p !== undefined && (PROTOCOLS as readonly string[]).includes(p)) return p as Protocol;
    this.problem(
      FirewallProblemCode.Value,
      at,
      `the protocol must be tcp or udp, got ${showValue(v)}`,
    );
    return undefined;
  }

  port(at: Value, v: Value, what: string): number | undefined {
    const n = peel(v);
    if (typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 65535) return n;
    this.problem(
      FirewallProblemCode.Value,
      at,
      `${what} must be an integer from 1 to 65535, got ${showValue(v)}`,
    );
    return undefined;
  }

  /** The `ZONE PROTO PORT` that firewall-open and ipv6-allow start with. */
  service(at: Value, f: readonly Value[]): OpenPort | undefined {
    const zone = this.zoneRef(at, f[0]!, 'ZONE');
    const proto = this.proto(at, f[1]!);
    const port = this.port(at, f[2]!, 'PORT');
    if (zone === undefined || proto === undefined || port === undefined) return undefined;
    return { zone, proto, port };
  }

  portForward(at: Value, f: readonly Value[]): void {
    const zone = this.zoneRef(at, f[0]!, 'ZONE');
    const proto = this.proto(at, f[1]!);
    const port = this.port(at, f[2]!, 'the outside PORT');
    const addrValue = peel(f[3]!);
    let address: string | undefined;
    if (typeof addrValue === 'string' && parseIpv4(addrValue) !== undefined) address = addrValue;
    else
      this.problem(
        FirewallProblemCode.Value,
        at,
        `ADDR must be an IPv4 address as a string, like "192.168.1.10", got ${showValue(f[3]!)}`,
      );
    const toPort = this.port(at, f[4]!, 'the inside PORT');
    if (
      zone === undefined ||
      proto === undefined ||
      port === undefined ||
      address === undefined ||
      toPort === undefined
    )
      return;
    const key = `${zone} ${proto} ${port}`;
    const prev = this.portForwards.get(key);
    if (prev !== undefined && (prev.address !== address || prev.toPort !== toPort)) {
      this.problem(
        FirewallProblemCode.Conflict,
        at,
        `${proto} port ${port} on zone ${zone} is already forwarded to ` +
          `${prev.address}:${prev.toPort}: keep one`,
      );
      return;
    }
    this.portForwards.set(key, { zone, proto, port, address, toPort });
  }

  /** An interface identifier: an IPv6 address whose upper 64 bits are zero, not all zero. */
  suffix(at: Value, v: Value): string | undefined {
    const text = peel(v);
    const bits = typeof text === 'string' ? ipv6Bits(text) : undefined;
    if (bits !== undefined && bits !== 0n && bits >> 64n === 0n) return formatIpv6Bits(bits);
    this.problem(FirewallProblemCode.Value, at, suffixProblem(v, bits));
    return undefined;
  }

  rule(at: Value, chainValue: Value, textValue: Value): void {
    const chain = symbolName(chainValue);
    let ok = true;
    if (chain === undefined || !(RULE_CHAINS as readonly string[]).includes(chain)) {
      this.problem(
        FirewallProblemCode.Value,
        at,
        `the chain must be one of the symbols ${RULE_CHAINS.join(', ')}, got ${showValue(chainValue)}`,
      );
      ok = false;
    }
    const text = peel(textValue);
    if (typeof text !== 'string') {
      this.problem(
        FirewallProblemCode.Shape,
        at,
        `the rule must be a string of nft rule syntax, like "tcp dport 22 accept"`,
      );
      return;
    }
    const why = customRuleProblem(text);
    if (why !== undefined) {
      this.problem(FirewallProblemCode.Value, at, why);
      return;
    }
    if (!ok) return;
    const trimmed = text.trim();
    this.rules.set(`${chain!} ${trimmed}`, { chain: chain as RuleChain, text: trimmed });
  }

  finish(): FirewallReadResult {
    for (const [zone, members] of this.zones) this.zones.set(zone, this.withUppers(members));
    // An interface may belong to one zone only: otherwise which policy applies?
    const owner = new Map<string, string>();
    for (const [zone, members] of [...this.zones].sort(byKey)) {
      for (const m of members) {
        const other = owner.get(m);
        if (other !== undefined)
          this.problems.push({
            code: FirewallProblemCode.Conflict,
            message: `interface ${m} is in two zones, ${other} and ${zone}: put it in one`,
          });
        else owner.set(m, zone);
      }
    }
    for (const [zone, from] of [...this.references].sort(byKey)) {
      if (!this.zones.has(zone))
        this.warnings.push(
          `${from}: zone ${zone} is not defined (no <firewall-zone ${zone} […]>): ` +
            `its rules match nothing until it is`,
        );
    }
    // An ipv6-allow reaches the zones that forward to its zone: are there any?
    const pairs = [...this.masquerades.values(), ...this.forwards.values()];
    for (const [zone, from] of [...this.allowsFrom].sort(byKey)) {
      if (this.zones.has(zone) && !pairs.some((p) => p.to === zone && p.from !== zone))
        this.warnings.push(
          `${from}: no zone forwards to ${zone} (no <masquerade ZONE ${zone}> or ` +
            `<firewall-forward ZONE ${zone}>), so no host is behind it: it allows nothing`,
        );
    }
    if (this.problems.length > 0)
      return { ok: false, problems: this.problems, warnings: this.warnings };
    const zones: Zone[] = [...this.zones].sort(byKey).map(([name, members]) => {
      const p = this.policies.get(name);
      return {
        name,
        members: [...members].sort(compareText),
        policy: p?.policy ?? (name === TRUSTED_ZONE ? 'accept' : 'drop'),
        explicitPolicy: p !== undefined,
      };
    });
    const sorted = <T>(m: Map<string, T>): T[] => [...m].sort(byKey).map(([, v]) => v);
    return {
      ok: true,
      model: {
        zones,
        masquerades: sorted(this.masquerades),
        forwards: sorted(this.forwards),
        portForwards: [...this.portForwards.values()].sort(byService),
        ipv6Allows: [...this.ipv6Allows.values()].sort(
          (a, b) => byService(a, b) || compareText(a.suffix, b.suffix),
        ),
        opens: [...this.opens.values()].sort(byService),
        guards: [...this.guards.values()].sort(byService),
        rules: sorted(this.rules),
      },
      warnings: this.warnings,
    };
  }
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function byService(a: OpenPort, b: OpenPort): number {
  return compareText(a.zone, b.zone) || compareText(a.proto, b.proto) || a.port - b.port;
}

function byKey<T>(a: readonly [string, T], b: readonly [string, T]): number {
  return compareText(a[0], b[0]);
}

const LOW_64 = (1n << 64n) - 1n;

/** What is wrong with an ipv6-allow's SUFFIX `v` (`bits`, if it is an IPv6 address). */
function suffixProblem(v: Value, bits: bigint | undefined): string {
  const example = '"::211:22ff:fe33:4455"';
  if (bits === undefined)
    return (
      `SUFFIX must be a string holding the host's interface identifier (the low 64 bits ` +
      `of its IPv6 address, the upper 64 zero), like ${example}, got ${showValue(v)}`
    );
  if (bits === 0n) return `SUFFIX ${showValue(v)} is no host: it must not be all zeros`;
  const low = bits & LOW_64;
  return (
    `SUFFIX ${showValue(v)} is a whole address, and its prefix changes when the network is ` +
    `renumbered: give only the interface identifier, the low 64 bits, like ` +
    (low === 0n ? example : `"${formatIpv6Bits(low)}"`)
  );
}

/**
 * Why a custom rule's text cannot be placed in a chain, or undefined. A rule is
 * one line of nft rule syntax: no newline, ';', '#' or '\' outside a quoted
 * string (each would let the text end the rule), and balanced braces (so it
 * cannot close the chain and reach outside limen's table).
 */
export function customRuleProblem(text: string): string | undefined {
  if (text.trim() === '') return 'the rule is empty';
  if (text.length > 1000) return 'the rule is longer than 1000 characters';
  let depth = 0;
  let quoted = false;
  for (const ch of text) {
    const code = ch.codePointAt(0)!;
    if (code < 0x20 || code === 0x7f) return 'the rule must be one line without control characters';
    if (ch === '"') {
      quoted = !quoted;
      continue;
    }
    if (quoted) continue;
    if (ch === ';' || ch === '#' || ch === '\\')
      return `'${ch}' is not allowed outside quotes: a custom rule is one nft rule`;
    if (ch === '{') depth++;
    if (ch === '}' && --depth < 0) return 'unbalanced braces: a custom rule cannot close its chain';
  }
  if (quoted) return 'unterminated string';
  if (depth !== 0) return 'unbalanced braces';
  return undefined;
}

/** Reads the firewall's assertions (values with other labels are ignored). */
export function readFirewall(values: Iterable<Value>): FirewallReadResult {
  const r = new Reader();
  for (const v of values) r.read(v);
  return r.finish();
}

/** The nft script for the firewall's assertions; throws FirewallConfigError with every problem. */
export function generateRuleset(values: Iterable<Value>): string {
  const r = readFirewall(values);
  if (!r.ok) throw new FirewallConfigError(r.problems);
  return renderRuleset(r.model);
}

// ---- Rendering -------------------------------------------------------------------------

// The ICMP errors (and, on input, ICMPv6's on-link neighbour, router and listener
// discovery) are never limited: IPv6 breaks without them (RFC 4890 4.3.1, 4.4.1).
const ICMP_TYPES = 'destination-unreachable, time-exceeded, parameter-problem';
const ICMPV6_TYPES =
  'destination-unreachable, packet-too-big, time-exceeded, parameter-problem, ' +
  'nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, ' +
  'mld-listener-query';

/**
 * Echo requests are allowed but rate-limited (RFC 4890 4.3.1, 4.4.1): one budget for
 * those to the router (chain echo_input) and one for those forwarded into a zone
 * against the direction of a forwarding pair (echo_forward), each shared by both
 * families and every source. Ten a second is ten people running ping, with a burst
 * of 20 so a quick `ping -c 5 -i 0.2` loses nothing; beyond it, requests are dropped.
 */
const ECHO_LIMIT = { perSecond: 10, burst: 20 } as const;
const ECHO_CHAIN_BODY = [
  `limit rate ${ECHO_LIMIT.perSecond}/second burst ${ECHO_LIMIT.burst} packets accept`,
  'drop',
];

/** `{ "a", "b" }` for nft (interface names were checked: no quoting issues). */
function nameSet(names: readonly string[]): string {
  return `{ ${names.map((n) => `"${n}"`).join(', ')} }`;
}

function zoneChain(zone: string): string {
  return `input_${zone}`;
}

/** The nft script that replaces `table inet limen` with the model's ruleset. */
export function renderRuleset(model: FirewallModel): string {
  const zones = new Map(model.zones.map((z) => [z.name, z] as const));
  const members = (zone: string): readonly string[] => zones.get(zone)?.members ?? [];
  const custom = (chain: RuleChain): string[] =>
    model.rules.filter((r) => r.chain === chain).map((r) => r.text);

  const input: string[] = [
    'type filter hook input priority filter; policy drop;',
    'iif "lo" accept',
    // A guarded port (the web dashboard's) from anywhere but its zone: before every
    // accept, so that no open port, zone policy or custom rule exposes it.
    ...model.guards.map((g) => {
      const from = members(g.zone);
      return from.length === 0
        ? `${g.proto} dport ${g.port} drop`
        : `iifname != ${nameSet(from)} ${g.proto} dport ${g.port} drop`;
    }),
    // Before the established accept: conntrack counts every request of a ping after the
    // first as established (one entry per ping id), which would bypass the limit.
    'meta l4proto icmp icmp type echo-request jump echo_input',
    'meta l4proto ipv6-icmp icmpv6 type echo-request jump echo_input',
    'ct state established,related accept',
    'ct state invalid drop',
    `meta l4proto icmp icmp type { ${ICMP_TYPES} } accept`,
    `meta l4proto ipv6-icmp icmpv6 type { ${ICMPV6_TYPES} } accept`,
    // DHCP and DHCPv6 replies to this machine's own clients (on the wan, typically).
    'meta nfproto ipv4 udp sport 67 udp dport 68 accept',
    'meta nfproto ipv6 udp sport 547 udp dport 546 accept',
    ...custom('input'),
  ];
  const zoneChains: [string, string[]][] = [];
  for (const z of model.zones) {
    if (z.members.length > 0) input.push(`iifname ${nameSet(z.members)} jump ${zoneChain(z.name)}`);
    const body = model.opens
      .filter((o) => o.zone === z.name)
      .map((o) => `${o.proto} dport ${o.port} accept`);
    if (z.policy === 'accept') body.push('accept');
    else if (z.policy === 'reject') body.push('reject with icmpx admin-prohibited');
    else body.push('drop');
    zoneChains.push([zoneChain(z.name), body]);
  }

  const forward: string[] = [
    'type filter hook forward priority filter; policy drop;',
    // TCP's MSS clamped to the route's MTU on every forwarded SYN and SYN-ACK (before
    // the established accept, which SYN-ACKs match), so that a WAN with a smaller MTU
    // (PPPoE's 1492) breaks no connection whose path MTU discovery is blocked.
    'tcp flags & (syn | rst) == syn tcp option maxseg size set rt mtu',
    ...inboundEcho(model, members),
    'ct state established,related accept',
    'ct state invalid drop',
    ...custom('forward'),
  ];
  for (const pf of model.portForwards) {
    const ifs = members(pf.zone);
    if (ifs.length === 0) continue;
    forward.push(
      `iifname ${nameSet(ifs)} meta nfproto ipv4 ip daddr ${pf.address} ` +
        `${pf.proto} dport ${pf.toPort} ct status dnat accept`,
    );
  }
  for (const a of model.ipv6Allows) {
    const from = members(a.zone);
    const behind = forwardingTo(model, a.zone, members);
    if (from.length === 0 || behind.length === 0) continue;
    forward.push(
      `iifname ${nameSet(from)} oifname ${nameSet(behind)} ` +
        `ip6 daddr & ::ffff:ffff:ffff:ffff == ${a.suffix} ${a.proto} dport ${a.port} accept`,
    );
  }
  const pairs = new Map<string, ZonePair>();
  for (const p of [...model.masquerades, ...model.forwards]) pairs.set(`${p.from} ${p.to}`, p);
  // Interfaces of a trusted (accept) zone may forward to each other.
  for (const z of model.zones)
    if (z.policy === 'accept') pairs.set(`${z.name} ${z.name}`, { from: z.name, to: z.name });
  for (const [, p] of [...pairs].sort(byKey)) {
    const from = members(p.from);
    const to = members(p.to);
    if (from.length === 0 || to.length === 0) continue;
    forward.push(`iifname ${nameSet(from)} oifname ${nameSet(to)} accept`);
  }

  const prerouting: string[] = [
    'type nat hook prerouting priority dstnat; policy accept;',
    ...custom('prerouting'),
  ];
  for (const pf of model.portForwards) {
    const ifs = members(pf.zone);
    if (ifs.length === 0) continue;
    prerouting.push(
      `iifname ${nameSet(ifs)} meta nfproto ipv4 ${pf.proto} dport ${pf.port} ` +
        `dnat ip to ${pf.address}:${pf.toPort}`,
    );
  }

  const postrouting: string[] = [
    'type nat hook postrouting priority srcnat; policy accept;',
    ...custom('postrouting'),
  ];
  for (const m of model.masquerades) {
    const from = members(m.from);
    const to = members(m.to);
    if (from.length === 0 || to.length === 0) continue;
    postrouting.push(
      `meta nfproto ipv4 iifname ${nameSet(from)} oifname ${nameSet(to)} masquerade`,
    );
  }

  const chains: [string, readonly string[]][] = [
    ['input', input],
    ...zoneChains,
    ['echo_input', ECHO_CHAIN_BODY],
    ['forward', forward],
    ['echo_forward', ECHO_CHAIN_BODY],
    ['prerouting', prerouting],
    ['postrouting', postrouting],
  ];
  const out = [
    '# Generated by limen: the whole of table inet limen. Do not edit; it is replaced.',
    ...removalLines(),
    `table ${FIREWALL_FAMILY} ${FIREWALL_TABLE} {`,
  ];
  chains.forEach(([name, body], i) => {
    if (i > 0) out.push('');
    out.push(`\tchain ${name} {`, ...body.map((l) => `\t\t${l}`), '\t}');
  });
  out.push('}', '');
  return out.join('\n');
}

/**
 * The interfaces of every other zone that forwards to `zone` (by masquerade or
 * firewall-forward): where what `zone` is allowed to reach lies behind the router.
 */
function forwardingTo(
  model: FirewallModel,
  zone: string,
  members: (zone: string) => readonly string[],
): string[] {
  const ifs = new Set<string>();
  for (const p of [...model.masquerades, ...model.forwards])
    if (p.to === zone && p.from !== zone) for (const m of members(p.from)) ifs.add(m);
  return [...ifs].sort(compareText);
}

/**
 * The forward rules that send echo requests arriving against the direction of a
 * forwarding pair (from wan into lan, for `<masquerade lan wan>`) to echo_forward,
 * placed before the established accept, as on input. RFC 4890 4.3.1 asks that
 * they pass, limited: IPv6 hosts are addressable and ping is how their reachability
 * is checked. IPv4 only along firewall-forward pairs: behind a masquerade the LAN's
 * IPv4 addresses are private, and the NAT lets in only replies and port forwards.
 * A direction that is itself a pair (or a zone to itself) is not limited: all of
 * its traffic is allowed.
 */
function inboundEcho(model: FirewallModel, members: (zone: string) => readonly string[]): string[] {
  const pair = (p: ZonePair): string => `${p.from} ${p.to}`;
  const allowed = new Set([...model.masquerades, ...model.forwards].map(pair));
  const masqueraded = new Set(model.masquerades.map(pair));
  const inbound = new Map<string, { from: string; to: string; ipv4: boolean }>();
  for (const p of [...model.masquerades, ...model.forwards]) {
    const back = { from: p.to, to: p.from };
    if (back.from === back.to || allowed.has(pair(back))) continue;
    inbound.set(pair(back), { ...back, ipv4: !masqueraded.has(pair(p)) });
  }
  const rules: string[] = [];
  for (const [, d] of [...inbound].sort(byKey)) {
    const from = members(d.from);
    const to = members(d.to);
    if (from.length === 0 || to.length === 0) continue;
    const ifs = `iifname ${nameSet(from)} oifname ${nameSet(to)}`;
    if (d.ipv4) rules.push(`${ifs} meta l4proto icmp icmp type echo-request jump echo_forward`);
    rules.push(`${ifs} meta l4proto ipv6-icmp icmpv6 type echo-request jump echo_forward`);
  }
  return rules;
}

/** Adding the table first makes the delete succeed whether or not it exists. */
function removalLines(): string[] {
  return [
    `table ${FIREWALL_FAMILY} ${FIREWALL_TABLE} {}`,
    `delete table ${FIREWALL_FAMILY} ${FIREWALL_TABLE}`,
  ];
}

/** The nft script that removes limen's table (and nothing else), present or not. */
export function renderRemoval(): string {
  return ['# Generated by limen: removes table inet limen.', ...removalLines(), ''].join('\n');
}
