// The LAN half of IPv6 with a real dnsmasq and a real client kernel, in namespaces:
// `<lan-ipv6 "lan0" {subnet: 1}>` and a delegated /56 give the router 2001:db8:0:101::1/64
// and the ULA's fd12:3456:789a:1::1/64 on lan0 (src/net/lan-ipv6.ts), the LAN driver
// (src/net/lan-dhcp.ts) writes a dnsmasq.conf with router advertisements, and a client
// with accept_ra=1 takes a SLAAC address in both /64s, sees the router's link-local
// address as RDNSS (rdisc6), and, when the ISP renumbers, an address in the new /64
// while the old one is deprecated (preferred lifetime 0) by dnsmasq's RA.
//
// The delegated prefix is asserted by the test: the WAN half (dhcpcd, IA_PD) is tested
// in test/integration/net/dhcpv6.test.ts. The test stands in for the address
// reconciler (tested in address-route.test.ts): it installs in the router namespace the
// `<ip-address "lan0" …>`s the driver desires, with their lifetimes, and removes the
// ones it retracts. dnsmasq runs under the test, not the supervisor, with the
// configuration the driver wrote.

import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Dataspace, P, type Handle } from '../../../src/dataspace/index.ts';
import { parse, peel, sym, type Dict, type Value } from '../../../src/preserves/index.ts';
import { startLanDhcp } from '../../../src/net/lan-dhcp.ts';
import { ULA_FILE, startLanIpv6 } from '../../../src/net/lan-ipv6.ts';
import { checkedEngine } from '../../support/engine-log.ts';
import { testNamespace } from '../../support/names.ts';
import { until } from '../../support/until.ts';
import { inNs, netns, run, skipReason, spawnInNs, tryInNs, veth } from './harness-lan-netns.ts';

const skip = skipReason(['dnsmasq', 'ip', 'rdisc6']);

interface AddrInfo {
  family: string;
  local: string;
  prefixlen: number;
  scope: string;
  valid_life_time: number;
  preferred_life_time: number;
}

function globalAddresses(ns: string, ifname: string): AddrInfo[] {
  const out = JSON.parse(inNs(ns, ['ip', '-6', '-j', 'addr', 'show', 'dev', ifname])) as {
    addr_info: AddrInfo[];
  }[];
  return (out[0]?.addr_info ?? []).filter((a) => a.scope === 'global');
}

function inPrefix(a: AddrInfo, prefix: string): boolean {
  return a.prefixlen === 64 && a.local.startsWith(prefix);
}

async function setup(t: TestContext) {
  const router = netns(t, testNamespace('l6r'));
  const client = netns(t, testNamespace('l6c'));
  veth(
    { ns: router, name: 'lan0', address: '192.168.78.1/24' },
    { ns: client, name: 'eth0', mac: '02:00:00:00:78:01' },
  );
  inNs(client, ['sysctl', '-q', '-w', 'net.ipv6.conf.eth0.accept_ra=1']);
  inNs(client, ['sysctl', '-q', '-w', 'net.ipv6.conf.eth0.autoconf=1']);
  inNs(router, ['sysctl', '-q', '-w', 'net.ipv6.conf.all.forwarding=1']);
  const dir = await mkdtemp(join(tmpdir(), 'limen-lan-ipv6-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await chmod(dir, 0o755);
  await writeFile(join(dir, ULA_FILE), 'fd12:3456:789a::/48\n');

  const { engine } = checkedEngine(t);
  const config = new Dataspace(engine, 'config');
  const machine = new Dataspace(engine, 'machine');
  let lan!: ReturnType<typeof startLanDhcp>;
  engine.turn(() => {
    startLanIpv6(engine.root, { config: config.ref, stateDir: dir });
    lan = startLanDhcp(engine.root, {
      config: config.ref,
      machine: machine.ref,
      runDir: dir,
      user: 'root',
    });
  });
  t.after(() => engine.turn(() => engine.root.stop()));
  const assertText = (text: string): Handle => {
    let h: Handle | undefined;
    engine.turn(() => (h = engine.root.assert(config.ref, parse(text))));
    return h!;
  };
  const retract = (h: Handle) => engine.turn(() => engine.root.retract(h));

  /** The reconciler's stand-in: lan0's addresses follow the desired ones. */
  const installed = new Map<string, string>();
  const applyDesired = (): string[] => {
    const want = new Map<string, Value>();
    for (const r of config.query(P.rec('ip-address', P.lit('lan0'), P.bind('cidr'), P.bind('l'))))
      want.set(peel(r.captures.get('cidr')!) as string, r.captures.get('l')!);
    for (const [cidr, l] of want) {
      if (installed.has(cidr)) continue;
      const d = peel(l) as Dict;
      const life = (k: string) => {
        const n = d.get(sym(k));
        return typeof n === 'number' ? String(n) : 'forever';
      };
      inNs(router, [
        'ip', 'addr', 'add', cidr, 'dev', 'lan0',
        'valid_lft', life('valid'), 'preferred_lft', life('preferred'),
      ]); // prettier-ignore
      installed.set(cidr, cidr);
    }
    for (const cidr of installed.keys()) {
      if (want.has(cidr)) continue;
      inNs(router, ['ip', 'addr', 'del', cidr, 'dev', 'lan0']);
      installed.delete(cidr);
    }
    return [...want.keys()].sort();
  };
  return { router, client, dir, engine, config, lan, assertText, retract, applyDesired };
}

describe('lan-ipv6 with dnsmasq and a SLAAC client', { skip, timeout: 90_000 }, () => {
  it('announces the delegated /64 and the ULA /64 with RDNSS, and deprecates a renumbered prefix', async (t) => {
    const s = await setup(t);
    s.assertText('<lan-dhcp "lan0" {range: ["192.168.78.100" "192.168.78.200"]}>');
    s.assertText('<lan-ipv6 "lan0" {subnet: 1}>');
    const first = s.assertText(
      '<delegated-prefix "wan0" "2001:db8:0:100::/56" {valid: 7200 preferred: 3600 renewed: "bound6 1"} <dhcpv6 "wan0">>',
    );
    await until(
      () => s.applyDesired().join(' ') === '2001:db8:0:101::1/64 fd12:3456:789a:1::1/64',
      { describe: () => `lan0's desired addresses: ${s.applyDesired().join(' ')}` },
    );
    const confPath = join(s.lan.directory('lan0'), 'dnsmasq.conf');
    const conf = await until(() => readFile(confPath, 'utf8').catch(() => ''), {
      describe: () => `the driver to write ${confPath}`,
    });
    assert.match(conf, /^enable-ra$/m);
    assert.match(conf, /^dhcp-range=::,constructor:lan0,ra-stateless,64$/m);
    const dnsmasq = spawnInNs(t, s.router, [
      'dnsmasq',
      '--keep-in-foreground',
      `--conf-file=${confPath}`,
    ]);
    // The client's own solicitations may have gone before dnsmasq listened: ask again.
    run(['ip', '-n', s.client, 'link', 'set', 'eth0', 'down']);
    run(['ip', '-n', s.client, 'link', 'set', 'eth0', 'up']);
    const seen = () =>
      `client: ${JSON.stringify(globalAddresses(s.client, 'eth0'))}\ndnsmasq: ${dnsmasq.stderr}`;
    await until(
      () => {
        const a = globalAddresses(s.client, 'eth0');
        return (
          a.some((x) => inPrefix(x, '2001:db8:0:101:')) &&
          a.some((x) => inPrefix(x, 'fd12:3456:789a:1:'))
        );
      },
      { timeoutMs: 20_000, describe: seen },
    );
    const global = globalAddresses(s.client, 'eth0').find((x) => inPrefix(x, '2001:db8:0:101:'))!;
    // The delegated prefix's lifetimes reach the client (dnsmasq counts them down).
    assert.ok(global.preferred_life_time > 0 && global.preferred_life_time <= 3600, seen());
    assert.ok(global.valid_life_time > 3600 && global.valid_life_time <= 7200, seen());

    // RDNSS: the router's link-local address, in the RA rdisc6 solicits.
    const routerLinkLocal = (
      JSON.parse(inNs(s.router, ['ip', '-6', '-j', 'addr', 'show', 'dev', 'lan0'])) as {
        addr_info: AddrInfo[];
      }[]
    )[0]!.addr_info.find((a) => a.scope === 'link')!.local;
    const ra = tryInNs(s.client, ['rdisc6', '-1', '-w', '3000', 'eth0'], 20_000);
    assert.equal(ra.status, 0, ra.stderr);
    assert.match(ra.stdout, new RegExp(`Recursive DNS server\\s*:\\s*${routerLinkLocal}`));
    assert.match(ra.stdout, /Prefix\s*:\s*2001:db8:0:101::\/64/);
    assert.match(ra.stdout, /Prefix\s*:\s*fd12:3456:789a:1::\/64/);
    assert.match(ra.stdout, /Stateful other conf\.\s*:\s*Yes/);

    // The ISP renumbers: a new /56 replaces the old one.
    s.assertText(
      '<delegated-prefix "wan0" "2001:db8:0:200::/56" {valid: 7200 preferred: 3600 renewed: "renew6 2"} <dhcpv6 "wan0">>',
    );
    s.retract(first);
    await until(
      () => s.applyDesired().join(' ') === '2001:db8:0:201::1/64 fd12:3456:789a:1::1/64',
      { describe: () => `lan0's desired addresses: ${s.applyDesired().join(' ')}` },
    );
    await until(
      () => {
        const a = globalAddresses(s.client, 'eth0');
        const old = a.find((x) => inPrefix(x, '2001:db8:0:101:'));
        return (
          a.some((x) => inPrefix(x, '2001:db8:0:201:') && x.preferred_life_time > 0) &&
          old !== undefined &&
          old.preferred_life_time === 0 &&
          old.valid_life_time > 0
        );
      },
      { timeoutMs: 20_000, describe: seen },
    );
    // The ULA address stays, preferred: LAN hosts keep reaching each other.
    const ula = globalAddresses(s.client, 'eth0').find((x) => inPrefix(x, 'fd12:3456:789a:1:'))!;
    assert.ok(ula.preferred_life_time > 0, seen());
  });
});
