// The address/route reconciler against a real kernel, in network namespaces of
// its own: desired addresses and routes go in and out, lifetimes refresh in
// place, what someone else removes comes back, only limen's marked objects are
// ever deleted, and a restart adopts what the previous run installed.

import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { until } from '../../support/until.ts';
import { prerequisites } from '../../support/prerequisites.ts';
import { Harness, ip, ipBatch, ipJson, netns } from './harness-monitor-client.ts';

const skip = prerequisites({ netns: true });

interface IpAddr {
  ifname: string;
  addr_info: {
    family: string;
    local: string;
    prefixlen: number;
    valid_life_time: number;
    preferred_life_time: number;
  }[];
}
interface IpRoute {
  dst: string;
  gateway?: string;
  dev?: string;
  protocol?: string;
  metric?: number;
}

function addressesOf(ns: string, ifname: string): IpAddr['addr_info'] {
  return ipJson<IpAddr[]>(ns, 'addr', 'show', 'dev', ifname)[0]?.addr_info ?? [];
}
function hasAddress(ns: string, ifname: string, cidr: string): boolean {
  return addressesOf(ns, ifname).some((a) => `${a.local}/${a.prefixlen}` === cidr);
}
function routes(ns: string, family: '-4' | '-6' = '-4'): IpRoute[] {
  return ipJson<IpRoute[]>(ns, family, 'route', 'show', 'table', 'main');
}
function route(ns: string, dst: string, family: '-4' | '-6' = '-4'): IpRoute | undefined {
  return routes(ns, family).find((r) => r.dst === dst);
}

/** Every line `ip monitor address route` prints in the namespace, from when it resolves. */
async function kernelEvents(t: TestContext, ns: string): Promise<string[]> {
  const lines: string[] = [];
  const p = spawn('ip', ['-n', ns, 'monitor', 'address', 'route'], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  createInterface({ input: p.stdout }).on('line', (l) => lines.push(l));
  t.after(() => p.kill());
  // It is listening once it reports a change of our own.
  ip(ns, 'addr', 'add', '192.0.2.77/32', 'dev', 'lo');
  await until(() => lines.some((l) => l.includes('192.0.2.77')), {
    describe: () => 'ip monitor to start',
  });
  ip(ns, 'addr', 'del', '192.0.2.77/32', 'dev', 'lo');
  await until(() => lines.some((l) => l.startsWith('Deleted') && l.includes('192.0.2.77')));
  lines.length = 0;
  return lines;
}

/** veth v0 (up, with carrier) <-> v1. */
function link(ns: string): void {
  ipBatch(ns, ['link add v0 type veth peer name v1', 'link set v0 up', 'link set v1 up']);
}

describe('address/route reconciler', { skip }, () => {
  it('installs, refreshes, restores and removes an address', async (t) => {
    const ns = netns(t);
    link(ns);
    const h = await Harness.start(t, ns, ['--reconciler']);
    const events = await kernelEvents(t, ns);

    const a1 = await h.assert(
      '<ip-address "v0" "198.51.100.1/24" {valid: 600 preferred: 300 renewed: 1}>',
    );
    await until(() => hasAddress(ns, 'v0', '198.51.100.1/24'));
    await until(() => h.has('config', '<ip-address-state "v0" "198.51.100.1/24" installed "">'), {
      describe: () => [...h.ds.config.keys()].join('\n'),
    });
    const first = addressesOf(ns, 'v0').find((a) => a.local === '198.51.100.1')!;
    assert.ok(first.valid_life_time <= 600 && first.valid_life_time > 590, JSON.stringify(first));
    assert.ok(first.preferred_life_time <= 300 && first.preferred_life_time > 290);

    // A renew: the new assertion replaces the old one; lifetimes refresh in place.
    const a2 = await h.assert(
      '<ip-address "v0" "198.51.100.1/24" {valid: 900 preferred: 900 renewed: 2}>',
    );
    await h.retract(a1);
    await until(
      () =>
        (addressesOf(ns, 'v0').find((a) => a.local === '198.51.100.1')?.valid_life_time ?? 0) > 600,
    );
    assert.equal(addressesOf(ns, 'v0').filter((a) => a.local === '198.51.100.1').length, 1);

    // Someone else removes it: it comes back, with what is left of its lifetime.
    ip(ns, 'addr', 'del', '198.51.100.1/24', 'dev', 'v0');
    await until(() => hasAddress(ns, 'v0', '198.51.100.1/24'), {
      describe: () => events.join('\n'),
    });
    const back = addressesOf(ns, 'v0').find((a) => a.local === '198.51.100.1')!;
    assert.ok(back.valid_life_time > 800 && back.valid_life_time <= 900, JSON.stringify(back));
    const deletions = () =>
      events.filter((l) => l.startsWith('Deleted') && l.includes('198.51.100.1/24'));
    await until(() => deletions().length >= 1);
    assert.equal(deletions().length, 1, events.join('\n'));

    // Retracted: removed, with its state.
    await h.retract(a2);
    await until(() => !hasAddress(ns, 'v0', '198.51.100.1/24'));
    await until(() => h.values('config', 'ip-address-state').length === 0);
    await h.exit();
  });

  it('waits for a missing interface and reports what it cannot do', async (t) => {
    const ns = netns(t);
    const h = await Harness.start(t, ns, ['--reconciler']);
    await h.assert('<ip-address "wan9" "2001:db8:9::1/64">');
    await until(() =>
      h.has(
        'config',
        '<ip-address-state "wan9" "2001:db8:9::1/64" pending "interface wan9 does not exist">',
      ),
    );
    ipBatch(ns, [
      'link add wan9 type veth peer name wan9p',
      'link set wan9 up',
      'link set wan9p up',
    ]);
    await until(() => hasAddress(ns, 'wan9', '2001:db8:9::1/64'));
    await until(
      () => h.has('config', '<ip-address-state "wan9" "2001:db8:9::1/64" installed "">'),
      {
        describe: () => [...h.ds.config.keys()].join('\n'),
      },
    );

    await h.assert('<ip-address "wan9" "300.1.2.3/24" {valid: -1 colour: red}>');
    await until(
      () =>
        h.values('config', 'ip-address-state').some((r) => {
          const reason = r.fields[3];
          return (
            r.fields[1] === '300.1.2.3/24' &&
            typeof reason === 'string' &&
            reason.includes('is not an IPv4 or IPv6 address') &&
            reason.includes('unknown option colour') &&
            reason.includes('valid must be')
          );
        }),
      { describe: () => [...h.ds.config.keys()].join('\n') },
    );
    await h.exit();
  });

  it('installs routes, restores them, and deletes only its own', async (t) => {
    const ns = netns(t);
    link(ns);
    ip(ns, 'addr', 'add', '198.51.100.1/24', 'dev', 'v0');
    // A route limen did not install, which it must never touch.
    ip(ns, 'route', 'add', '100.64.5.0/24', 'via', '198.51.100.9', 'proto', 'static');
    const h = await Harness.start(t, ns, ['--reconciler']);

    const r1 = await h.assert('<ip-route ipv4 "203.0.113.0/24" {via: "198.51.100.2" metric: 5}>');
    const r2 = await h.assert('<ip-route ipv4 "default" {via: "198.51.100.254" dev: "v0"}>');
    const r3 = await h.assert('<ip-route ipv4 "100.70.0.0/16" {dev: "v0" metric: 9}>');
    await until(() => route(ns, '203.0.113.0/24')?.gateway === '198.51.100.2');
    await until(() => route(ns, 'default')?.gateway === '198.51.100.254');
    await until(() => route(ns, '100.70.0.0/16') !== undefined);
    const r = route(ns, '203.0.113.0/24')!;
    assert.equal(r.protocol, '76');
    assert.equal(r.metric, 5);
    await until(() => h.has('config', '<ip-route-state ipv4 "203.0.113.0/24" 5 installed "">'));

    // Removed behind its back: restored.
    ip(ns, 'route', 'del', 'default');
    await until(() => route(ns, 'default')?.gateway === '198.51.100.254');

    // A gateway that is not reachable yet: pending until it is.
    await h.assert('<ip-route ipv4 "100.90.0.0/16" {via: "192.168.77.1"}>');
    await until(
      () => h.texts('config', '<ip-route-state ipv4 "100.90.0.0/16" 0 pending').length === 1,
      {
        describe: () => [...h.ds.config.keys()].join('\n'),
      },
    );
    ip(ns, 'addr', 'add', '192.168.77.2/24', 'dev', 'v0');
    await until(() => route(ns, '100.90.0.0/16')?.gateway === '192.168.77.1');

    // Retracted: gone; the route limen did not install stays.
    await h.retract(r1);
    await h.retract(r2);
    await h.retract(r3);
    await until(
      () => route(ns, '203.0.113.0/24') === undefined && route(ns, 'default') === undefined,
    );
    await until(() => route(ns, '100.70.0.0/16') === undefined);
    assert.equal(route(ns, '100.64.5.0/24')?.protocol, 'static');
    await h.exit();
  });

  it('installs IPv6 routes with the kernel default metric', async (t) => {
    const ns = netns(t);
    link(ns);
    ip(ns, 'addr', 'add', '2001:db8:1::1/64', 'dev', 'v0', 'nodad');
    const h = await Harness.start(t, ns, ['--reconciler']);
    const id = await h.assert('<ip-route ipv6 "2001:db8:99::/48" {via: "2001:db8:1::2"}>');
    await until(() => route(ns, '2001:db8:99::/48', '-6')?.gateway === '2001:db8:1::2');
    assert.equal(route(ns, '2001:db8:99::/48', '-6')?.metric, 1024);
    await until(() => h.has('config', '<ip-route-state ipv6 "2001:db8:99::/48" 0 installed "">'));
    await h.retract(id);
    await until(() => route(ns, '2001:db8:99::/48', '-6') === undefined);
    await h.exit();
  });

  it('installs routes that drop (unreachable, blackhole), keeps them, and removes them', async (t) => {
    const ns = netns(t);
    link(ns);
    const h = await Harness.start(t, ns, ['--reconciler']);
    const types = (family: '-4' | '-6') =>
      ipJson<{ type?: string; dst: string; protocol?: string }[]>(ns, family, 'route', 'show');
    const of = (family: '-4' | '-6', dst: string) => types(family).find((r) => r.dst === dst);
    const u6 = await h.assert('<ip-route ipv6 "2001:db8:8000::/56" {type: unreachable}>');
    const b4 = await h.assert('<ip-route ipv4 "198.51.100.0/24" {type: blackhole}>');
    await until(
      () =>
        of('-6', '2001:db8:8000::/56')?.type === 'unreachable' &&
        of('-4', '198.51.100.0/24')?.type === 'blackhole',
      { describe: () => JSON.stringify([types('-6'), types('-4')]) },
    );
    for (const [fam, dst] of [
      ['ipv6', '2001:db8:8000::/56'],
      ['ipv4', '198.51.100.0/24'],
    ] as const)
      await until(() => h.has('config', `<ip-route-state ${fam} "${dst}" 0 installed "">`), {
        describe: () => `${dst} installed`,
      });
    // Someone deletes one: it comes back.
    ip(ns, '-6', 'route', 'del', 'unreachable', '2001:db8:8000::/56');
    await until(() => of('-6', '2001:db8:8000::/56')?.type === 'unreachable');
    // An unreachable route answers EHOSTUNREACH, where a missing one would route on.
    const get = spawnSync('ip', ['-n', ns, '-6', 'route', 'get', '2001:db8:8000:5::1'], {
      encoding: 'utf8',
    });
    // (Without it: "Network is unreachable", this namespace having no default route.)
    assert.match(get.stdout + get.stderr, /No route to host/);
    await h.retract(u6);
    await h.retract(b4);
    await until(
      () =>
        of('-6', '2001:db8:8000::/56') === undefined && of('-4', '198.51.100.0/24') === undefined,
      { describe: () => JSON.stringify([types('-6'), types('-4')]) },
    );
    await h.exit();
  });

  it('adopts its own leftovers after a restart and cleans up the rest', async (t) => {
    const ns = netns(t);
    link(ns);
    ip(ns, 'addr', 'add', '198.51.100.1/24', 'dev', 'v0');
    const desired = [
      '<ip-address "v0" "192.168.60.1/24">',
      '<ip-address "v0" "2001:db8:60::1/64">',
      '<ip-route ipv4 "203.0.113.0/24" {via: "198.51.100.2" metric: 5}>',
    ];
    const stale = [
      '<ip-address "v0" "192.168.61.1/24">',
      '<ip-route ipv4 "100.71.0.0/16" {dev: "v0"}>',
    ];

    const first = await Harness.start(t, ns, ['--reconciler']);
    for (const v of [...desired, ...stale]) await first.assert(v);
    await until(
      () =>
        first.texts('config', '<ip-address-state').filter((s) => s.includes(' installed '))
          .length === 3,
    );
    await until(
      () => route(ns, '203.0.113.0/24') !== undefined && route(ns, '100.71.0.0/16') !== undefined,
    );
    // The daemon stops: the kernel keeps everything.
    await first.exit();
    assert.ok(hasAddress(ns, 'v0', '192.168.60.1/24') && hasAddress(ns, 'v0', '192.168.61.1/24'));

    const events = await kernelEvents(t, ns);
    const second = await Harness.start(t, ns, ['--reconciler', '--grace', '300']);
    for (const v of desired) await second.assert(v);
    // The stale ones go once the grace period is over; the desired ones are untouched.
    await until(
      () => !hasAddress(ns, 'v0', '192.168.61.1/24') && route(ns, '100.71.0.0/16') === undefined,
      {
        timeoutMs: 5000,
      },
    );
    await until(
      () =>
        second
          .texts('config', '<ip-address-state')
          .filter((s) => s.endsWith(' installed "adopted">')).length === 2,
      {
        describe: () => [...second.ds.config.keys()].join('\n'),
      },
    );
    const stats = (await second.request({ cmd: 'stats' }))['stats'] as Record<string, number>;
    assert.equal(stats['addressAdds'], 0, JSON.stringify(stats));
    assert.equal(stats['routeAdds'], 0, JSON.stringify(stats));
    assert.equal(stats['adopted'], 3, JSON.stringify(stats));
    assert.ok(hasAddress(ns, 'v0', '192.168.60.1/24') && hasAddress(ns, 'v0', '2001:db8:60::1/64'));
    assert.equal(addressesOf(ns, 'v0').filter((a) => a.local === '192.168.60.1').length, 1);
    assert.equal(route(ns, '203.0.113.0/24')?.protocol, '76');
    const deleted = events.filter((l) => l.startsWith('Deleted'));
    assert.ok(
      !deleted.some(
        (l) =>
          l.includes('192.168.60.1') || l.includes('2001:db8:60::1') || l.includes('203.0.113.0'),
      ),
      deleted.join('\n'),
    );
    assert.ok(
      deleted.some((l) => l.includes('192.168.61.1')),
      deleted.join('\n'),
    );
    // The address limen never installed is still there.
    assert.ok(hasAddress(ns, 'v0', '198.51.100.1/24'));
    await second.exit();
  });

  it('restores what was removed while the kernel dropped its events', async (t) => {
    const ns = netns(t);
    link(ns);
    const h = await Harness.start(t, ns, ['--reconciler', '--rcvbuf', '16384']);
    await h.assert('<ip-address "v0" "192.168.70.1/24">');
    await h.assert('<ip-route ipv4 "100.72.0.0/16" {via: "192.168.70.9"}>');
    await until(() => route(ns, '100.72.0.0/16') !== undefined);
    // Paused, with the smallest receive buffer: the deletions drown in a flood.
    h.pause();
    const lines: string[] = ['addr del 192.168.70.1/24 dev v0'];
    for (let i = 0; i < 40; i++) lines.push(`link add f${i} type veth peer name g${i}`);
    ipBatch(ns, lines);
    h.resume();
    await until(
      () => hasAddress(ns, 'v0', '192.168.70.1/24') && route(ns, '100.72.0.0/16') !== undefined,
      {
        timeoutMs: 10_000,
        describe: () => JSON.stringify(h.logs),
      },
    );
    assert.ok(
      h.logs.some((l) => JSON.stringify(l).includes('ENOBUFS')),
      JSON.stringify(h.logs),
    );
    await h.exit();
  });
});
