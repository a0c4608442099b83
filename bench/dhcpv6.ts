// DHCPv6 on the WAN, with the real daemon in network namespaces against radvd and
// Kea, and what the LAN sees of it:
//
//   (a) the exchange, a fresh SOLICIT each round: limen's dhcpcd releases (`!
//       <dhcpv6-release W>`, as ifdown does, without setting the link down), its
//       lease file is removed, and `! <interface-retry W>` (what ifup sends) starts
//       it again, until `<delegated-prefix W …>` is asserted. Baseline, in the same
//       run, alternating: the same dhcpcd (same configuration lines, same hook) run
//       by hand on a second link to the same Kea, until the hook's `event` file
//       exists. Measured from dhcpcd's first line ("dhcpcd-… starting"; it waits up
//       to a second at random before its first SOLICIT, RFC 8415 section 18.2.1),
//       from that SOLICIT and its REPLY on the wire (tcpdump on the ISP's side),
//       each beside the baseline and as a ratio to it.
//   (b) the LAN: from `<delegated-prefix …>` to the router's P:1::1/64 on lan0 (ip
//       monitor), to the end of its DAD, and to the first router advertisement on
//       the LAN carrying P:1::/64 as preferred (tcpdump in a LAN namespace, passive:
//       no RS), with `<lan-ipv6 "lan0" {subnet: 1}>` and `<lan-dhcp "lan0" …>`
//       running dnsmasq. dnsmasq answers an RS at once, but each address or route
//       change it hears of from the kernel sets its next unsolicited RA 0 to 5 s
//       ahead at random (radv.c, ra_start_unsolicited), so the end of DAD and the
//       routes that come with the address can put it off again.
//
// Clocks: tcpdump's stamps are the kernel's (capture), ip monitor's its own, the
// watch events are stamped when they reach us, dhcpcd's lines when the supervisor
// (limen) or we (baseline) read them; all on this machine's wall clock. Benchmarks
// do not assert times: exit 0 when everything was measured, 1 with a message
// otherwise; not root: skipped (exit 0). Everything it makes is removed, also on
// failure or SIGINT.
//
//   sudo npx tsx bench/dhcpv6.ts [--rounds N]     (or: npm run bench -- dhcpv6)

import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, watch, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ControlClient, decodeWatchEvent, socketPathFor } from '../src/control/index.ts';
import { packageRoot } from '../src/lab/lab.ts';
import { keaDhcp6Config, radvdArgv, radvdConfig } from '../src/lab/ipv6-isp.ts';
import { dhcpcdArgv } from '../src/net/dhcpv6.ts';
import { carveSubnet } from '../src/net/lan-prefix.ts';
import { parse, stringify } from '../src/preserves/index.ts';
import { keaLink } from '../test/support/kea-link.ts';
import { MARK, NetnsDaemon } from '../test/support/netns-daemon.ts';
import { testLink, testNamespace } from '../test/support/names.ts';
import { describeProcs } from '../test/support/processes.ts';
import {
  EventLog,
  LineMonitor,
  MeasureError,
  formatTable,
  ipMonitor,
  ms,
  percentile,
  wallNow,
  type KernelEvent,
  type Stamped,
} from './support/lab-timing.ts';

const { values: opts } = parseArgs({ options: { rounds: { type: 'string' } } });
const ROUNDS = opts.rounds === undefined ? 8 : Number(opts.rounds);
if (!Number.isInteger(ROUNDS) || ROUNDS < 1 || ROUNDS > 50) {
  console.error(`--rounds ${opts.rounds}: give a whole number from 1 to 50`);
  process.exit(2);
}
const WAIT_MS = 20_000;
const PROGRAMS = ['dhcpcd', 'kea-dhcp6', 'radvd', 'dnsmasq', 'tcpdump'];

interface Line extends Stamped {
  readonly text: string;
}
interface Packet extends Stamped {
  /** tcpdump's stamp (capture time, ms since the epoch). */
  readonly stamp: number;
  readonly text: string;
}

const ip = (...args: string[]) => execFileSync('ip', args, { encoding: 'utf8' });
const inNs = (ns: string, ...argv: string[]) =>
  execFileSync('ip', ['netns', 'exec', ns, ...argv], { encoding: 'utf8' });

/**
 * tcpdump -tt -vv, one event per packet (its continuation lines joined) into `log`:
 * a packet is complete at the next packet's first line, or when no line came for
 * 5 ms (tcpdump writes a packet's lines together).
 */
function tcpdump(ns: string, filter: string[], log: EventLog<Packet>): LineMonitor {
  let current: { stamp: number; at: number; text: string } | undefined;
  let timer: NodeJS.Timeout | undefined;
  const flush = () => {
    clearTimeout(timer);
    if (current !== undefined) log.push(current);
    current = undefined;
  };
  return new LineMonitor(
    ['ip', 'netns', 'exec', ns, 'tcpdump', '-l', '-n', '-tt', '-vv', ...filter],
    (line, at) => {
      const m = /^(\d+)\.(\d{6}) (.*)$/.exec(line);
      if (m !== null) {
        flush();
        current = { stamp: Number(m[1]) * 1000 + Number(m[2]) / 1000, at, text: m[3]! };
      } else if (current !== undefined) {
        current.text += `\n${line}`;
      }
      clearTimeout(timer);
      timer = setTimeout(flush, 5);
    },
  );
}

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) {
    console.log('bench/dhcpv6.ts skipped: it needs root (network namespaces)');
    return 0;
  }
  const missing = PROGRAMS.filter((p) => {
    try {
      execFileSync('sh', ['-c', 'command -v "$1"', 'sh', p], { stdio: 'ignore' });
      return false;
    } catch {
      return true;
    }
  });
  if (missing.length > 0) {
    console.log(`bench/dhcpv6.ts cannot run here: missing ${missing.join(', ')}`);
    return 1;
  }

  const isp = testNamespace('b6isp');
  const rtr = testNamespace('b6rtr');
  const lan = testNamespace('b6lan');
  const wan = testLink('w');
  const base = testLink('b');
  const dir = mkdtempSync(join(tmpdir(), 'limen-bench-dhcpv6-'));
  const daemon = new NetnsDaemon(rtr, dir);
  const monitors: LineMonitor[] = [];
  const stop = new AbortController();
  let client: ControlClient | undefined;
  let kea: LineMonitor | undefined;
  const solicits = new EventLog<Packet>('DHCPv6 at the ISP');
  const ras = new EventLog<Packet>('RAs on the LAN');
  const kernel = new EventLog<KernelEvent>('ip monitor in the router');
  const keaLog: string[] = [];
  try {
    for (const ns of [isp, rtr, lan]) {
      ip('netns', 'add', ns);
      ip('-n', ns, 'link', 'set', 'lo', 'up');
    }
    inNs(rtr, 'sysctl', '-qw', 'net.ipv6.conf.all.forwarding=1');
    for (const [link, peer, net] of [
      [wan, 'isp0', '2001:db8:1'],
      [base, 'isp1', '2001:db8:2'],
    ] as const) {
      ip('-n', rtr, 'link', 'add', link, 'type', 'veth', 'peer', 'name', peer, 'netns', isp);
      // Kea binds the link-local address: no DAD to wait for on the ISP's side.
      inNs(isp, 'sysctl', '-qw', `net.ipv6.conf.${peer}.accept_dad=0`);
      ip('-n', isp, 'addr', 'add', `${net}::1/64`, 'dev', peer, 'nodad');
      ip('-n', isp, 'link', 'set', peer, 'up');
    }
    // The baseline's link is not limen's: up by hand.
    ip('-n', rtr, 'link', 'set', base, 'up');
    ip('-n', rtr, 'link', 'add', 'lan0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', lan);
    ip('-n', lan, 'link', 'set', 'eth0', 'up');

    mkdirSync(join(dir, 'isp'));
    writeFileSync(join(dir, 'isp', 'radvd.conf'), radvdConfig('isp0'));
    // Long lifetimes and timers: no renew within a run.
    const long = { preferred: 1800, valid: 3600, renew: 900, rebind: 1400 };
    writeFileSync(
      join(dir, 'isp', 'kea.json'),
      JSON.stringify(
        keaDhcp6Config(keaLink('isp0', '2001:db8:1', '2001:db8:8000::/48', long), [
          keaLink('isp1', '2001:db8:2', '2001:db8:8100::/48', long),
        ]),
      ),
    );
    mkdirSync(join(dir, 'site', 'core'), { recursive: true });
    writeFileSync(
      join(dir, 'site', 'core', 'net.pr'),
      [
        `<configure-interface "${wan}" <dhcpv6 {prefix-hint: 56}>>`,
        // TEST-NET-1: dnsmasq's DHCPv4 on the LAN, which nobody asks here.
        '<configure-interface "lan0" <static "192.0.2.1/24" {}>>',
        '<lan-dhcp "lan0" {range: ["192.0.2.100" "192.0.2.199"]}>',
        '<lan-ipv6 "lan0" {subnet: 1}>',
        '',
      ].join('\n'),
    );

    // Observers first: the ISP's side of both links, the LAN's RAs, lan0's addresses.
    monitors.push(tcpdump(isp, ['-i', 'any', 'udp', 'port', '547'], solicits));
    monitors.push(tcpdump(lan, ['-i', 'eth0', 'icmp6 and ip6[40] == 134'], ras));
    monitors.push(ipMonitor(rtr, kernel));

    const env = { ...process.env, [MARK]: daemon.marker };
    monitors.push(
      new LineMonitor(
        ['ip', 'netns', 'exec', isp, ...radvdArgv(dir, join(dir, 'isp', 'radvd.conf'))],
        () => undefined,
        env,
      ),
    );
    await daemon.start();
    // Kea opens its sockets only on running links (the daemon sets the WAN up).
    await waitFor(
      () => /LOWER_UP/.test(ip('-n', isp, 'link', 'show', 'isp0')),
      'the WAN link running',
    );
    kea = new LineMonitor(
      ['ip', 'netns', 'exec', isp, 'kea-dhcp6', '-c', join(dir, 'isp', 'kea.json')],
      (line) => void keaLog.push(line),
      { ...env, KEA_PIDFILE_DIR: join(dir, 'isp'), KEA_LOCKFILE_DIR: join(dir, 'isp') },
    );

    client = await ControlClient.connect(socketPathFor(daemon.root));
    const prefixes = new EventLog<Line>('<delegated-prefix> added');
    void client
      .watch('config', parse(`<delegated-prefix "${wan}" _ _ _>`), {
        signal: stop.signal,
        onEvent: (v) => {
          const e = decodeWatchEvent(v);
          if (e?.type === 'added') prefixes.push({ at: wallNow(), text: stringify(e.value) });
        },
      })
      .catch(() => undefined);
    // The first lease, before any round: Kea is up and the path works.
    await prefixes.waitFor(
      0,
      () => true,
      'the first <delegated-prefix>',
      30_000,
      interrupted.signal,
    );

    const limenRound = async () => {
      const dhcpcdLines = (from: number) =>
        daemonLines(daemon.log.slice(from))
          .filter((e) => e['msg'] === 'output' && e['service'] === `<daemon <dhcpcd "${wan}">>`)
          .map((e) => ({ time: String(e['time']), line: String(e['line']) }));
      // The lease released (as ifdown does, without setting the link down): dhcpcd
      // drops its copy of it, and the lease is withdrawn.
      const released = await daemon.cli('send', `<dhcpv6-release "${wan}">`);
      if (released.code !== 0) throw new MeasureError(`limen send: ${released.err}`);
      await waitFor(
        async () => (await daemon.query(`<delegated-prefix "${wan}" _ _ _>`)).length === 0,
        'the released lease withdrawn',
        20,
      );
      const logMark = daemon.log.length;
      const pMark = prefixes.mark();
      const sMark = solicits.mark();
      const kMark = kernel.mark();
      // What `limen ifup` sends for an interface that is not down: dhcpcd (re)starts.
      const retried = await daemon.cli('send', `<interface-retry "${wan}">`);
      if (retried.code !== 0) throw new MeasureError(`limen send: ${retried.err}`);
      const assertion = await prefixes.waitFor(
        pMark,
        () => true,
        '<delegated-prefix>',
        WAIT_MS,
        interrupted.signal,
      );
      const start = dhcpcdLines(logMark).find((l) => /^dhcpcd-\S+ starting/.test(l.line));
      if (start === undefined) throw new MeasureError('no "dhcpcd … starting" from limen');
      const wire = await exchange(solicits, sMark, 'isp0', 'limen’s dhcpcd');
      const started = Date.parse(start.time);
      // (b): the LAN's /64 from this prefix, on lan0 and in an RA.
      const m = /^<delegated-prefix "[^"]+" "([^"]+)"/.exec(assertion.text);
      const lanNet = m === null ? undefined : carveSubnet(m[1]!, 1);
      if (lanNet === undefined || 'problem' in lanNet)
        throw new MeasureError(`no LAN /64 in ${assertion.text}`);
      const router = lanNet.router.replace(/\/64$/, '');
      const network = lanNet.network;
      // The old lease went with the old dhcpcd (its address on lan0 too): the next
      // address added is this lease's.
      const installed = await kernel.waitFor(
        kMark,
        (k) =>
          !k.text.startsWith('Deleted') &&
          /\blan0\b/.test(k.text) &&
          k.text.includes(`inet6 ${router}/64`),
        `${lanNet.router} on lan0`,
        WAIT_MS,
        interrupted.signal,
      );
      // Usable once DAD is done: the kernel reports the address again, not tentative.
      const usable = await kernel.waitFor(
        kernel.after(installed),
        (k) =>
          !k.text.startsWith('Deleted') &&
          /\blan0\b/.test(k.text) &&
          k.text.includes(`inet6 ${router}/64`) &&
          !/\btentative\b/.test(k.text),
        `${lanNet.router} on lan0 after DAD`,
        WAIT_MS,
        interrupted.signal,
      );
      // dnsmasq keeps announcing a prefix it lost, deprecated (preferred 0) until its
      // valid lifetime ends: the first RA with it preferred again after it is back.
      const ra = await ras.waitFor(
        0,
        (p) =>
          p.stamp >= installed.stamp &&
          new RegExp(
            `${network}, Flags \\[[^\\]]*\\], valid time \\S+, pref\\. time ([1-9]|infinity)`,
          ).test(p.text),
        `an RA carrying ${network}`,
        WAIT_MS,
        interrupted.signal,
      );
      return {
        fromStart: assertion.at - started,
        fromSolicit: assertion.at - wire.solicit,
        onWire: wire.reply - wire.solicit,
        afterReply: assertion.at - wire.reply,
        toAddress: installed.stamp - assertion.at,
        toUsable: usable.stamp - assertion.at,
        toRa: ra.stamp - assertion.at,
      };
    };

    // The baseline runs the service's own command line (src/net/dhcpv6.ts), by hand.
    const baseArgv = dhcpcdArgv(
      base,
      join(packageRoot(), 'libexec', 'dhcpcd-script'),
      { address: true, prefix: true, prefixHint: 56 },
      join(dir, 'base-state'),
    );
    const baseRound = async () => {
      const out = mkdtempSync(join(dir, 'base-out-'));
      const sMark = solicits.mark();
      let started: number | undefined;
      let bound: number | undefined;
      let releasing = false;
      const seenEvent = () => {
        if (bound === undefined && existsSync(join(out, 'event'))) bound = wallNow();
      };
      const watcher = watch(out, seenEvent);
      const dhcpcd = startGroup(
        ['ip', 'netns', 'exec', rtr, ...baseArgv],
        { ...env, LIMEN_OUTPUTS: out },
        (line, at) => {
          if (started === undefined && /^dhcpcd-\S+ starting/.test(line)) started = at;
          if (/received SIGALRM/.test(line)) releasing = true;
        },
      );
      try {
        await waitFor(() => (seenEvent(), bound !== undefined), 'the baseline’s event file');
        // Released, as limen's is each round (dhcpcd drops its copy of the lease).
        // dhcpcd loses a signal that comes while it runs its hook (as the supervisor's
        // stopScope main knows): again every 250 ms until it says it got one.
        let next = 0;
        await waitFor(() => {
          if (Date.now() >= next) {
            dhcpcd.signal('SIGALRM');
            next = Date.now() + 250;
          }
          return releasing;
        }, 'the baseline’s dhcpcd to release');
      } finally {
        watcher.close();
        await dhcpcd.stop();
      }
      const wire = await exchange(solicits, sMark, 'isp1', 'the baseline');
      if (started === undefined) throw new MeasureError('no "dhcpcd … starting" from the baseline');
      return {
        fromStart: bound! - started,
        fromSolicit: bound! - wire.solicit,
        onWire: wire.reply - wire.solicit,
        afterReply: bound! - wire.reply,
      };
    };

    const limen: Awaited<ReturnType<typeof limenRound>>[] = [];
    const baseline: Awaited<ReturnType<typeof baseRound>>[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      baseline.push(await baseRound());
      limen.push(await limenRound());
    }

    const p = (xs: number[], q: number) => ms(percentile(xs, q));
    const pair = (
      label: string,
      f: (r: (typeof limen)[number]) => number,
      base?: number[],
      ratio = true,
    ) => {
      const xs = limen.map(f);
      return [
        label,
        ...(base === undefined ? ['', ''] : [p(base, 50), p(base, 90)]),
        p(xs, 50),
        p(xs, 90),
        base === undefined || !ratio ? '' : (percentile(xs, 50) / percentile(base, 50)).toFixed(2),
      ];
    };
    console.log(
      `\nDHCPv6 against Kea, ${ROUNDS} rounds of each, alternating, a fresh SOLICIT each ` +
        `(ms). Baseline: the same dhcpcd, configuration and hook run by hand, until the ` +
        `hook's event file; limen: until <delegated-prefix> is asserted.`,
    );
    console.log(
      formatTable(
        ['', 'base p50', 'p90', 'limen p50', 'p90', 'x base'],
        [
          pair(
            '(a) dhcpcd start → lease',
            (r) => r.fromStart,
            baseline.map((r) => r.fromStart),
          ),
          pair(
            '    first SOLICIT → lease',
            (r) => r.fromSolicit,
            baseline.map((r) => r.fromSolicit),
          ),
          // (No ratio: a few milliseconds each, Kea's and the kernel's alone.)
          pair(
            '      SOLICIT → REPLY on the wire',
            (r) => r.onWire,
            baseline.map((r) => r.onWire),
            false,
          ),
          pair(
            '      REPLY → lease',
            (r) => r.afterReply,
            baseline.map((r) => r.afterReply),
          ),
          pair('(b) lease → P:1::1/64 on lan0', (r) => r.toAddress),
          pair('    lease → P:1::1/64 after DAD', (r) => r.toUsable),
          pair('    lease → RA carrying P:1::/64', (r) => r.toRa),
        ],
      ),
    );
    console.log(
      `each round (base / limen start → lease; → RA): ` +
        limen
          .map((r, i) => `${ms(baseline[i]!.fromStart)} / ${ms(r.fromStart)}; ${ms(r.toRa)}`)
          .join(', '),
    );
    return 0;
  } catch (e) {
    if (interrupted.signal.aborted) return 130;
    console.log(`bench/dhcpv6.ts: ${e instanceof Error ? e.message : String(e)}`);
    const last = (log: EventLog<Packet> | EventLog<KernelEvent>) =>
      log
        .all()
        .slice(-4)
        .map((x) => x.text)
        .join('\n');
    console.log(`-- ${solicits.name}:\n${last(solicits)}\n-- ${ras.name}:\n${last(ras)}`);
    for (const m of monitors)
      if (m.stderr !== '') console.log(`-- ${m.argv.join(' ')}:\n${m.stderr}`);
    console.log(`-- Kea:\n${keaLog.slice(-5).join('\n')}`);
    console.log(`-- ${kernel.name}:\n${last(kernel)}\n-- the daemon:\n${daemon.logTail(12)}`);
    return 1;
  } finally {
    stop.abort();
    client?.close();
    await kea?.stop();
    for (const m of monitors) await m.stop();
    const left = await daemon.dispose();
    for (const ns of [isp, rtr, lan]) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    rmSync(dir, { recursive: true, force: true });
    if (left.length > 0) console.log(`bench/dhcpv6.ts: had to kill ${describeProcs(left)}`);
  }
}

/**
 * The first SOLICIT on `link` at the ISP after `from`, and the first REPLY after it
 * (their capture stamps), waiting a little for tcpdump's lines.
 */
async function exchange(
  log: EventLog<Packet>,
  from: number,
  link: string,
  who: string,
): Promise<{ solicit: number; reply: number }> {
  const is = (what: string) => (p: Packet) =>
    new RegExp(`^${link}\\s.* dhcp6 ${what} `).test(p.text);
  const solicit = await log.waitFor(from, is('solicit'), `a SOLICIT from ${who}`, 5000);
  const reply = await log.waitFor(log.after(solicit), is('reply'), `a REPLY to ${who}`, 5000);
  return { solicit: solicit.stamp, reply: reply.stamp };
}

/** The daemon's JSON log lines in `text` (a partial or non-JSON line is skipped). */
function daemonLines(text: string): { [key: string]: unknown }[] {
  const out: { [key: string]: unknown }[] = [];
  for (const line of text.split('\n')) {
    try {
      out.push(JSON.parse(line) as { [key: string]: unknown });
    } catch {
      // not a whole JSON line
    }
  }
  return out;
}

/** Polls `ok` every `intervalMs` until it holds, or fails after WAIT_MS (or on SIGINT) with `what`. */
async function waitFor(
  ok: () => boolean | Promise<boolean>,
  what: string,
  intervalMs = 2,
): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!(await ok())) {
    if (interrupted.signal.aborted) throw new MeasureError(`interrupted waiting for ${what}`);
    if (Date.now() > deadline) throw new MeasureError(`no ${what} within ${WAIT_MS} ms`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * Starts argv in a process group of its own, reading its stdout and stderr lines
 * (stamped when read); signal() signals its main process; stop() waits 3 s for it
 * to exit (SIGTERM first if it has not been signalled), then kills the whole group
 * (dhcpcd's privilege-separated helpers too).
 */
function startGroup(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  onLine: (line: string, at: number) => void,
): { signal(s: NodeJS.Signals): void; stop(): Promise<void> } {
  const child = spawn(argv[0]!, argv.slice(1), {
    env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  for (const stream of [child.stdout, child.stderr]) {
    let partial = '';
    stream.setEncoding('utf8').on('data', (chunk: string) => {
      const at = wallNow();
      const lines = (partial + chunk).split('\n');
      partial = lines.pop()!;
      for (const line of lines) onLine(line, at);
    });
  }
  let signalled = false;
  const exited = new Promise<void>((r) => {
    child.once('error', () => r());
    child.once('exit', () => r());
  });
  const group = (signal: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, signal);
    } catch {
      // gone
    }
  };
  return {
    signal(s) {
      signalled = true;
      child.kill(s);
    },
    async stop() {
      if (!signalled) child.kill('SIGTERM');
      const timer = setTimeout(() => group('SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
      group('SIGKILL');
    },
  };
}

const interrupted = new AbortController();
for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.once(signal, () => interrupted.abort());

process.exitCode = await main();
