// Shared by the end-to-end tests in test/lab: each test file builds its own lab
// (a random name, `t` + 6 hex digits, so a file runs alone or after the others)
// with limen in rtr running a copy of examples/home-router, waits until the
// router is fully up and lan1 has its lease, and always takes the lab down in
// `after`, whatever happened. limen is asked everything through its CLI (`main`
// in process, on the lab's control socket), as a person would; the kernel and
// the peers are asked with ip, nft and /proc. Every wait is an until() whose
// failure says what was seen, with the tail of the router's log.

import { after, before } from 'node:test';
import { randomBytes } from 'node:crypto';
import {
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { main } from '../../src/cli/main.ts';
import {
  LAN_ROUTER_ADDRESS,
  WORLD_NAME,
  labDown,
  labPreflight,
  labUp,
  packageRoot,
  type Lab,
  type LabNode,
  type LabWan,
} from '../../src/lab/lab.ts';
import { have, processStartTime, tryRun, type RunResult } from '../../src/lab/system.ts';
import { captureIo } from '../support/cli-io.ts';
import { prerequisites } from '../support/prerequisites.ts';
import { until } from '../support/until.ts';

export const WORLD_PAGE = /Hello from world\.test/;
/** The services examples/home-router runs once the WAN has a lease. */
export const UDHCPC_WAN = '<daemon <udhcpc "wan0">>';
/** The WAN's DHCPv6 client (examples/home-router asks for a delegated prefix). */
export const DHCPCD_WAN = '<daemon <dhcpcd "wan0">>';
export const DNSMASQ_LAN = '<daemon <dnsmasq "lan0">>';
export const NTPD = '<daemon ntpd>';
export const PPPD_WAN = '<daemon <pppd "wan0">>';

/** The service that holds the WAN session in a lab. */
export const wanService = (lab: Lab): string => (lab.wan === 'pppoe' ? PPPD_WAN : UDHCPC_WAN);

/**
 * Why these tests cannot run here (for `describe(…, { skip })`), or false; in CI a
 * missing prerequisite fails the run instead (test/support/prerequisites.ts).
 */
export function labSkip(): string | false {
  return prerequisites({
    check: () => {
      const problem = labPreflight();
      if (problem !== undefined) return `the lab cannot run here: ${problem.replace(/\n/g, '; ')}`;
      if (!existsSync(join(packageRoot(), 'dist', 'cli', 'main.js'))) {
        return 'dist/ is not built (npm run build): the lab runs limen from bin/limen.js';
      }
      if (!have('chronyd')) {
        return 'chronyd is missing (apt-get install chrony): examples/home-router runs it as <daemon ntpd>';
      }
      return undefined;
    },
  });
}

// ---- The CLI -----------------------------------------------------------------------------------

export interface CliResult {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

/** `limen ARGS… --socket LAB_SOCKET`, in process. */
export async function cli(lab: Lab, ...args: string[]): Promise<CliResult> {
  const io = captureIo();
  const code = await main([...args, '--socket', lab.socket], io);
  return { code, out: io.stdout(), err: io.stderr() };
}

/** Like cli(), but a non-zero exit throws (with what limen said). */
export async function cliOk(lab: Lab, ...args: string[]): Promise<string> {
  const r = await cli(lab, ...args);
  if (r.code !== 0) {
    throw new Error(`limen ${args.join(' ')}: exit ${r.code}: ${r.err.trim() || r.out.trim()}`);
  }
  return r.out;
}

/** `limen status --json`. */
export async function status(lab: Lab): Promise<{ [key: string]: unknown }> {
  return JSON.parse(await cliOk(lab, 'status', '--json')) as { [key: string]: unknown };
}

/** The `text` of each current failure of KIND in a status (`path:line:col: …`), one a line, or 'none'. */
export async function failures(lab: Lab, kind: string): Promise<string> {
  const list = (await status(lab))['failures'] as { kind: string; text: string }[];
  const texts = list.filter((f) => f.kind === kind).map((f) => f.text);
  return texts.length === 0 ? 'none' : texts.join('\n');
}

/**
 * Preserves text for a value as `--json` writes it (records `{"@rec": […]}`, symbols
 * `{"@sym": …}`), so that services read as `limen services` shows them:
 * `<daemon <udhcpc "wan0">>`.
 */
export function preservesText(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return `[${v.map(preservesText).join(' ')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as { [k: string]: unknown };
    if (typeof o['@sym'] === 'string') return o['@sym'];
    if (Array.isArray(o['@rec']))
      return `<${(o['@rec'] as unknown[]).map(preservesText).join(' ')}>`;
  }
  return JSON.stringify(v);
}

export interface ServiceRow {
  readonly state: string;
  readonly pids: readonly number[];
  readonly restarts: number;
}

/** `limen services --json`, by service (`<daemon ntpd>`). */
export async function services(lab: Lab): Promise<Map<string, ServiceRow>> {
  const rows = JSON.parse(await cliOk(lab, 'services', '--json')) as {
    service: unknown;
    state: string;
    pids?: number[];
    restarts?: number;
  }[];
  return new Map(
    rows.map((r) => [
      preservesText(r.service),
      { state: r.state, pids: r.pids ?? [], restarts: r.restarts ?? 0 },
    ]),
  );
}

export function showServices(s: ReadonlyMap<string, ServiceRow>): string {
  return (
    [...s].map(([k, r]) => `${k} ${r.state} pids ${r.pids.join(',') || '-'}`).join('; ') ||
    'no services'
  );
}

/** The one PID of a running service, or undefined. */
export function pidOf(s: ReadonlyMap<string, ServiceRow>, service: string): number | undefined {
  const r = s.get(service);
  return r !== undefined && r.pids.length === 1 ? r.pids[0] : undefined;
}

/** `limen query PATTERN`: the matching values, one per line (PATTERN without captures). */
export async function query(
  lab: Lab,
  pattern: string,
  dataspace: 'config' | 'machine' = 'config',
): Promise<string[]> {
  const out = await cliOk(lab, 'query', pattern, '--dataspace', dataspace);
  return out.split('\n').filter((l) => l !== '');
}

/** The generations of `<firewall-applied GEN _>` (exactly one while limen's table is installed). */
export async function firewallGenerations(lab: Lab): Promise<number[]> {
  const a = JSON.parse(await cliOk(lab, 'query', '--json', '<firewall-applied ?g _>')) as {
    matches: { captures: { g: number } }[];
  };
  return a.matches.map((m) => m.captures.g);
}

/** The `ip` field of `<dhcp-lease "wan0" {…}>`, or undefined without a lease. */
export async function wanLeaseAddress(lab: Lab): Promise<string | undefined> {
  const lines = await query(lab, '<dhcp-lease "wan0" _>');
  return lines.length === 0 ? undefined : /\bip: "([^"]+)"/.exec(lines[0]!)?.[1];
}

export interface Watch {
  /** What `limen watch` printed so far: `+ VALUE`, `- VALUE`, `! VALUE`. */
  lines(): string[];
  stop(): Promise<void>;
}

/** `limen watch PATTERN… --dataspace D`, running until stop(). */
export function watch(lab: Lab, dataspace: 'config' | 'machine', ...patterns: string[]): Watch {
  const abort = new AbortController();
  const io = { ...captureIo(), signal: abort.signal };
  const done = main(['watch', ...patterns, '--dataspace', dataspace, '--socket', lab.socket], io);
  return {
    lines: () =>
      io
        .stdout()
        .split('\n')
        .filter((l) => l !== ''),
    async stop() {
      abort.abort();
      await done;
    },
  };
}

// ---- The kernel and the peers ------------------------------------------------------------------

function ok(r: RunResult, what: string): string {
  if (r.status !== 0) throw new Error(`${what}: exit ${String(r.status)}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** The IPv4 addresses on DEV in node's namespace, as "A/LEN". */
export function ipv4Addresses(lab: Lab, node: LabNode, dev: string): string[] {
  const out = ok(lab.exec(node, ['ip', '-j', '-4', 'addr', 'show', 'dev', dev]), `ip addr ${dev}`);
  const links = JSON.parse(out) as { addr_info?: { local: string; prefixlen: number }[] }[];
  return links.flatMap((l) => (l.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`));
}

/** The IPv4 default routes in node's main table, one line each (`ip -4 route show default`). */
export function defaultRoutes(lab: Lab, node: LabNode = 'rtr'): string[] {
  return ok(lab.exec(node, ['ip', '-4', 'route', 'show', 'default']), 'ip route')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
}

export interface Ipv6Address {
  /** "ADDR/LEN". */
  readonly cidr: string;
  readonly deprecated: boolean;
}

/** node's global IPv6 addresses on dev, and whether each is deprecated. */
export function globals6(lab: Lab, node: LabNode, dev: string): Ipv6Address[] {
  return ok(
    lab.exec(node, ['ip', '-6', '-o', 'addr', 'show', 'dev', dev, 'scope', 'global']),
    `ip -6 addr ${dev}`,
  )
    .split('\n')
    .map((l) => /inet6 (\S+) .*/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ cidr: m[1]!, deprecated: /\bdeprecated\b/.test(m[0]) }));
}

/** Addresses as one line: "A/LEN, B/LEN (deprecated)", or "none". */
export const show6 = (as: readonly Ipv6Address[]): string =>
  as.map((a) => `${a.cidr}${a.deprecated ? ' (deprecated)' : ''}`).join(', ') || 'none';

/** `nft list tables` in node, one line each. */
export function nftTables(lab: Lab, node: LabNode = 'rtr'): string[] {
  return ok(lab.exec(node, ['nft', 'list', 'tables']), 'nft list tables')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
}

/** One chain of limen's table, as nft prints it ('' if there is no such table). */
export function nftChain(lab: Lab, chain: string): string {
  return lab.exec('rtr', ['nft', 'list', 'chain', 'inet', 'limen', chain]).stdout;
}

/** rtr's connection tracking table (/proc/net/nf_conntrack in its namespace). */
export function conntrack(lab: Lab): string[] {
  return ok(lab.exec('rtr', ['cat', '/proc/net/nf_conntrack']), 'conntrack').split('\n');
}

const escapeRe = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * A conntrack line for a PROTO flow from SRC to DST:DPORT; with replyDst, only if
 * its reply goes to replyDst (the flow was source-NATed to that address).
 */
export function flowPattern(
  proto: 'tcp' | 'udp',
  src: string,
  dst: string,
  dport: number,
  replyDst?: string,
): RegExp {
  const orig = `\\b${proto}\\b.* src=${escapeRe(src)} dst=${escapeRe(dst)} sport=\\d+ dport=${dport} `;
  const reply =
    replyDst === undefined
      ? ''
      : `.*src=${escapeRe(dst)} dst=${escapeRe(replyDst)} sport=${dport} `;
  return new RegExp(orig + reply);
}

/** The PIDs of every process in node's namespace. */
export function namespacePids(lab: Lab, node: LabNode): number[] {
  return ok(tryRun(['ip', 'netns', 'pids', lab.ns(node)]), 'ip netns pids')
    .split('\n')
    .map((s) => Number(s.trim()))
    .filter((n) => Number.isInteger(n) && n > 0);
}

/** What lan1's script wrote: its address on the LAN. */
export function clientAddress(lab: Lab, node: 'lan1' | 'lan2' = 'lan1'): string | undefined {
  return lab.clientLease(node)?.split(' ')[0];
}

/** The nameservers in the resolv.conf `ip netns exec` gives programs in node. */
export function nameservers(lab: Lab, node: LabNode): string[] {
  try {
    return readFileSync(join('/etc/netns', lab.ns(node), 'resolv.conf'), 'utf8')
      .split('\n')
      .map((l) => /^nameserver\s+(\S+)/.exec(l)?.[1])
      .filter((s): s is string => s !== undefined);
  } catch {
    return [];
  }
}

/** The client addresses a busybox httpd started with -vv logged, one per request. */
export function httpClients(log: string): string[] {
  return readFileSync(log, 'utf8')
    .split('\n')
    .map((l) => /^\[?(?:::ffff:)?([0-9.]+)\]?:\d+: url:/.exec(l)?.[1])
    .filter((a): a is string => a !== undefined);
}

/** A process that is gone (or whose PID now belongs to another process). */
export function isGone(pid: number, starttime: string | undefined): boolean {
  const now = processStartTime(pid);
  return now === undefined || now !== starttime;
}

/** Replaces a file of the site configuration atomically (a dot-file, then rename: never half-written). */
export function writeSiteFile(lab: Lab, relative: string, text: string): string {
  const path = join(lab.siteDir, relative);
  mkdirSync(dirname(path), { recursive: true });
  const tmp = join(dirname(path), `.${randomBytes(4).toString('hex')}.tmp`);
  writeFileSync(tmp, text);
  renameSync(tmp, path);
  return path;
}

// ---- Waiting -----------------------------------------------------------------------------------

/** The last lines of the router's log, shortened (it is JSON, one object a line). */
export function routerLogTail(lab: Lab, lines = 25): string {
  let text: string;
  try {
    text = readFileSync(lab.routerLog, 'utf8');
  } catch {
    return `(no ${lab.routerLog})`;
  }
  const rows = text
    .trimEnd()
    .split('\n')
    .slice(-lines)
    .map((l) => {
      try {
        const o = JSON.parse(l) as { [k: string]: unknown };
        const time = typeof o['time'] === 'string' ? o['time'].slice(11, 23) : '';
        const str = (k: string) => (typeof o[k] === 'string' ? o[k] : '');
        return `${time} ${str('service') || '-'} ${str('line') || str('msg')}`.slice(0, 240);
      } catch {
        return l.slice(0, 240);
      }
    });
  return `\n--- router log (${lab.routerLog}), last ${rows.length} lines ---\n${rows.join('\n')}`;
}

/**
 * Fetches URL from node until the page matches `page` (each try is bounded by the
 * lab's fetch timeout, the whole by timeoutMs); returns the body.
 */
export async function fetchUntil(
  lab: Lab,
  node: LabNode,
  url: string,
  options: { page?: RegExp; timeoutMs?: number } = {},
): Promise<string> {
  const page = options.page ?? WORLD_PAGE;
  let last: RunResult | undefined;
  return until(
    async () => {
      last = await lab.fetch(node, url);
      return last.status === 0 && page.test(last.stdout) ? last.stdout : undefined;
    },
    {
      timeoutMs: options.timeoutMs ?? 30_000,
      intervalMs: 250,
      describe: () =>
        `${node} fetching ${url} (last: exit ${String(last?.status)}, ${JSON.stringify((last?.stderr ?? '').trim() || last?.stdout.slice(0, 200))})${routerLogTail(lab)}`,
    },
  );
}

/**
 * Fetches http://world.test/ from node over IPv6 alone (curl -6) until the page comes
 * from the local address `from` (no NAT66: curl reports the address it used); the body.
 */
export async function fetch6Until(
  lab: Lab,
  node: LabNode,
  from: string,
  timeoutMs = 30_000,
): Promise<string> {
  let last = '';
  return until(
    async () => {
      const r = await lab.fetch6(node, `http://${WORLD_NAME}/`);
      last = `exit ${r.status}: ${r.stdout.slice(-120)} ${r.stderr.trim()}`;
      return r.status === 0 && WORLD_PAGE.test(r.stdout) && r.stdout.includes(`from ${from}`)
        ? r.stdout
        : undefined;
    },
    {
      timeoutMs,
      intervalMs: 250,
      describe: () =>
        `${node} fetching http://${WORLD_NAME}/ over IPv6 from ${from}… (last: ${last})${routerLogTail(lab)}`,
    },
  );
}

/**
 * Waits until node has a global IPv6 address on eth0 starting with prefix that is
 * not deprecated (SLAAC from the router's advertisements); returns it, without its length.
 */
export async function slaacAddressIn(
  lab: Lab,
  node: 'lan1' | 'lan2',
  prefix: string,
  timeoutMs = 30_000,
): Promise<string> {
  let seen: Ipv6Address[] = [];
  const a = await until(
    () => {
      seen = globals6(lab, node, 'eth0');
      return seen.find((x) => x.cidr.startsWith(prefix) && !x.deprecated)?.cidr;
    },
    {
      timeoutMs,
      intervalMs: 200,
      describe: () => `${node} with an address in ${prefix}:/64 (seen: ${show6(seen)})`,
    },
  );
  return a.split('/')[0]!;
}

/**
 * Until the router is fully up: core and network milestones up, udhcpc on wan0,
 * dnsmasq on lan0 and ntpd ready with a process each, `<default-route ipv4>`, the
 * firewall applied, and lan1 bound (its lease known to the router's dnsmasq, its
 * resolver pointing at the router).
 */
export async function waitUntilUp(lab: Lab, timeoutMs = 90_000): Promise<void> {
  let seen = 'nothing yet';
  await until(
    async () => {
      const st = await status(lab);
      const milestones = String(st['milestones']);
      if (!/\bcore up\b/.test(milestones) || !/\bnetwork up\b/.test(milestones)) {
        seen = `milestones: ${milestones}`;
        return false;
      }
      const s = await services(lab);
      for (const name of [wanService(lab), DNSMASQ_LAN, NTPD]) {
        if (s.get(name)?.state !== 'ready' || pidOf(s, name) === undefined) {
          seen = `services: ${showServices(s)}`;
          return false;
        }
      }
      if ((await query(lab, '<default-route ipv4>')).length === 0) {
        seen = 'no <default-route ipv4>';
        return false;
      }
      if ((await firewallGenerations(lab)).length !== 1) {
        seen = 'no <firewall-applied _ _>';
        return false;
      }
      const ip = clientAddress(lab, 'lan1');
      if (ip === undefined) {
        seen = 'lan1 has no lease yet';
        return false;
      }
      const known = await query(lab, `<dhcp-client "lan0" _ "${ip}" _ _>`, 'machine');
      if (known.length === 0) {
        seen = `lan1 has ${ip}, but the router shows no <dhcp-client "lan0" _ "${ip}" _ _>`;
        return false;
      }
      if (!nameservers(lab, 'lan1').includes(LAN_ROUTER_ADDRESS)) {
        seen = `lan1's resolv.conf names ${nameservers(lab, 'lan1').join(', ') || 'nothing'}`;
        return false;
      }
      return true;
    },
    {
      timeoutMs,
      intervalMs: 200,
      describe: () => `the router fully up and lan1 leased (seen: ${seen})${routerLogTail(lab)}`,
    },
  );
}

// ---- The fixture -------------------------------------------------------------------------------

/** Why dist/ (which the router runs) may be older than src/, or undefined. */
function staleBuild(): string | undefined {
  const built = join(packageRoot(), 'dist', 'cli', 'main.js');
  let newest = { path: '', mtime: 0 };
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts')) {
        const m = statSync(p).mtimeMs;
        if (m > newest.mtime) newest = { path: p, mtime: m };
      }
    }
  };
  walk(join(packageRoot(), 'src'));
  return newest.mtime > statSync(built).mtimeMs
    ? `${newest.path} is newer than ${built}: the router runs the old build (npm run build)`
    : undefined;
}

/**
 * Registers before/after hooks in the enclosing describe: a fresh lab running
 * examples/home-router, fully up (waitUntilUp); labDown in `after` even if
 * anything failed, and on SIGINT or SIGTERM before the process dies. Returns a
 * getter for the lab. With LIMEN_LAB_TEST_LOGS=DIR, the lab's directory (logs,
 * leases, the router's run state) is copied to DIR/NAME before it goes.
 */
export function withLab(options: { wan?: LabWan; upTimeoutMs?: number } = {}): () => Lab {
  const name = `t${randomBytes(3).toString('hex')}`;
  let lab: Lab | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    void labDown(name)
      .catch(() => undefined)
      .finally(() => process.kill(process.pid, signal));
  };
  before(
    async () => {
      const stale = staleBuild();
      if (stale !== undefined) process.stderr.write(`warning: ${stale}\n`);
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      lab = await labUp({ name, ...(options.wan !== undefined ? { wan: options.wan } : {}) });
      await waitUntilUp(lab, options.upTimeoutMs);
    },
    { timeout: 150_000 + (options.upTimeoutMs ?? 0) },
  );
  after(
    async () => {
      const keep = process.env['LIMEN_LAB_TEST_LOGS'];
      if (keep !== undefined && lab !== undefined) {
        try {
          cpSync(lab.dir, join(keep, name), {
            recursive: true,
            filter: (src) => !lstatSync(src).isSocket(),
          });
        } catch {
          /* best effort: the teardown matters more */
        }
      }
      await labDown(name);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
    { timeout: 90_000 },
  );
  return () => {
    if (lab === undefined) throw new Error(`lab ${name} is not up (see the before hook's error)`);
    return lab;
  };
}

export { LAN_ROUTER_ADDRESS, WORLD_NAME };
