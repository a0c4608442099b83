// `limen lab demo` (`npm run demo`): the lab with limen as the router running
// examples/home-router, and a timeline of what limen did, in milliseconds since
// its process was started: WAN link up, lease bound, address configured,
// default route, firewall applied, LAN DHCP server ready, LAN client bound, and
// a LAN client fetching http://world.test/ by name, through limen's DNS and
// NAT; and the IPv6 steps: the delegated prefix (on ppp-wan0 over PPPoE), the LAN's /64
// of it, and the client fetching the page over IPv6 from its own SLAAC address
// (no NAT66). Then a live view of the changes until Ctrl-C; with --once it checks
// every step, tears down, and exits 0 only if the page was fetched.
//
// Times come from the control socket's watch streams: an event is stamped when
// it reaches us. Whatever was already asserted when the watch began (the
// socket comes up after the boot layer has loaded) is shown as "≤ T".

import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { ControlClient, decodeWatchEvent, type WatchEvent } from '../control/index.ts';
import { Dict, parse, peel, stringify, sym, type Value } from '../preserves/index.ts';
import {
  type Lab,
  type LabNode,
  type LabWan,
  WORLD_NAME,
  LAN_ROUTER_ADDRESS,
  labDown,
  labNames,
  labPreflight,
  labUp,
  limenInvocation,
  packageRoot,
  tail,
} from './lab.ts';
import { LabError, waitFor } from './system.ts';
import { inVm } from './vm-lab.ts';
import { forwardDashboard, type WebForward } from './web-forward.ts';

type DataspaceName = 'config' | 'machine';

interface StepSpec {
  readonly key: string;
  readonly label: string;
  readonly dataspace: DataspaceName;
  readonly pattern: string;
  readonly detail: (c: ReadonlyMap<string, Value>) => string;
  /** Which matches count (default: all). */
  readonly accept?: (c: ReadonlyMap<string, Value>) => boolean;
}

const text = (v: Value | undefined): string => {
  if (v === undefined) return '';
  const p = peel(v);
  return typeof p === 'string' ? p : stringify(p);
};

/** One field of a `<dhcp-lease IF {…}>` dictionary, as text ("?" if absent). */
const leaseField = (lease: Value | undefined, key: string): string => {
  const d = lease === undefined ? undefined : peel(lease);
  const v = d instanceof Dict ? d.get(sym(key)) : undefined;
  return v === undefined ? '?' : text(v);
};

export const DEMO_STEPS: readonly StepSpec[] = [
  {
    key: 'wan-link',
    label: 'WAN link up',
    dataspace: 'machine',
    pattern: '<interface "wan0" _ _ up up carrier _>',
    detail: () => 'wan0: up, carrier',
  },
  {
    key: 'lease',
    label: 'WAN lease bound',
    dataspace: 'config',
    pattern: '<dhcp-lease "wan0" ?lease>',
    detail: (c) =>
      `${leaseField(c.get('lease'), 'ip')}/${leaseField(c.get('lease'), 'prefix')} from ${leaseField(c.get('lease'), 'server')}, ${leaseField(c.get('lease'), 'lease')} s`,
  },
  {
    key: 'address',
    label: 'WAN address configured',
    dataspace: 'config',
    pattern: '<ip-address-state "wan0" ?addr installed _>',
    detail: (c) => `${text(c.get('addr'))} in the kernel`,
  },
  {
    key: 'route',
    label: 'default route',
    dataspace: 'config',
    pattern: '<default-route ipv4>',
    detail: () => '<default-route ipv4> asserted',
  },
  {
    key: 'firewall',
    label: 'firewall applied',
    dataspace: 'config',
    pattern: '<firewall-applied ?gen _>',
    detail: (c) => `table inet limen, revision ${text(c.get('gen'))}`,
  },
  {
    key: 'lan-dhcp',
    label: 'LAN DHCP server ready',
    dataspace: 'config',
    pattern: '<service-state <daemon <dnsmasq "lan0">> ready>',
    detail: () => 'dnsmasq on lan0',
  },
  {
    key: 'client',
    label: 'LAN client bound',
    dataspace: 'machine',
    pattern: '<dhcp-client "lan0" ?mac ?ip ?host _>',
    detail: (c) => `${text(c.get('host'))} ${text(c.get('ip'))} (${text(c.get('mac'))})`,
  },
];

/**
 * The IPv6 steps (the lab's ISP delegates a /56: src/lab/ipv6-isp.ts), the prefix
 * delegated over the WAN's link: wan0, or the PPP link over it.
 */
const ipv6Steps = (link: string): readonly StepSpec[] => [
  {
    key: 'prefix',
    label: 'IPv6 prefix delegated',
    dataspace: 'config',
    pattern: `<delegated-prefix "${link}" ?prefix _ _>`,
    detail: (c) => `${text(c.get('prefix'))} by DHCPv6 (dhcpcd, IA_PD)`,
  },
  {
    key: 'lan-prefix',
    label: 'LAN IPv6 prefix announced',
    dataspace: 'config',
    pattern: '<lan-ipv6-subnet "lan0" ?subnet ?from>',
    detail: (c) => `${text(c.get('subnet'))} on lan0 (router advertisements by dnsmasq)`,
    // The /64 of the delegated prefix, not the router's ULA one (fd00::/8).
    accept: (c) => !text(c.get('subnet')).startsWith('fd'),
  },
];

/** A `<ppp-session IF {…}>` field, as text. */
const sessionField = (session: Value | undefined, key: string): string => leaseField(session, key);

/** Over PPPoE the lease is a PPP session, and the address is on the PPP interface. */
const PPPOE_STEPS: readonly StepSpec[] = DEMO_STEPS.map((s) => {
  if (s.key === 'lease')
    return {
      key: 'session',
      label: 'PPPoE session up',
      dataspace: 'config',
      pattern: '<ppp-session "wan0" ?session>',
      detail: (c) =>
        `${sessionField(c.get('session'), 'interface')}: ${sessionField(c.get('session'), 'local')} peer ${sessionField(c.get('session'), 'remote')} (CHAP)`,
    };
  if (s.key === 'address')
    return { ...s, pattern: '<ip-address-state "ppp-wan0" ?addr installed _>' };
  return s;
});

/** The timeline's steps for a WAN (IPv6 ones while the lab's ISP serves IPv6). */
export function demoSteps(wan: LabWan, ipv6 = true): readonly StepSpec[] {
  return wan === 'pppoe'
    ? [...PPPOE_STEPS, ...(ipv6 ? ipv6Steps('ppp-wan0') : [])]
    : [...DEMO_STEPS, ...(ipv6 ? ipv6Steps('wan0') : [])];
}

const FETCH = { key: 'fetch', label: `LAN client fetched http://${WORLD_NAME}/` };
export const FETCH6 = {
  key: 'fetch6',
  label: `LAN client fetched http://${WORLD_NAME}/ over IPv6`,
};
export const DASHBOARD = {
  key: 'dashboard',
  label: 'web dashboard answering on the LAN',
};

export interface StepTime {
  readonly key: string;
  readonly label: string;
  /** Milliseconds since limen was started. */
  readonly ms: number;
  /** True if it was already asserted when the watch began (so: at or before ms). */
  readonly already: boolean;
  readonly detail: string;
}

export interface DemoOptions {
  readonly once: boolean;
  readonly name?: string;
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  /** Aborted on Ctrl-C: the demo tears the lab down and returns. */
  readonly signal: AbortSignal;
  /** For the whole timeline; default 90 s. */
  readonly timeoutMs?: number;
  /** How the lab's ISP serves the WAN (default dhcp). */
  readonly wan?: LabWan;
}

function row(t: StepTime): string {
  const ms = `${t.already ? '≤' : ' '}${String(t.ms).padStart(6)}`;
  return `  ${ms}  ${t.label.padEnd(48)} ${t.detail}\n`;
}

async function connect(lab: Lab, signal: AbortSignal, timeoutMs: number): Promise<ControlClient> {
  let client: ControlClient | undefined;
  let last: unknown;
  await waitFor(
    async () => {
      if (signal.aborted) return true;
      try {
        client = await ControlClient.connect(lab.socket, { signal, greetingTimeoutMs: 2000 });
        return true;
      } catch (e) {
        last = e;
        return false;
      }
    },
    timeoutMs,
    10,
  );
  if (client === undefined) {
    throw new LabError(
      `cannot reach limen's control socket ${lab.socket}: ${last instanceof Error ? last.message : String(last)}`,
    );
  }
  return client;
}

/** A random web password for this run, set through root's socket; its text. */
async function webPassword(c: ControlClient): Promise<string> {
  const answer = peel(await c.call('web-password-set', { random: true }));
  const p = answer instanceof Dict ? answer.get(sym('password')) : undefined;
  if (typeof p !== 'string') throw new LabError('the daemon set no web password');
  return p;
}

/** Runs the demo; resolves with the exit code. */
export async function runDemo(o: DemoOptions): Promise<number> {
  const name = o.name ?? 'demo';
  const problem = labPreflight();
  if (problem !== undefined) {
    o.err(`limen lab demo cannot run here:\n${problem}\n`);
    return 1;
  }
  if (labNames().includes(name)) {
    o.out(`A lab named ${name} is up from an earlier run: taking it down first.\n`);
    await labDown(name);
  }
  // In the VM everything runs under software emulation, several times slower.
  const slow = inVm();
  const timeoutMs = o.timeoutMs ?? (slow ? 300_000 : 90_000);
  let lab: Lab | undefined;
  let client: ControlClient | undefined;
  let forward: WebForward | undefined;
  const watches = new AbortController();
  const onAbort = () => watches.abort();
  o.signal.addEventListener('abort', onAbort, { once: true });
  try {
    o.out(`limen demo: building the lab "${name}" (network namespaces limen-${name}-*)\n`);
    const wan = o.wan ?? 'dhcp';
    lab = await labUp({
      name,
      config: false,
      clients: false,
      wan,
      onStep: (s) => o.out(`  ${s}\n`),
    });
    const l = lab;
    cpSync(join(packageRoot(), 'examples', 'home-router'), l.siteDir, { recursive: true });
    l.applyWan();
    o.out(
      `  rtr: limen with examples/home-router${wan === 'pppoe' ? ', its WAN over PPPoE' : ''} (log: ${l.routerLog})\n`,
    );
    const router = await l.startRouter({ wait: false });
    const t0 = router.startedAt;
    client = await connect(l, o.signal, slow ? 120_000 : 30_000);
    if (o.signal.aborted) return 130;
    // LAN clients start now: they retry until limen's dnsmasq answers them.
    l.startClient('lan1');
    l.startClient('lan2');

    const times = new Map<string, StepTime>();
    o.out(`\n  ms since limen started\n`);
    const c = client;
    const steps = demoSteps(wan, l.ipv6);
    for (const s of steps) {
      void follow(c, s.dataspace, s.pattern, watches.signal, (e, already) => {
        if (e.type !== 'added' || times.has(s.key)) return;
        if (s.accept !== undefined && !s.accept(new Map(e.captures))) return;
        const t: StepTime = {
          key: s.key,
          label: s.label,
          ms: Date.now() - t0,
          already,
          detail: s.detail(new Map(e.captures)),
        };
        times.set(s.key, t);
        o.out(row(t));
      });
    }
    const deadline = Date.now() + timeoutMs;
    /** Fetches until the page comes (or the deadline), then prints the step; true if it came. */
    const fetchStep = async (
      step: { key: string; label: string },
      fetch: () => Promise<{ status: number | null; stdout: string }>,
      detail: (body: string) => string,
      ready: () => boolean = () => true,
      expect = 'Hello from',
    ): Promise<boolean> => {
      let fetched = '';
      const ok = await waitFor(
        async () => {
          if (o.signal.aborted) return true;
          if (!ready()) return false;
          const r = await fetch();
          if (r.status === 0 && r.stdout.includes(expect)) {
            fetched = r.stdout;
            return true;
          }
          return false;
        },
        Math.max(0, deadline - Date.now()),
        250,
      );
      if (!ok || o.signal.aborted) return false;
      const t: StepTime = {
        key: step.key,
        label: step.label,
        ms: Date.now() - t0,
        already: false,
        detail: detail(fetched),
      };
      times.set(step.key, t);
      o.out(row(t));
      return true;
    };
    // The fetch, once the client has its lease: by name, through limen's DNS and NAT.
    const ok = await fetchStep(
      FETCH,
      () => l.fetch('lan1', `http://${WORLD_NAME}/`),
      (body) => `"${/<p>([^<]*)/.exec(body)?.[1] ?? body.trim()}"`,
      () => times.has('client') && l.clientLease('lan1') !== undefined,
    );
    if (o.signal.aborted) return 130;
    // And over IPv6, from lan1's own global address (SLAAC from limen's RAs).
    if (ok && l.ipv6)
      await fetchStep(
        FETCH6,
        () => l.fetch6('lan1', `http://${WORLD_NAME}/`),
        (body) => `from ${/^from (\S+)$/m.exec(body)?.[1] ?? '?'} (its SLAAC address, no NAT)`,
      );
    if (o.signal.aborted) return 130;
    // The web dashboard (examples/home-router/services/web.pr), as a LAN client sees it.
    const dashboardUrl = `http://${LAN_ROUTER_ADDRESS}/`;
    if (ok)
      await fetchStep(
        DASHBOARD,
        () => l.fetch('lan1', dashboardUrl),
        () => `${dashboardUrl} (limen-web, as user limen-web)`,
        () => true,
        '<title>limen',
      );
    if (o.signal.aborted) return 130;
    const missing = [...steps, FETCH, ...(l.ipv6 ? [FETCH6] : []), DASHBOARD].filter(
      (s) => !times.has(s.key),
    );
    if (missing.length > 0) {
      o.err(
        `\nlimen demo FAILED at: ${missing[0]!.label}` +
          (missing.length > 1
            ? ` (also missing: ${missing
                .slice(1)
                .map((s) => s.label)
                .join(', ')})`
            : '') +
          '\n',
      );
      await showLogs(l, c, o.err);
      return 1;
    }
    o.out(
      `\nThe LAN client lan1 reached http://${WORLD_NAME}/ through limen (DNS by limen's dnsmasq, NAT by its firewall${wan === 'pppoe' ? ', over the PPPoE link' : ''}${l.ipv6 ? '; and over IPv6 from its own address in the delegated prefix' : ''}).\n`,
    );
    if (o.once) {
      o.out('All steps passed (--once): tearing down.\n');
      return 0;
    }
    // The dashboard from this machine's browser: a password for this run, and a port of
    // 127.0.0.1 forwarded into the lab's LAN (in the VM there is no browser to forward to).
    const password = await webPassword(c);
    if (!slow) {
      forward = await forwardDashboard(l, 8080);
      o.out(
        `\nWeb dashboard: ${forward.url}  password: ${password}\n` +
          `  (a random password for this run; as root, \`limen web-password set\` in rtr sets another.\n` +
          `   The port forwards to ${dashboardUrl} from inside the LAN client lan1.)\n`,
      );
    } else {
      o.out(
        `\nWeb dashboard: ${dashboardUrl} from the lab's LAN, in the VM; password: ${password}\n`,
      );
    }
    o.out(
      `\nLive view of what changes (Ctrl-C stops the demo and removes the lab). Poke at it from another terminal:\n` +
        pokeCommands(name)
          .map((c) => `  ${c}\n`)
          .join('') +
        '\n',
    );
    await liveView(c, t0, o.out, o.signal);
    return 0;
  } catch (e) {
    if (o.signal.aborted) return 130;
    o.err(`limen demo FAILED: ${e instanceof Error ? e.message : String(e)}\n`);
    if (lab !== undefined) await showLogs(lab, client, o.err);
    return 1;
  } finally {
    watches.abort();
    o.signal.removeEventListener('abort', onAbort);
    client?.close();
    await forward?.close().catch(() => undefined);
    if (lab !== undefined) {
      o.out(`Tearing down the lab "${name}"…\n`);
      const r = await labDown(name);
      o.out(`  removed ${r.namespaces.length} namespaces; the lab is gone.\n`);
    }
  }
}

/**
 * What the demo suggests trying while it runs: shell commands that work as printed,
 * in this order, from another terminal (test/lab/07-first-contact.test.ts runs them).
 */
export function pokeCommands(name: string): string[] {
  const lab = `${limenInvocation()} lab exec --name ${name}`;
  return [
    `${lab} rtr -- limen status`,
    `${lab} rtr -- limen query --dataspace machine '<address ?if _ ?a ?len _>'`,
    `${lab} rtr -- limen clients      # the LAN's hosts: DHCPv4 leases and IPv6 addresses`,
    `${lab} lan1 -- busybox wget -qO- http://${WORLD_NAME}/`,
    `${lab} lan1 -- curl -6 -s http://${WORLD_NAME}/     # over IPv6`,
    `${lab} rtr -- limen ifdown wan0     # the live view shows the WAN going away`,
    `${lab} rtr -- limen ifup wan0       # answers once wan0 is configured again`,
  ];
}

const LIVE: readonly [DataspaceName, string][] = [
  ['config', '<dhcp-lease ?if ?lease>'],
  ['config', '<default-route ?family>'],
  ['config', '<delegated-prefix ?if ?prefix _ _>'],
  ['config', '<firewall-applied ?gen _>'],
  ['config', '<service-state ?service ?state>'],
  ['config', '<config-error ?path ?detail>'],
  ['config', '<current-failure ?failure>'],
  ['machine', '<dhcp-client ?if ?mac ?ip ?host _>'],
  ['machine', '<address ?if ?family ?addr ?len _>'],
  ['machine', '<route ?family "default" ?metric ?table ?if ?gw>'],
];

type ChangeEvent = Exclude<WatchEvent, { type: 'synced' }>;

/**
 * Follows a watch until `signal` aborts, calling `on` for each change with `already`
 * true for what was asserted before the watch began. Never rejects.
 */
async function follow(
  client: ControlClient,
  ds: DataspaceName,
  pattern: string,
  signal: AbortSignal,
  on: (e: ChangeEvent, already: boolean) => void,
): Promise<void> {
  let synced = false;
  await client
    .watch(ds, parse(pattern), {
      signal,
      onEvent: (v) => {
        const e = decodeWatchEvent(v);
        if (e === undefined) return;
        if (e.type === 'synced') synced = true;
        else on(e, !synced);
      },
    })
    .catch(() => undefined);
}

async function liveView(
  client: ControlClient,
  t0: number,
  out: (s: string) => void,
  signal: AbortSignal,
): Promise<void> {
  await Promise.all(
    LIVE.map(([ds, pattern]) =>
      follow(client, ds, pattern, signal, (e, already) => {
        if (already) return;
        const sign = e.type === 'added' ? '+' : e.type === 'removed' ? '-' : '!';
        out(`  ${String(Date.now() - t0).padStart(7)}  ${sign} ${stringify(e.value)}\n`);
      }),
    ),
  );
}

async function showLogs(
  lab: Lab,
  client: ControlClient | undefined,
  err: (s: string) => void,
): Promise<void> {
  err(`\n--- limen (${lab.routerLog}), last 30 lines ---\n${tail(lab.routerLog, 30)}\n`);
  if (client !== undefined) {
    const wanService = lab.wan === 'pppoe' ? '<daemon <pppd "wan0">>' : '<daemon <udhcpc "wan0">>';
    const dhcpv6 = `<daemon <dhcpcd "${lab.wan === 'pppoe' ? 'ppp-wan0' : 'wan0'}">>`;
    for (const service of [
      wanService,
      ...(lab.ipv6 ? [dhcpv6] : []),
      '<daemon <dnsmasq "lan0">>',
    ]) {
      try {
        const logs = await client.logs(parse(service), 15);
        err(`--- limen logs ${service} ---\n${stringify(logs)}\n`);
      } catch (e) {
        err(`--- limen logs ${service}: ${e instanceof Error ? e.message : String(e)}\n`);
      }
    }
  }
  const files: [LabNode, string][] = [
    ['isp', lab.wan === 'pppoe' ? 'pppoe-server.log' : 'dnsmasq.log'],
  ];
  // The ISP's DHCPv6 server, and over PPPoE what its pppd's ipv6-up did.
  if (lab.ipv6) files.push(['isp', 'kea.log']);
  if (lab.ipv6 && lab.wan === 'pppoe') files.push(['isp', 'ppp6.log']);
  files.push(['lan1', 'udhcpc.log']);
  for (const [node, file] of files) {
    err(`--- ${node}: ${file} ---\n${tail(join(lab.dir, node, file), 15)}\n`);
  }
}
