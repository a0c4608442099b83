// The ISP renumbers its side of the WAN (100.64.0.0/24 → 100.64.1.0/24) and the
// router is asked to renew (`limen send '<dhcp-renew "wan0">'`). The ISP's
// authoritative DHCP server refuses the old address; the old lease is withdrawn
// with everything built on it (the address and the default route leave the
// kernel, <default-route ipv4> is retracted, ntpd, which depends on it, stops);
// the new lease builds it all again in the new range, and lan1 still reaches the
// world by name.
//
// The ISP keeps its DHCP server identity (100.64.0.1) while it renumbers, as a
// real one does: busybox udhcpc ignores a NAK from a server id other than the
// one it holds the lease from, so this is what makes the NAK end the old lease
// at once (the last test checks udhcpc acted on it).

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  NTPD,
  WORLD_NAME,
  cliOk,
  defaultRoutes,
  fetchUntil,
  ipv4Addresses,
  labSkip,
  pidOf,
  query,
  routerLogTail,
  services,
  showServices,
  wanLeaseAddress,
  watch,
  withLab,
  type Watch,
} from './harness.ts';
import { until } from '../support/until.ts';
import type { Lab } from '../../src/lab/lab.ts';

describe(
  'the ISP renumbers: the old lease goes with what it built, the new one rebuilds it',
  {
    skip: labSkip(),
    timeout: 300_000,
  },
  () => {
    const getLab = withLab();
    let lab: Lab;
    let oldIp: string;
    let oldNtpd: number;
    let configWatch: Watch;
    let machineWatch: Watch;

    before(async () => {
      lab = getLab();
      oldIp = (await wanLeaseAddress(lab))!;
      assert.match(oldIp, /^100\.64\.0\.\d+$/);
      oldNtpd = pidOf(await services(lab), NTPD)!;
      configWatch = watch(lab, 'config', '<dhcp-lease "wan0" _>', '<default-route ipv4>');
      machineWatch = watch(
        lab,
        'machine',
        '<address "wan0" ipv4 _ _ _>',
        '<route ipv4 "default" _ main _ _>',
      );
      // The watches start with what is there now.
      await until(
        () =>
          configWatch.lines().some((l) => l.startsWith('+ <default-route ipv4>')) &&
          configWatch.lines().some((l) => l.startsWith('+ <dhcp-lease "wan0"')) &&
          machineWatch.lines().some((l) => l.startsWith('+ <route ipv4 "default"')),
        {
          timeoutMs: 10_000,
          describe: () =>
            `the watches showing the current lease: ${[...configWatch.lines(), ...machineWatch.lines()].join('\n')}`,
        },
      );
    });

    after(async () => {
      await configWatch?.stop();
      await machineWatch?.stop();
    });

    it('renumbering and a renew bring a lease in 100.64.1.0/24, its address and default route', async (t) => {
      await lab.renumberIsp(1);
      const sent = Date.now();
      await cliOk(lab, 'send', '<dhcp-renew "wan0">');
      let seen = '';
      await until(
        async () => {
          const ip = await wanLeaseAddress(lab);
          const addrs = ipv4Addresses(lab, 'rtr', 'wan0');
          const routes = defaultRoutes(lab);
          const dr = await query(lab, '<default-route ipv4>');
          seen = `lease ${ip}, wan0 ${addrs.join(' ')}, routes ${routes.join(' | ')}, <default-route ipv4> ${dr.length}`;
          return (
            ip?.startsWith('100.64.1.') === true &&
            addrs.length === 1 &&
            addrs[0] === `${ip}/24` &&
            routes.length === 1 &&
            routes[0]!.startsWith('default via 100.64.1.1 dev wan0') &&
            dr.length === 1
          );
        },
        {
          timeoutMs: 60_000,
          intervalMs: 200,
          describe: () => `the new lease in place (seen: ${seen})${routerLogTail(lab)}`,
        },
      );
      t.diagnostic(`the new lease in place ${Date.now() - sent} ms after the renew request`);
    });

    it('the ISP refused to renew the old address (DHCPNAK)', () => {
      const log = readFileSync(join(lab.dir, 'isp', 'dnsmasq.log'), 'utf8');
      assert.ok(
        log.split('\n').some((l) => l.includes(`DHCPNAK(to-rtr) ${oldIp} `)),
        `no DHCPNAK for ${oldIp} in the ISP's log:\n${log.split('\n').slice(-20).join('\n')}`,
      );
    });

    it('the old lease, address and default route were withdrawn before the new ones came', () => {
      const c = configWatch.lines();
      const m = machineWatch.lines();
      const show = () => `config:\n${c.join('\n')}\nmachine:\n${m.join('\n')}`;
      const oldLeaseGone = c.findIndex(
        (l) => l.startsWith('- <dhcp-lease "wan0"') && l.includes(`ip: "${oldIp}"`),
      );
      const newLease = c.findIndex(
        (l) => l.startsWith('+ <dhcp-lease "wan0"') && l.includes('ip: "100.64.1.'),
      );
      assert.ok(oldLeaseGone >= 0, `<dhcp-lease> for ${oldIp} was never retracted:\n${show()}`);
      assert.ok(newLease > oldLeaseGone, `the new lease came before the old one went:\n${show()}`);
      const routeGone = c.indexOf('- <default-route ipv4>');
      const routeBack = c.lastIndexOf('+ <default-route ipv4>');
      assert.ok(routeGone >= 0, `<default-route ipv4> was never retracted:\n${show()}`);
      assert.ok(routeBack > routeGone, `<default-route ipv4> did not come back:\n${show()}`);
      // In the kernel (as the interface monitor reported it).
      assert.ok(
        m.some((l) => l.startsWith(`- <address "wan0" ipv4 "${oldIp}" 24`)),
        `the old address never left the kernel:\n${show()}`,
      );
      assert.ok(
        m.some((l) => l.startsWith('- <route ipv4 "default"') && l.includes('"100.64.0.1">')),
        `the old default route never left the kernel:\n${show()}`,
      );
    });

    it('ntpd, which needs <default-route ipv4>, stopped and runs again with a new process', async () => {
      let seen = '';
      const pid = await until(
        async () => {
          const s = await services(lab);
          seen = showServices(s);
          const p = pidOf(s, NTPD);
          return s.get(NTPD)?.state === 'ready' && p !== undefined && p !== oldNtpd ? p : undefined;
        },
        {
          timeoutMs: 30_000,
          intervalMs: 200,
          describe: () => `ntpd running again with a new PID (was ${oldNtpd}; seen: ${seen})`,
        },
      );
      assert.notEqual(pid, oldNtpd);
      assert.equal((await query(lab, `<service-state ${NTPD} up>`)).length, 1);
    });

    it('lan1 still reaches the world by name', async () => {
      await fetchUntil(lab, 'lan1', `http://${WORLD_NAME}/`);
    });

    it('udhcpc takes the NAK: the old lease ends at once, not after its renew attempts', () => {
      // udhcpc logs "received DHCP NAK" when it acts on one (and runs its script with `nak`).
      const log = readFileSync(lab.routerLog, 'utf8');
      assert.match(log, /received DHCP NAK/);
    });
  },
);
