// The DHCPv4 client: what lease outputs mean (pure), the driver on published
// outputs (in-process), the real libexec/udhcpc-script fed hostile values, and
// real busybox udhcpc against a real dnsmasq in a pair of network namespaces,
// run by the real supervisor and the shipped config/core/network-dhcp.pr in a
// harness (harness-dhcp.ts) inside the client namespace: a lease bound,
// renewed (SIGUSR1), NAKed by a server whose range changed, released (the
// server gone, SIGUSR2), re-obtained, and dropped when carrier goes.

import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync, readdirSync, rmSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import {
  Dict,
  parse,
  record,
  stringify,
  strip,
  sym,
  type Value,
} from '../../../src/preserves/index.ts';
import type { Engine } from '../../../src/dataspace/index.ts';
import {
  Dataspace,
  P,
  match,
  type Facet,
  type Handle,
  type Pattern,
} from '../../../src/dataspace/index.ts';
import { OutputsDir } from '../../../src/supervisor/outputs-dir.ts';
import { interpretLease, startDhcpLeases } from '../../../src/net/dhcp-lease.ts';
import { describeProcs, killMarked, newMarker, processesWithEnv } from '../../support/processes.ts';
import { prng } from '../../support/random.ts';
import { prerequisites } from '../../support/prerequisites.ts';
import { until } from '../../support/until.ts';
import { RecordingLogger, checkedEngine, type LogLevel } from '../../support/engine-log.ts';

const repo = resolve(import.meta.dirname, '../../..');
const SCRIPT = join(repo, 'libexec/udhcpc-script');
const MARK = 'LIMEN_TEST_MARK';
const v = (text: string): Value => parse(text);
const show = (x: Value) => stringify(x);

function outputs(entries: { [key: string]: Value }): Map<string, Value> {
  return new Map(Object.entries(entries));
}

const goodLease = {
  ip: '100.64.0.12',
  prefix: '24',
  mask: '255.255.255.0',
  router: '100.64.0.1',
  dns: ['100.64.0.53', '100.64.0.54'] as Value,
  domain: 'example.test',
  lease: '120',
  serverid: '100.64.0.1',
  ntpsrv: ['100.64.0.123'] as Value,
  hostname: 'rtr',
  event: 'bound 1',
};

describe('interpreting lease outputs', () => {
  it('turns a complete lease into the desired state', () => {
    const r = interpretLease('wan0', outputs(goodLease));
    assert.deepEqual(r.problems, []);
    assert.deepEqual(
      r.assertions.map(show).sort(),
      [
        '<dhcp-lease "wan0" {dns: ["100.64.0.53" "100.64.0.54"] domains: ["example.test"] event: "bound 1" hostname: "rtr" ip: "100.64.0.12" lease: 120 ntp: ["100.64.0.123"] prefix: 24 router: "100.64.0.1" server: "100.64.0.1"}>',
        '<dns-search "example.test" <dhcp "wan0">>',
        '<dns-server "100.64.0.53" <dhcp "wan0">>',
        '<dns-server "100.64.0.54" <dhcp "wan0">>',
        '<ip-address "wan0" "100.64.0.12/24" {preferred: 120 renewed: "bound 1" valid: 120}>',
        '<ip-route ipv4 "default" {dev: "wan0" metric: 100 via: "100.64.0.1"}>',
        '<ntp-server "100.64.0.123" <dhcp "wan0">>',
      ]
        .map((t) => show(v(t)))
        .sort(),
    );
  });

  it('asserts nothing until the event output exists (the script writes it last)', () => {
    const { event: _, ...rest } = goodLease;
    const r = interpretLease('wan0', outputs(rest));
    assert.deepEqual(r.assertions, []);
    assert.deepEqual(r.problems, []);
  });

  it('takes the prefix from the mask when it is missing, and refuses a disagreement', () => {
    const { prefix: _, ...noPrefix } = goodLease;
    const r = interpretLease('wan0', outputs({ ...noPrefix, mask: '255.255.254.0' }));
    assert.equal(r.lease?.prefix, 23);
    const bad = interpretLease('wan0', outputs({ ...goodLease, mask: '255.255.0.0' }));
    assert.equal(bad.lease, undefined);
    assert.deepEqual(bad.problems, ['prefix 24 and mask 255.255.0.0 disagree']);
    assert.ok(bad.assertions.every((a) => show(a).startsWith('<dhcp-error "wan0"')));
  });

  it('gives an infinite lease no lifetimes', () => {
    const r = interpretLease('wan0', outputs({ ...goodLease, lease: '4294967295' }));
    const addr = r.assertions.find((a) => show(a).startsWith('<ip-address'))!;
    assert.equal(show(addr), '<ip-address "wan0" "100.64.0.12/24" {renewed: "bound 1"}>');
  });

  it('withdraws the whole lease, and says why, when the address, prefix or lease is bad', () => {
    const cases: [{ [k: string]: string }, RegExp][] = [
      [{ ip: '1.2.3.4"> <evil' }, /^ip: "1\.2\.3\.4\\"> <evil" is not an IPv4 address$/],
      [{ ip: '127.0.0.1' }, /^ip: "127\.0\.0\.1" is a loopback address$/],
      [{ ip: '224.0.0.1' }, /multicast/],
      [{ ip: '255.255.255.255' }, /broadcast/],
      [{ ip: '100.64.0.012' }, /not an IPv4 address/],
      [{ prefix: '33' }, /^prefix: "33" is not a prefix length from 1 to 32$/],
      [{ prefix: '0', mask: '0.0.0.0' }, /prefix: "0"/],
      [{ prefix: '24; rm -rf /' }, /prefix/],
      [{ lease: '-5' }, /^lease: "-5" is not a number of seconds/],
      [{ lease: '99999999999' }, /^lease:/],
      [{ lease: '0' }, /^lease:/],
    ];
    for (const [change, message] of cases) {
      const r = interpretLease('wan0', outputs({ ...goodLease, ...change }));
      assert.equal(r.lease, undefined, JSON.stringify(change));
      assert.ok(
        r.problems.some((p) => message.test(p)),
        `${JSON.stringify(change)}: ${JSON.stringify(r.problems)}`,
      );
      // Only the errors are asserted: no address, route, DNS, NTP or status.
      for (const a of r.assertions) assert.match(show(a), /^<dhcp-error "wan0" "/);
    }
  });

  it('keeps the lease but leaves out a bad router, DNS server, domain, NTP server or hostname', () => {
    const r = interpretLease(
      'wan0',
      outputs({
        ...goodLease,
        router: '100.64.0.1 100.64.0.2',
        dns: ['100.64.0.53', '8.8.8.8"] <evil>', '0.0.0.0', 5, '100.64.0.53'] as Value,
        domain: 'good.example bad\\domain',
        ntpsrv: v('<evil>'),
        hostname: 'a b',
        serverid: 'nope',
      }),
    );
    assert.ok(r.lease !== undefined);
    assert.equal(r.lease.router, undefined);
    assert.deepEqual(r.lease.dns, ['100.64.0.53']);
    assert.deepEqual(r.lease.domains, ['good.example']);
    assert.deepEqual(r.lease.ntp, []);
    assert.equal(r.lease.hostname, undefined);
    assert.equal(r.lease.server, undefined);
    const texts = r.assertions.map(show);
    assert.ok(!texts.some((t) => t.startsWith('<ip-route')));
    assert.ok(texts.some((t) => t.startsWith('<ip-address "wan0" "100.64.0.12/24"')));
    assert.equal(texts.filter((t) => t.startsWith('<dhcp-error')).length, r.problems.length);
    assert.deepEqual(r.problems, [
      'router: "100.64.0.1 100.64.0.2" is not an IPv4 address',
      'serverid: "nope" is not an IPv4 address',
      'dns: "8.8.8.8\\"] <evil>" is not an IPv4 address',
      'dns: "0.0.0.0" is in 0.0.0.0/8 ("this network")',
      'dns: expected an address (a string), got a number',
      'ntpsrv: expected a sequence of addresses, got a record',
      'domain: "bad\\\\domain" is not a domain name',
      'hostname: "a b" is not a host name',
    ]);
  });

  it('quotes hostile text in messages as printable ASCII', () => {
    const r = interpretLease('wan0', outputs({ ...goodLease, ip: '\u0007\n1.2.3.4\u00e9' }));
    assert.deepEqual(r.problems, ['ip: "??1.2.3.4?" is not an IPv4 address']);
  });
});

// ---- The driver, in-process --------------------------------------------------------------

function driverWorld(t: TestContext) {
  const { engine, log } = checkedEngine(t);
  const config = new Dataspace(engine, 'config');
  let client!: ReturnType<typeof startDhcpLeases>;
  engine.turn(() => (client = startDhcpLeases(engine.root, { config: config.ref })));
  t.after(() => engine.turn(() => engine.root.stop()));
  t.after(() => log.check());
  const service = (ifname: string) => record('daemon', record('udhcpc', ifname));
  const held = new Map<string, Handle>();
  const setOutput = (ifname: string, key: string, value: Value | undefined) => {
    engine.turn(() => {
      const k = `${ifname} ${key}`;
      const old = held.get(k);
      const h = engine.root.replace(
        old,
        config.ref,
        value === undefined ? undefined : record('output', service(ifname), sym(key), value),
      );
      if (h === undefined) held.delete(k);
      else held.set(k, h);
    });
  };
  const setLease = (ifname: string, lease: { [k: string]: Value }) => {
    for (const [k, x] of Object.entries(lease)) setOutput(ifname, k, x);
  };
  const query = (p: Pattern) => config.query(p).map((r) => show(r.value));
  const mine = (ifname: string) =>
    [...config.values()]
      .map(show)
      .filter((s) => s.includes(`"${ifname}"`) && !s.startsWith('<output'))
      .sort();
  return { engine, config, client, setOutput, setLease, query, mine };
}

describe('the DHCP driver', () => {
  it('installs a lease once complete, refreshes the address on renew without flapping the rest, and withdraws it all', async (t) => {
    const w = driverWorld(t);
    const { event: _, ...partial } = goodLease;
    w.setLease('wan0', partial);
    await w.engine.sync();
    assert.deepEqual(w.mine('wan0'), []);

    // Watch the route: a renew must not withdraw it, even for a moment.
    const routeEvents: string[] = [];
    w.engine.turn(() =>
      w.engine.root.observe(w.config.ref, P.rec('ip-route', P._, P._, P._), {
        onAdd: () => void routeEvents.push('+'),
        onRemove: () => void routeEvents.push('-'),
      }),
    );
    const addressEvents: string[] = [];
    w.engine.turn(() =>
      w.engine.root.observe(w.config.ref, P.rec('ip-address', P._, P._, P.bind('o')), {
        onAdd: (_v, c) => void addressEvents.push(`+${show(c.get('o')!)}`),
        onRemove: (_v, c) => void addressEvents.push(`-${show(c.get('o')!)}`),
      }),
    );

    w.setOutput('wan0', 'event', 'bound 1');
    await w.engine.sync();
    assert.equal(w.mine('wan0').length, 7);
    assert.equal(w.client.leases().get('wan0')?.address, '100.64.0.12');

    w.setOutput('wan0', 'event', 'renew 2');
    await w.engine.sync();
    assert.deepEqual(routeEvents, ['+']);
    // The renewed address is asserted before the old one goes: never absent.
    assert.deepEqual(addressEvents, [
      '+{preferred: 120 renewed: "bound 1" valid: 120}',
      '+{preferred: 120 renewed: "renew 2" valid: 120}',
      '-{preferred: 120 renewed: "bound 1" valid: 120}',
    ]);

    // A hostile router on renew: the route goes, the error is said, the address stays.
    w.setOutput('wan0', 'router', '100.64.0.1"> <ip-route ipv4 "default" {via: "6.6.6.6"}');
    await w.engine.sync();
    assert.deepEqual(w.query(P.rec('ip-route', P._, P._, P._)), []);
    assert.equal(w.query(P.rec('dhcp-error', 'wan0', P._)).length, 1);
    assert.equal(w.query(P.rec('ip-address', 'wan0', P._, P._)).length, 1);

    // deconfig removes `event` first: everything is withdrawn at once.
    w.setOutput('wan0', 'event', undefined);
    await w.engine.sync();
    assert.deepEqual(w.mine('wan0'), []);
    assert.equal(w.client.leases().size, 0);
  });

  it('keeps interfaces apart', async (t) => {
    const w = driverWorld(t);
    w.setLease('wan0', goodLease);
    w.setLease('wan1', { ...goodLease, ip: '198.51.100.7', router: '198.51.100.1', dns: [] });
    await w.engine.sync();
    assert.deepEqual(w.query(P.rec('ip-address', P.bind('i'), P._, P._)).length, 2);
    for (const k of Object.keys(goodLease)) w.setOutput('wan0', k, undefined);
    await w.engine.sync();
    assert.deepEqual(w.mine('wan0'), []);
    assert.deepEqual(w.query(P.rec('ip-address', P._, P._, P._)), [
      '<ip-address "wan1" "198.51.100.7/24" {preferred: 120 renewed: "bound 1" valid: 120}>',
    ]);
    assert.deepEqual(w.query(P.rec('dns-server', P._, P._)), []);
  });
});

// ---- The real script, fed hostile values -------------------------------------------------

/** Runs libexec/udhcpc-script like udhcpc does, with only these variables (and PATH). */
function runScript(dir: string, event: string, env: { [k: string]: string }) {
  const r = spawnSync(SCRIPT, [event], {
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', LIMEN_OUTPUTS: dir, ...env },
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, `${event}: ${r.stderr}`);
}

/** Mirrors an outputs directory into `<output SERVICE KEY VALUE>`, as the supervisor does. */
async function mirror(
  t: TestContext,
  engine: Engine,
  config: Dataspace,
  dir: string,
  service: Value,
) {
  const od = new OutputsDir(dir, { debounceMs: 1 });
  const handles = new Map<string, Handle>();
  let facet!: Facet;
  engine.turn(() => {
    facet = engine.root.spawn(() => {}, 'mirror');
  });
  od.onDidChange((c) =>
    facet.turn(() => {
      const old = handles.get(c.key);
      let value: Value | undefined;
      if (c.kind === 'set') value = c.isPreserves ? strip(parse(c.value)) : c.value;
      const h = facet.replace(
        old,
        config.ref,
        value === undefined ? undefined : record('output', service, sym(c.key), value),
      );
      if (h === undefined) handles.delete(c.key);
      else handles.set(c.key, h);
    }),
  );
  await od.open();
  t.after(() => od.dispose());
  return od;
}

describe('the udhcpc script', () => {
  async function scriptWorld(t: TestContext) {
    const dir = await mkdtemp(join(tmpdir(), 'limen-udhcpc-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const w = driverWorld(t);
    const od = await mirror(t, w.engine, w.config, dir, record('daemon', record('udhcpc', 'wan0')));
    const settle = async () => {
      await od.rescan();
      await w.engine.sync();
    };
    return { ...w, dir, settle };
  }

  const env = {
    interface: 'wan0',
    ip: '100.64.0.12',
    subnet: '255.255.255.0',
    mask: '24',
    router: '100.64.0.1',
    dns: '100.64.0.53 100.64.0.54',
    domain: 'example.test',
    lease: '120',
    serverid: '100.64.0.1',
    ntpsrv: '100.64.0.123',
    hostname: 'rtr',
  };

  it('writes the lease on bound and renew, with a changing event, and removes it on deconfig', async (t) => {
    const w = await scriptWorld(t);
    runScript(w.dir, 'bound', env);
    await w.settle();
    assert.deepEqual((await readdir(w.dir)).sort(), [
      '.count',
      'dns.pr',
      'domain',
      'event',
      'hostname',
      'ip',
      'lease',
      'mask',
      'ntpsrv.pr',
      'prefix',
      'router',
      'serverid',
    ]);
    assert.deepEqual(
      w.mine('wan0'),
      interpretLease('wan0', outputs(goodLease)).assertions.map(show).sort(),
    );
    runScript(w.dir, 'renew', { ...env, router: '' });
    await w.settle();
    assert.equal(readFileSync(join(w.dir, 'event'), 'utf8'), 'renew 2\n');
    assert.deepEqual(w.query(P.rec('ip-route', P._, P._, P._)), []);
    assert.equal(w.query(P.rec('ip-address', 'wan0', '100.64.0.12/24', P._)).length, 1);
    for (const event of ['deconfig', 'nak', 'leasefail']) {
      runScript(w.dir, 'bound', env);
      await w.settle();
      assert.equal(w.query(P.rec('ip-address', P._, P._, P._)).length, 1);
      runScript(w.dir, event, { interface: 'wan0' });
      await w.settle();
      assert.deepEqual(await readdir(w.dir), ['.count'], event);
      assert.deepEqual(w.mine('wan0'), [], event);
    }
  });

  it('leaves unchanged outputs alone on renew and replaces a changed one atomically', async (t) => {
    const w = await scriptWorld(t);
    runScript(w.dir, 'bound', env);
    const before = statSync(join(w.dir, 'ip')).ino;
    const router = statSync(join(w.dir, 'router')).ino;
    runScript(w.dir, 'renew', { ...env, router: '100.64.0.2' });
    assert.equal(statSync(join(w.dir, 'ip')).ino, before, 'ip was not rewritten');
    assert.notEqual(statSync(join(w.dir, 'router')).ino, router, 'router was renamed into place');
    assert.equal(readFileSync(join(w.dir, 'router'), 'utf8'), '100.64.0.2\n');
    assert.deepEqual(
      readdirSync(w.dir).filter((f) => f.endsWith('.tmp')),
      [],
      'no temporary file is left',
    );
  });

  it('computes the prefix from the netmask when udhcpc gives no $mask', async (t) => {
    const w = await scriptWorld(t);
    const { mask: _, ...noMask } = env;
    runScript(w.dir, 'bound', { ...noMask, subnet: '255.255.240.0' });
    await w.settle();
    assert.equal(readFileSync(join(w.dir, 'prefix'), 'utf8'), '20\n');
    assert.equal(w.query(P.rec('ip-address', 'wan0', '100.64.0.12/20', P._)).length, 1);
    runScript(w.dir, 'bound', { ...noMask, subnet: '255.0.255.0' });
    await w.settle();
    assert.equal(readdirSync(w.dir).includes('prefix'), false);
    assert.equal(w.query(P.rec('ip-address', 'wan0', '100.64.0.12/8', P._)).length, 0);
  });

  it('lets no hostile value inject anything: every .pr file is a sequence of plain strings', async (t) => {
    const w = await scriptWorld(t);
    runScript(w.dir, 'bound', {
      ...env,
      ip: '1.2.3.4"> <evil',
      dns: '1.1.1.1"] <ip-route ipv4 "default" {via: "6.6.6.6"}> ["x \\" \\\\ ]',
      ntpsrv: '\u0001\u001b[31m "\\"] # ; \u00e9\u00e9',
      domain: 'a\nb',
      router: '$(reboot)',
    });
    await w.settle();
    for (const f of ['dns.pr', 'ntpsrv.pr']) {
      const value = parse(readFileSync(join(w.dir, f), 'utf8'));
      assert.ok(Array.isArray(value), f);
      for (const item of value as Value[]) {
        assert.equal(typeof item, 'string', `${f}: ${show(item)}`);
        assert.match(item as string, /^[\x21-\x7e]+$/, f);
      }
    }
    assert.equal(readFileSync(join(w.dir, 'domain'), 'utf8'), 'ab\n');
    // The address is refused, so nothing but errors is asserted.
    const mine = w.mine('wan0');
    assert.ok(mine.length > 0);
    for (const s of mine) assert.match(s, /^<dhcp-error "wan0" "/);
    assert.deepEqual(w.query(P.rec('ip-route', P._, P._, P._)), []);
    assert.deepEqual(w.query(P.rec('dns-server', P._, P._)), []);
  });

  it('keeps every random hostile list a valid sequence of the words it was given', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'limen-udhcpc-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const alphabet = [
      'a',
      '1',
      '.',
      ' ',
      '"',
      '\\',
      ']',
      '[',
      '<',
      '>',
      '{',
      '#',
      ';',
      '\t',
      '\u0001',
      '\u007f',
      '\u00e9',
      '$',
      '`',
      '*',
      "'",
      '\n',
    ];
    const seed = 6;
    const next = prng(seed);
    const rand = (n: number) => Math.floor(next() * n);
    for (let i = 0; i < 25; i++) {
      let dns = '';
      for (let j = rand(20); j >= 0; j--) dns += alphabet[rand(alphabet.length)];
      runScript(dir, 'bound', { ...env, dns });
      const text = readFileSync(join(dir, 'dns.pr'), 'utf8');
      // Whitespace separates; anything else outside printable ASCII is dropped.
      const words = dns
        .replace(/[\t\n\r]/g, ' ')
        .replace(/[^\x20-\x7e]/g, '')
        .split(' ')
        .filter((x) => x !== '');
      assert.deepEqual(parse(text), words, `seed ${seed}: dns=${JSON.stringify(dns)} gave ${text}`);
    }
  });

  it('refuses to run without LIMEN_OUTPUTS', () => {
    const r = spawnSync(SCRIPT, ['bound'], {
      env: { PATH: process.env['PATH'] ?? '' },
      encoding: 'utf8',
    });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /LIMEN_OUTPUTS/);
  });
});

// ---- Real udhcpc against real dnsmasq, in network namespaces ------------------------------

const skip = prerequisites({
  netns: true,
  programs: ['busybox', 'dnsmasq'],
  check: () =>
    spawnSync('busybox', ['udhcpc', '--help']).status === null
      ? 'busybox has no udhcpc applet'
      : undefined,
});

interface Seen {
  readonly op: '+' | '-';
  readonly ds: string;
  readonly text: string;
  readonly value: Value;
}

/** harness-dhcp.ts running in the client namespace. */
class Harness {
  readonly child: ChildProcess;
  readonly history: Seen[] = [];
  readonly current = new Map<string, Value>();
  readonly exited: Promise<void>;
  /** The harness engine's log lines (it prints them on stderr as `LEVEL: message`). */
  readonly log = new RecordingLogger();
  stderr = '';
  constructor(ns: string, settings: object, env: NodeJS.ProcessEnv) {
    this.child = spawn(
      'ip',
      [
        'netns',
        'exec',
        ns,
        process.execPath,
        '--import',
        'tsx',
        join(repo, 'test/integration/net/harness-dhcp.ts'),
        JSON.stringify(settings),
      ],
      { cwd: repo, env, stdio: ['pipe', 'pipe', 'pipe'] },
    );
    this.child.stderr!.setEncoding('utf8').on('data', (s: string) => {
      this.stderr = (this.stderr + s).slice(-20000);
    });
    createInterface({ input: this.child.stderr! }).on('line', (line) => {
      const m = /^(error|warn|info): (.*)$/.exec(line);
      if (m !== null) this.log.record(m[1] as LogLevel, m[2]!);
    });
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      const o = JSON.parse(line) as { op: string; ds?: string; v?: string };
      if (o.op !== '+' && o.op !== '-') return;
      const value = parse(o.v!);
      const key = `${o.ds} ${o.v}`;
      this.history.push({ op: o.op, ds: o.ds!, text: o.v!, value });
      if (o.op === '+') this.current.set(key, value);
      else this.current.delete(key);
    });
    this.exited = new Promise((r) => this.child.once('exit', () => r()));
  }
  send(cmd: object): void {
    this.child.stdin!.write(`${JSON.stringify(cmd)}\n`);
  }
  assert(ds: 'config' | 'machine', text: string): void {
    this.send({ op: 'assert', ds, v: text });
  }
  retract(ds: 'config' | 'machine', text: string): void {
    this.send({ op: 'retract', ds, v: text });
  }
  /** Config assertions matching the pattern, with their captures. */
  find(p: Pattern): Map<string, Value>[] {
    const out: Map<string, Value>[] = [];
    for (const [key, value] of this.current)
      if (key.startsWith('config ')) {
        const m = match(p, value);
        if (m !== null) out.push(m);
      }
    return out;
  }
  describe(): string {
    const config = [...this.current.keys()].filter(
      (k) => k.startsWith('config ') && !k.includes('service-state'),
    );
    return `config now:\n  ${config.join('\n  ')}\nharness stderr (end):\n${this.stderr.slice(-3000)}`;
  }
  async waitFor<T>(
    what: string,
    probe: () => T | undefined | null | false,
    timeoutMs = 20000,
  ): Promise<T> {
    return until(probe, { timeoutMs, describe: () => `${what}\n${this.describe()}` });
  }
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.send({ op: 'stop' });
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 15000);
    await this.exited;
    clearTimeout(timer);
  }
}

function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8' });
}

describe('udhcpc against dnsmasq in network namespaces', { skip }, () => {
  const id = randomBytes(3).toString('hex');
  const serverNs = `lt-ds-${id}`;
  const clientNs = `lt-dc-${id}`;
  const serverIf = `lt${id}s`;
  const clientIf = `lt${id}c`;
  const marker = newMarker();
  const env = { ...process.env, [MARK]: marker };
  let dir = '';
  let harness!: Harness;
  let dnsmasq: ChildProcess | undefined;
  let clientMac = '';
  const resolvConf = () => join(dir, 'resolv.conf');

  async function startDnsmasq(range: string): Promise<void> {
    const leases = join(dir, `leases-${randomBytes(3).toString('hex')}`);
    const child = spawn(
      'ip',
      [
        'netns',
        'exec',
        serverNs,
        'dnsmasq',
        '--no-daemon',
        '--conf-file=/dev/null',
        `--interface=${serverIf}`,
        '--bind-interfaces',
        '--port=0',
        '--pid-file=',
        `--dhcp-leasefile=${leases}`,
        '--no-ping',
        '--dhcp-authoritative',
        `--dhcp-range=${range},255.255.255.0,2m`,
        '--dhcp-option=3,100.64.0.1',
        '--dhcp-option=6,100.64.0.53,100.64.0.54',
        '--dhcp-option=15,example.test',
        '--dhcp-option=42,100.64.0.123',
      ],
      { env, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let err = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
    await until(() => err.includes('DHCP, sockets bound') || child.exitCode !== null, {
      timeoutMs: 10000,
      describe: () => `dnsmasq to start: ${err}`,
    });
    assert.equal(child.exitCode, null, `dnsmasq exited: ${err}`);
    dnsmasq = child;
  }

  async function stopDnsmasq(): Promise<void> {
    const child = dnsmasq;
    dnsmasq = undefined;
    if (child === undefined || child.exitCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }

  /** The udhcpc process the supervisor runs for our interface. */
  function udhcpcPid(): number | undefined {
    for (const p of processesWithEnv(MARK, marker)) {
      let cmdline = '';
      try {
        cmdline = readFileSync(`/proc/${p.pid}/cmdline`, 'utf8');
      } catch {
        continue;
      }
      if (cmdline.includes('udhcpc\0') && cmdline.includes(`\0${clientIf}\0`)) return p.pid;
    }
    return undefined;
  }

  const lease = () =>
    harness.find(P.rec('dhcp-lease', clientIf, P.bind('status')))[0]?.get('status') as
      Dict | undefined;
  const addresses = () =>
    harness.find(P.rec('ip-address', clientIf, P.bind('addr'), P.bind('opts')));
  const field = (d: Value | undefined, k: string) =>
    d instanceof Dict ? d.get(sym(k)) : undefined;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'limen-dhcp-'));
    ip('netns', 'add', serverNs);
    ip('netns', 'add', clientNs);
    ip('link', 'add', serverIf, 'type', 'veth', 'peer', 'name', clientIf);
    ip('link', 'set', serverIf, 'netns', serverNs);
    ip('link', 'set', clientIf, 'netns', clientNs);
    ip('-n', serverNs, 'addr', 'add', '100.64.0.1/24', 'dev', serverIf);
    ip('-n', serverNs, 'link', 'set', serverIf, 'up');
    ip('-n', clientNs, 'link', 'set', clientIf, 'up');
    const links = JSON.parse(ip('-j', '-n', clientNs, 'link', 'show', clientIf)) as {
      address: string;
    }[];
    clientMac = links[0]!.address;
    await startDnsmasq('100.64.0.10,100.64.0.20');
    harness = new Harness(clientNs, { runDir: join(dir, 'run'), resolvConf: resolvConf() }, env);
  });

  after(async () => {
    await harness?.stop().catch(() => undefined);
    await stopDnsmasq().catch(() => undefined);
    const leaked = killMarked(MARK, marker);
    for (const ns of [serverNs, clientNs]) spawnSync('ip', ['netns', 'del', ns]);
    rmSync(dir, { recursive: true, force: true });
    assert.deepEqual(leaked, [], `processes left behind: ${describeProcs(leaked)}`);
    harness?.log.check();
  });

  let bound = '';
  it('gets a lease: address, default route, DNS, NTP and status, and resolv.conf', async () => {
    harness.assert('machine', `<interface "${clientIf}" 2 normal up up carrier "${clientMac}">`);
    harness.assert('config', `<configure-interface "${clientIf}" <dhcp>>`);
    const status = await harness.waitFor('a dhcp-lease', lease);
    const address = field(status, 'ip') as string;
    assert.match(address, /^100\.64\.0\.(1[0-9]|20)$/);
    bound = address;
    assert.equal(field(status, 'prefix'), 24);
    assert.equal(field(status, 'router'), '100.64.0.1');
    assert.equal(field(status, 'server'), '100.64.0.1');
    assert.equal(field(status, 'lease'), 120);
    const a = addresses();
    assert.equal(a.length, 1);
    assert.equal(a[0]!.get('addr'), `${address}/24`);
    assert.equal(show(a[0]!.get('opts')!), '{preferred: 120 renewed: "bound 1" valid: 120}');
    assert.equal(
      harness.find(
        P.rec(
          'ip-route',
          sym('ipv4'),
          'default',
          v(`{via: "100.64.0.1" dev: "${clientIf}" metric: 100}`),
        ),
      ).length,
      1,
    );
    const src = record('dhcp', clientIf);
    for (const d of ['100.64.0.53', '100.64.0.54'])
      assert.equal(harness.find(P.rec('dns-server', d, src)).length, 1, d);
    assert.equal(harness.find(P.rec('dns-search', 'example.test', src)).length, 1);
    assert.equal(harness.find(P.rec('ntp-server', '100.64.0.123', src)).length, 1);
    assert.deepEqual(harness.find(P.rec('dhcp-error', P._, P._)), []);
    const text = await harness.waitFor('resolv.conf with the lease', () => {
      try {
        const t = readFileSync(resolvConf(), 'utf8');
        return t.includes('nameserver 100.64.0.54') ? t : undefined;
      } catch {
        return undefined;
      }
    });
    assert.match(
      text,
      /^search example\.test\nnameserver 100\.64\.0\.53\nnameserver 100\.64\.0\.54\n$/m,
    );
    // Play the address driver, so that udhcpc can renew by unicast.
    ip('-n', clientNs, 'addr', 'add', `${address}/24`, 'dev', clientIf);
  });

  it('renews on SIGUSR1: the address is re-asserted with a new `renewed`, the route never goes', async () => {
    const pid = udhcpcPid();
    assert.ok(pid !== undefined, 'udhcpc is running');
    const mark = harness.history.length;
    process.kill(pid, 'SIGUSR1');
    // Both changes are made in one turn but arrive as separate lines: wait for both.
    await harness.waitFor('the renewed address, and the old one gone', () => {
      const opts = addresses().map((c) => show(c.get('opts')!));
      return opts.length === 1 && opts[0] === '{preferred: 120 renewed: "renew 2" valid: 120}';
    });
    const since = harness.history.slice(mark).filter((s) => s.ds === 'config');
    assert.ok(
      !since.some((s) => s.op === '-' && /^<ip-route|^<dns-server/.test(s.text)),
      'nothing else flapped',
    );
    const added = since.findIndex(
      (s) => s.op === '+' && s.text.startsWith('<ip-address') && s.text.includes('renew 2'),
    );
    const removed = since.findIndex(
      (s) => s.op === '-' && s.text.startsWith('<ip-address') && s.text.includes('bound 1'),
    );
    assert.ok(added >= 0 && removed > added, 'the renewed address came before the old one went');
    assert.equal(addresses().length, 1);
  });

  it('drops a lease the server NAKs, then gets a new one', async () => {
    await stopDnsmasq();
    await startDnsmasq('100.64.0.30,100.64.0.40');
    const mark = harness.history.length;
    process.kill(udhcpcPid()!, 'SIGUSR1');
    const status = await harness.waitFor('a new lease', () => {
      const s = lease();
      return s !== undefined && field(s, 'ip') !== bound ? s : undefined;
    });
    const address = field(status, 'ip') as string;
    assert.match(address, /^100\.64\.0\.(3[0-9]|40)$/);
    const since = harness.history.slice(mark).filter((s) => s.ds === 'config');
    const gone = since.findIndex(
      (s) => s.op === '-' && s.text.startsWith('<ip-address') && s.text.includes(`"${bound}/24"`),
    );
    const routeGone = since.findIndex((s) => s.op === '-' && s.text.startsWith('<ip-route'));
    const back = since.findIndex(
      (s) => s.op === '+' && s.text.startsWith('<ip-address') && s.text.includes(`"${address}/24"`),
    );
    assert.ok(gone >= 0 && routeGone >= 0, 'the NAKed lease was withdrawn');
    assert.ok(back > gone && back > routeGone, 'before the new one came');
    assert.equal(addresses().length, 1);
    ip('-n', clientNs, 'addr', 'flush', 'dev', clientIf);
    ip('-n', clientNs, 'addr', 'add', `${address}/24`, 'dev', clientIf);
    bound = address;
  });

  it('withdraws everything when the lease is released with the server gone', async () => {
    await stopDnsmasq();
    process.kill(udhcpcPid()!, 'SIGUSR2');
    await harness.waitFor(
      'the lease withdrawn',
      () =>
        lease() === undefined &&
        addresses().length === 0 &&
        harness.find(P.rec('ip-route', P._, P._, P._)).length === 0 &&
        harness.find(P.rec('dns-server', P._, P._)).length === 0 &&
        harness.find(P.rec('ntp-server', P._, P._)).length === 0 &&
        harness.find(P.rec('output', P._, sym('ip'), P._)).length === 0,
    );
    await harness.waitFor(
      'resolv.conf without nameservers',
      () => !readFileSync(resolvConf(), 'utf8').includes('nameserver'),
    );
    ip('-n', clientNs, 'addr', 'flush', 'dev', clientIf);
  });

  it('stops udhcpc and withdraws the lease when carrier goes', async () => {
    await startDnsmasq('100.64.0.10,100.64.0.20');
    process.kill(udhcpcPid()!, 'SIGUSR1'); // leave the released state
    await harness.waitFor('a lease again', lease);
    harness.retract('machine', `<interface "${clientIf}" 2 normal up up carrier "${clientMac}">`);
    harness.assert(
      'machine',
      `<interface "${clientIf}" 2 normal up lower-layer-down no-carrier "${clientMac}">`,
    );
    await harness.waitFor(
      'udhcpc stopped and its lease withdrawn',
      () =>
        udhcpcPid() === undefined &&
        lease() === undefined &&
        addresses().length === 0 &&
        harness.find(P.rec('output', P._, P._, P._)).length === 0 &&
        harness.find(P.rec('run-service', P._)).length === 0,
    );
  });
});
