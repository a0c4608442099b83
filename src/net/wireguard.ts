// WireGuard links: `<wireguard NAME {private-key-file listen-port addresses peers}>`
// in $config asks for a WireGuard link NAME, keyed and peered with `wg set`
// (wireguard-tools), whose addresses and one route per allowed IP (dev NAME) are
// published through the provider contract (provided.ts). This module reads and
// checks the spec, opens the key files, and builds `wg`'s arguments; the
// virtual-links driver (virtual-links.ts) runs them.
//
// Secrets: the configuration names key files, never keys. `wg` reads each key from
// a descriptor limen opened after checking the file (secret-file.ts: a regular
// file, owned by root, mode 0600 or stricter), as `/proc/self/fd/N` (not /dev/fd,
// which a minimal /dev lacks): no key is on a command line, in limen's memory, a
// log, a status or an assertion, and what `wg` says on failure is redacted before
// it is shown (it quotes a malformed key).

import { closeSync } from 'node:fs';
import { record, showValue, type Value } from '../preserves/index.ts';
import { openSecretFile } from '../platform/secret-file.ts';
import { readLinkRecord, type ReadLink } from './link-record.ts';
import { SpecOptions } from './spec-options.ts';
import { isIpv4, isIpv6, parseDomainName, parseHostCidr } from './inet-values.ts';
import { formatIp, isNetworkPrefix, parseIp, parsePrefix, type Prefix } from './netlink-codec.ts';
import { providedAssertions } from './provided.ts';

export interface WireguardPeer {
  readonly publicKey: string;
  readonly presharedKeyFile: string | undefined;
  /** "HOST:PORT" (IPv6 as "[ADDR]:PORT"). */
  readonly endpoint: string | undefined;
  /** Canonical networks "ADDR/LEN". */
  readonly allowedIps: readonly string[];
  /** Seconds; 0 is off. */
  readonly persistentKeepalive: number;
}

export interface WireguardSpec {
  readonly kind: 'wireguard';
  readonly name: string;
  readonly privateKeyFile: string;
  readonly listenPort: number | undefined;
  /** Host addresses "ADDR/LEN" of the link. */
  readonly addresses: readonly string[];
  readonly peers: readonly WireguardPeer[];
}

export const WIREGUARD_USAGE =
  '<wireguard NAME {private-key-file: "/PATH" listen-port: N addresses: ["ADDR/LEN" …] peers: [{public-key: "KEY" allowed-ips: ["NET/LEN" …] …} …]}>';
const KEYS = ['private-key-file', 'listen-port', 'addresses', 'peers'] as const;
const PEER_KEYS = [
  'public-key',
  'preshared-key-file',
  'endpoint',
  'allowed-ips',
  'persistent-keepalive',
] as const;

/** Bounds on what one link takes (wg itself takes more; a router needs far less). */
export const MAX_PEERS = 256;
export const MAX_ALLOWED_IPS_PER_PEER = 256;
export const MAX_ALLOWED_IPS = 1024;
export const MAX_ADDRESSES = 16;
/** The metric of the routes to allowed IPs: apart from kernel prefix routes (0) and WAN default routes (100). */
export const WIREGUARD_ROUTE_METRIC = 50;

/** A WireGuard key as `wg` writes it: 32 bytes in base64 (44 characters). */
export function isWireguardKey(text: string): boolean {
  return (
    /^[A-Za-z0-9+/]{43}=$/.test(text) && Buffer.from(text, 'base64').toString('base64') === text
  );
}

/** What is wrong with "HOST:PORT", or undefined. */
export function endpointProblem(text: string): string | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):([0-9]{1,5})$/.exec(text);
  if (m === null) return 'must be HOST:PORT (an IPv6 address as [ADDR]:PORT)';
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return `has port ${m[3]!}, not 1 to 65535`;
  if (m[1] !== undefined) return isIpv6(m[1]) ? undefined : `has ${m[1]}, not an IPv6 address`;
  const host = m[2]!;
  return isIpv4(host) || parseDomainName(host) !== undefined
    ? undefined
    : `has ${host}, neither an IPv4 address nor a host name`;
}

/** The endpoint's address when it is an IP literal (no name to resolve). */
function endpointAddress(text: string): string | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):/.exec(text);
  const host = m?.[1] ?? m?.[2];
  return host !== undefined && (isIpv4(host) || isIpv6(host)) ? host : undefined;
}

function contains(net: Prefix, address: string): boolean {
  const ip = parseIp(address);
  if (ip === undefined || ip.version !== net.version) return false;
  for (let bit = 0; bit < net.length; bit++) {
    const mask = 1 << (7 - (bit & 7));
    if ((net.bytes[bit >> 3]! & mask) !== (ip.bytes[bit >> 3]! & mask)) return false;
  }
  return true;
}

/** One allowed IP: a network "ADDR/LEN" (an address alone is a host), canonical, or a problem. */
function readAllowedIp(v: Value, o: SpecOptions): Prefix | undefined {
  if (typeof v !== 'string') {
    o.problem(`allowed-ips: ${showValue(v, 40)} is not a string "ADDR/LEN"`);
    return undefined;
  }
  const p = parsePrefix(v, 'host');
  if (typeof p === 'string') {
    o.problem(`allowed-ips: ${p}`);
    return undefined;
  }
  if (!isNetworkPrefix(p)) {
    o.problem(`allowed-ips: ${v} has bits set beyond its prefix length`);
    return undefined;
  }
  return p;
}

const keyInText = (k: string): string =>
  `a key is never written in the configuration: put the ${k} in a file of mode 0600 owned by root and name it with ${k}-file`;

const prefixText = (p: Prefix): string => `${formatIp(p.bytes)}/${p.length}`;

function readPeer(v: Value, index: number, problems: string[]): WireguardPeer | undefined {
  const start = problems.length;
  const o = new SpecOptions(v, PEER_KEYS, problems, `peer ${index + 1}: `);
  const publicKey = o.text('public-key', true);
  if (publicKey !== undefined && !isWireguardKey(publicKey))
    o.problem('public-key is not a WireGuard key (44 characters of base64, as `wg pubkey` prints)');
  if (o.get('preshared-key') !== undefined) o.problem(keyInText('preshared-key'));
  const presharedKeyFile = o.path('preshared-key-file', false);
  const endpoint = o.text('endpoint', false);
  const bad = endpoint === undefined ? undefined : endpointProblem(endpoint);
  if (bad !== undefined) o.problem(`endpoint ${JSON.stringify(endpoint)} ${bad}`);
  const nets = (o.list('allowed-ips', MAX_ALLOWED_IPS_PER_PEER, true) ?? []).map((x) =>
    readAllowedIp(x, o),
  );
  const address = endpoint === undefined ? undefined : endpointAddress(endpoint);
  for (const n of nets)
    if (n !== undefined && address !== undefined && contains(n, address))
      o.problem(
        `allowed-ips ${prefixText(n)} holds the endpoint ${address}: the tunnel would be routed through itself`,
      );
  const persistentKeepalive = o.integer('persistent-keepalive', 0, 65535) ?? 0;
  if (problems.length > start || publicKey === undefined) return undefined;
  return {
    publicKey,
    presharedKeyFile,
    endpoint,
    allowedIps: nets.map((n) => prefixText(n!)),
    persistentKeepalive,
  };
}

/** Problems across peers: a key or an allowed IP given twice, too many allowed IPs in all. */
function crossPeerProblems(peers: readonly WireguardPeer[], problems: string[]): void {
  const keys = new Set<string>();
  const nets = new Map<string, number>();
  peers.forEach((p, i) => {
    if (keys.has(p.publicKey)) problems.push(`peer ${i + 1}: public-key is another peer's too`);
    keys.add(p.publicKey);
    for (const n of p.allowedIps) {
      const other = nets.get(n);
      if (other !== undefined)
        problems.push(`peer ${i + 1}: allowed-ips ${n} is peer ${other}'s too (give it to one)`);
      else nets.set(n, i + 1);
    }
  });
  if (nets.size > MAX_ALLOWED_IPS)
    problems.push(`${nets.size} allowed IPs in all; at most ${MAX_ALLOWED_IPS} are allowed`);
}

/** Reads `<wireguard NAME {…}>`: the spec, or every problem. */
export function readWireguard(value: Value): ReadLink<WireguardSpec> {
  const problems: string[] = [];
  const { name, nameValue, options: o } = readLinkRecord(value, WIREGUARD_USAGE, KEYS, problems);
  if (o.get('private-key') !== undefined) o.problem(keyInText('private-key'));
  const privateKeyFile = o.path('private-key-file', true);
  const listenPort = o.integer('listen-port', 1, 65535);
  const addresses: string[] = [];
  for (const a of o.list('addresses', MAX_ADDRESSES, false) ?? []) {
    const c = typeof a === 'string' ? parseHostCidr(a) : 'is not a string "ADDR/LEN"';
    if (typeof c === 'string') o.problem(`addresses: ${c}`);
    else addresses.push(`${c.address}/${c.prefix}`);
  }
  const peerValues = o.list('peers', MAX_PEERS, false) ?? [];
  const peers = peerValues.map((p, i) => readPeer(p, i, problems));
  const good = peers.filter((p) => p !== undefined);
  if (good.length === peers.length) crossPeerProblems(good, problems);
  if (problems.length > 0 || name === undefined || privateKeyFile === undefined)
    return { ok: false, name: nameValue, problems };
  return {
    ok: true,
    spec: { kind: 'wireguard', name, privateKeyFile, listenPort, addresses, peers: good },
  };
}

/** The key files opened for `wg`: the descriptors (child fds 3, 4, … in this order) and their paths. */
export interface WireguardSecrets {
  readonly fds: readonly number[];
  readonly privateKey: string;
  /** Per peer, the path `wg` reads its preshared key from (`/dev/null` removes it). */
  readonly presharedKeys: readonly string[];
}

/** Opens every key file of the spec (see secret-file.ts), or says what is wrong with each. */
export function openWireguardSecrets(
  s: WireguardSpec,
  owner = 0,
): { ok: true; secrets: WireguardSecrets } | { ok: false; problems: string[] } {
  const fds: number[] = [];
  const problems: string[] = [];
  const open = (what: string, path: string): string => {
    const f = openSecretFile(path, owner);
    if ('problem' in f) {
      problems.push(`${what} ${path} ${f.problem}`);
      return '/dev/null';
    }
    fds.push(f.fd);
    return `/proc/self/fd/${fds.length + 2}`;
  };
  const privateKey = open('private-key-file', s.privateKeyFile);
  const presharedKeys = s.peers.map((p, i) =>
    p.presharedKeyFile === undefined
      ? '/dev/null'
      : open(`peer ${i + 1}: preshared-key-file`, p.presharedKeyFile),
  );
  if (problems.length === 0) return { ok: true, secrets: { fds, privateKey, presharedKeys } };
  for (const fd of fds) closeSync(fd);
  return { ok: false, problems };
}

/**
 * `wg` arguments that give link NAME the spec's key, port and peers, and remove the
 * peers it has (`present`, public keys) that the spec does not name.
 */
export function wgSetArgs(
  s: WireguardSpec,
  present: readonly string[],
  keys: Pick<WireguardSecrets, 'privateKey' | 'presharedKeys'>,
): string[] {
  const wanted = new Set(s.peers.map((p) => p.publicKey));
  const args = ['set', s.name, 'private-key', keys.privateKey];
  if (s.listenPort !== undefined) args.push('listen-port', String(s.listenPort));
  for (const k of present) if (!wanted.has(k)) args.push('peer', k, 'remove');
  s.peers.forEach((p, i) => {
    args.push('peer', p.publicKey, 'preshared-key', keys.presharedKeys[i] ?? '/dev/null');
    if (p.endpoint !== undefined) args.push('endpoint', p.endpoint);
    const keepalive = p.persistentKeepalive === 0 ? 'off' : String(p.persistentKeepalive);
    args.push('persistent-keepalive', keepalive, 'allowed-ips', p.allowedIps.join(','));
  });
  return args;
}

/** `wg`'s complaint, fit to show: a quoted value (a malformed key) and anything key-like removed. */
export function redactWg(text: string): string {
  return text
    .replace(/`[^'\n]*'/g, "`(redacted)'")
    .replace(/[A-Za-z0-9+/]{40,}={0,2}/g, '(redacted)')
    .trim()
    .slice(0, 500);
}

/** The link's addresses and a route per allowed IP, through the provider contract. */
export function wireguardProvided(s: WireguardSpec): Value[] {
  const routes = s.peers
    .flatMap((p) => p.allowedIps)
    // 0.0.0.0/0 and ::/0 are not routed: a default route into the tunnel needs policy
    // routing to keep the tunnel's own packets out of it (wg-quick's fwmark rules).
    .filter((n) => !n.endsWith('/0'))
    .map((n) => ({
      family: n.includes(':') ? ('ipv6' as const) : ('ipv4' as const),
      destination: n,
      metric: WIREGUARD_ROUTE_METRIC,
    }));
  return providedAssertions({
    ifname: s.name,
    source: record('wireguard', s.name),
    addresses: s.addresses.map((cidr) => ({ cidr })),
    routes,
    dns: [],
    domains: [],
    ntp: [],
  });
}
