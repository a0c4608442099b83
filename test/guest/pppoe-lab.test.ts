// The lab over PPPoE (issue 14, its tests 1, 2, 3 and 7; and IPv6 over it), run
// INSIDE limen's VM: test/vm/pppoe.test.ts boots it and runs this file there (this
// machine's kernel has no PPP; `npm test` never runs test/guest on the host). Real
// peers only: Debian's pppoe-server with CHAP at the ISP, limen in rtr dialling it
// with pppd, the LAN clients behind it; and on each session the ISP's radvd and Kea
// (DHCPv6 with prefix delegation) on its end of the PPP link (src/lab/ipv6-isp.ts),
// limen asking for a /56 over ppp-wan0 (`<dhcpv6 {prefix-hint: 56}>`).

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Lab } from '../../src/lab/lab.ts';
import { firstDelegation, lanPrefix } from '../../src/lab/ipv6-isp.ts';
import { processStartTime } from '../../src/lab/system.ts';
import { inVm } from '../../src/lab/vm-lab.ts';
import { until } from '../support/until.ts';
import {
  NTPD,
  PPPD_WAN,
  WORLD_NAME,
  cli,
  defaultRoutes,
  fetch6Until,
  fetchUntil,
  globals6,
  isGone,
  nftChain,
  pidOf,
  query,
  routerLogTail,
  services,
  show6,
  showServices,
  slaacAddressIn,
  status,
  watch,
  withLab,
  type Watch,
} from '../lab/harness.ts';

const skip = inVm() ? false : 'runs inside limen’s VM (test/vm/pppoe.test.ts)';
const resolvConf = () =>
  existsSync('/etc/resolv.conf') ? readFileSync('/etc/resolv.conf', 'utf8') : '';

describe('the lab over PPPoE', { skip, timeout: 900_000 }, () => {
  const before0 = resolvConf();
  const getLab = withLab({ wan: 'pppoe', upTimeoutMs: 240_000 });
  let lab: Lab;
  let w: Watch;
  before(() => {
    lab = getLab();
    w = watch(lab, 'config', '<default-route ipv4>', '<ppp-session "wan0" _>');
  });
  after(() => w.stop());

  it('cold start: lan1 fetches world.test by name through the PPP link, MSS clamped, the WAN zone follows ppp-wan0', async () => {
    assert.ok(
      defaultRoutes(lab).some((r) => r.startsWith('default dev ppp-wan0')),
      defaultRoutes(lab).join('\n'),
    );
    await fetchUntil(lab, 'lan1', `http://${WORLD_NAME}/`, { timeoutMs: 60_000 });
    // IPV6CP ran: the link has its IPv6 link-local address.
    const v6 = lab.exec('rtr', ['ip', '-6', 'addr', 'show', 'dev', 'ppp-wan0']).stdout;
    assert.match(v6, /inet6 fe80::\S+ .*scope link/, v6);
    assert.match(nftChain(lab, 'forward'), /tcp option maxseg size set rt mtu/);
    // (nft lists a set's elements in its own order.)
    assert.match(
      nftChain(lab, 'input'),
      /iifname \{ ("ppp-wan0", "wan0"|"wan0", "ppp-wan0") \} jump input_wan/,
    );
    // Debian's 0000usepeerdns never ran for limen's link (ip-up.local ran limen's hook alone).
    assert.equal(resolvConf(), before0, '/etc/resolv.conf is untouched');
    assert.deepEqual(
      readdirSync('/etc').filter((f) => f.startsWith('resolv.conf.pppd-backup')),
      [],
    );
  });

  it('IPv6 over PPPoE: a /56 delegated over ppp-wan0, lan0 its /64, lan1 fetches world.test over IPv6; all withdrawn when the ISP ends the session, and back after the redial', async (t) => {
    const delegation = firstDelegation(0);
    const subnet = `${lanPrefix(0)}:/64`;
    // Records that change only when the session does (so a "-" is a withdrawal).
    const items = [
      `<delegated-prefix "ppp-wan0" "${delegation}"`,
      `<lan-ipv6-subnet "lan0" "${subnet}" "${delegation}">`,
      '<default-route ipv6>',
    ];
    const v6 = watch(
      lab,
      'config',
      '<delegated-prefix _ _ _ _>',
      '<lan-ipv6-subnet "lan0" _ _>',
      '<default-route ipv6>',
    );
    t.after(() => v6.stop());
    const shown = (from = 0) => `watch:\n${v6.lines().slice(from).join('\n')}${routerLogTail(lab)}`;
    await until(() => items.every((i) => v6.lines().some((l) => l.startsWith(`+ ${i}`))), {
      timeoutMs: 120_000,
      describe: () => `${delegation} delegated over ppp-wan0, ${subnet} on lan0; ${shown()}`,
    });
    const prefixes = await query(lab, '<delegated-prefix _ _ _ _>');
    assert.equal(prefixes.length, 1, prefixes.join('\n'));
    // The router's address in the /64 is in the kernel; the ISP routes the /56 to the
    // router's end of the session; the IPv6 default route is the ISP's RA's.
    await until(() => globals6(lab, 'rtr', 'lan0').some((a) => a.cidr === `${lanPrefix(0)}:1/64`), {
      timeoutMs: 30_000,
      describe: () =>
        `lan0 with ${lanPrefix(0)}:1/64 (seen: ${show6(globals6(lab, 'rtr', 'lan0'))})`,
    });
    const ispRoute = lab.exec('isp', ['ip', '-6', 'route', 'show', delegation]).stdout;
    assert.match(ispRoute, /via fe80::\S+ dev ppp\d+/, `the ISP's route to ${delegation}`);
    const rtrRoute = lab.exec('rtr', ['ip', '-6', 'route', 'show', 'default']).stdout;
    assert.match(rtrRoute, /^default via fe80::1 dev ppp-wan0 proto ra/, rtrRoute);
    const lan1 = await slaacAddressIn(lab, 'lan1', lanPrefix(0), 60_000);
    t.diagnostic(`lan1: ${lan1}`);
    await fetch6Until(lab, 'lan1', lan1, 60_000);

    // The ISP ends the session: the interface goes, and everything IPv6 of it with it.
    const from = v6.lines().length;
    const fromSessions = w.lines().length;
    const since = () => v6.lines().slice(from);
    const last = (sign: '+' | '-', i: string) =>
      since().findLastIndex((l) => l.startsWith(`${sign} ${i}`));
    assert.ok(lab.killIspSessions() >= 1, 'the ISP had a session to end');
    await until(() => items.every((i) => last('-', i) >= 0), {
      timeoutMs: 60_000,
      describe: () => `the prefix, lan0's /64 and the IPv6 default route withdrawn; ${shown(from)}`,
    });
    // The redial: a new session, then the same /56 (Kea's first) back over its link.
    // (The old link may flap before it goes: what counts is the state after the new
    // session came up.)
    await until(
      () =>
        w
          .lines()
          .slice(fromSessions)
          .some((l) => l.startsWith('+ <ppp-session "wan0"')) &&
        items.every((i) => last('+', i) > last('-', i)),
      {
        timeoutMs: 180_000,
        describe: () =>
          `a new session, and the prefix, lan0's /64 and the IPv6 default route back; sessions:\n${w.lines().slice(fromSessions).join('\n')}\n${shown(from)}`,
      },
    );
    await fetch6Until(lab, 'lan1', await slaacAddressIn(lab, 'lan1', lanPrefix(0), 60_000), 60_000);
    // Nothing failed on the way: no link-error for the ppp0 that pppd renames, no
    // sysctl-error for ppp-wan0 while it was away.
    const failed = (await status(lab))['failures'] as { text: string }[];
    assert.deepEqual(
      failed.map((f) => f.text),
      [],
    );
  });

  it('the ISP ends the session: limen redials, the default route’s dependants stop and start again, the LAN works again', async () => {
    const s = await services(lab);
    const ntpd = pidOf(s, NTPD)!;
    const ntpdStart = processStartTime(ntpd);
    const from = w.lines().length;
    assert.ok(lab.killIspSessions() >= 1, 'the ISP had a session to end');
    const since = () => w.lines().slice(from);
    await until(() => since().some((l) => l.startsWith('- <default-route ipv4>')), {
      timeoutMs: 60_000,
      describe: () => `<default-route ipv4> withdrawn; watch: ${since().join('\n')}`,
    });
    await until(() => isGone(ntpd, ntpdStart), {
      timeoutMs: 60_000,
      describe: () => `ntpd (${ntpd}) stopped with the default route`,
    });
    await until(
      () =>
        since().some((l) => l.startsWith('+ <ppp-session "wan0"')) &&
        since().findLastIndex((l) => l.startsWith('+ <default-route ipv4>')) >
          since().findIndex((l) => l.startsWith('- <default-route ipv4>')),
      {
        timeoutMs: 120_000,
        describe: () =>
          `a new session and the default route back; watch:\n${since().join('\n')}${routerLogTail(lab)}`,
      },
    );
    await until(
      async () => {
        const now = await services(lab);
        const pid = pidOf(now, NTPD);
        return pid !== undefined && pid !== ntpd && now.get(NTPD)?.state === 'ready';
      },
      { timeoutMs: 60_000, describe: () => 'a new ntpd, ready' },
    );
    await fetchUntil(lab, 'lan1', `http://${WORLD_NAME}/`, { timeoutMs: 60_000 });
  });

  it('a wrong password: an authentication failure that ifup answers with, and pppd stopped, not redialling', async () => {
    const password = join(lab.dir, 'rtr', 'ppp-password');
    const right = readFileSync(password, 'utf8');
    const down = await cli(lab, 'ifdown', 'wan0');
    assert.equal(down.code, 0, down.err + down.out);
    writeFileSync(password, 'not-the-secret');
    const up = await cli(lab, 'ifup', 'wan0', '--timeout', '120');
    assert.notEqual(up.code, 0, up.out);
    assert.match(
      up.err + up.out,
      /authentication failed \(CHAP\): the ISP refused user "lab-router"/,
    );
    const failures = JSON.stringify(await status(lab));
    assert.match(failures, /authentication failed \(CHAP\)/);
    // pppd is stopped: it cannot redial in a loop; the failure holds.
    let seen: Awaited<ReturnType<typeof services>> = new Map();
    await until(
      async () => {
        seen = await services(lab);
        return seen.get(PPPD_WAN) === undefined;
      },
      { timeoutMs: 30_000, describe: () => `pppd stopped; services: ${showServices(seen)}` },
    );
    assert.equal((await query(lab, '<interface-failed "wan0" _>')).length, 1);
    // ifup asks again at once (one new attempt) and answers with the same failure.
    const again = await cli(lab, 'ifup', 'wan0', '--timeout', '120');
    assert.notEqual(again.code, 0);
    assert.match(again.err + again.out, /authentication failed/);
    // The right password, and ifup dials again and answers configured.
    writeFileSync(password, right);
    const fixed = await cli(lab, 'ifup', 'wan0', '--timeout', '120');
    assert.equal(fixed.code, 0, fixed.err + fixed.out + routerLogTail(lab));
    await fetchUntil(lab, 'lan1', `http://${WORLD_NAME}/`, { timeoutMs: 60_000 });
  });

  it('the secret is in no command line, log, status or query', async () => {
    const secret = readFileSync(join(lab.dir, 'rtr', 'ppp-password'), 'utf8');
    assert.ok(secret.length >= 16);
    for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
      let cmdline = '';
      try {
        cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      } catch {
        continue;
      }
      assert.ok(!cmdline.includes(secret), `process ${pid}: ${cmdline.replace(/\0/g, ' ')}`);
    }
    assert.ok(!readFileSync(lab.routerLog, 'utf8').includes(secret), 'the daemon log');
    assert.ok(!JSON.stringify(await status(lab)).includes(secret), 'limen status --json');
    const all = await cli(lab, 'query', '?x');
    assert.ok(!all.out.includes(secret), 'limen query ?x');
    const logs = await cli(lab, 'logs', PPPD_WAN);
    assert.ok(!logs.out.includes(secret), 'limen logs');
  });
});
