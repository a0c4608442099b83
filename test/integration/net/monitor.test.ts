// The interface monitor against a real kernel, in network namespaces of its own:
// the first dump, live changes of links, addresses and routes (including the
// routes IPv4 drops without telling), recovery from lost events (ENOBUFS), and
// neighbours, at most 1024 per interface.

import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { prerequisites } from '../../support/prerequisites.ts';
import { until } from '../../support/until.ts';
import {
  Harness,
  ip,
  ipBatch,
  ipJson,
  netns,
  publishedRoutes,
  untilInSync,
} from './harness-monitor-client.ts';

const skip = prerequisites({ netns: true });

/** veth v0 <-> v1, v1 a port of bridge br0, addresses and a gatewayed route. */
function baseTopology(ns: string): void {
  ipBatch(ns, [
    'link add v0 type veth peer name v1',
    'link add br0 type bridge',
    'link set v1 master br0',
    'link set v0 up',
    'link set v1 up',
    'link set br0 up',
    'addr add 198.51.100.1/24 dev v0',
    'addr add 2001:db8:1::1/64 dev v0 nodad',
    'addr add 192.168.50.1/24 dev br0 valid_lft 600 preferred_lft 300',
    'route add 203.0.113.0/24 via 198.51.100.2 metric 7',
  ]);
}

describe('interface monitor', { skip }, () => {
  it('publishes the first dump as iproute2 sees it', async (t: TestContext) => {
    const ns = netns(t);
    baseTopology(ns);
    const h = await Harness.start(t, ns, ['--monitor']);
    await untilInSync(h, ns);
    const links = ipJson<{ ifname: string; ifindex: number; address: string }[]>(ns, 'link');
    const v0 = links.find((l) => l.ifname === 'v0')!;
    assert.ok(
      h.has('machine', `<interface "v0" ${v0.ifindex} normal up up carrier "${v0.address}">`),
      [...h.ds.machine.keys()].join('\n'),
    );
    assert.ok(
      h.has('machine', '<interface "lo" 1 loopback up unknown carrier "00:00:00:00:00:00">'),
    );
    assert.ok(h.has('machine', '<link-detail "v1" {kind: veth master: "br0" mtu: 1500}>'));
    assert.ok(h.has('machine', '<link-detail "br0" {kind: bridge master: #f mtu: 1500}>'));
    assert.ok(h.has('machine', '<route ipv4 "203.0.113.0/24" 7 main "v0" "198.51.100.2">'));
    assert.ok(
      h.has(
        'machine',
        '<address "v0" ipv6 "2001:db8:1::1" 64 {preferred: forever scope: global valid: forever}>',
      ),
    );
    const br = h
      .values('machine', 'address')
      .find((r) => r.fields[0] === 'br0' && r.fields[2] === '192.168.50.1');
    assert.ok(br, 'the address with lifetimes is published');
    const life = h.ds.machine.has(
      '<address "br0" ipv4 "192.168.50.1" 24 {preferred: forever scope: global valid: forever}>',
    );
    assert.ok(!life, 'finite lifetimes are published as seconds, not forever');
    // Local-table and multicast routes are not published.
    assert.ok(!publishedRoutes(h).some((r) => r.includes(' local ')));
    await h.exit();
  });

  it('works with the socket in its own process too', async (t: TestContext) => {
    const ns = netns(t);
    baseTopology(ns);
    const h = await Harness.start(t, ns, ['--monitor', '--in-process']);
    await untilInSync(h, ns);
    ip(ns, 'addr', 'add', '100.64.9.1/24', 'dev', 'br0');
    await untilInSync(h, ns);
    await h.exit();
  });

  it('follows links, addresses and routes as they change', async (t: TestContext) => {
    const ns = netns(t);
    baseTopology(ns);
    const h = await Harness.start(t, ns, ['--monitor']);
    await untilInSync(h, ns);

    ipBatch(ns, ['link add v2 type veth peer name v3', 'link set v2 up', 'link set v3 up']);
    await untilInSync(h, ns);
    assert.ok(h.values('machine', 'interface').some((r) => r.fields[0] === 'v2'));

    ip(ns, 'addr', 'add', '100.64.0.1/30', 'dev', 'v2');
    ip(ns, 'route', 'add', '100.80.0.0/16', 'via', '100.64.0.2', 'metric', '50');
    await untilInSync(h, ns);
    assert.ok(h.has('machine', '<route ipv4 "100.80.0.0/16" 50 main "v2" "100.64.0.2">'));

    // A rename carries the addresses and routes along.
    ipBatch(ns, ['link set v2 down', 'link set v2 name wan7', 'link set wan7 up']);
    ip(ns, 'route', 'add', '100.80.0.0/16', 'via', '100.64.0.2', 'metric', '50');
    await untilInSync(h, ns);
    assert.ok(h.values('machine', 'address').some((r) => r.fields[0] === 'wan7'));
    assert.ok(h.has('machine', '<route ipv4 "100.80.0.0/16" 50 main "wan7" "100.64.0.2">'));

    // IPv4 drops routes through a link that goes down without an RTM_DELROUTE.
    ip(ns, 'link', 'set', 'wan7', 'down');
    await untilInSync(h, ns);
    assert.ok(!h.has('machine', '<route ipv4 "100.80.0.0/16" 50 main "wan7" "100.64.0.2">'));

    // The same when the gateway's subnet goes away with its address.
    ip(ns, 'route', 'add', '198.51.100.128/25', 'via', '198.51.100.2', 'table', '100');
    await untilInSync(h, ns);
    assert.ok(h.has('machine', '<route ipv4 "198.51.100.128/25" 0 100 "v0" "198.51.100.2">'));
    ip(ns, 'addr', 'del', '198.51.100.1/24', 'dev', 'v0');
    await untilInSync(h, ns);
    assert.ok(!h.values('machine', 'route').some((r) => r.fields[1] === '198.51.100.128/25'));

    ip(ns, 'link', 'del', 'wan7');
    await untilInSync(h, ns);
    assert.ok(
      !h.values('machine', 'interface').some((r) => r.fields[0] === 'wan7' || r.fields[0] === 'v3'),
    );
    assert.ok(!h.values('machine', 'address').some((r) => r.fields[0] === 'wan7'));
    await h.exit();
  });

  it('publishes neighbours, at most 1024 per interface, and admits a waiting one when one goes', async (t: TestContext) => {
    const ns = netns(t);
    baseTopology(ns);
    // Before the start: the first dump lists them.
    ipBatch(ns, ['neigh add 198.51.100.7 lladdr 02:00:00:00:00:07 dev v0 nud permanent']);
    const h = await Harness.start(t, ns, ['--monitor']);
    await until(
      () => h.has('machine', '<neighbour "v0" ipv4 "198.51.100.7" "02:00:00:00:00:07" permanent>'),
      {
        describe: () => h.values('machine', 'neighbour').map(String).join('\n'),
      },
    );
    const count = () => h.values('machine', 'neighbour').filter((r) => r.fields[0] === 'v0').length;
    // 1100 more, set by hand (a hostile LAN makes them by sending from many addresses).
    ipBatch(
      ns,
      Array.from(
        { length: 1100 },
        (_, i) =>
          `neigh add 2001:db8:1::${(i + 16).toString(16)} lladdr 02:00:00:00:01:01 dev v0 nud permanent`,
      ),
    );
    await until(() => count() === 1024 && h.has('machine', '<neighbours-capped "v0" 1024>'), {
      timeoutMs: 20_000,
      describe: () => `${count()} neighbours of v0 published`,
    });
    // One published goes: one that waited takes its place.
    ip(ns, 'neigh', 'del', '198.51.100.7', 'dev', 'v0');
    await until(
      () => !h.values('machine', 'neighbour').some((r) => r.fields[2] === '198.51.100.7'),
      {
        describe: () => 'the deleted neighbour gone',
      },
    );
    assert.equal(count(), 1024);
    // Below the cap again: everything published, and no longer capped.
    ipBatch(
      ns,
      Array.from(
        { length: 200 },
        (_, i) => `neigh del 2001:db8:1::${(i + 16).toString(16)} dev v0`,
      ),
    );
    await until(() => count() === 900 && !h.has('machine', '<neighbours-capped "v0" 1024>'), {
      timeoutMs: 20_000,
      describe: () => `${count()} neighbours of v0 published`,
    });
    await h.exit();
  });

  it('dumps again and reconciles after the kernel drops events (ENOBUFS)', async (t: TestContext) => {
    const ns = netns(t);
    baseTopology(ns);
    // A small receive buffer, and the harness and its netlink helper paused: the
    // flood below cannot fit, so the kernel must report ENOBUFS.
    const h = await Harness.start(t, ns, ['--monitor', '--rcvbuf', '16384']);
    await untilInSync(h, ns);
    h.pause();
    const lines: string[] = [];
    for (let i = 0; i < 40; i++)
      lines.push(`link add f${i} type veth peer name g${i}`, `link set f${i} up`);
    for (let i = 0; i < 40; i++) lines.push(`addr add 100.64.${i}.1/24 dev f${i}`);
    // Things that vanish while the monitor is not listening must be retracted.
    lines.push('route del 203.0.113.0/24', 'addr del 192.168.50.1/24 dev br0', 'link del v0');
    for (let i = 0; i < 20; i++) lines.push(`link del f${i}`);
    ipBatch(ns, lines);
    h.resume();
    await untilInSync(h, ns, 10_000);
    await until(() => h.logs.some((l) => JSON.stringify(l).includes('ENOBUFS')), {
      describe: () => `an ENOBUFS warning; logs: ${JSON.stringify(h.logs)}`,
    });
    const stats = await h.request({ cmd: 'stats' });
    assert.ok((stats['resyncs'] as number) >= 1, `resyncs: ${JSON.stringify(stats)}`);
    assert.ok(!h.values('machine', 'interface').some((r) => r.fields[0] === 'v0'));
    assert.ok(!h.values('machine', 'route').some((r) => r.fields[1] === '203.0.113.0/24'));

    // And it keeps following live events afterwards.
    ip(ns, 'link', 'del', 'f30');
    await untilInSync(h, ns);
    await h.exit();
  });
});
