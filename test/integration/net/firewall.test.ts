// The firewall driver against real nftables, inside namespaces made for the
// test: the ruleset is checked and applied as one table, re-applied when a
// zone's members change (a burst is one apply), other tables are never
// touched, a refused ruleset keeps the previous one; stopping keeps the table,
// the next start replaces it in one transaction, retracting every zone removes
// it, and a table left by an earlier run with no zone configured now is removed
// once the configuration has settled; masquerade and port forwarding carry
// real traffic between a LAN client, the router and a "world" host; and over
// IPv6 (no NAT66) the world reaches a LAN host only where <ipv6-allow> lets it,
// across renumbering, packet-too-big comes back, and echo requests are limited.

import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { Dataspace, Engine, P, type Handle, type Logger } from '../../../src/dataspace/index.ts';
import type { Dict } from '../../../src/preserves/index.ts';
import { parse, parseAll, peel, sym } from '../../../src/preserves/index.ts';
import { startFirewall, type Firewall, type FirewallOptions } from '../../../src/net/firewall.ts';
import { NftRunner } from '../../../src/net/nft-command.ts';
import { readFirewall, renderRemoval, renderRuleset } from '../../../src/net/nft-ruleset.ts';
import { until } from '../../support/until.ts';
import {
  inNs,
  netns,
  peerAddressServer,
  run,
  skipReason,
  spawnInNs,
  suffix,
  tcpAsk,
  tryInNs,
  veth,
} from './harness-lan-netns.ts';

const skip = skipReason(['nft', 'ip']);

interface Harness {
  readonly engine: Engine;
  readonly config: Dataspace;
  readonly fw: Firewall;
  /** What the driver logged, as "level: message". */
  readonly logged: string[];
  assert(text: string): Handle;
  retract(h: Handle): void;
  /** The revision of `<firewall-applied REV _>`, if asserted. */
  revision(): number | undefined;
  hash(): string | undefined;
  errors(): string[];
  warnings(): string[];
  waitGeneration(gen: number): Promise<void>;
  table(): string;
  tables(): string;
  /** Stops the driver (as a daemon shutdown does) and waits until it has finished. */
  stop(): Promise<void>;
}

function harness(
  t: TestContext,
  ns: string,
  options: Pick<FirewallOptions, 'settled' | 'leftoverGraceMs'> = {},
): Harness {
  const logged: string[] = [];
  const logTo = (level: string) => (m: string) => void logged.push(`${level}: ${m}`);
  const logger: Logger = { error: logTo('error'), warn: logTo('warn'), info: logTo('info') };
  const engine = new Engine({ logger });
  const config = new Dataspace(engine, 'config');
  let fw!: Firewall;
  engine.turn(() => {
    fw = startFirewall(engine.root, {
      config: config.ref,
      commandPrefix: ['ip', 'netns', 'exec', ns],
      ...options,
    });
  });
  t.after(async () => {
    engine.turn(() => engine.root.stop());
    await until(fw.closed, { timeoutMs: 15_000, describe: () => 'the firewall to close' });
    // A failed turn or driver error is logged, never thrown: it must not pass unseen.
    assert.deepEqual(
      logged.filter((l) => l.startsWith('error: ')),
      [],
      'unexpected engine errors',
    );
  });
  const applied = () => config.query(P.rec('firewall-applied', P.bind('gen'), P.bind('info')));
  const labelled = (label: string) =>
    config.query(P.rec(label, P.bind('m'))).map((r) => peel(r.captures.get('m')!) as string);
  const h: Harness = {
    engine,
    config,
    fw,
    logged,
    assert(text) {
      let handle!: Handle;
      engine.turn(() => (handle = engine.root.assert(config.ref, parse(text))));
      return handle;
    },
    retract(handle) {
      engine.turn(() => engine.root.retract(handle));
    },
    revision() {
      const a = applied();
      assert.ok(a.length <= 1, 'at most one firewall-applied');
      return a.length === 0 ? undefined : (a[0]!.captures.get('gen') as number);
    },
    hash() {
      const a = applied();
      if (a.length === 0) return undefined;
      return (a[0]!.captures.get('info') as Dict).get(sym('hash')) as string;
    },
    errors: () => labelled('firewall-error'),
    warnings: () => labelled('firewall-warning'),
    async waitGeneration(gen) {
      await until(() => h.revision() === gen, {
        timeoutMs: 10_000,
        describe: () =>
          `firewall-applied ${gen}; have ${String(h.revision())}, errors ${JSON.stringify(h.errors())}`,
      });
    },
    table: () => inNs(ns, ['nft', 'list', 'table', 'inet', 'limen']),
    tables: () => inNs(ns, ['nft', 'list', 'tables']),
    async stop() {
      engine.turn(() => fw.stop());
      await until(fw.closed, { timeoutMs: 10_000, describe: () => 'the firewall to close' });
    },
  };
  return h;
}

const baseConfig = [
  '<firewall-zone lan ["lan0"]>',
  '<firewall-zone wan ["wan0"]>',
  '<masquerade lan wan>',
  '<port-forward wan tcp 8080 "192.168.50.10" 80>',
  '<firewall-open wan tcp 22>',
];

describe('firewall (nftables)', { skip }, () => {
  it('generates rulesets that nft accepts for every construct', async (t) => {
    const ns = netns(t, `lt-fw-${suffix()}`);
    const r = readFirewall(
      parseAll(`
        <firewall-zone lan ["lan0" "wlan0"]>
        <firewall-zone wan ["wan0" "ppp*"]>
        <firewall-zone guest ["guest0"]>
        <firewall-zone dmz ["dmz0"]>
        <firewall-zone empty []>
        <firewall-policy guest reject>
        <firewall-policy dmz accept>
        <masquerade lan wan>
        <masquerade guest wan>
        <firewall-forward lan dmz>
        <port-forward wan tcp 2222 "192.168.1.10" 22>
        <port-forward wan udp 51820 "192.168.1.11" 51820>
        <ipv6-allow wan tcp 22 "::211:22ff:fe33:4455">
        <ipv6-allow dmz udp 5000 "::ffff:10.0.0.1">
        <firewall-open wan tcp 22>
        <firewall-open guest udp 53>
        <firewall-rule input "tcp dport { 80, 443 } ip saddr 10.0.0.0/8 accept">
        <firewall-rule forward "iifname \\"wg0\\" accept">
        <firewall-rule prerouting "iifname \\"wan0\\" udp dport 5000 redirect to :5001">
        <firewall-rule postrouting "oifname \\"wan0\\" ip saddr 10.9.0.0/16 snat ip to 198.51.100.9">
      `),
    );
    assert.ok(r.ok, r.ok ? '' : r.problems.map((p) => p.message).join('; '));
    const runner = new NftRunner({ commandPrefix: ['ip', 'netns', 'exec', ns] });
    const signal = new AbortController().signal;
    await runner.check(renderRuleset(r.model), signal);
    await runner.apply(renderRuleset(r.model), signal);
    await runner.apply(renderRuleset(r.model), signal); // replacing works too
    await runner.apply(renderRemoval(), signal);
    await runner.apply(renderRemoval(), signal); // and removing what is not there
    assert.doesNotMatch(inNs(ns, ['nft', 'list', 'tables']), /limen/);
    await assert.rejects(
      runner.check('table inet limen { chain x {\n tcp dport 99999 accept\n}\n}\n', signal),
      {
        code: 'LIMEN_NFT_CHECK',
        message: /out of range/,
      },
    );
  });

  it('applies one table, re-applies a burst of member changes once, never touches other tables, and keeps the table when stopped', async (t) => {
    const ns = netns(t, `lt-fw-${suffix()}`);
    // Foreign tables, including one whose name starts like ours.
    inNs(ns, ['nft', 'add', 'table', 'inet', 'foreign']);
    inNs(ns, [
      'nft',
      'add chain inet foreign c { type filter hook input priority 10; policy accept; }',
    ]);
    inNs(ns, ['nft', 'add', 'table', 'ip', 'limen-other']);
    const h = harness(t, ns);
    assert.equal(h.revision(), undefined);
    for (const c of baseConfig) h.assert(c);
    await h.waitGeneration(1);
    const first = h.table();
    assert.match(first, /iifname "lan0" jump input_lan/);
    assert.match(first, /dnat ip to 192\.168\.50\.10:80/, 'the port forward rule exists');
    assert.match(first, /ip daddr 192\.168\.50\.10 tcp dport 80 ct status dnat accept/);
    assert.match(first, /iifname "lan0" oifname "wan0" masquerade/);
    assert.match(first, /tcp dport 22 accept/);
    assert.equal(h.hash(), h.fw.current()?.hash);
    assert.match(h.tables(), /table inet foreign/);

    // A burst of membership changes (all before the debounce fires): one apply.
    const started = performance.now();
    const extra: Handle[] = [];
    for (let i = 0; i < 20; i++) extra.push(h.assert(`<firewall-zone wan ["ppp${i}"]>`));
    h.assert('<firewall-zone lan ["lan1"]>');
    await h.waitGeneration(2);
    t.diagnostic(
      `burst of 21 member changes applied in ${(performance.now() - started).toFixed(1)} ms`,
    );
    const second = h.table();
    assert.match(second, /"ppp19"/);
    assert.match(second, /iifname \{ "lan0", "lan1" \} jump input_lan/);
    // Forwarded SYNs have their MSS clamped to the route's MTU (a PPPoE WAN's 1492).
    assert.match(second, /tcp flags syn \/ syn,rst tcp option maxseg size set rt mtu/);
    const tables = h.tables();
    assert.match(tables, /table inet foreign/);
    assert.match(tables, /table ip limen-other/);
    assert.match(inNs(ns, ['nft', 'list', 'table', 'inet', 'foreign']), /priority filter \+ 10/);

    // One member leaving is one more apply, within milliseconds.
    const t0 = performance.now();
    h.retract(extra[19]!);
    await h.waitGeneration(3);
    t.diagnostic(`one member change applied in ${(performance.now() - t0).toFixed(1)} ms`);
    assert.doesNotMatch(h.table(), /"ppp19"/);

    // Stopping (a daemon shutdown) leaves limen's table exactly as it is, and the rest.
    const installed = h.table();
    await h.stop();
    assert.equal(h.table(), installed, 'the router stays protected while limen is down');
    const after = h.tables();
    assert.match(after, /table inet foreign/);
    assert.match(after, /table ip limen-other/);
    assert.ok(h.logged.some((l) => /table inet limen stays until the next start/.test(l)));
  });

  it('replaces the table of a previous run in one transaction on the next start, and removes it when every zone goes', async (t) => {
    const ns = netns(t, `lt-fw-${suffix()}`);
    inNs(ns, ['nft', 'add', 'table', 'inet', 'foreign']);
    const earlier = harness(t, ns);
    for (const c of baseConfig) earlier.assert(c);
    await earlier.waitGeneration(1);
    await earlier.stop();
    assert.match(earlier.table(), /tcp dport 22 accept/, 'kept across the stop');

    // Watch every ruleset transaction from here on; a probe table proves the monitor listens.
    const monitor = spawnInNs(t, ns, ['nft', 'monitor']);
    await until(
      () => {
        tryInNs(ns, ['nft', 'add', 'table', 'inet', 'probe']);
        tryInNs(ns, ['nft', 'delete', 'table', 'inet', 'probe']);
        return monitor.stdout.includes('delete table inet probe');
      },
      { intervalMs: 50, describe: () => `nft monitor to listen; it said ${monitor.stdout}` },
    );

    // A new driver (the daemon restarted), with one more open port.
    const h = harness(t, ns);
    const zones = [h.assert(baseConfig[0]!), h.assert(baseConfig[1]!)];
    for (const c of baseConfig.slice(2)) h.assert(c);
    h.assert('<firewall-open wan tcp 443>');
    await h.waitGeneration(1);
    const table = h.table();
    const count = (re: RegExp) => table.match(new RegExp(re, 'g'))?.length ?? 0;
    assert.equal(count(/tcp dport 443 accept/), 1, table);
    assert.equal(count(/tcp dport 22 accept/), 1, `no rule twice:\n${table}`);
    assert.equal(count(/iifname "lan0" jump input_lan/), 1, table);
    assert.equal(count(/masquerade/), 1, table);
    assert.equal(h.tables().match(/table inet limen\b/g)?.length, 1, h.tables());
    assert.match(h.tables(), /table inet foreign/);

    // In the monitor: the old table was deleted in the very transaction that added the
    // new one, after the delete; no transaction ever left the kernel without it.
    await until(() => /add rule inet limen .*dport 443/.test(monitor.stdout), {
      describe: () => `the new rules in the monitor; it said ${monitor.stdout}`,
    });
    const transactions = monitor.stdout
      .split(/^# new generation .*$/m)
      .map((tx) => tx.split('\n').filter((l) => l.trim() !== ''));
    const deleting = transactions.filter((tx) => tx.includes('delete table inet limen'));
    assert.ok(deleting.length >= 1, monitor.stdout);
    for (const tx of deleting) {
      const deleted = tx.lastIndexOf('delete table inet limen');
      assert.ok(
        tx.slice(deleted).some((l) => l.startsWith('add chain inet limen input')),
        `a transaction deleted table inet limen without re-creating it:\n${tx.join('\n')}`,
      );
    }

    // The last zone retracted while running: the table goes, the foreign one stays.
    for (const z of zones) h.retract(z);
    await until(() => h.revision() === undefined && !/table inet limen\b/.test(h.tables()), {
      describe: () => `table inet limen removed; tables ${h.tables()}`,
    });
    assert.match(h.tables(), /table inet foreign/);
  });

  it('removes a table left by an earlier run once the configuration has settled without a zone', async (t) => {
    const ns = netns(t, `lt-fw-${suffix()}`);
    inNs(ns, ['nft', 'add', 'table', 'inet', 'foreign']);
    const earlier = harness(t, ns);
    for (const c of baseConfig) earlier.assert(c);
    await earlier.waitGeneration(1);
    await earlier.stop();
    const leftover = earlier.table();

    let settle!: () => void;
    const h = harness(t, ns, { settled: new Promise((r) => (settle = r)) });
    // While the configuration loads, firewall assertions without a zone come and go:
    // the leftover stays (a zone may still be on its way).
    const noZone = h.assert('<firewall-open wan tcp 22>');
    await until(() => h.warnings().length > 0, { describe: () => 'a warning: no zone wan' });
    h.retract(noZone);
    await until(() => h.warnings().length === 0, { describe: () => 'the warning retracted' });
    await h.fw.whenIdle();
    assert.equal(h.table(), leftover, 'kept until the configuration has settled');

    settle();
    await until(() => !/table inet limen\b/.test(h.tables()), {
      describe: () => `the leftover removed; tables ${h.tables()}, logged ${h.logged.join('; ')}`,
    });
    await h.fw.whenIdle();
    assert.match(h.tables(), /table inet foreign/);
    assert.equal(h.revision(), undefined);
    assert.deepEqual(h.errors(), []);
    assert.ok(
      h.logged.some((l) =>
        /^info: firewall: firewall removed: the table left by an earlier run/.test(l),
      ),
      h.logged.join('\n'),
    );

    // Without a settled signal, the grace period stands in for it; with nothing left
    // over, nothing is done.
    const again = harness(t, ns);
    for (const c of baseConfig) again.assert(c);
    await again.waitGeneration(1);
    await again.stop();
    const graced = harness(t, ns, { leftoverGraceMs: 50 });
    await until(() => !/table inet limen\b/.test(graced.tables()), {
      describe: () => `the leftover removed after the grace; tables ${graced.tables()}`,
    });
    const clean = harness(t, ns, { settled: Promise.resolve() });
    await new Promise((r) => setImmediate(r)); // the settled callback has run: a look is due
    await clean.fw.whenIdle();
    assert.deepEqual(clean.logged, [], 'no table, nothing to do or say');
    assert.doesNotMatch(clean.tables(), /table inet limen\b/);
  });

  it('keeps the previous ruleset and publishes firewall-error when a ruleset is refused', async (t) => {
    const ns = netns(t, `lt-fw-${suffix()}`);
    const h = harness(t, ns);
    const base = baseConfig.map((c) => h.assert(c));
    await h.waitGeneration(1);
    const good = h.table();

    // nft refuses it (a port out of range inside a custom rule): nft's message is published.
    const bad = h.assert('<firewall-rule input "tcp dport 99999 accept">');
    await until(() => h.errors().some((e) => /out of range/.test(e)), {
      describe: () => `a firewall-error from nft; errors ${JSON.stringify(h.errors())}`,
    });
    assert.equal(h.revision(), 1);
    assert.equal(h.table(), good, 'the previous ruleset stays');
    h.retract(bad);
    await until(() => h.errors().length === 0, {
      describe: () => `errors cleared; errors ${JSON.stringify(h.errors())}`,
    });
    assert.equal(h.revision(), 1, 'the same ruleset as before: nothing to apply');

    // Refused by validation, every problem reported.
    const invalid = [
      h.assert('<port-forward wan tcp 70000 "192.168.50.300" 80>'),
      h.assert('<firewall-zone dmz ["wan0"]>'),
      h.assert('<firewall-rule input "accept } table ip evil { chain x { accept }">'),
    ];
    await until(() => h.errors().length >= 4, {
      describe: () => `four errors; errors ${JSON.stringify(h.errors(), null, 1)}`,
    });
    const errors = h.errors().join('\n');
    assert.match(errors, /outside PORT must be an integer from 1 to 65535, got 70000/);
    assert.match(errors, /ADDR must be an IPv4 address/);
    assert.match(errors, /interface wan0 is in two zones, dmz and wan/);
    assert.match(errors, /unbalanced braces/);
    assert.equal(h.table(), good);
    for (const x of invalid) h.retract(x);
    await until(() => h.errors().length === 0, { describe: () => JSON.stringify(h.errors()) });

    // A rule naming an undefined zone is a warning, and the rest applies.
    const typo = h.assert('<masquerade lan wna>');
    await until(() => h.warnings().some((w) => /zone wna is not defined/.test(w)), {
      describe: () => `a warning; warnings ${JSON.stringify(h.warnings())}`,
    });
    h.retract(typo);

    // Without any zone, limen's table goes away and firewall-applied with it.
    h.retract(base[0]!);
    h.retract(base[1]!);
    await until(() => h.revision() === undefined, {
      describe: () => `no firewall-applied; errors ${JSON.stringify(h.errors())}`,
    });
    assert.doesNotMatch(h.tables(), /table inet limen/);
    assert.ok(h.warnings().length > 0, 'the remaining rules name undefined zones');
  });

  it('masquerades a LAN client towards the world and forwards a port to it', async (t) => {
    const id = suffix();
    const client = netns(t, `lt-c-${id}`);
    const router = netns(t, `lt-r-${id}`);
    const world = netns(t, `lt-w-${id}`);
    veth(
      { ns: client, name: 'eth0', address: '192.168.60.2/24' },
      { ns: router, name: 'lan0', address: '192.168.60.1/24' },
    );
    veth(
      { ns: router, name: 'wan0', address: '198.51.100.1/24' },
      { ns: world, name: 'eth0', address: '198.51.100.2/24' },
    );
    run(['ip', '-n', client, 'route', 'add', 'default', 'via', '192.168.60.1']);
    inNs(router, ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
    // The world has no route back to 192.168.60.0/24: only masquerade makes replies return.
    const ping = () =>
      tryInNs(client, ['busybox', 'ping', '-c', '1', '-W', '1', '198.51.100.2']).status;
    assert.notEqual(ping(), 0, 'without masquerade the world cannot answer');

    const h = harness(t, router);
    h.assert('<firewall-zone lan ["lan0"]>');
    h.assert('<firewall-zone wan ["wan0"]>');
    h.assert('<masquerade lan wan>');
    h.assert('<port-forward wan tcp 8080 "192.168.60.2" 8000>');
    await h.waitGeneration(1);

    assert.equal(ping(), 0, 'ping through the router');
    const worldServer = peerAddressServer(t, world, '198.51.100.2', 7000);
    await worldServer.waitFor('listening');
    assert.equal(tcpAsk(client, '198.51.100.2', 7000), '198.51.100.1', 'the world sees the router');

    const lanServer = peerAddressServer(t, client, '192.168.60.2', 8000);
    await lanServer.waitFor('listening');
    assert.equal(
      tcpAsk(world, '198.51.100.1', 8080),
      '198.51.100.2',
      'the port forward reaches the LAN host, which sees the real peer',
    );
    // The router's own ports stay closed to the world (dropped: no answer at all).
    assert.equal(tcpAsk(world, '198.51.100.1', 9, 1000), 'timeout');
    assert.match(tcpAsk(client, '192.168.60.1', 9, 1000), /error ECONNREFUSED/);
  });
});

// An IPv6 site, documentation prefixes only: a LAN host (interface identifier
// IID) behind the router, the world on the router's WAN link, and a far host
// behind the world over a link whose MTU (1280) is smaller than the rest (1500),
// so that the world must send packet-too-big to whoever sends it large packets.
const IID = '::211:22ff:fe33:4455';
const LAN_A = '2001:db8:1:1';
const LAN_B = '2001:db8:2:2';
const HOST_A = `${LAN_A}:211:22ff:fe33:4455`;
const HOST_B = `${LAN_B}:211:22ff:fe33:4455`;
const ROUTER_WAN = '2001:db8:ffff:1::1';
const WORLD = '2001:db8:ffff:1::2';
const FAR = '2001:db8:ffff:2::2';

interface Ipv6Site {
  readonly host: string;
  readonly router: string;
  readonly world: string;
  readonly far: string;
}

function ipv6Site(t: TestContext): Ipv6Site {
  const id = suffix();
  const site = {
    host: netns(t, `lt-h-${id}`),
    router: netns(t, `lt-r-${id}`),
    world: netns(t, `lt-w-${id}`),
    far: netns(t, `lt-f-${id}`),
  };
  // Addresses usable at once (no duplicate address detection): nothing waits for them.
  for (const ns of Object.values(site))
    inNs(ns, ['sysctl', '-q', '-w', 'net.ipv6.conf.default.accept_dad=0']);
  const { host, router, world, far } = site;
  veth(
    { ns: host, name: 'eth0', address: `${HOST_A}/64` },
    { ns: router, name: 'lan0', address: `${LAN_A}::1/64` },
  );
  veth(
    { ns: router, name: 'wan0', address: `${ROUTER_WAN}/64` },
    { ns: world, name: 'eth0', address: `${WORLD}/64` },
  );
  veth(
    { ns: world, name: 'eth1', address: '2001:db8:ffff:2::1/64' },
    { ns: far, name: 'eth0', address: `${FAR}/64` },
  );
  run(['ip', '-n', world, 'link', 'set', 'eth1', 'mtu', '1280']);
  for (const [ns, via] of [
    [host, `${LAN_A}::1`],
    [router, WORLD],
    [world, ROUTER_WAN],
    [far, '2001:db8:ffff:2::1'],
  ] as const)
    run(['ip', '-n', ns, '-6', 'route', 'add', 'default', 'via', via]);
  for (const ns of [router, world])
    inNs(ns, ['sysctl', '-q', '-w', 'net.ipv6.conf.all.forwarding=1']);
  return site;
}

const ipv6Zones = [
  '<firewall-zone lan ["lan0"]>',
  '<firewall-zone wan ["wan0"]>',
  '<masquerade lan wan>',
];

/** How many of `count` echo requests, sent 100 a second, were answered. */
function echoReplies(ns: string, address: string, count: number): number {
  const r = tryInNs(ns, [
    'ping',
    '-6',
    '-n',
    '-q',
    '-i',
    '0.01',
    '-W',
    '1',
    '-c',
    `${count}`,
    address,
  ]);
  const received = / (\d+) received/.exec(r.stdout)?.[1];
  assert.ok(received !== undefined, `ping's summary: ${r.stdout} ${r.stderr}`);
  return Number(received);
}

describe(
  'firewall (nftables): IPv6 without NAT66',
  { skip: skipReason(['nft', 'ip', 'ping']) },
  () => {
    it('lets the world reach a LAN host only through <ipv6-allow>, on any prefix, and lets packet-too-big back', async (t) => {
      const { host, router, world, far } = ipv6Site(t);
      // A second LAN host, as far as the firewall can tell; deprecated, so that the host
      // never picks it as the source of its own connections.
      const other = `${LAN_A}::99`;
      run(['ip', '-n', host, 'addr', 'add', `${other}/64`, 'dev', 'eth0', 'preferred_lft', '0']);
      const lanServer = peerAddressServer(t, host, '::', 8022);
      await lanServer.waitFor('listening');
      // Without a firewall the world reaches both hosts, so a timeout below is the firewall.
      assert.equal(tcpAsk(world, HOST_A, 8022), WORLD, 'routed, and the host sees the real peer');
      assert.equal(tcpAsk(world, other, 8022), WORLD);
      assert.equal(tcpAsk(world, HOST_A, 8023), 'error ECONNREFUSED');

      const h = harness(t, router);
      for (const c of ipv6Zones) h.assert(c);
      await h.waitGeneration(1);
      assert.equal(tcpAsk(world, HOST_A, 8022, 1000), 'timeout', 'dropped: no answer at all');

      // What the LAN host opens gets its replies, from its own address (no NAT66).
      const worldServer = peerAddressServer(t, world, '::', 7000);
      await worldServer.waitFor('listening');
      assert.equal(tcpAsk(host, WORLD, 7000), HOST_A);

      // An upload to the far host needs packets of at most 1280 bytes beyond the world,
      // which only the world's packet-too-big can tell the LAN host (both ends said MSS
      // 1440): the transfer completes, and the host has learnt the path's MTU.
      const farServer = peerAddressServer(t, far, '::', 7001, { countBytes: true });
      await farServer.waitFor('listening');
      assert.doesNotMatch(inNs(host, ['ip', '-6', 'route', 'get', FAR]), /\bmtu\b/);
      assert.equal(
        tcpAsk(host, FAR, 7001, 5000, 200_000),
        `${HOST_A} 200000`,
        'the upload completes: packet-too-big reached the LAN host',
      );
      assert.match(inNs(host, ['ip', '-6', 'route', 'get', FAR]), /\bmtu 1280\b/);

      // The allow opens that port of the host with that identifier, and nothing else.
      h.assert(`<ipv6-allow wan tcp 8022 "${IID}">`);
      await h.waitGeneration(2);
      assert.deepEqual(h.warnings(), []);
      assert.equal(tcpAsk(world, HOST_A, 8022), WORLD);
      assert.equal(tcpAsk(world, HOST_A, 8023, 1000), 'timeout', 'another port');
      assert.equal(tcpAsk(world, other, 8022, 1000), 'timeout', 'another host');

      // Renumbered: the LAN gets a new prefix, the host keeps its identifier. The same
      // ruleset, not re-applied, lets the world in to the new address.
      run(['ip', '-n', router, 'addr', 'add', `${LAN_B}::1/64`, 'dev', 'lan0']);
      run(['ip', '-n', router, 'addr', 'del', `${LAN_A}::1/64`, 'dev', 'lan0']);
      run(['ip', '-n', host, 'addr', 'flush', 'dev', 'eth0', 'scope', 'global']);
      run(['ip', '-n', host, 'addr', 'add', `${HOST_B}/64`, 'dev', 'eth0']);
      run(['ip', '-n', host, '-6', 'route', 'replace', 'default', 'via', `${LAN_B}::1`]);
      assert.equal(tcpAsk(world, HOST_B, 8022), WORLD);
      assert.equal(tcpAsk(world, HOST_B, 8023, 1000), 'timeout');
      assert.equal(h.revision(), 2);
    });

    it('answers echo requests from the world, to the router and through it, up to the rate limit', async (t) => {
      const { host, router, world } = ipv6Site(t);
      const h = harness(t, router);
      for (const c of ipv6Zones) h.assert(c);
      await h.waitGeneration(1);
      // 50 requests in half a second against 20 at once and 10 a second: about 25 answered.
      for (const [what, address] of [
        ['through the router, to the LAN host', HOST_A],
        ['to the router', ROUTER_WAN],
      ] as const) {
        const replies = echoReplies(world, address, 50);
        t.diagnostic(`${what}: ${replies} of 50 echo requests answered`);
        assert.ok(replies > 0 && replies < 50, `${what}: ${replies} of 50 answered`);
      }
      // The LAN's own pings to the world are not limited (and their replies are established).
      assert.equal(echoReplies(host, WORLD, 50), 50);
    });
  },
);
