// The daemon's programs die under it (SIGKILL, as the OOM killer or a crash
// would): the real daemon in a router namespace with a DHCP WAN (a dnsmasq ISP
// in a namespace of its own) and a LAN served by its dnsmasq to a udhcpc client
// in a third namespace. When udhcpc dies, its lease goes, udhcpc is started
// again and the lease comes back; when the LAN's dnsmasq dies, it is started
// again and clients still get leases; when the netlink helper dies, the daemon
// says so, starts a new one, and $machine follows the kernel again (and the
// address/route reconciler repairs the kernel again).

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testNamespace } from '../../support/names.ts';
import { MARK, NetnsDaemon, type Watch } from '../../support/netns-daemon.ts';
import { prerequisites } from '../../support/prerequisites.ts';
import { describeProcs, killMarked } from '../../support/processes.ts';
import { until } from '../../support/until.ts';

const UDHCPC = '<daemon <udhcpc "wan0">>';
const DNSMASQ = '<daemon <dnsmasq "lan0">>';
const CLIENT_MAC = '02:00:00:00:78:01';

const ip = (...args: string[]) => execFileSync('ip', args, { encoding: 'utf8' });

function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}

/** The daemon's netlink helper processes (its children running netlink-helper). */
function netlinkHelpers(daemonPid: number): number[] {
  const out: number[] = [];
  for (const name of execFileSync('ls', ['/proc'], { encoding: 'utf8' }).split('\n')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (parentOf(pid) !== daemonPid) continue;
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('netlink-helper')) out.push(pid);
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

describe(
  "the daemon's programs killed under it",
  { skip: prerequisites({ netns: true, programs: ['dnsmasq', 'busybox'] }) },
  () => {
    const isp = testNamespace('rec-isp');
    const rtr = testNamespace('rec-rtr');
    const cli = testNamespace('rec-cli');
    let dir = '';
    let ispDhcp: ChildProcess | undefined;
    let daemon!: NetnsDaemon;
    let leases: Watch | undefined;

    /** One DHCP exchange from the LAN client (busybox udhcpc -q): the address it got. */
    const clientLease = (): string | undefined => {
      const r = spawnSync(
        'ip',
        [
          'netns',
          'exec',
          cli,
          'busybox',
          'udhcpc',
          '-f',
          '-q',
          '-n',
          '-i',
          'eth0',
          '-t',
          '3',
          '-T',
          '1',
          '-s',
          join(dir, 'client.sh'),
        ],
        { encoding: 'utf8', timeout: 15_000, env: { ...process.env, [MARK]: daemon.marker } },
      );
      return /lease ip=(\S+)/.exec(r.stdout)?.[1];
    };
    const wanAddresses = () =>
      (
        JSON.parse(ip('-n', rtr, '-j', '-4', 'addr', 'show', 'dev', 'wan0')) as {
          addr_info: { local: string }[];
        }[]
      )[0]!.addr_info.map((a) => a.local);
    const defaultRoutes = () =>
      ip('-n', rtr, '-4', 'route', 'show', 'default').trim().split('\n').filter(Boolean);

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'limen-recovery-'));
      chmodSync(dir, 0o755); // dnsmasq drops root: it must reach its files
      for (const ns of [isp, rtr, cli]) {
        ip('netns', 'add', ns);
        ip('-n', ns, 'link', 'set', 'lo', 'up');
      }
      ip('link', 'add', 'wan0', 'netns', rtr, 'type', 'veth', 'peer', 'name', 'isp0', 'netns', isp);
      ip('link', 'add', 'lan0', 'netns', rtr, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', cli);
      ip('-n', cli, 'link', 'set', 'eth0', 'address', CLIENT_MAC);
      ip('-n', cli, 'link', 'set', 'eth0', 'up');
      ip('-n', isp, 'addr', 'add', '100.64.0.1/24', 'dev', 'isp0');
      ip('-n', isp, 'link', 'set', 'isp0', 'up');
      ispDhcp = spawn(
        'ip',
        [
          'netns',
          'exec',
          isp,
          'dnsmasq',
          '--no-daemon',
          '--conf-file=/dev/null',
          '--port=0',
          '--interface=isp0',
          '--bind-interfaces',
          '--dhcp-range=100.64.0.10,100.64.0.20,255.255.255.0,10m',
          '--dhcp-option=3,100.64.0.1',
          `--dhcp-leasefile=${join(dir, 'isp.leases')}`,
          '--pid-file=',
        ],
        { stdio: 'ignore' },
      );
      writeFileSync(
        join(dir, 'client.sh'),
        '#!/bin/sh\ncase "$1" in bound|renew) echo "lease ip=$ip" ;; esac\n',
        { mode: 0o755 },
      );
      daemon = new NetnsDaemon(rtr, dir);
      mkdirSync(join(daemon.site, 'core'), { recursive: true });
      writeFileSync(
        join(daemon.site, 'core/net.pr'),
        [
          '<configure-interface "wan0" <dhcp>>',
          '<configure-interface "lan0" <static "192.168.78.1/24">>',
          '<lan-dhcp "lan0" {range: ["192.168.78.100" "192.168.78.150"] lease: 3600}>',
          '',
        ].join('\n'),
      );
      await daemon.start();
      const up = await daemon.cli('ifup', 'wan0', '--timeout', '30');
      assert.equal(up.code, 0, `ifup wan0: ${up.err}\n${daemon.logTail()}`);
      leases = daemon.watch('config', '<dhcp-lease "wan0" _>');
    });

    after(async () => {
      await leases?.stop();
      const left = (await daemon?.dispose()) ?? [];
      ispDhcp?.kill('SIGKILL');
      killMarked(MARK, daemon?.marker ?? '');
      for (const ns of [isp, rtr, cli]) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
      rmSync(dir, { recursive: true, force: true });
      assert.deepEqual(left, [], `processes left behind: ${describeProcs(left)}`);
    });

    it('udhcpc killed: its lease goes, udhcpc runs again, and the lease comes back', async () => {
      const [old] = await daemon.servicePids(UDHCPC);
      assert.ok(old !== undefined, 'udhcpc runs');
      await until(() => leases!.lines().some((l) => l.startsWith('+ <dhcp-lease "wan0"')), {
        describe: () => `the watch showing the lease: ${leases!.lines().join('\n')}`,
      });
      const mark = leases!.lines().length;
      process.kill(old, 'SIGKILL');
      let pids: number[] = [];
      await until(
        async () => {
          pids = await daemon.servicePids(UDHCPC);
          const since = leases!.lines().slice(mark);
          const gone = since.findIndex((l) => l.startsWith('- <dhcp-lease "wan0"'));
          const back = since.findIndex((l) => l.startsWith('+ <dhcp-lease "wan0"'));
          return pids.length === 1 && pids[0] !== old && gone >= 0 && back > gone;
        },
        {
          timeoutMs: 30_000,
          intervalMs: 100,
          describe: () =>
            `a new udhcpc (was ${old}, now ${pids.join(' ') || 'none'}) and the lease withdrawn, then back:\n` +
            `${leases!.lines().slice(mark).join('\n')}\n${daemon.logTail()}`,
        },
      );
      // The kernel follows: one address and one default route, as before.
      await until(() => wanAddresses().length === 1 && defaultRoutes().length === 1, {
        describe: () => `wan0 ${wanAddresses().join(' ')}; routes ${defaultRoutes().join(' | ')}`,
      });
    });

    it("the LAN's dnsmasq killed: it runs again, and clients still get leases", async () => {
      const first = await until(clientLease, {
        timeoutMs: 30_000,
        intervalMs: 200,
        describe: () => `a lease for the LAN client\n${daemon.logTail()}`,
      });
      assert.match(first, /^192\.168\.78\.(1[0-4]\d|150)$/);
      const [old] = await daemon.servicePids(DNSMASQ);
      assert.ok(old !== undefined, 'dnsmasq runs');
      process.kill(old, 'SIGKILL');
      let pids: number[] = [];
      await until(
        async () => {
          pids = await daemon.servicePids(DNSMASQ);
          return pids.length === 1 && pids[0] !== old;
        },
        {
          timeoutMs: 30_000,
          intervalMs: 100,
          describe: () => `a new dnsmasq (was ${old}, now ${pids.join(' ') || 'none'})`,
        },
      );
      // It kept its lease file: the client gets the same address again.
      const again = await until(clientLease, {
        timeoutMs: 30_000,
        intervalMs: 200,
        describe: () => `a lease from the new dnsmasq\n${daemon.logTail()}`,
      });
      assert.equal(again, first);
      await until(
        async () =>
          (await daemon.query(`<dhcp-client "lan0" "${CLIENT_MAC}" _ _ _>`, 'machine')).length ===
          1,
        { describe: () => `<dhcp-client "lan0" "${CLIENT_MAC}" …> in $machine` },
      );
    });

    it('the netlink helper killed: the daemon says so, and follows and repairs the kernel again', async () => {
      const daemonPid = daemon.pid!;
      const [old] = netlinkHelpers(daemonPid);
      assert.ok(old !== undefined, `a netlink helper runs under the daemon (pid ${daemonPid})`);
      const address = wanAddresses()[0]!;
      process.kill(old, 'SIGKILL');
      // The failure is visible in the log, and a new helper takes over.
      await until(
        () =>
          daemon
            .logLines()
            .some(
              (l) =>
                l['msg'] === 'netlink socket failed; reopening' &&
                String(l['error']).includes('the netlink helper process is gone'),
            ),
        { describe: () => `a warning about the helper in the log:\n${daemon.logTail()}` },
      );
      let helpers: number[] = [];
      await until(
        () => {
          helpers = netlinkHelpers(daemonPid);
          return helpers.length === 1 && helpers[0] !== old;
        },
        { timeoutMs: 10_000, describe: () => `a new helper (now ${helpers.join(' ')})` },
      );
      // $machine follows the kernel again: an address added by hand appears, and goes.
      ip('-n', rtr, 'addr', 'add', '192.0.2.77/32', 'dev', 'lo');
      const pattern = '<address "lo" ipv4 "192.0.2.77" 32 _>';
      await until(async () => (await daemon.query(pattern, 'machine')).length === 1, {
        describe: () => `${pattern} in $machine\n${daemon.logTail()}`,
      });
      ip('-n', rtr, 'addr', 'del', '192.0.2.77/32', 'dev', 'lo');
      await until(async () => (await daemon.query(pattern, 'machine')).length === 0, {
        describe: () => `${pattern} gone from $machine`,
      });
      // The reconciler repairs the kernel again: the lease's address, removed by hand, returns.
      ip('-n', rtr, 'addr', 'del', `${address}/24`, 'dev', 'wan0');
      await until(() => wanAddresses().includes(address), {
        timeoutMs: 10_000,
        describe: () => `${address} back on wan0 (has ${wanAddresses().join(' ') || 'none'})`,
      });
      // And the links in $machine are the kernel's.
      const kernel = (JSON.parse(ip('-n', rtr, '-j', 'link', 'show')) as { ifname: string }[])
        .map((l) => l.ifname)
        .sort();
      const published = (await daemon.query('<interface _ _ _ _ _ _ _>', 'machine'))
        .map((l) => /^<interface "([^"]+)"/.exec(l)?.[1] ?? l)
        .sort();
      assert.deepEqual(published, kernel);
    });
  },
);
