// The daemon as a router's WAN side, end to end with real programs: limen runs
// in a namespace of its own (rtr), its wan0 is a veth to an isp namespace where
// dnsmasq serves DHCP. `limen ifup wan0` answers once the lease's address is in
// the kernel; the default route is installed (marked proto 76) and
// <default-route ipv4> asserted; `! <dhcp-renew IF>` renews (the server sees the
// request); ifdown releases the lease (the server sees a DHCPRELEASE) before the
// link goes down, and ifup gets a new one; a daemon restart releases nothing and
// leaves one address and one default route, not two. Every namespace and process
// is removed at the end, whatever happens.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { main } from '../../../src/cli/main.ts';
import { captureIo } from '../../support/cli-io.ts';
import { prerequisites } from '../../support/prerequisites.ts';
import { until } from '../../support/until.ts';
import { describeProcs, killMarked, newMarker, processesWithEnv } from '../../support/processes.ts';

const repo = resolve(import.meta.dirname, '../../..');
const MARK = 'LIMEN_TEST_MARK';
const id = randomBytes(3).toString('hex');
const isp = `lt-isp-${id}`;
const rtr = `lt-rtr-${id}`;

function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8' });
}

interface Addr {
  ifname: string;
  addr_info: { family: string; local: string; prefixlen: number }[];
}

describe(
  'daemon on a DHCP WAN',
  { skip: prerequisites({ netns: true, programs: ['dnsmasq', 'busybox'] }) },
  () => {
    let dir: string;
    let dnsmasq: ChildProcess;
    let daemon: ChildProcess | undefined;
    const marker = newMarker();
    let log = '';

    const startDaemon = () => {
      log = '';
      daemon = spawn(
        'ip',
        [
          'netns',
          'exec',
          rtr,
          process.execPath,
          '--import',
          'tsx',
          join(repo, 'test/support/limen-cli.ts'),
          'daemon',
          '--root',
          join(dir, 'root'),
          '--config',
          join(dir, 'site'),
          '--log-format',
          'json',
        ],
        { cwd: repo, env: { ...process.env, [MARK]: marker }, stdio: ['ignore', 'ignore', 'pipe'] },
      );
      daemon.stderr!.setEncoding('utf8').on('data', (c: string) => void (log += c));
    };
    const stopDaemon = async () => {
      const d = daemon!;
      const exited = new Promise<number | null>((r) => d.once('exit', (code) => r(code)));
      d.kill('SIGTERM');
      return exited;
    };
    const cli = async (...args: string[]) => {
      const io = captureIo();
      const code = await main([...args, '--root', join(dir, 'root')], io);
      return { code, out: io.stdout(), err: io.stderr() };
    };
    const wanAddresses = () =>
      (
        JSON.parse(ip('-n', rtr, '-json', 'addr', 'show', 'dev', 'wan0')) as Addr[]
      )[0]!.addr_info.filter((a) => a.family === 'inet');
    const defaultRoutes = () =>
      ip('-n', rtr, '-4', 'route', 'show', 'default').trim().split('\n').filter(Boolean);
    /** The ISP's dnsmasq log (--log-dhcp): lines for DHCP messages of KIND on isp0. */
    const ispLog = (kind: string) => {
      const path = join(dir, 'isp.log');
      const text = existsSync(path) ? readFileSync(path, 'utf8') : '';
      return text.split('\n').filter((l) => l.includes(` ${kind}(isp0) `));
    };
    const ispLeases = () => {
      const path = join(dir, 'isp.leases');
      return existsSync(path) ? readFileSync(path, 'utf8') : '';
    };
    /** The `event` field of `<dhcp-lease "wan0" {…}>`, or undefined without a lease. */
    const leaseEvent = async () =>
      /\bevent: "([^"]+)"/.exec((await cli('query', '<dhcp-lease "wan0" _>')).out)?.[1];

    before(() => {
      dir = mkdtempSync(join(tmpdir(), 'limen-net-e2e-'));
      ip('netns', 'add', isp);
      ip('netns', 'add', rtr);
      ip('link', 'add', 'wan0', 'netns', rtr, 'type', 'veth', 'peer', 'name', 'isp0', 'netns', isp);
      ip('-n', isp, 'addr', 'add', '100.64.0.1/24', 'dev', 'isp0');
      ip('-n', isp, 'link', 'set', 'isp0', 'up');
      ip('-n', isp, 'link', 'set', 'lo', 'up');
      dnsmasq = spawn(
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
          '--dhcp-range=100.64.0.10,100.64.0.20,255.255.255.0,2m',
          '--dhcp-option=3,100.64.0.1',
          '--dhcp-option=6,100.64.0.1',
          `--dhcp-leasefile=${join(dir, 'isp.leases')}`,
          '--log-dhcp',
          `--log-facility=${join(dir, 'isp.log')}`,
          '--pid-file=',
        ],
        { stdio: 'ignore', env: { ...process.env, [MARK]: marker } },
      );
      mkdirSync(join(dir, 'site/core'), { recursive: true });
      writeFileSync(join(dir, 'site/core/wan.pr'), '<configure-interface "wan0" <dhcp>>\n');
    });

    after(async () => {
      if (daemon && daemon.exitCode === null) await stopDaemon();
      dnsmasq.kill('SIGTERM');
      killMarked(MARK, marker);
      for (const ns of [isp, rtr]) {
        try {
          ip('netns', 'del', ns);
        } catch {
          /* already gone */
        }
      }
      rmSync(dir, { recursive: true, force: true });
    });

    it('ifup answers once the lease is installed, with a marked default route', async () => {
      startDaemon();
      await until(async () => (await cli('status')).code === 0, {
        timeoutMs: 20_000,
        describe: () => log,
      });
      await until(
        async () => (await cli('query', '<configure-interface "wan0" _>')).out.includes('wan0'),
        {
          describe: () => log,
        },
      );
      const up = await cli('ifup', 'wan0', '--timeout', '30');
      assert.equal(up.code, 0, `ifup failed: ${up.err}\n${log}`);
      const addrs = wanAddresses();
      assert.equal(addrs.length, 1, JSON.stringify(addrs));
      assert.match(addrs[0]!.local, /^100\.64\.0\.(1\d|20)$/);
      await until(
        () => defaultRoutes().some((r) => r.includes('via 100.64.0.1') && r.includes('proto 76')),
        {
          describe: () => defaultRoutes().join('\n'),
        },
      );
      await until(async () => (await cli('query', '<default-route ?f>')).out.includes('ipv4'), {
        describe: () => log,
      });
      const status = await cli('status', '--json');
      assert.match(status.out, /network up/);
    });

    it('<dhcp-renew IF> renews the lease now: the server acknowledges a request', async () => {
      const before = await leaseEvent();
      assert.match(before ?? '', /^(bound|renew) \d+$/, log);
      const requests = ispLog('DHCPREQUEST').length;
      const acks = ispLog('DHCPACK').length;
      const sent = await cli('send', '<dhcp-renew "wan0">');
      assert.equal(sent.code, 0, sent.err);
      const after = await until(
        async () => {
          const e = await leaseEvent();
          return e !== undefined && e !== before && e;
        },
        { describe: () => `a new lease event after ${before}\n${log}` },
      );
      assert.match(after, /^renew \d+$/);
      await until(
        () => ispLog('DHCPREQUEST').length > requests && ispLog('DHCPACK').length > acks,
        {
          describe: () =>
            `a DHCPREQUEST and a DHCPACK in the ISP's log:\n${ispLog('DHCP').join('\n')}`,
        },
      );
      // Renewed in place: still one address and one default route.
      assert.equal(wanAddresses().length, 1);
      assert.equal(defaultRoutes().length, 1);
    });

    it('ifdown releases the lease, then takes the link down; ifup gets a new lease', async () => {
      const [address] = wanAddresses();
      assert.ok(address !== undefined);
      await until(() => ispLeases().includes(` ${address.local} `), {
        describe: () => `the ISP's lease file to hold ${address.local}: ${ispLeases()}`,
      });
      const down = await cli('ifdown', 'wan0', '--timeout', '15');
      assert.equal(down.code, 0, down.err);
      // Released while the link was up (a DHCPRELEASE is unicast from the leased address).
      const progress = down.out.split('\n');
      const releasing = progress.findIndex((l) => l.includes('releasing the DHCP lease on wan0'));
      const released = progress.findIndex((l) => l.includes('the lease on wan0 is released'));
      const linkDown = progress.findIndex((l) => /link wan0: admin down/.test(l));
      assert.ok(releasing >= 0 && released > releasing, down.out);
      assert.ok(linkDown > released, down.out);
      assert.doesNotMatch(ip('-n', rtr, 'link', 'show', 'wan0'), /<[^>]*\bUP\b[^>]*>/);
      await until(() => ispLog('DHCPRELEASE').some((l) => l.includes(address.local)), {
        describe: () => `a DHCPRELEASE of ${address.local}:\n${ispLog('DHCP').join('\n')}`,
      });
      await until(() => !ispLeases().includes(` ${address.local} `), {
        describe: () => `the ISP to forget the lease of ${address.local}: ${ispLeases()}`,
      });
      assert.equal(await leaseEvent(), undefined);
      assert.equal(wanAddresses().length, 0);

      const up = await cli('ifup', 'wan0', '--timeout', '30');
      assert.equal(up.code, 0, `${up.err}\n${log}`);
      await until(() => wanAddresses().length === 1 && defaultRoutes().length === 1, {
        describe: () => `${JSON.stringify(wanAddresses())} ${defaultRoutes().join(';')}`,
      });
      // A fresh udhcpc (the old one was stopped with the link): its first event is a bound.
      assert.match((await leaseEvent()) ?? '', /^bound \d+$/);
      await until(() => ispLeases().includes(` ${wanAddresses()[0]!.local} `), {
        describe: () => `the ISP's lease file to hold the new lease: ${ispLeases()}`,
      });
    });

    it('a restart leaves one address and one default route, and no process behind', async () => {
      const releases = ispLog('DHCPRELEASE').length;
      assert.equal(await stopDaemon(), 0);
      // Kernel state survives the daemon (no traffic dropped on restart).
      assert.equal(wanAddresses().length, 1);
      const left = processesWithEnv(MARK, marker).filter(
        (p) => p.comm !== 'dnsmasq' && p.comm !== 'ip',
      );
      assert.equal(left.length, 0, `left behind: ${describeProcs(left)}`);
      startDaemon();
      await until(async () => (await cli('ifup', 'wan0', '--timeout', '30')).code === 0, {
        timeoutMs: 40_000,
        describe: () => log,
      });
      await until(() => wanAddresses().length === 1 && defaultRoutes().length === 1, {
        describe: () => `${JSON.stringify(wanAddresses())} ${defaultRoutes().join(';')}`,
      });
      // Stopping udhcpc (with the daemon) does not release the lease: only ifdown does.
      assert.equal(ispLog('DHCPRELEASE').length, releases);
      assert.equal(await stopDaemon(), 0);
    });
  },
);
