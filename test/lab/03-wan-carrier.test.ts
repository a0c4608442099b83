// The WAN cable is pulled and plugged back: the ISP's end of the link goes down
// (`ip link set to-rtr down` in isp), so rtr's wan0 loses carrier. limen sees
// it, stops udhcpc, withdraws the lease and everything built on it (address,
// default route, <default-route ipv4>), and ntpd, which depends on
// <default-route ipv4>, stops. When the link comes back, a new udhcpc gets a
// lease, the default route returns, and ntpd starts again as a new process.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { until } from '../support/until.ts';
import type { Lab } from '../../src/lab/lab.ts';
import { processStartTime } from '../../src/lab/system.ts';
import {
  NTPD,
  UDHCPC_WAN,
  WORLD_NAME,
  defaultRoutes,
  fetchUntil,
  ipv4Addresses,
  isGone,
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

describe('WAN carrier lost and restored', { skip: labSkip(), timeout: 300_000 }, () => {
  const getLab = withLab();
  let lab: Lab;
  let ntpd: { pid: number; starttime: string | undefined };
  let udhcpc: { pid: number; starttime: string | undefined };
  /** The lease time the ISP gave, in seconds. */
  let leaseSeconds = 0;
  let configWatch: Watch;
  let lostAt = 0;

  const carrier = (up: boolean) => {
    const r = lab.exec('isp', ['ip', 'link', 'set', 'to-rtr', up ? 'up' : 'down']);
    assert.equal(r.status, 0, r.stderr);
  };

  before(async () => {
    lab = getLab();
    const s = await services(lab);
    const pid = pidOf(s, NTPD)!;
    ntpd = { pid, starttime: processStartTime(pid) };
    const u = pidOf(s, UDHCPC_WAN)!;
    udhcpc = { pid: u, starttime: processStartTime(u) };
    const lease = await query(lab, '<dhcp-lease "wan0" _>');
    leaseSeconds = Number(/\blease: (\d+)/.exec(lease[0] ?? '')?.[1] ?? 0);
    configWatch = watch(lab, 'config', '<dhcp-lease "wan0" _>', '<default-route ipv4>');
    await until(() => configWatch.lines().some((l) => l.startsWith('+ <default-route ipv4>')), {
      timeoutMs: 10_000,
      describe: () => `the watch showing <default-route ipv4>: ${configWatch.lines().join('\n')}`,
    });
  });

  after(async () => {
    await configWatch?.stop();
  });

  it('limen sees wan0 lose carrier', async () => {
    carrier(false);
    lostAt = Date.now();
    let seen: string[] = [];
    await until(
      async () => {
        seen = await query(lab, '<interface "wan0" _ _ _ _ _ _>', 'machine');
        return seen.length === 1 && seen[0]!.includes(' no-carrier ');
      },
      {
        timeoutMs: 10_000,
        intervalMs: 100,
        describe: () =>
          `one <interface "wan0" … no-carrier …> in $machine (seen: ${seen.join(' | ') || 'none'})${routerLogTail(lab)}`,
      },
    );
  });

  it('the lease goes with udhcpc, which limen stops, long before it would expire', async () => {
    // The ISP keeps answering and leased for minutes: udhcpc by itself would keep the
    // lease all that time. Only limen's reaction to the carrier loss (stopping udhcpc,
    // whose outputs go with it) withdraws it within this wait.
    assert.ok(leaseSeconds >= 300, `the ISP's lease time is ${leaseSeconds} s`);
    let seen = '';
    await until(
      async () => {
        const s = await services(lab);
        const lease = await wanLeaseAddress(lab);
        seen = `lease ${lease ?? 'none'}; ${showServices(s)}`;
        return lease === undefined && isGone(udhcpc.pid, udhcpc.starttime);
      },
      {
        timeoutMs: 30_000,
        intervalMs: 100,
        describe: () =>
          `<dhcp-lease "wan0" _> withdrawn and udhcpc (pid ${udhcpc.pid}) stopped (seen: ${seen})${routerLogTail(lab)}`,
      },
    );
    // Withdrawn on the carrier loss, not by udhcpc giving it up: the lease was never
    // renewed or replaced meanwhile, it just went.
    const leaseLines = configWatch.lines().filter((l) => l.includes('<dhcp-lease "wan0"'));
    assert.equal(leaseLines.at(-1)?.startsWith('- '), true, leaseLines.join('\n'));
    assert.equal(leaseLines.filter((l) => l.startsWith('+ ')).length, 1, leaseLines.join('\n'));
  });

  it('the lease, its address and default route, and <default-route ipv4> are withdrawn', async (t) => {
    let seen = '';
    await until(
      async () => {
        const lease = await wanLeaseAddress(lab);
        const dr = await query(lab, '<default-route ipv4>');
        const addrs = ipv4Addresses(lab, 'rtr', 'wan0');
        const routes = defaultRoutes(lab);
        seen = `lease ${lease}, <default-route ipv4> ${dr.length}, wan0 ${addrs.join(' ') || 'none'}, routes ${routes.join(' | ') || 'none'}`;
        return lease === undefined && dr.length === 0 && addrs.length === 0 && routes.length === 0;
      },
      {
        timeoutMs: 45_000,
        intervalMs: 200,
        describe: () =>
          `everything built on the lease withdrawn (seen: ${seen})${routerLogTail(lab)}`,
      },
    );
    t.diagnostic(`withdrawn ${Date.now() - lostAt} ms after the carrier loss`);
    const lines = configWatch.lines();
    assert.ok(
      lines.some((l) => l.startsWith('- <dhcp-lease "wan0"')),
      lines.join('\n'),
    );
    assert.ok(lines.includes('- <default-route ipv4>'), lines.join('\n'));
  });

  it('udhcpc and ntpd have stopped', async () => {
    let seen = '';
    await until(
      async () => {
        const s = await services(lab);
        const states = await query(lab, `<service-state ${NTPD} _>`);
        seen = `${showServices(s)}; ${states.join(' ') || 'no ntpd service-state'}`;
        return (
          pidOf(s, NTPD) === undefined &&
          pidOf(s, UDHCPC_WAN) === undefined &&
          isGone(ntpd.pid, ntpd.starttime) &&
          states.length === 0
        );
      },
      {
        timeoutMs: 30_000,
        intervalMs: 200,
        describe: () => `ntpd (pid ${ntpd.pid}) and udhcpc stopped (seen: ${seen})`,
      },
    );
  });

  it('with carrier back: a new lease, the default route, and ntpd as a new process', async () => {
    carrier(true);
    let seen = '';
    const pid = await until(
      async () => {
        const lease = await wanLeaseAddress(lab);
        const dr = await query(lab, '<default-route ipv4>');
        const routes = defaultRoutes(lab);
        const s = await services(lab);
        const p = pidOf(s, NTPD);
        seen = `lease ${lease}, <default-route ipv4> ${dr.length}, routes ${routes.join(' | ') || 'none'}; ${showServices(s)}`;
        return lease !== undefined &&
          dr.length === 1 &&
          routes.length === 1 &&
          routes[0]!.startsWith(`default via ${lab.ispAddress} dev wan0`) &&
          s.get(NTPD)?.state === 'ready' &&
          p !== undefined
          ? p
          : undefined;
      },
      {
        timeoutMs: 60_000,
        intervalMs: 200,
        describe: () => `the lease and ntpd back (seen: ${seen})${routerLogTail(lab)}`,
      },
    );
    assert.ok(
      pid !== ntpd.pid || processStartTime(pid) !== ntpd.starttime,
      `ntpd is the same process (${pid}) as before the carrier loss`,
    );
    assert.equal((await query(lab, `<service-state ${NTPD} up>`)).length, 1);
    const lines = configWatch.lines();
    assert.ok(
      lines.lastIndexOf('+ <default-route ipv4>') > lines.indexOf('- <default-route ipv4>'),
    );
  });

  it('lan1 reaches the world by name again', async () => {
    await fetchUntil(lab, 'lan1', `http://${WORLD_NAME}/`);
  });
});
