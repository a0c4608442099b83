// The LAN driver with the real supervisor and a real dnsmasq in a router
// namespace, and real udhcpc clients in two client namespaces behind a bridge:
// leases appear as <dhcp-client …> in $machine, a static lease is honoured, a
// change of upstream DNS servers reaches dnsmasq without a restart (same PID,
// leases kept, answers from the new upstream), a configuration change restarts
// dnsmasq with its leases, and problems are published as <lan-dhcp-error …>.

import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Dataspace, Engine, P, type Handle } from '../../../src/dataspace/index.ts';
import { is, parse, peel, stringify, type Record } from '../../../src/preserves/index.ts';
import { startSupervisor, type Supervisor } from '../../../src/supervisor/supervisor.ts';
import { startServiceManager } from '../../../src/supervisor/service-manager.ts';
import { dnsmasqService, startLanDhcp } from '../../../src/net/lan-dhcp.ts';
import { describeProcs, killMarked, newMarker } from '../../support/processes.ts';
import { until } from '../../support/until.ts';
import { RecordingLogger } from '../../support/engine-log.ts';
import { netns, run, skipReason, spawnInNs, suffix, veth } from './harness-lan-netns.ts';

const skip = skipReason(['dnsmasq', 'busybox', 'ip']);
const MARK = 'LIMEN_TEST_LAN';
const service = dnsmasqService('lan0');

/** Runs argv in ns without blocking the event loop (the engine keeps running). */
function exec(
  ns: string,
  argv: readonly string[],
  timeoutMs = 15_000,
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('ip', ['netns', 'exec', ns, ...argv], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

interface Lab {
  readonly router: string;
  readonly clients: readonly [string, string];
  readonly dir: string;
  readonly udhcpcScript: string;
}

const STATIC_MAC = '02:00:00:00:77:05';

async function lab(t: TestContext): Promise<Lab> {
  const id = suffix();
  const router = netns(t, `lt-r-${id}`);
  const c1 = netns(t, `lt-c1-${id}`);
  const c2 = netns(t, `lt-c2-${id}`);
  // lan0 is a bridge with one port per client, as on a real router.
  run(['ip', '-n', router, 'link', 'add', 'lan0', 'type', 'bridge']);
  run(['ip', '-n', router, 'addr', 'add', '192.168.77.1/24', 'dev', 'lan0']);
  run(['ip', '-n', router, 'link', 'set', 'lan0', 'up']);
  veth({ ns: router, name: 'p1' }, { ns: c1, name: 'eth0', mac: '02:00:00:00:77:01' });
  veth({ ns: router, name: 'p2' }, { ns: c2, name: 'eth0', mac: STATIC_MAC });
  for (const p of ['p1', 'p2']) run(['ip', '-n', router, 'link', 'set', p, 'master', 'lan0']);
  // Two upstream DNS servers, each answering *.probe.test with its own address.
  for (const [addr, answer] of [
    ['198.51.100.1', '203.0.113.1'],
    ['198.51.100.2', '203.0.113.2'],
  ] as const) {
    run(['ip', '-n', router, 'addr', 'add', `${addr}/32`, 'dev', 'lo']);
    spawnInNs(t, router, [
      'dnsmasq',
      '--keep-in-foreground',
      '--conf-file=/dev/null',
      `--listen-address=${addr}`,
      '--bind-interfaces',
      '--no-resolv',
      '--no-hosts',
      '--pid-file=',
      `--address=/probe.test/${answer}`,
    ]);
  }
  const dir = await mkdtemp(join(tmpdir(), 'limen-lan-'));
  // dnsmasq drops root: it must be able to reach its files.
  await chmod(dir, 0o755);
  t.after(() => rm(dir, { recursive: true, force: true }));
  const udhcpcScript = join(dir, 'udhcpc.sh');
  await writeFile(
    udhcpcScript,
    [
      '#!/bin/sh',
      'case "$1" in',
      '  bound|renew)',
      '    ip addr add "$ip/$mask" dev "$interface"',
      '    echo "lease ip=$ip router=$router dns=$dns domain=$domain lease=$lease"',
      '    ;;',
      'esac',
      '',
    ].join('\n'),
    { mode: 0o755 },
  );
  return { router, clients: [c1, c2], dir, udhcpcScript };
}

interface Harness {
  readonly engine: Engine;
  readonly config: Dataspace;
  readonly machine: Dataspace;
  readonly sup: Supervisor;
  assert(text: string): Handle;
  retract(h: Handle): void;
  /** Asserts text and retracts h in one turn, as a reloaded configuration file does. */
  replace(h: Handle, text: string): Handle;
  /** Every lan-dhcp-error ever asserted, and every dhcp-client ever retracted. */
  readonly history: { readonly errors: string[]; readonly gone: string[] };
  /** What dnsmasq and the supervisor said on $log. */
  logs(): string;
  pid(): number | undefined;
  state(): string | undefined;
  clients(): string[];
  errors(ifname: string): string[];
}

function harness(t: TestContext, l: Lab): Harness {
  const marker = newMarker();
  process.env[MARK] = marker;
  const engineLog = new RecordingLogger();
  const engine = new Engine({ logger: engineLog });
  const config = new Dataspace(engine, 'config');
  const machine = new Dataspace(engine, 'machine');
  const log = new Dataspace(engine, 'log');
  const lines: string[] = [];
  const history = { errors: [] as string[], gone: [] as string[] };
  let sup!: Supervisor;
  engine.turn(() => {
    engine.root.observe(log.ref, P.rec('log', P._, P.bind('f')), {
      onMessage: (_v, c) => void lines.push(stringify(c.get('f')!)),
    });
    engine.root.observe(config.ref, P.rec('lan-dhcp-error', P._, P._), {
      onAdd: (v) => void history.errors.push(stringify(v)),
    });
    engine.root.observe(machine.ref, P.rec('dhcp-client', P._, P._, P._, P._, P._), {
      onRemove: (v) => void history.gone.push(stringify(v)),
    });
    sup = startSupervisor(engine.root, {
      config: config.ref,
      log: log.ref,
      runDir: l.dir,
      restart: { initialBackoffMs: 50, maxBackoffMs: 500 },
    });
    startServiceManager(engine.root, { config: config.ref, shutdownStepTimeoutMs: 5000 });
    startLanDhcp(engine.root, {
      config: config.ref,
      machine: machine.ref,
      runDir: l.dir,
      commandPrefix: ['ip', 'netns', 'exec', l.router],
    });
  });
  t.after(async () => {
    try {
      engine.turn(() => engine.root.stop());
      await until(sup.closed, { timeoutMs: 15_000, describe: () => 'the supervisor to close' });
      const leaked = killMarked(MARK, marker);
      assert.deepEqual(leaked, [], `processes left behind: ${describeProcs(leaked)}`);
      engineLog.check();
    } finally {
      killMarked(MARK, marker);
    }
  });
  const status = () => sup.services().find((s) => is(s.service, service));
  return {
    engine,
    config,
    machine,
    sup,
    assert(text) {
      let h!: Handle;
      engine.turn(() => (h = engine.root.assert(config.ref, parse(text))));
      return h;
    },
    retract(h) {
      engine.turn(() => engine.root.retract(h));
    },
    replace(old, text) {
      let h!: Handle;
      engine.turn(() => {
        h = engine.root.assert(config.ref, parse(text));
        engine.root.retract(old);
      });
      return h;
    },
    history,
    logs: () => lines.join('\n'),
    pid: () => status()?.pids[0],
    state: () => {
      const r = config.query(P.rec('service-state', P.lit(service), P.bind('s')));
      return r.length === 0 ? undefined : stringify(r[0]!.captures.get('s')!);
    },
    clients: () =>
      machine
        .query(P.rec('dhcp-client', P._, P._, P._, P._, P._))
        .map((r) => stringify(r.value))
        .sort(),
    errors: (ifname) =>
      config
        .query(P.rec('lan-dhcp-error', ifname, P.bind('m')))
        .map((r) => peel(r.captures.get('m')!) as string)
        .sort(),
  };
}

async function udhcpc(l: Lab, client: string, hostname: string): Promise<string> {
  const r = await exec(client, [
    'busybox',
    'udhcpc',
    '-f',
    '-q',
    '-n',
    '-i',
    'eth0',
    '-t',
    '5',
    '-T',
    '1',
    '-s',
    l.udhcpcScript,
    '-x',
    `hostname:${hostname}`,
  ]);
  const m = /lease ip=(\S+)/.exec(r.stdout);
  if (m === null) throw new Error(`udhcpc got no lease: ${r.stdout} ${r.stderr}`);
  return r.stdout.trim();
}

/** The A record dnsmasq on the router gives for name, or what went wrong. */
async function lookup(client: string, name: string): Promise<string> {
  const r = await exec(client, ['busybox', 'nslookup', '-type=a', name, '192.168.77.1'], 5000);
  const m = /Name:\s+\S+\s+Address:\s+(\S+)/.exec(r.stdout);
  return m?.[1] ?? `no answer: ${r.stdout} ${r.stderr}`.replace(/\s+/g, ' ');
}

const spec = (lease: number) =>
  `<lan-dhcp "lan0" {range: ["192.168.77.100" "192.168.77.150"] lease: ${lease} domain: "lan" ` +
  `static-leases: [["${STATIC_MAC}" "192.168.77.50" "printer"]]}>`;

describe('lan-dhcp (dnsmasq)', { skip }, () => {
  it('serves leases, publishes them, and follows upstream DNS without a restart', async (t) => {
    const l = await lab(t);
    const h = harness(t, l);
    let upstream = h.assert('<dns-server "198.51.100.1" static>');
    let lan = h.assert(spec(3600));
    // dnsmasq starts only once lan0 has an IPv4 address (as the monitor would report it).
    await h.engine.sync();
    assert.equal(
      h.config.query(P.rec('require-service', P.lit(service))).length,
      0,
      'dnsmasq is not required before lan0 has an address',
    );
    h.engine.turn(() =>
      h.engine.root.assert(
        h.machine.ref,
        parse(
          '<address "lan0" ipv4 "192.168.77.1" 24 {scope: global valid: forever preferred: forever}>',
        ),
      ),
    );
    await until(() => h.pid(), {
      describe: () =>
        `dnsmasq to run; state ${String(h.state())}, errors ${h.errors('lan0').join('; ')}, ` +
        `log:\n${h.logs()}`,
    });
    const pid = h.pid()!;
    const conf = await readFile(join(l.dir, 'lan', 'lan0', 'dnsmasq.conf'), 'utf8');
    assert.match(conf, /^dhcp-range=192\.168\.77\.100,192\.168\.77\.150,3600$/m);

    // A dynamic lease, and the static one.
    const [c1, c2] = l.clients;
    const got1 = await udhcpc(l, c1, 'laptop');
    assert.match(
      got1,
      /lease ip=192\.168\.77\.1(0[0-9]|[1-4][0-9]|50) router=192\.168\.77\.1 dns=192\.168\.77\.1 domain=lan lease=3600/,
    );
    const ip1 = /ip=(\S+)/.exec(got1)![1]!;
    const got2 = await udhcpc(l, c2, 'whatever');
    assert.match(got2, /lease ip=192\.168\.77\.50 /, 'the static lease is honoured');
    await until(() => h.clients().length === 2, {
      describe: () => `two dhcp-clients; have ${JSON.stringify(h.clients())}`,
    });
    const [laptop, printer] = h.clients();
    const now = Date.now() / 1000;
    assert.match(
      laptop!,
      new RegExp(
        `^<dhcp-client "lan0" "02:00:00:00:77:01" "${ip1.replaceAll('.', '\\.')}" "laptop" \\d+>$`,
      ),
    );
    assert.match(
      printer!,
      /^<dhcp-client "lan0" "02:00:00:00:77:05" "192\.168\.77\.50" "printer" \d+>$/,
    );
    const expires = (parse(laptop!) as Record).fields[4] as number;
    assert.ok(expires > now + 3500 && expires < now + 3700, `expires ${expires}, now ${now}`);

    // DNS through the router's dnsmasq, from the first upstream.
    assert.equal(await lookup(c1, 'a.probe.test'), '203.0.113.1');

    // A new upstream takes effect without a restart: same PID, same leases.
    const leasesBefore = h.clients();
    h.retract(upstream);
    upstream = h.assert('<dns-server "198.51.100.2" <dhcp "wan0">>');
    let n = 0;
    const answer = await until(
      async () => {
        const a = await lookup(c1, `b${n++}.probe.test`);
        return a === '203.0.113.2' ? a : false;
      },
      { timeoutMs: 10_000, intervalMs: 50, describe: () => 'an answer from the new upstream' },
    );
    assert.equal(answer, '203.0.113.2');
    assert.equal(h.pid(), pid, 'dnsmasq was not restarted');
    assert.deepEqual(h.clients(), leasesBefore, 'the leases are still there');
    assert.match(
      await readFile(join(l.dir, 'lan', 'lan0', 'resolv.conf'), 'utf8'),
      /^nameserver 198\.51\.100\.2$/m,
    );

    // A conflicting second spec is an error; the running dnsmasq stays.
    const other = h.assert(spec(600));
    await until(() => h.errors('lan0').some((e) => /2 different lan-dhcp specs/.test(e)), {
      describe: () => `a conflict error; errors ${JSON.stringify(h.errors('lan0'))}`,
    });
    assert.equal(h.pid(), pid);
    h.retract(other);
    await until(() => h.errors('lan0').length === 0, {
      describe: () => `no errors; errors ${JSON.stringify(h.errors('lan0'))}`,
    });

    // A new configuration (a file reloaded: new spec and old one gone in one turn)
    // restarts dnsmasq, which keeps its leases; nothing flaps meanwhile.
    const errorsBefore = h.history.errors.length;
    lan = h.replace(lan, spec(7200));
    await until(() => h.pid() !== undefined && h.pid() !== pid, {
      timeoutMs: 10_000,
      describe: () => `a new dnsmasq; pid ${String(h.pid())}, state ${String(h.state())}`,
    });
    assert.deepEqual(h.clients(), leasesBefore, 'the leases survive the restart');
    assert.deepEqual(
      h.history.errors.slice(errorsBefore),
      [],
      'no conflict seen during the reload',
    );
    assert.deepEqual(h.history.gone, [], 'no lease went away');
    const renewed = await udhcpc(l, c2, 'whatever');
    assert.match(renewed, /lease ip=192\.168\.77\.50 .*lease=7200/);

    // Withdrawing lan-dhcp stops dnsmasq and retracts its clients.
    h.retract(lan);
    await until(() => h.state() === undefined && h.clients().length === 0, {
      timeoutMs: 10_000,
      describe: () =>
        `dnsmasq gone; state ${String(h.state())}, clients ${JSON.stringify(h.clients())}`,
    });
  });

  it("makes RUN/lan/IF searchable by dnsmasq's user whatever the umask", async (t) => {
    // Under umask 077, mkdir's 0755 gives 0700: dnsmasq, which drops root, could not
    // reach its files (the driver sets the modes explicitly).
    const umask = process.umask(0o077);
    t.after(() => void process.umask(umask));
    const l = await lab(t);
    const h = harness(t, l);
    h.assert('<dns-server "198.51.100.1" static>');
    h.assert(spec(3600));
    h.engine.turn(() =>
      h.engine.root.assert(
        h.machine.ref,
        parse(
          '<address "lan0" ipv4 "192.168.77.1" 24 {scope: global valid: forever preferred: forever}>',
        ),
      ),
    );
    await until(() => h.pid(), {
      describe: () => `dnsmasq to run; errors ${h.errors('lan0').join('; ')}, log:\n${h.logs()}`,
    });
    for (const d of [join(l.dir, 'lan'), join(l.dir, 'lan', 'lan0')])
      assert.equal((await stat(d)).mode & 0o777, 0o755, d);
    assert.match(await udhcpc(l, l.clients[0], 'laptop'), /lease ip=192\.168\.77\./);
  });

  it('reports every problem with a spec as lan-dhcp-error, and a range outside the subnet', async (t) => {
    const l = await lab(t);
    const h = harness(t, l);
    h.assert(
      '<lan-dhcp "lan9" {range: ["192.168.9.200" "192.168.9.10"] leese: 600 lease: 30 ' +
        'dns: ["8.8.8.8" "nine"] static-leases: [["02:00:00:00:00:zz" "192.168.9.5" "bad name"]]}>',
    );
    await until(() => h.errors('lan9').length >= 6, {
      describe: () => `six errors; have ${JSON.stringify(h.errors('lan9'), null, 1)}`,
    });
    const errors = h.errors('lan9').join('\n');
    assert.match(
      errors,
      /the range starts at 192\.168\.9\.200, after its end 192\.168\.9\.10: swap them/,
    );
    assert.match(errors, /unknown key 'leese' \(did you mean 'lease'\?\)/);
    assert.match(errors, /lease must be a number of seconds from 120/);
    assert.match(errors, /each dns server must be an IPv4 address as a string, .* got "nine"/);
    assert.match(errors, /"02:00:00:00:00:zz" is not a MAC address/);
    assert.match(errors, /the hostname must be one DNS label/);
    assert.equal(h.state(), undefined, 'nothing runs for an invalid spec');

    // A valid spec whose range is not in the interface's subnet: dnsmasq runs, with a warning.
    h.assert('<lan-dhcp "lan0" {range: ["192.168.78.10" "192.168.78.20"]}>');
    let addr!: Handle;
    h.engine.turn(
      () =>
        (addr = h.engine.root.assert(
          h.machine.ref,
          parse(
            '<address "lan0" ipv4 "192.168.77.1" 24 {scope: global valid: forever preferred: forever}>',
          ),
        )),
    );
    await until(
      () => h.errors('lan0').some((e) => /outside lan0's subnets \(192\.168\.77\.1\/24\)/.test(e)),
      {
        describe: () => `a subnet warning; have ${JSON.stringify(h.errors('lan0'))}`,
      },
    );
    await until(() => h.pid(), { describe: () => 'dnsmasq to run' });
    h.engine.turn(() => h.engine.root.retract(addr));
    await until(() => h.errors('lan0').length === 0, {
      describe: () => JSON.stringify(h.errors('lan0')),
    });
  });
});
