// The lab (DESIGN.md section 9): a small internet in network namespaces, with
// real programs only, for the demo, the end-to-end tests and the benchmarks.
//
//   world  198.51.100.10/24   busybox httpd (http://world.test/), dnsmasq
//                             answering authoritatively for world.test
//   isp    198.51.100.1/24 towards world, 100.64.K.1/24 towards rtr: dnsmasq
//                             as the DHCP server of the router's WAN and DNS
//                             forwarder to world; routes between the two
//          and IPv6 (src/lab/ipv6-isp.ts): world 2001:db8:ffff::10, radvd and
//                             Kea's DHCPv6 server (a delegated /56) towards rtr
//                             (over PPPoE: on each session's PPP interface)
//   rtr    wan0 (to isp), lan0 (to the LAN switch): runs limen with --root
//                             in the lab's directory and a copy of the site
//                             configuration (examples/home-router by default)
//   sw     a bridge: the LAN switch between rtr's lan0 and the clients
//   lan1, lan2               busybox udhcpc with libexec/lab-dhcp-client
//
// Names: namespace `limen-NAME-NODE`. Links live only inside the lab's
// namespaces (each veth is created with both ends already in place), so they
// vanish with them and never appear in the host's namespace.
//
// State: DIR/lab.json (DIR = /run/limen-lab/NAME, or $LIMEN_LAB_DIR/NAME),
// rewritten atomically before anything is created, so `down` can remove a
// half-built lab after a crash: recorded processes (by PID and start time),
// then whatever still runs in the namespaces, the namespaces, /etc/netns/NS,
// and DIR. `down --all` also finds namespaces by their name alone.

import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import {
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { packageRoot } from '../platform/package-root.ts';
import { ControlClient, socketPathFor } from '../control/index.ts';
import { reclaimAbandoned } from '../supervisor/process-tracking.ts';
import { writeFileAtomicSync } from '../platform/atomic-file.ts';
import {
  LabCommandError,
  LabError,
  have,
  isAlive,
  killNamespaceProcesses,
  namespaces,
  run,
  runAsync,
  startInNamespace,
  stopProcess as stopRecorded,
  tryRun,
  waitFor,
  type ProcessRecord,
  type RunResult,
} from './system.ts';
import {
  ISP_WAN_ADDRESS6,
  ISP_WORLD_ADDRESS6,
  WORLD_ADDRESS6,
  ipv6IspProblem,
  keaArgv,
  keaEnv,
  radvdArgv,
  writeIpv6IspFiles,
  writePppIpv6IspFiles,
} from './ipv6-isp.ts';
import {
  ispDnsArgv,
  killIspSessions,
  peerDnsmasq,
  pppoeLabProblem,
  pppoeServerArgv,
  pppoeWanConfig,
  writePppoeFiles,
} from './pppoe-isp.ts';

export const NODES = ['world', 'isp', 'sw', 'rtr', 'lan1', 'lan2'] as const;
export type LabNode = (typeof NODES)[number];

export const WORLD_ADDRESS = '198.51.100.10';
export const WORLD_NAME = 'world.test';
export const LAN_ROUTER_ADDRESS = '192.168.8.1';
/** The web dashboard's group and user (docs/web.md). */
export const WEB_GROUP = 'limen-web';

function hasGroup(name: string): boolean {
  try {
    return readFileSync('/etc/group', 'utf8')
      .split('\n')
      .some((l) => l.startsWith(`${name}:`));
  } catch {
    return false;
  }
}

const NAME_RE = /^[a-z][a-z0-9]{0,11}$/;
const NS_RE = new RegExp(`^limen-([a-z][a-z0-9]{0,11})-(${NODES.join('|')})$`);
const PROGRAMS = ['ip', 'busybox', 'dnsmasq', 'nft'] as const;

export { packageRoot };

/**
 * How a person at a shell runs this checkout's CLI, for the commands the lab and the
 * demo print: `limen` when their PATH finds this very CLI, else `node bin/limen.js`
 * (from the directory they are in: npm's INIT_CWD under `npm run`, or an absolute
 * path elsewhere); `sudo ` in front only when we were started through sudo (root
 * needs none, and a machine may have no sudo at all).
 */
export function limenInvocation(
  env: NodeJS.ProcessEnv = process.env,
  cwd: string = process.cwd(),
): string {
  const sudo = process.getuid?.() === 0 && (env['SUDO_USER'] ?? 'root') !== 'root' ? 'sudo ' : '';
  const script = join(packageRoot(), 'bin', 'limen.js');
  const real = (p: string): string | undefined => {
    try {
      return realpathSync(p);
    } catch {
      return undefined;
    }
  };
  const target = real(script);
  for (const dir of (env['PATH'] ?? '').split(':')) {
    if (dir === '' || !isAbsolute(dir)) continue;
    const found = real(join(dir, 'limen'));
    if (found !== undefined) return found === target ? `${sudo}limen` : `${sudo}node ${script}`;
  }
  const here = env['INIT_CWD'] ?? cwd;
  return `${sudo}node ${resolve(here) === packageRoot() ? join('bin', 'limen.js') : script}`;
}

export function labBaseDir(env: NodeJS.ProcessEnv = process.env): string {
  return env['LIMEN_LAB_DIR'] ?? '/run/limen-lab';
}

export function checkLabName(name: string): string {
  if (!NAME_RE.test(name)) {
    throw new LabError(
      `lab name ${JSON.stringify(name)}: use 1 to 12 lower-case letters and digits, starting with a letter`,
    );
  }
  return name;
}

export function namespaceOf(name: string, node: LabNode): string {
  return `limen-${name}-${node}`;
}

interface LabState {
  readonly version: 1;
  readonly name: string;
  readonly createdAt: number;
  /** K in 100.64.K.0/24, the ISP's current WAN subnet. */
  ispSubnet: number;
  /** The site configuration the router was started with (copied into DIR/rtr/site). */
  siteSource: string | undefined;
  /** How the ISP serves the router's WAN (absent in a lab made before PPPoE: dhcp). */
  readonly wan?: LabWan;
  /** The ISP's delegation pool generation (src/lab/ipv6-isp.ts), while it serves IPv6. */
  ipv6Pool?: number;
  readonly processes: { [role: string]: ProcessRecord };
}

/** How the lab's ISP serves the router's WAN. */
export const LAB_WANS = ['dhcp', 'pppoe'] as const;
export type LabWan = (typeof LAB_WANS)[number];

/** Why this machine cannot run the lab, or undefined. */
export function labPreflight(): string | undefined {
  const problems: string[] = [];
  if (process.getuid?.() !== 0) {
    problems.push(
      'the lab needs root: it creates network namespaces, links and firewall tables (run it with sudo)',
    );
  }
  const missing = PROGRAMS.filter((p) => !have(p));
  if (missing.length > 0) {
    problems.push(
      `missing programs: ${missing.join(', ')} (run \`npm run bootstrap\` as root, or apt-get install iproute2 busybox dnsmasq-base nftables)`,
    );
  }
  if (!existsSync('/proc/self/ns/net')) {
    problems.push('this kernel has no network namespaces (CONFIG_NET_NS)');
  }
  return problems.length === 0 ? undefined : problems.join('\n');
}

/** A lab on this machine: made by labUp, or found again by openLab. */
export class Lab {
  readonly name: string;
  readonly dir: string;
  #state: LabState;

  constructor(name: string, dir: string, state: LabState) {
    this.name = name;
    this.dir = dir;
    this.#state = state;
  }

  ns(node: LabNode): string {
    return namespaceOf(this.name, node);
  }

  /** The router's --root. */
  get routerRoot(): string {
    return join(this.dir, 'rtr', 'root');
  }

  /** The router's site configuration (a copy: edit it freely). */
  get siteDir(): string {
    return join(this.dir, 'rtr', 'site');
  }

  get socket(): string {
    return socketPathFor(this.routerRoot);
  }

  get routerLog(): string {
    return join(this.dir, 'rtr', 'limen.log');
  }

  get wan(): LabWan {
    return this.#state.wan ?? 'dhcp';
  }

  /**
   * Makes the router's site configuration (siteDir) use the lab's WAN: over PPPoE,
   * core/wan.pr is replaced by the pppoe configuration with the lab's password file
   * (and DHCPv6 on its PPP link while the ISP serves IPv6).
   */
  applyWan(): void {
    if (this.wan !== 'pppoe') return;
    mkdirSync(join(this.siteDir, 'core'), { recursive: true });
    writeFileSync(
      join(this.siteDir, 'core', 'wan.pr'),
      pppoeWanConfig(join(this.dir, 'rtr', 'ppp-password'), this.ipv6),
    );
  }

  /**
   * The ISP's PPPoE server and its DNS forwarder (the WAN over PPPoE); with IPv6, its
   * pppd starts a radvd and a Kea on each session's interface (src/lab/ipv6-isp.ts).
   */
  startIspPppoe(): void {
    mkdirSync(join(this.dir, 'rtr'), { recursive: true });
    mkdirSync(join(this.dir, 'isp'), { recursive: true });
    const pool = this.#state.ipv6Pool;
    const files = writePppoeFiles(
      this.dir,
      pool === undefined ? undefined : writePppIpv6IspFiles(this.dir, pool),
    );
    this.startProcess('isp/pppoe-server', 'isp', pppoeServerArgv(files));
    this.startProcess('isp/dns', 'isp', ispDnsArgv(WORLD_ADDRESS, this.ipv6));
  }

  /** Whether the ISP serves IPv6 (router advertisements and DHCPv6) on the WAN. */
  get ipv6(): boolean {
    return this.#state.ipv6Pool !== undefined;
  }

  /**
   * The ISP's IPv6 on the WAN link: radvd and Kea delegating from pool generation n
   * (over PPPoE, only the pool: the ISP's pppd starts them for each session).
   */
  startIspIpv6(n = this.#state.ipv6Pool ?? 0): void {
    this.#state.ipv6Pool = n;
    this.save();
    if (this.wan === 'pppoe') return;
    const files = writeIpv6IspFiles(this.dir, 'to-rtr', n);
    this.startProcess('isp/radvd', 'isp', radvdArgv(this.dir, files.radvd));
    this.startProcess('isp/kea', 'isp', keaArgv(files.kea), keaEnv(this.dir));
  }

  /**
   * The ISP renumbers its delegations: Kea restarts with pool generation n and no
   * leases, so the router's next renew gets its old prefix back with lifetimes 0
   * and a new one (the hook moves the ISP's route).
   */
  async renumberIspIpv6(n: number): Promise<void> {
    if (!Number.isInteger(n) || n < 0 || n > 127) throw new LabError(`pool ${n}: 0–127`);
    if (this.wan === 'pppoe') throw new LabError('the lab renumbers IPv6 only with a DHCP WAN');
    await this.stopProcess('isp/kea');
    // The new Kea knows nothing of the old delegations: their routes go with them.
    tryRun([
      'ip',
      '-n',
      this.ns('isp'),
      '-6',
      'route',
      'flush',
      'dev',
      'to-rtr',
      'proto',
      'static',
    ]);
    this.#state.ipv6Pool = n;
    this.save();
    const files = writeIpv6IspFiles(this.dir, 'to-rtr', n);
    this.startProcess('isp/kea', 'isp', keaArgv(files.kea), keaEnv(this.dir));
  }

  /** The ISP ends the router's PPP session (its pppd is terminated); how many ended. */
  killIspSessions(): number {
    return killIspSessions(this.ns('isp'));
  }

  /** The ISP's address towards the router (the router's gateway). */
  get ispAddress(): string {
    return `100.64.${this.#state.ispSubnet}.1`;
  }

  /** The router daemon's record while it runs. */
  get router(): ProcessRecord | undefined {
    const p = this.#state.processes['rtr/limen'];
    return p !== undefined && isAlive(p) ? p : undefined;
  }

  save(): void {
    mkdirSync(this.dir, { recursive: true });
    const file = join(this.dir, 'lab.json');
    writeFileAtomicSync(file, JSON.stringify(this.#state, null, 2) + '\n');
  }

  #record(role: string, p: ProcessRecord): ProcessRecord {
    this.#state.processes[role] = p;
    this.save();
    return p;
  }

  /** Runs argv in node's namespace and waits (bounded); never throws for a non-zero exit. */
  exec(node: LabNode, argv: readonly string[], timeoutMs = 15_000): RunResult {
    return tryRun(['ip', 'netns', 'exec', this.ns(node), ...argv], timeoutMs);
  }

  execAsync(node: LabNode, argv: readonly string[], timeoutMs = 15_000): Promise<RunResult> {
    return runAsync(['ip', 'netns', 'exec', this.ns(node), ...argv], timeoutMs);
  }

  /** The environment for programs run in the lab: limen on PATH, talking to this lab's router. */
  env(): NodeJS.ProcessEnv {
    return {
      ...process.env,
      PATH: `${join(packageRoot(), 'bin')}:${process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin'}`,
      LIMEN_SOCKET: this.socket,
    };
  }

  /**
   * One HTTP GET from node with busybox wget (killed after timeoutMs): the body, or the
   * error. Not `wget -T`: busybox 1.35's wget crashes with it.
   */
  async fetch(node: LabNode, url: string, timeoutMs = 5000): Promise<RunResult> {
    return this.execAsync(node, ['busybox', 'wget', '-q', '-O', '-', url], timeoutMs);
  }

  /**
   * One HTTP GET from node over IPv6 alone (curl -6: the name resolved to its AAAA
   * record), bounded by timeoutMs; stdout is the body, then a last line with the
   * local address curl used.
   */
  async fetch6(node: LabNode, url: string, timeoutMs = 5000): Promise<RunResult> {
    const s = Math.max(1, Math.floor(timeoutMs / 1000));
    return this.execAsync(
      node,
      ['curl', '-6', '-sS', '--max-time', String(s), '-w', '\nfrom %{local_ip}\n', url],
      timeoutMs + 1000,
    );
  }

  /**
   * Waits (bounded) until node has its lease and fetches http://world.test/ through the
   * router (DNS by its dnsmasq, NAT by its firewall); false on timeout.
   */
  async waitLanReachesWorld(node: 'lan1' | 'lan2', timeoutMs: number): Promise<boolean> {
    return waitFor(
      async () =>
        this.clientLease(node) !== undefined &&
        (await this.fetch(node, `http://${WORLD_NAME}/`)).stdout.includes('Hello from'),
      timeoutMs,
      250,
    );
  }

  /** What the LAN client's script recorded: "IP ROUTER DNS…", or undefined. */
  clientLease(node: 'lan1' | 'lan2'): string | undefined {
    try {
      return readFileSync(join(this.dir, node, 'lease'), 'utf8').trim();
    } catch {
      return undefined;
    }
  }

  // ---- Peers --------------------------------------------------------------------------------

  /**
   * Starts argv in node's namespace as `role` ("NODE/NAME": its log is DIR/NODE/NAME.log),
   * recorded so that `down` stops it.
   */
  startProcess(role: string, node: LabNode, argv: readonly string[], env?: NodeJS.ProcessEnv) {
    const logDir = join(this.dir, node);
    mkdirSync(logDir, { recursive: true });
    const log = join(logDir, `${role.split('/')[1]!}.log`);
    return this.#record(role, startInNamespace(this.ns(node), argv, log, env ? { env } : {}));
  }

  /** Stops the process recorded as `role` (SIGTERM, then SIGKILL after graceMs). */
  async stopProcess(role: string, graceMs = 3000): Promise<void> {
    const p = this.#state.processes[role];
    if (p === undefined) return;
    await stopRecorded(p, 'SIGTERM', graceMs);
    delete this.#state.processes[role];
    this.save();
  }

  startWorld(): void {
    const www = join(this.dir, 'world', 'www');
    mkdirSync(www, { recursive: true });
    writeFileSync(
      join(www, 'index.html'),
      `<!doctype html><title>world.test</title><p>Hello from ${WORLD_NAME}, the lab's internet.</p>\n`,
    );
    for (const [role, at] of [
      ['world/httpd', WORLD_ADDRESS],
      ['world/httpd6', `[${WORLD_ADDRESS6}]`],
    ] as const)
      this.startProcess(role, 'world', ['busybox', 'httpd', '-f', '-p', `${at}:80`, '-h', www]);
    this.startProcess(
      'world/dns',
      'world',
      peerDnsmasq(
        `--listen-address=${WORLD_ADDRESS}`,
        `--auth-server=ns.${WORLD_NAME},eth0`,
        `--auth-zone=${WORLD_NAME}`,
        `--host-record=${WORLD_NAME},${WORLD_ADDRESS},${WORLD_ADDRESS6}`,
        `--host-record=www.${WORLD_NAME},${WORLD_ADDRESS},${WORLD_ADDRESS6}`,
        `--host-record=ns.${WORLD_NAME},${WORLD_ADDRESS}`,
        `--host-record=ntp.${WORLD_NAME},${WORLD_ADDRESS}`,
      ),
    );
  }

  /** (Re)starts the ISP's dnsmasq serving 100.64.K.10–50 with lease `leaseSeconds`. */
  startIspDhcp(leaseSeconds = 600): void {
    const k = this.#state.ispSubnet;
    const net = `100.64.${k}`;
    this.startProcess(
      'isp/dnsmasq',
      'isp',
      peerDnsmasq(
        '--log-dhcp',
        '--interface=to-rtr',
        `--server=${WORLD_ADDRESS}`,
        `--dhcp-range=${net}.10,${net}.50,255.255.255.0,${leaseSeconds}`,
        `--dhcp-option=option:router,${net}.1`,
        `--dhcp-option=option:dns-server,${net}.1`,
        `--dhcp-option=option:ntp-server,${WORLD_ADDRESS}`,
        '--dhcp-authoritative',
        '--no-ping',
        `--dhcp-leasefile=${join(this.dir, 'isp', 'leases')}`,
      ),
    );
  }

  /**
   * The ISP renumbers: its DHCP server is restarted with the range 100.64.K.10–50 and
   * 100.64.K.1 as the router (authoritative, so the router's next renew of an address
   * outside it is NAKed). 100.64.0.1 stays as the server's identity.
   */
  async renumberIsp(k: number): Promise<void> {
    if (!Number.isInteger(k) || k < 0 || k > 255) throw new LabError(`subnet ${k}: 0–255`);
    await this.stopProcess('isp/dnsmasq');
    const old = this.#state.ispSubnet;
    this.#state.ispSubnet = k;
    this.save();
    // 100.64.0.1 stays: it is the DHCP server's identity (its first address), which a
    // real ISP keeps when it renumbers; a client ignores a NAK from another server.
    if (k !== old) {
      if (k !== 0)
        run(['ip', '-n', this.ns('isp'), 'addr', 'add', `100.64.${k}.1/24`, 'dev', 'to-rtr']);
      if (old !== 0)
        run(['ip', '-n', this.ns('isp'), 'addr', 'del', `100.64.${old}.1/24`, 'dev', 'to-rtr']);
    }
    this.startIspDhcp();
    await this.#waitListening('isp', 'u', 67, 'the ISP DHCP server');
  }

  /**
   * Starts node's DHCP client. It asks every second until answered: 60 discovers 1 s
   * apart (-t 60 -T 1) before its 1 s pause (-A 1), so a lease never waits more than
   * a second for a server that has just come up (with busybox's -t 5 the pause left a
   * 2 s gap every 5 s, which the demo's timeline showed; issue 11, point 16).
   */
  startClient(node: 'lan1' | 'lan2'): void {
    rmSync(join(this.dir, node, 'lease'), { force: true });
    this.startProcess(
      `${node}/udhcpc`,
      node,
      [
        'busybox',
        'udhcpc',
        '-f',
        '-i',
        'eth0',
        '-s',
        join(packageRoot(), 'libexec', 'lab-dhcp-client'),
        '-t',
        '60',
        '-T',
        '1',
        '-A',
        '1',
        '-x',
        `hostname:${node}`,
      ],
      { ...process.env, LAB_NS: this.ns(node), LAB_LEASE: join(this.dir, node, 'lease') },
    );
  }

  // ---- The router ---------------------------------------------------------------------------

  /**
   * Starts limen in rtr (from bin/limen.js) with --root in the lab and the lab's copy
   * of the site configuration; resolves once its control socket answers.
   */
  async startRouter(
    options: { timeoutMs?: number; args?: readonly string[]; wait?: boolean } = {},
  ): Promise<ProcessRecord> {
    if (this.router !== undefined)
      throw new LabError(`lab ${this.name}: limen already runs in rtr`);
    mkdirSync(this.routerRoot, { recursive: true });
    const p = this.startProcess(
      'rtr/limen',
      'rtr',
      [
        join(packageRoot(), 'bin', 'limen.js'),
        'daemon',
        '--root',
        this.routerRoot,
        '--config',
        this.siteDir,
        '--log-format',
        'json',
        // The web endpoint for a site's <web-dashboard …> (examples/home-router has one),
        // when the machine has its group (scripts/bootstrap.mjs creates it).
        ...(hasGroup(WEB_GROUP) ? ['--web-group', WEB_GROUP] : []),
        ...(options.args ?? []),
      ],
      this.env(),
    );
    if (options.wait === false) return p;
    const up = await waitFor(
      async () => !isAlive(p) || (await this.routerAnswers()),
      options.timeoutMs ?? 30_000,
      20,
    );
    if (!up || !isAlive(p)) {
      throw new LabError(
        `limen did not come up in ${this.ns('rtr')} (see ${this.routerLog}):\n${tail(this.routerLog, 15)}`,
      );
    }
    return p;
  }

  /** True if limen's control socket answers a status request. */
  async routerAnswers(): Promise<boolean> {
    try {
      const c = await ControlClient.connect(this.socket, { greetingTimeoutMs: 2000 });
      try {
        await c.status();
        return true;
      } finally {
        c.close();
      }
    } catch {
      return false;
    }
  }

  /** Stops limen in rtr with `signal` (SIGTERM: an orderly shutdown); true if it was running. */
  async stopRouter(signal: NodeJS.Signals = 'SIGTERM', graceMs = 20_000): Promise<boolean> {
    const p = this.#state.processes['rtr/limen'];
    if (p === undefined) return false;
    const was = await stopRecorded(p, signal, graceMs);
    delete this.#state.processes['rtr/limen'];
    this.save();
    return was;
  }

  /** Waits until a socket (u: UDP, t: TCP) listens on port in node's namespace. */
  async #waitListening(node: LabNode, proto: 'u' | 't', port: number, what: string) {
    const ok = await waitFor(
      async () =>
        (
          await this.execAsync(node, ['ss', '-Hln' + proto, `sport = :${port}`], 5000)
        ).stdout.trim() !== '',
      10_000,
      20,
    );
    if (!ok) throw new LabError(`${what} in ${this.ns(node)} is not listening on port ${port}`);
  }

  async waitPeersListening(): Promise<void> {
    await this.#waitListening('world', 't', 80, 'the world HTTP server');
    await this.#waitListening('world', 'u', 53, 'the world DNS server');
    if (this.wan === 'dhcp') await this.#waitListening('isp', 'u', 67, 'the ISP DHCP server');
    await this.#waitListening('isp', 'u', 53, 'the ISP DNS forwarder');
  }
}

export function tail(file: string, lines: number): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return `(no ${file})`;
  }
}

function readState(dir: string): LabState | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, 'lab.json'), 'utf8')) as LabState;
  } catch {
    return undefined;
  }
}

/** Finds a lab that is up, by name. */
export function openLab(name: string, baseDir = labBaseDir()): Lab {
  checkLabName(name);
  const dir = join(baseDir, name);
  const state = readState(dir);
  if (state === undefined) throw new LabError(`no lab named ${name} is up (limen lab status)`);
  return new Lab(name, dir, state);
}

export interface LabUpOptions {
  readonly name: string;
  /** The site configuration for the router (a directory with core/ and services/), or false: no router. */
  readonly config?: string | false | undefined;
  readonly baseDir?: string;
  /** Start the LAN clients (default true). */
  readonly clients?: boolean;
  /** Called with each step as it happens. */
  readonly onStep?: (step: string) => void;
  /** How the ISP serves the WAN (default dhcp; pppoe needs a kernel with PPPoE). */
  readonly wan?: LabWan;
  /** The ISP serves IPv6 too (default true; src/lab/ipv6-isp.ts). */
  readonly ipv6?: boolean;
}

function link(a: { ns: string; name: string }, b: { ns: string; name: string }): void {
  try {
    run([
      'ip',
      'link',
      'add',
      a.name,
      'netns',
      a.ns,
      'type',
      'veth',
      'peer',
      'name',
      b.name,
      'netns',
      b.ns,
    ]);
  } catch (e) {
    throw missingFeature(e, 'veth pairs (CONFIG_VETH)');
  }
}

function missingFeature(e: unknown, what: string): unknown {
  if (
    e instanceof LabCommandError &&
    /Unknown device type|not supported|No such file/i.test(e.stderr)
  ) {
    return new LabError(`this kernel cannot make ${what}: ${e.stderr.trim()}`);
  }
  return e;
}

/** The router needs nftables with NAT: try a masquerading table in ns, then delete it. */
function probeNat(ns: string): void {
  const script = [
    'table ip limen_probe {',
    '  chain post {',
    '    type nat hook postrouting priority srcnat;',
    '    masquerade',
    '  }',
    '}',
    'delete table ip limen_probe',
    '',
  ].join('\n');
  const r = tryRun(['ip', 'netns', 'exec', ns, 'nft', '-f', '-'], 15_000, script);
  if (r.status !== 0) {
    throw new LabError(
      `this kernel cannot do nftables NAT (nf_tables, nft_chain_nat, nft_masq), which the router needs: ${r.stderr.trim()}`,
    );
  }
}

/** Builds a lab and starts its peers (and limen in rtr unless config is false). */
export async function labUp(options: LabUpOptions): Promise<Lab> {
  const name = checkLabName(options.name);
  const wan = options.wan ?? 'dhcp';
  const ipv6 = options.ipv6 ?? true;
  const problem =
    labPreflight() ??
    (wan === 'pppoe' ? pppoeLabProblem() : undefined) ??
    (ipv6 ? ipv6IspProblem(wan === 'pppoe') : undefined);
  if (problem !== undefined) throw new LabError(problem);
  const dir = join(options.baseDir ?? labBaseDir(), name);
  if (
    existsSync(join(dir, 'lab.json')) ||
    NODES.some((n) => namespaces().includes(namespaceOf(name, n)))
  ) {
    throw new LabError(`a lab named ${name} is already up: \`limen lab down ${name}\` first`);
  }
  const step = options.onStep ?? (() => undefined);
  const siteSource =
    options.config === false
      ? undefined
      : resolve(options.config ?? join(packageRoot(), 'examples', 'home-router'));
  if (siteSource !== undefined && !existsSync(siteSource)) {
    throw new LabError(`site configuration ${siteSource} does not exist`);
  }
  mkdirSync(dir, { recursive: true });
  const lab = new Lab(name, dir, {
    version: 1,
    name,
    createdAt: Date.now(),
    ispSubnet: 0,
    siteSource,
    processes: {},
    wan,
    ...(ipv6 ? { ipv6Pool: 0 } : {}),
  });
  lab.save();
  try {
    step('namespaces and links');
    for (const node of NODES) {
      run(['ip', 'netns', 'add', lab.ns(node)]);
      run(['ip', '-n', lab.ns(node), 'link', 'set', 'lo', 'up']);
    }
    const at = (node: LabNode, ifname: string) => ({ ns: lab.ns(node), name: ifname });
    link(at('world', 'eth0'), at('isp', 'to-world'));
    link(at('isp', 'to-rtr'), at('rtr', 'wan0'));
    link(at('sw', 'p-rtr'), at('rtr', 'lan0'));
    link(at('sw', 'p-lan1'), at('lan1', 'eth0'));
    link(at('sw', 'p-lan2'), at('lan2', 'eth0'));
    const ip = (node: LabNode, ...args: string[]) => run(['ip', '-n', lab.ns(node), ...args]);
    try {
      ip('sw', 'link', 'add', 'br0', 'type', 'bridge');
    } catch (e) {
      throw missingFeature(e, 'bridges (CONFIG_BRIDGE)');
    }
    probeNat(lab.ns('rtr'));
    for (const port of ['p-rtr', 'p-lan1', 'p-lan2']) {
      ip('sw', 'link', 'set', port, 'master', 'br0', 'up');
    }
    ip('sw', 'link', 'set', 'br0', 'up');
    ip('world', 'addr', 'add', `${WORLD_ADDRESS}/24`, 'dev', 'eth0');
    ip('world', 'link', 'set', 'eth0', 'up');
    ip('world', 'route', 'add', 'default', 'via', '198.51.100.1');
    ip('isp', 'addr', 'add', '198.51.100.1/24', 'dev', 'to-world');
    ip('isp', 'addr', 'add', '100.64.0.1/24', 'dev', 'to-rtr');
    ip('isp', 'link', 'set', 'to-world', 'up');
    ip('isp', 'link', 'set', 'to-rtr', 'up');
    run(['ip', 'netns', 'exec', lab.ns('isp'), 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    if (ipv6) {
      const sysctl = (node: LabNode, ...kv: string[]) =>
        run(['ip', 'netns', 'exec', lab.ns(node), 'sysctl', '-qw', ...kv]);
      // No duplicate address detection on the peers' fixed addresses (they are the
      // only ones on their links), and the ISP keeps its WAN addresses while the
      // link is down (a carrier test), so radvd and Kea keep their sockets.
      sysctl('world', 'net.ipv6.conf.eth0.accept_dad=0');
      sysctl('isp', 'net.ipv6.conf.all.forwarding=1', 'net.ipv6.conf.to-world.accept_dad=0');
      ip('world', 'addr', 'add', `${WORLD_ADDRESS6}/64`, 'dev', 'eth0', 'nodad');
      ip('world', '-6', 'route', 'add', 'default', 'via', ISP_WORLD_ADDRESS6);
      ip('isp', 'addr', 'add', `${ISP_WORLD_ADDRESS6}/64`, 'dev', 'to-world', 'nodad');
      if (wan === 'pppoe') {
        // The WAN link is each session's PPP interface (libexec/lab-isp-ppp6 routes
        // 2001:db8:1::/64 through it); the ISP's own address, where its DNS
        // forwarder answers, is on lo from the start.
        ip('isp', 'addr', 'add', `${ISP_WAN_ADDRESS6}/128`, 'dev', 'lo');
      } else {
        sysctl(
          'isp',
          'net.ipv6.conf.to-rtr.accept_dad=0',
          'net.ipv6.conf.to-rtr.keep_addr_on_down=1',
        );
        ip('isp', 'addr', 'add', `${ISP_WAN_ADDRESS6}/64`, 'dev', 'to-rtr', 'nodad');
      }
    }
    for (const c of ['lan1', 'lan2'] as const) ip(c, 'link', 'set', 'eth0', 'up');
    // rtr's wan0 and lan0 stay down: bringing links up is limen's job.

    step('world: HTTP server and DNS for world.test');
    lab.startWorld();
    if (wan === 'pppoe') {
      step(
        ipv6
          ? 'isp: PPPoE server (CHAP; on each session radvd and Kea, DHCPv6 with prefix delegation) and DNS forwarder'
          : 'isp: PPPoE server (CHAP) and DNS forwarder',
      );
      lab.startIspPppoe();
    } else {
      step('isp: DHCP server and DNS forwarder');
      lab.startIspDhcp();
      if (ipv6) {
        step('isp: router advertisements (radvd) and DHCPv6 with prefix delegation (Kea)');
        lab.startIspIpv6();
      }
    }
    await lab.waitPeersListening();

    if (siteSource !== undefined) {
      cpSync(siteSource, lab.siteDir, { recursive: true });
      lab.applyWan();
      step('rtr: limen');
      await lab.startRouter();
    }
    if (options.clients !== false) {
      step('lan1, lan2: DHCP clients');
      lab.startClient('lan1');
      lab.startClient('lan2');
    }
    return lab;
  } catch (e) {
    await labDown(name, { baseDir: options.baseDir });
    throw e;
  }
}

export interface DownReport {
  readonly name: string;
  readonly processes: number;
  readonly namespaces: string[];
}

/** Removes lab `name` completely, whatever state it is in (idempotent). */
export async function labDown(
  name: string,
  options: { baseDir?: string | undefined } = {},
): Promise<DownReport> {
  checkLabName(name);
  const dir = join(options.baseDir ?? labBaseDir(), name);
  const state = readState(dir);
  let processes = 0;
  if (state !== undefined) {
    // The router first, gracefully: limen stops its services in order.
    const order = Object.keys(state.processes).sort((a, b) =>
      a === 'rtr/limen' ? -1 : b === 'rtr/limen' ? 1 : a.localeCompare(b),
    );
    for (const role of order) {
      const p = state.processes[role]!;
      if (await stopRecorded(p, 'SIGTERM', role === 'rtr/limen' ? 20_000 : 3000)) processes++;
    }
  }
  const present = namespaces();
  const mine = NODES.map((n) => namespaceOf(name, n)).filter((ns) => present.includes(ns));
  for (const ns of mine) processes += await killNamespaceProcesses(ns);
  for (const ns of mine) {
    const r = tryRun(['ip', 'netns', 'del', ns]);
    if (r.status !== 0 && namespaces().includes(ns)) {
      throw new LabError(`cannot delete namespace ${ns}: ${r.stderr.trim()}`);
    }
  }
  // A router killed rather than stopped leaves its cgroup subtree (its processes died
  // with the namespaces): remove it, as the next limen on that root would have.
  const router = join(dir, 'rtr', 'root');
  const reclaimed = await reclaimAbandoned(
    join(router, 'var/lib/limen'),
    join(router, 'run/limen'),
    3000,
  );
  processes += reclaimed.processes;
  for (const node of NODES)
    rmSync(join('/etc/netns', namespaceOf(name, node)), { recursive: true, force: true });
  rmSync(dir, { recursive: true, force: true });
  return { name, processes, namespaces: mine };
}

/** Every lab on this machine: by its directory or by a namespace named like a lab's. */
export function labNames(baseDir = labBaseDir()): string[] {
  const names = new Set<string>();
  if (existsSync(baseDir)) {
    for (const e of readdirSync(baseDir, { withFileTypes: true })) {
      if (e.isDirectory() && NAME_RE.test(e.name)) names.add(e.name);
    }
  }
  for (const ns of namespaces()) {
    const m = NS_RE.exec(ns);
    if (m !== null) names.add(m[1]!);
  }
  return [...names].sort();
}

export async function labDownAll(baseDir = labBaseDir()): Promise<DownReport[]> {
  const out: DownReport[] = [];
  for (const name of labNames(baseDir)) out.push(await labDown(name, { baseDir }));
  return out;
}

export interface LabInfo {
  readonly name: string;
  readonly dir: string;
  readonly namespaces: { readonly node: LabNode; readonly ns: string; readonly present: boolean }[];
  readonly processes: { readonly role: string; readonly pid: number; readonly alive: boolean }[];
  readonly socket: string;
  /** False if only leftovers remain (no state file). */
  readonly complete: boolean;
}

export function labStatus(baseDir = labBaseDir()): LabInfo[] {
  const present = new Set(namespaces());
  return labNames(baseDir).map((name) => {
    const dir = join(baseDir, name);
    const state = readState(dir);
    return {
      name,
      dir,
      namespaces: NODES.map((node) => ({
        node,
        ns: namespaceOf(name, node),
        present: present.has(namespaceOf(name, node)),
      })),
      processes: Object.entries(state?.processes ?? {})
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([role, p]) => ({ role, pid: p.pid, alive: isAlive(p) })),
      socket: socketPathFor(join(dir, 'rtr', 'root')),
      complete: state !== undefined,
    };
  });
}

/** Runs argv in node's namespace with the terminal attached; resolves with its exit code. */
export function labExecInteractive(
  lab: Lab,
  node: LabNode,
  argv: readonly string[],
): Promise<number> {
  return new Promise((resolvePromise) => {
    const child = spawn('ip', ['netns', 'exec', lab.ns(node), ...argv], {
      stdio: 'inherit',
      env: lab.env(),
    });
    child.on('error', () => resolvePromise(127));
    child.on('exit', (code, signal) =>
      resolvePromise(code ?? 128 + (signal === null ? 0 : (constants.signals[signal] ?? 0))),
    );
  });
}

export function isLabNode(s: string): s is LabNode {
  return (NODES as readonly string[]).includes(s);
}
