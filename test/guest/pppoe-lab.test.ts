// The lab over PPPoE (issue 14, its tests 1, 2, 3 and 7), run INSIDE limen's VM:
// test/vm/pppoe.test.ts boots it and runs this file there (this machine's kernel has
// no PPP; `npm test` never runs test/guest on the host). Real peers only: Debian's
// pppoe-server with CHAP at the ISP, limen in rtr dialling it with pppd, the LAN
// clients behind it.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Lab } from '../../src/lab/lab.ts';
import { processStartTime } from '../../src/lab/system.ts';
import { inVm } from '../../src/lab/vm-lab.ts';
import { until } from '../support/until.ts';
import {
  NTPD,
  PPPD_WAN,
  WORLD_NAME,
  cli,
  defaultRoutes,
  fetchUntil,
  isGone,
  nftChain,
  pidOf,
  query,
  routerLogTail,
  services,
  showServices,
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
