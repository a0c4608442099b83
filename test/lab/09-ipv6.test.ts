// IPv6 end to end, in the lab with real peers (src/lab/ipv6-isp.ts): the ISP's
// radvd and Kea (DHCPv6 with prefix delegation, routing each delegated prefix to
// the router) and limen running examples/home-router, whose WAN asks for a /56
// and whose LAN announces subnet 1 of it by dnsmasq's router advertisements.
//
//   1. cold start: the delegated prefix (its unused rest unreachable at the router),
//      lan0's /64, lan1's SLAAC address, and a fetch of http://world.test/ by name
//      over IPv6 (its AAAA through the router); lan1 in `limen clients` with both
//      its IPv4 lease and its IPv6 address
//   2. the ISP renumbers: the LAN follows, the old prefix is deprecated on lan1
//      (preferred lifetime 0), lan1 gets an address of the new one and uses it
//   3. the WAN loses carrier: the IPv6 default route, the delegation, lan0's
//      prefix and <default-route ipv6> go, and come back with the carrier
//   4. the firewall: the world cannot open a connection to lan1's global address
//      until an <ipv6-allow …> names lan1's interface identifier; lan1's own
//      connections get their replies; an ICMPv6 packet-too-big from the ISP
//      reaches lan1 (its route to the world learns the smaller MTU)

import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import {
  WORLD_ADDRESS6,
  delegationPool,
  firstDelegation,
  lanPrefix,
} from '../../src/lab/ipv6-isp.ts';
import type { Lab, LabNode } from '../../src/lab/lab.ts';
import { until } from '../support/until.ts';
import {
  WORLD_NAME,
  cliOk,
  fetch6Until,
  globals6,
  labSkip,
  query,
  routerLogTail,
  show6 as show,
  slaacAddressIn,
  withLab,
  writeSiteFile,
} from './harness.ts';

describe('IPv6 end to end in the lab', { skip: labSkip(), timeout: 300_000 }, () => {
  const getLab = withLab();
  let lab: Lab;
  const lan1AddressIn = (prefix: string) => slaacAddressIn(lab, 'lan1', prefix);

  before(() => {
    lab = getLab();
    assert.ok(lab.ipv6, 'the lab serves IPv6');
  });

  it('cold start: a delegated /56, lan0 its /64, lan1 a SLAAC address, world.test by name over IPv6', async (t) => {
    const delegation = firstDelegation(0);
    const prefixes = await until(
      async () => {
        const p = await query(lab, '<delegated-prefix "wan0" _ _ _>');
        return p.length > 0 ? p : undefined;
      },
      { timeoutMs: 30_000, describe: () => `a delegated prefix${routerLogTail(lab)}` },
    );
    assert.equal(prefixes.length, 1, prefixes.join('\n'));
    assert.match(prefixes[0]!, new RegExp(`^<delegated-prefix "wan0" "${delegation}" `));
    // lan0: the router's address in subnet 1, and the ISP routes the /56 to the router.
    await until(() => globals6(lab, 'rtr', 'lan0').some((a) => a.cidr === `${lanPrefix(0)}:1/64`), {
      timeoutMs: 10_000,
      describe: () =>
        `lan0 with ${lanPrefix(0)}:1/64 (seen: ${show(globals6(lab, 'rtr', 'lan0'))})`,
    });
    assert.deepEqual(await query(lab, `<lan-ipv6-subnet "lan0" "${lanPrefix(0)}:/64" _>`), [
      `<lan-ipv6-subnet "lan0" "${lanPrefix(0)}:/64" "${delegation}">`,
    ]);
    const ispRoutes = lab.exec('isp', ['ip', '-6', 'route', 'show', delegation]).stdout;
    assert.match(ispRoutes, /via fe80::\S+ dev to-rtr/, `the ISP's route to ${delegation}`);
    assert.equal((await query(lab, '<default-route ipv6>')).length, 1);
    // The unused rest of the /56 is unreachable at the router, not sent back to the ISP.
    await until(
      () => /^unreachable /.test(lab.exec('rtr', ['ip', '-6', 'route', 'show', delegation]).stdout),
      {
        timeoutMs: 10_000,
        describe: () => `rtr: ${lab.exec('rtr', ['ip', '-6', 'route', 'show', delegation]).stdout}`,
      },
    );
    const unused = `${delegationPool(0).split('::')[0]}:5::1`;
    const probe = lab.exec('world', ['ping', '-6', '-c', '1', '-W', '2', unused]);
    assert.match(probe.stdout, /Destination unreachable: No route/, probe.stdout + probe.stderr);

    const lan1 = await lan1AddressIn(lanPrefix(0));
    t.diagnostic(`lan1: ${lan1}`);
    // The name by the router (lan1's only resolver is 192.168.8.1): its AAAA record.
    const ahosts = lab.exec('lan1', ['getent', 'ahostsv6', WORLD_NAME]).stdout;
    assert.match(ahosts, new RegExp(`^${WORLD_ADDRESS6.replace(/:/g, ':')}\\s`, 'm'), ahosts);
    // No NAT66: the world sees lan1's own address (curl reports the one it used).
    await fetch6Until(lab, 'lan1', lan1);
    // The client list joins lan1's DHCPv4 lease and its SLAAC address (a neighbour of
    // the router's now) by MAC.
    let clients = '';
    await until(
      async () => {
        clients = await cliOk(lab, 'clients', '--json');
        const rows = JSON.parse(clients) as { hostname: unknown; ipv4: string[]; ipv6: string[] }[];
        return rows.some(
          (r) => r.hostname === 'lan1' && r.ipv4.length === 1 && r.ipv6.includes(lan1),
        );
      },
      {
        timeoutMs: 15_000,
        describe: () => `lan1 with ${lan1} in limen clients --json: ${clients}`,
      },
    );
  });

  it('the ISP renumbers: the LAN follows, the old prefix is deprecated, lan1 uses the new one', async (t) => {
    const old = lanPrefix(0);
    await lab.renumberIspIpv6(1);
    const sent = Date.now();
    await cliOk(lab, 'send', '<dhcpv6-renew "wan0">');
    let seen: string[] = [];
    await until(
      async () => {
        seen = await query(lab, '<delegated-prefix "wan0" _ _ _>');
        return seen.length === 1 && seen[0]!.includes(`"${firstDelegation(1)}"`);
      },
      {
        timeoutMs: 30_000,
        describe: () =>
          `only ${firstDelegation(1)} delegated (seen: ${seen.join(' | ')})${routerLogTail(lab)}`,
      },
    );
    await until(
      () => {
        const a = globals6(lab, 'rtr', 'lan0').map((x) => x.cidr);
        return a.includes(`${lanPrefix(1)}:1/64`) && !a.some((x) => x.startsWith(old));
      },
      {
        timeoutMs: 10_000,
        describe: () => `lan0 renumbered (seen: ${show(globals6(lab, 'rtr', 'lan0'))})`,
      },
    );
    const lan1 = await lan1AddressIn(lanPrefix(1));
    t.diagnostic(`lan1 has ${lan1} ${Date.now() - sent} ms after the renew`);
    // Kea sent the old prefix back with lifetimes 0: a withdrawal, not a failure.
    assert.deepEqual(await query(lab, '<dhcpv6-error "wan0" _>'), []);
    assert.match(
      (await query(lab, '<dhcpv6-lease "wan0" _>'))[0] ?? '',
      new RegExp(`withdrawn: \\["prefix ${firstDelegation(0)}"\\]`),
    );
    // The old prefix is announced deprecated, not silently dropped.
    await until(
      () => {
        const o = globals6(lab, 'lan1', 'eth0').filter((a) => a.cidr.startsWith(old));
        return o.length > 0 && o.every((a) => a.deprecated);
      },
      {
        timeoutMs: 30_000,
        describe: () =>
          `lan1's ${old}:/64 address deprecated (seen: ${show(globals6(lab, 'lan1', 'eth0'))})`,
      },
    );
    await fetch6Until(lab, 'lan1', lan1);
  });

  it('the WAN loses carrier: the IPv6 default route, the delegation and the LAN prefix go, and return', async () => {
    const carrier = (up: boolean) => {
      const r = lab.exec('isp', ['ip', 'link', 'set', 'to-rtr', up ? 'up' : 'down']);
      assert.equal(r.status, 0, r.stderr);
    };
    const state = async () => ({
      prefixes: await query(lab, '<delegated-prefix "wan0" _ _ _>'),
      defaultRoute: await query(lab, '<default-route ipv6>'),
      kernelRoute: lab.exec('rtr', ['ip', '-6', 'route', 'show', 'default']).stdout.trim(),
      lan0: globals6(lab, 'rtr', 'lan0')
        .map((a) => a.cidr)
        .filter((a) => a.startsWith('2001:db8:')),
    });
    let seen = {};
    carrier(false);
    try {
      await until(
        async () => {
          const s = await state();
          seen = s;
          return (
            s.prefixes.length === 0 &&
            s.defaultRoute.length === 0 &&
            (s.kernelRoute === '' || /\blinkdown\b/.test(s.kernelRoute)) &&
            s.lan0.length === 0
          );
        },
        {
          timeoutMs: 30_000,
          describe: () =>
            `everything IPv6 withdrawn (seen: ${JSON.stringify(seen)})${routerLogTail(lab)}`,
        },
      );
      // The ULA prefix stays: LAN hosts keep their addresses among themselves.
      assert.ok(
        globals6(lab, 'rtr', 'lan0').some((a) => a.cidr.startsWith('fd')),
        show(globals6(lab, 'rtr', 'lan0')),
      );
    } finally {
      carrier(true);
    }
    await until(
      async () => {
        const s = await state();
        seen = s;
        return (
          s.prefixes.length === 1 &&
          s.defaultRoute.length === 1 &&
          s.kernelRoute.startsWith('default via fe80:') &&
          s.lan0.includes(`${lanPrefix(1)}:1/64`)
        );
      },
      {
        timeoutMs: 60_000,
        describe: () => `IPv6 back (seen: ${JSON.stringify(seen)})${routerLogTail(lab)}`,
      },
    );
    await fetch6Until(lab, 'lan1', await lan1AddressIn(lanPrefix(1)));
  });

  it('the firewall: the world cannot open a connection to lan1; packet-too-big reaches lan1', async () => {
    const lan1 = await lan1AddressIn(lanPrefix(1));
    // A server on lan1, which the world must not reach (no allow rule for it).
    lab.startProcess('lan1/httpd6', 'lan1', [
      'busybox',
      'httpd',
      '-f',
      '-p',
      '[::]:8080',
      '-h',
      join(lab.dir, 'world', 'www'),
    ]);
    try {
      await until(
        async () =>
          (await lab.execAsync('lan1', ['ss', '-Hltn', 'sport = :8080'], 5000)).stdout.trim() !==
          '',
        { timeoutMs: 10_000, describe: () => 'lan1 listening on 8080' },
      );
      const url = `http://[${lan1}]:8080/`;
      /** One GET from node (connecting for at most 2 s): the HTTP status, or curl's error. */
      const ask = async (node: LabNode) => {
        const r = await lab.execAsync(node, [
          'curl',
          '-6',
          '-sS',
          '-o',
          '/dev/null',
          '-w',
          '%{http_code}',
          '--connect-timeout',
          '2',
          url,
        ]);
        return /^[1-5]\d\d$/.test(r.stdout) ? r.stdout : `failed: ${r.stderr.trim()}`;
      };
      // From lan2 (the same LAN) it answers: the server is there.
      assert.match(await ask('lan2'), /^[1-5]\d\d$/);
      // From the world: dropped (a timeout, not a refusal).
      assert.match(await ask('world'), /^failed: .*(timed out|Timeout)/i);
      // An IPv6 "port forward": allowed to lan1's interface identifier, whatever the prefix.
      const suffix = `::${lan1.split(':').slice(4).join(':')}`;
      writeSiteFile(lab, 'core/allow6.pr', `<ipv6-allow wan tcp 8080 "${suffix}">\n`);
      let last = '';
      await until(async () => /^[1-5]\d\d$/.test((last = await ask('world'))), {
        timeoutMs: 20_000,
        describe: () =>
          `the world reaching lan1:8080 once allowed (last: ${last})${routerLogTail(lab)}`,
      });
    } finally {
      await lab.stopProcess('lan1/httpd6');
    }

    // Packet too big: the ISP's link to the world shrinks to 1280 bytes; a 1400-byte
    // echo from lan1 makes the ISP answer with ICMPv6 packet-too-big, which must pass
    // the router's forward chain (related to lan1's flow) for lan1 to learn the MTU.
    const mtu = (m: number) => {
      for (const [node, dev] of [
        ['isp', 'to-world'],
        ['world', 'eth0'],
      ] as const)
        assert.equal(lab.exec(node, ['ip', 'link', 'set', dev, 'mtu', String(m)]).status, 0);
    };
    mtu(1280);
    try {
      const ping = lab.exec('lan1', [
        'ping',
        '-6',
        '-c',
        '1',
        '-W',
        '2',
        '-s',
        '1400',
        WORLD_ADDRESS6,
      ]);
      const route = await until(
        () => {
          const r = lab.exec('lan1', ['ip', '-6', 'route', 'get', WORLD_ADDRESS6]).stdout;
          return /\bmtu 1280\b/.test(r) ? r : undefined;
        },
        {
          timeoutMs: 5000,
          describe: () =>
            `lan1's route to ${WORLD_ADDRESS6} with mtu 1280 (ping said: ${ping.stdout}${ping.stderr})`,
        },
      );
      assert.match(route, /mtu 1280/);
    } finally {
      mtu(1500);
    }
  });
});
