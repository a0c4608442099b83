// The LAN IPv6 prefix driver: <lan-ipv6 IF {subnet ula}> and the delegated prefixes
// in $config give the router's LAN addresses through the provider contract, with
// the delegation's lifetimes; they go with it. The ULA /48 is made once on disk,
// atomically, and reused.

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify, type Value } from '../../../src/preserves/index.ts';
import { Dataspace, type Handle } from '../../../src/dataspace/index.ts';
import { ULA_FILE, loadOrCreateUla, startLanIpv6 } from '../../../src/net/lan-ipv6.ts';
import { carveSubnet } from '../../../src/net/lan-prefix.ts';
import { checkedEngine } from '../../support/engine-log.ts';
import { until } from '../../support/until.ts';

const v = (text: string): Value => parse(text);
const sorted = (...texts: string[]) => texts.map((t) => stringify(v(t))).sort();

async function stateDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'limen-lan-ipv6-'));
  after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

describe('the ULA file', () => {
  it('is made once (mode 0644, no temporary left) and read back the next time', async () => {
    const dir = await stateDir();
    const path = join(dir, ULA_FILE);
    let calls = 0;
    const random = () => (calls++, Uint8Array.of(1, 2, 3, 4, 5));
    assert.equal(await loadOrCreateUla(path, { random }), 'fd01:203:405::/48');
    assert.equal(await readFile(path, 'utf8'), 'fd01:203:405::/48\n');
    assert.equal((await stat(path)).mode & 0o777, 0o644);
    assert.deepEqual(await readdir(dir), [ULA_FILE]);
    assert.equal(await loadOrCreateUla(path, { random }), 'fd01:203:405::/48');
    assert.equal(calls, 1);
  });

  it('is not made by a plan, and a file holding something else is refused, not replaced', async () => {
    const dir = await stateDir();
    const path = join(dir, ULA_FILE);
    assert.equal(await loadOrCreateUla(path, { create: false }), undefined);
    assert.deepEqual(await readdir(dir), []);
    await writeFile(path, '2001:db8::/48\n');
    await assert.rejects(loadOrCreateUla(path), /does not hold a ULA prefix/);
    assert.equal(await readFile(path, 'utf8'), '2001:db8::/48\n');
  });

  it('is random when nothing is given', async () => {
    const a = await loadOrCreateUla(join(await stateDir(), ULA_FILE));
    const b = await loadOrCreateUla(join(await stateDir(), ULA_FILE));
    assert.match(a!, /^fd[0-9a-f:]+::\/48$/);
    assert.notEqual(a, b);
  });
});

describe('the LAN prefix driver', () => {
  async function start() {
    const dir = await stateDir();
    await writeFile(join(dir, ULA_FILE), 'fd12:3456:789a::/48\n');
    const engine = checkedEngine().engine;
    const config = new Dataspace(engine, 'config');
    engine.turn(() => startLanIpv6(engine.root, { config: config.ref, stateDir: dir }));
    const assertText = (text: string): Handle => {
      let h: Handle | undefined;
      engine.turn(() => (h = engine.root.assert(config.ref, v(text))));
      return h!;
    };
    const retract = (h: Handle) => engine.turn(() => engine.root.retract(h));
    assertText('<lan-dhcp "lan0" {range: ["192.168.1.100" "192.168.1.200"]}>');
    const derived = () =>
      [...config.values()]
        .map((x) => stringify(x))
        .filter(
          (s) =>
            !s.startsWith('<failure-shape') &&
            !s.startsWith('<lan-ipv6 ') &&
            !s.startsWith('<lan-dhcp ') &&
            !s.startsWith('<delegated-prefix'),
        )
        .sort();
    return { engine, dir, assertText, retract, derived };
  }

  it('gives P::1/64 of each delegated prefix with its lifetimes, and the ULA /64; they go with it', async () => {
    const t = await start();
    t.assertText('<lan-ipv6 "lan0" {subnet: 1}>');
    // The ULA comes first: it does not wait for the WAN.
    const ulaOnly = sorted(
      '<ip-address "lan0" "fd12:3456:789a:1::1/64" {}>',
      '<lan-ipv6-subnet "lan0" "fd12:3456:789a:1::/64" "fd12:3456:789a::/48">',
    );
    await until(() => JSON.stringify(t.derived()) === JSON.stringify(ulaOnly), {
      describe: () => t.derived().join('\n'),
    });
    const p = t.assertText(
      '<delegated-prefix "wan0" "2001:db8:0:100::/56" {valid: 7200 preferred: 3600 renewed: "bound6 1"} <dhcpv6 "wan0">>',
    );
    await t.engine.sync();
    assert.deepEqual(
      t.derived(),
      sorted(
        '<ip-address "lan0" "2001:db8:0:101::1/64" {valid: 7200 preferred: 3600 renewed: "bound6 1"}>',
        '<lan-ipv6-subnet "lan0" "2001:db8:0:101::/64" "2001:db8:0:100::/56">',
        ...ulaOnly,
      ),
    );
    // Renumbered: the new prefix's address, and the old one's gone.
    const q = t.assertText(
      '<delegated-prefix "wan0" "2001:db8:0:200::/56" {valid: 7200 preferred: 3600 renewed: "renew6 2"} <dhcpv6 "wan0">>',
    );
    t.retract(p);
    await t.engine.sync();
    assert.deepEqual(
      t.derived(),
      sorted(
        '<ip-address "lan0" "2001:db8:0:201::1/64" {valid: 7200 preferred: 3600 renewed: "renew6 2"}>',
        '<lan-ipv6-subnet "lan0" "2001:db8:0:201::/64" "2001:db8:0:200::/56">',
        ...ulaOnly,
      ),
    );
    t.retract(q);
    await t.engine.sync();
    assert.deepEqual(t.derived(), ulaOnly);
  });

  it('makes the ULA file when the first interface asks for IPv6, not before', async () => {
    const dir = await stateDir();
    const engine = checkedEngine().engine;
    const config = new Dataspace(engine, 'config');
    engine.turn(() => startLanIpv6(engine.root, { config: config.ref, stateDir: dir }));
    await engine.sync();
    assert.deepEqual(await readdir(dir), []);
    engine.turn(() => engine.root.assert(config.ref, v('<lan-ipv6 "lan0" {subnet: 3}>')));
    const address = () =>
      [...config.values()].map((x) => stringify(x)).find((s) => s.startsWith('<ip-address'));
    await until(address, { describe: () => [...config.values()].map(String).join(' ') });
    const ula = (await readFile(join(dir, ULA_FILE), 'utf8')).trim();
    assert.match(ula, /^fd[0-9a-f:]+::\/48$/);
    const carved = carveSubnet(ula, 3);
    assert.ok('router' in carved);
    assert.equal(address(), `<ip-address "lan0" "${carved.router}" {}>`);
  });

  it('refuses an id that does not fit a delegation, keeps the rest, and honours ula: #f', async () => {
    const t = await start();
    t.assertText('<lan-ipv6 "lan0" {subnet: 16 ula: #f}>');
    t.assertText('<delegated-prefix "wan0" "2001:db8:0:10::/60" {} <dhcpv6 "wan0">>');
    t.assertText('<delegated-prefix "wan1" "2001:db8:1::/48" {} <dhcpv6 "wan1">>');
    await t.engine.sync();
    assert.deepEqual(
      t.derived(),
      sorted(
        '<ip-address "lan0" "2001:db8:1:10::1/64" {}>',
        '<lan-ipv6-subnet "lan0" "2001:db8:1:10::/64" "2001:db8:1::/48">',
        '<lan-ipv6-error "lan0" "delegated prefix: subnet 16 does not fit 2001:db8:0:10::/60: a /60 has subnets 0 to 15">',
      ),
    );
  });

  it('says that nothing announces the prefixes without <lan-dhcp IF …>', async () => {
    const t = await start();
    t.assertText('<lan-ipv6 "lan1" {subnet: 2 ula: #f}>');
    t.assertText('<delegated-prefix "wan0" "2001:db8:0:100::/56" {} <dhcpv6 "wan0">>');
    await t.engine.sync();
    assert.deepEqual(
      t.derived(),
      sorted(
        '<ip-address "lan1" "2001:db8:0:102::1/64" {}>',
        '<lan-ipv6-subnet "lan1" "2001:db8:0:102::/64" "2001:db8:0:100::/56">',
        `<lan-ipv6-error "lan1" "no <lan-dhcp \\"lan1\\" …>: the router's addresses are installed, but router advertisements come from the LAN's dnsmasq, so LAN hosts get no IPv6 address">`,
      ),
    );
  });

  it('reports a bad spec and two specs for one interface, desiring nothing', async () => {
    const t = await start();
    const a = t.assertText('<lan-ipv6 "lan0" {subnet: -1}>');
    t.assertText('<delegated-prefix "wan0" "2001:db8:0:100::/56" {} <dhcpv6 "wan0">>');
    await t.engine.sync();
    assert.deepEqual(
      t.derived(),
      sorted('<lan-ipv6-error "lan0" "subnet must be a whole number from 0 to 65535, not -1">'),
    );
    t.assertText('<lan-ipv6 "lan0" {subnet: 2}>');
    await t.engine.sync();
    assert.deepEqual(
      t.derived(),
      sorted('<lan-ipv6-error "lan0" "2 different lan-ipv6 specs for this interface: keep one">'),
    );
    t.retract(a);
    await t.engine.sync();
    assert.ok(t.derived().includes(stringify(v('<ip-address "lan0" "2001:db8:0:102::1/64" {}>'))));
  });
});
