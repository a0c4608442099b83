// The dhcpv6 protocol against real peers: an "ISP" namespace runs radvd (RAs
// with the M and O flags, a /64 for SLAAC, RDNSS) and Kea's DHCPv6 server (an
// address, a /56 delegated from 2001:db8:8000::/48, DNS and a search domain); the
// real daemon runs in a "router" namespace that forwards IPv6, with
// `<configure-interface WAN <dhcpv6 {prefix-hint: 56}>>`. The kernel takes the
// SLAAC address and default route (accept_ra=2), limen reports them, and dhcpcd's
// lease reaches the provider contract: the IA_NA address installed, the delegated
// prefix with its lifetimes, DNS in <dns-server …>; ifdown releases the lease.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetnsDaemon, MARK } from '../../support/netns-daemon.ts';
import { testNamespace } from '../../support/names.ts';
import { prerequisites } from '../../support/prerequisites.ts';
import { describeProcs, terminate } from '../../support/processes.ts';
import { until } from '../../support/until.ts';
import { randomBytes } from 'node:crypto';
import { keaDhcp6Config } from '../../../src/lab/ipv6-isp.ts';
import { keaLink } from '../../support/kea-link.ts';

const ip = (...args: string[]) => execFileSync('ip', args, { encoding: 'utf8' });

describe(
  'dhcpv6 on the WAN against radvd and Kea',
  { skip: prerequisites({ netns: true, programs: ['dhcpcd', 'radvd', 'kea-dhcp6'] }) },
  () => {
    const isp = testNamespace('v6isp');
    const rtr = testNamespace('v6rtr');
    const wan = `lt${randomBytes(3).toString('hex')}w`;
    let dir = '';
    let daemon!: NetnsDaemon;
    const peers: ChildProcess[] = [];
    const peerLog: string[] = [];

    function peer(argv: string[], env: NodeJS.ProcessEnv = {}) {
      const child = spawn('ip', ['netns', 'exec', isp, ...argv], {
        env: { ...process.env, ...env, [MARK]: daemon.marker },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      for (const s of [child.stdout, child.stderr])
        s.setEncoding('utf8').on('data', (t: string) => void peerLog.push(t));
      child.on(
        'exit',
        (code, signal) => void peerLog.push(`[${argv[0]} exited: ${code ?? signal}]\n`),
      );
      peers.push(child);
    }

    const query = (p: string) => daemon.query(p);
    const wait = (what: string, p: () => Promise<string[]>, n = 1) =>
      until(async () => ((await p()).length >= n ? p() : undefined), {
        timeoutMs: 30_000,
        // The ISP's side first: a failure's report is cut to its first lines.
        describe: () =>
          `${what}\n-- radvd and Kea:\n${peerLog.join('').slice(-1500)}\n-- the daemon:\n${daemon.logTail(25)}`,
      });

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'limen-dhcpv6-'));
      ip('netns', 'add', isp);
      ip('netns', 'add', rtr);
      ip('-n', rtr, 'link', 'add', wan, 'type', 'veth', 'peer', 'name', 'isp0', 'netns', isp);
      ip('-n', isp, 'link', 'set', 'lo', 'up');
      ip('-n', rtr, 'link', 'set', 'lo', 'up');
      execFileSync('ip', ['netns', 'exec', isp, 'sysctl', '-qw', 'net.ipv6.conf.all.forwarding=1']);
      // The router forwards: without accept_ra=2 the kernel would ignore RAs.
      execFileSync('ip', ['netns', 'exec', rtr, 'sysctl', '-qw', 'net.ipv6.conf.all.forwarding=1']);
      // Kea binds isp0's link-local address, which DAD would keep tentative for a while
      // after the router's end comes up (under load, past Kea's retries).
      execFileSync('ip', [
        'netns',
        'exec',
        isp,
        'sysctl',
        '-qw',
        'net.ipv6.conf.isp0.accept_dad=0',
      ]);
      ip('-n', isp, 'addr', 'add', '2001:db8:1::1/64', 'dev', 'isp0', 'nodad');
      ip('-n', isp, 'link', 'set', 'isp0', 'up');
      writeFileSync(
        join(dir, 'radvd.conf'),
        `interface isp0 {
  AdvSendAdvert on; MinRtrAdvInterval 3; MaxRtrAdvInterval 10;
  AdvManagedFlag on; AdvOtherConfigFlag on;
  prefix 2001:db8:1::/64 { AdvOnLink on; AdvAutonomous on; AdvValidLifetime 600; AdvPreferredLifetime 300; };
  RDNSS 2001:db8:1::53 { };
};
`,
      );
      writeFileSync(
        join(dir, 'kea.json'),
        JSON.stringify(keaDhcp6Config(keaLink('isp0', '2001:db8:1', '2001:db8:8000::/48'))),
      );
      mkdirSync(join(dir, 'site/core'), { recursive: true });
      writeFileSync(
        join(dir, 'site/core/net.pr'),
        `<configure-interface "${wan}" <dhcpv6 {prefix-hint: 56}>>\n`,
      );
      daemon = new NetnsDaemon(rtr, dir);
      peer([
        'radvd',
        '-n',
        '-C',
        join(dir, 'radvd.conf'),
        '-p',
        join(dir, 'radvd.pid'),
        '-m',
        'stderr',
      ]);
      await daemon.start();
      // Kea opens its socket on isp0 only while the link runs (the daemon sets the
      // router's end up); its own retries give up after a while, so start it then.
      await until(() => /LOWER_UP/.test(ip('-n', isp, 'link', 'show', 'isp0')) || undefined, {
        timeoutMs: 30_000,
        describe: () =>
          `isp0 running\n${ip('-n', isp, 'link', 'show', 'isp0')}\n${daemon.logTail(25)}`,
      });
      peer(['kea-dhcp6', '-c', join(dir, 'kea.json')], {
        KEA_PIDFILE_DIR: dir,
        KEA_LOCKFILE_DIR: dir,
      });
    });

    after(async () => {
      await terminate(peers);
      const left = (await daemon?.dispose()) ?? [];
      for (const ns of [isp, rtr]) {
        try {
          ip('netns', 'del', ns);
        } catch {
          // never made
        }
      }
      // dhcpcd's DUID and lease copy are in the daemon's state (in dir), never /var/lib/dhcpcd.
      assert.equal(existsSync(`/var/lib/dhcpcd/${wan}.lease6`), false);
      rmSync(dir, { recursive: true, force: true });
      assert.deepEqual(left, [], `left running: ${describeProcs(left)}`);
    });

    it('lets the kernel take the SLAAC address and the RA default route, and reports both', async () => {
      const kaddr = await wait('a kernel-address', () =>
        query(`<kernel-address "${wan}" _ _ <dhcpv6 "${wan}">>`),
      );
      assert.match(
        kaddr[0]!,
        new RegExp(`^<kernel-address "${wan}" "2001:db8:1:0:[0-9a-f:]+/64" \\{\\}`),
      );
      const kroute = await wait('a kernel-route', () =>
        query(`<kernel-route ipv6 "default" _ <dhcpv6 "${wan}">>`),
      );
      assert.match(kroute[0]!, /via: "fe80::/);
      assert.equal(
        (await daemon.cli('query', `<sysctl "net.ipv6.conf.${wan}.accept_ra" _>`)).out.trim(),
        `<sysctl "net.ipv6.conf.${wan}.accept_ra" "2">`,
      );
      // limen desires no IPv6 default route: the RA's is the kernel's alone.
      assert.deepEqual(await query('<ip-route ipv6 "default" _>'), []);
      assert.match(ip('-n', rtr, '-6', 'route', 'show', 'default'), /proto ra/);
      await wait('<default-route ipv6>', () => query('<default-route ipv6>'));
      await wait('<interface-configured>', () => query(`<interface-configured "${wan}">`));
    });

    it('gets an address, a delegated /56 with its lifetimes and DNS from Kea', async () => {
      const prefix = await wait('a delegated prefix', () =>
        query(`<delegated-prefix "${wan}" _ _ _>`),
      );
      assert.match(
        prefix[0]!,
        new RegExp(
          `^<delegated-prefix "${wan}" "2001:db8:80[0-9a-f]{2}::/56" \\{preferred: 300 renewed: "[a-z0-9]+ \\d+" valid: 600\\} <dhcpv6 "${wan}">>$`,
        ),
      );
      await wait('the IA_NA address installed', () =>
        query(`<ip-address-state "${wan}" _ installed _>`),
      );
      const a = await query(`<ip-address "${wan}" _ _>`);
      assert.match(
        a[0]!,
        /"2001:db8:1::1[0-9a-f]{2}\/128" \{preferred: 300 renewed: .* valid: 600\}/,
      );
      assert.match(
        ip('-n', rtr, '-6', 'addr', 'show', 'dev', wan),
        /2001:db8:1::1[0-9a-f]{2}\/128/,
      );
      assert.deepEqual(await query(`<dns-server _ <dhcpv6 "${wan}">>`), [
        `<dns-server "2001:db8:1::53" <dhcpv6 "${wan}">>`,
      ]);
      assert.deepEqual(await query(`<dns-search _ <dhcpv6 "${wan}">>`), [
        `<dns-search "example.test" <dhcpv6 "${wan}">>`,
      ]);
      assert.deepEqual(await query('<dhcpv6-error _ _>'), []);
      // dhcpcd configured nothing: no address from the delegated prefix anywhere, and
      // its one route is limen's unreachable one (config/core/network.pr).
      assert.doesNotMatch(ip('-n', rtr, '-6', 'addr'), /2001:db8:80/);
      await until(() => /^unreachable 2001:db8:80/m.test(ip('-n', rtr, '-6', 'route')), {
        timeoutMs: 10_000,
        describe: () => ip('-n', rtr, '-6', 'route'),
      });
      assert.deepEqual(
        ip('-n', rtr, '-6', 'route')
          .split('\n')
          .filter((l) => l.includes('2001:db8:80')),
        [`unreachable ${prefix[0]!.split('"')[3]} dev lo proto 76 metric 1024 pref medium`],
      );
    });

    it('releases the lease on ifdown: Kea frees it, and the lease is withdrawn', async () => {
      const r = await daemon.cli('ifdown', wan);
      assert.equal(r.code, 0, r.err);
      await until(async () => (await query(`<delegated-prefix "${wan}" _ _ _>`)).length === 0, {
        timeoutMs: 15_000,
        describe: () => daemon.logTail(30),
      });
      await until(() => /DHCP6_RELEASE_PD/.test(peerLog.join('')), {
        timeoutMs: 15_000,
        describe: () => peerLog.join('').slice(-2000),
      });
    });

    it('gets a lease again after the link is set down and up: the hook gives the kernel back the link-local address dhcpcd turns off', async () => {
      const r = await daemon.cli('ifup', wan);
      assert.equal(r.code, 0, r.err);
      await wait('a delegated prefix after ifup', () => query(`<delegated-prefix "${wan}" _ _ _>`));
      // What dhcpcd printed (the daemon logs every line of a service's).
      const dhcpcdLines = () =>
        daemon
          .logLines()
          .filter((e) => e['msg'] === 'output' && e['service'] === `<daemon <dhcpcd "${wan}">>`)
          .map((e) => String(e['line']));
      const replies = () => dhcpcdLines().filter((l) => /REPLY6 received/.test(l)).length;
      const before = replies();
      // dhcpcd sets addr_gen_mode to none (it would make the link-local address itself,
      // but configures nothing): down and up, the kernel would make none, and DHCPv6
      // would wait for one forever.
      ip('-n', rtr, 'link', 'set', wan, 'down');
      ip('-n', rtr, 'link', 'set', wan, 'up');
      await until(() => replies() > before, {
        timeoutMs: 30_000,
        describe: () =>
          `a new reply\n${ip('-n', rtr, '-6', 'addr', 'show', 'dev', wan)}\n${dhcpcdLines().slice(-15).join('\n')}`,
      });
      assert.match(ip('-n', rtr, '-6', 'addr', 'show', 'dev', wan), /inet6 fe80::/);
      await wait('the delegated prefix again', () => query(`<delegated-prefix "${wan}" _ _ _>`));
    });
  },
);
