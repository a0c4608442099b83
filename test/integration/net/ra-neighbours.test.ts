// Router advertisements' DNS and the LAN's IPv6 neighbours, with the real daemon in a
// "router" namespace and real peers: on the WAN (`<dhcpv6 {address: #f prefix: #f}>`,
// stateless), radvd in an "ISP" namespace advertises RDNSS and DNSSL, which the
// interface monitor reads from the kernel (RTM_NEWNDUSEROPT) and the dhcpv6 protocol
// reports as `<dns-server …>`/`<dns-search …>`; hand-made hostile RAs (sent with
// socat as raw ICMPv6 over a jumbo-MTU link: 1000 servers, a zero-length option,
// labels that are no labels) stay bounded, are reported and expire; radvd's last RA
// on SIGTERM (lifetime 0) withdraws its servers at once. On the LAN, a host with a
// DHCPv4 lease and a static global IPv6 address pings the router and is one client
// of `limen clients --json`, joined by its MAC.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseIp } from '../../../src/net/netlink-codec.ts';
import { NetnsDaemon, MARK } from '../../support/netns-daemon.ts';
import { testNamespace } from '../../support/names.ts';
import { prerequisites } from '../../support/prerequisites.ts';
import { describeProcs } from '../../support/processes.ts';
import { until } from '../../support/until.ts';

const run = (...argv: string[]) =>
  execFileSync(argv[0]!, argv.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const inNs = (ns: string, ...argv: string[]) => run('ip', 'netns', 'exec', ns, ...argv);

// ---- Router advertisements built by hand -------------------------------------------------

const u32 = (n: number) => [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
const ip6 = (s: string) => [...parseIp(s)!.bytes];
/** An ND option: type, length in 8-octet units (computed unless given), 2 reserved bytes, lifetime, body. */
function option(type: number, lifetime: number, body: number[], units?: number): number[] {
  const padded = [...body, ...new Array<number>((8 - (body.length % 8)) % 8).fill(0)];
  return [type, units ?? (8 + padded.length) / 8, 0, 0, ...u32(lifetime), ...padded];
}
const names = (...ns: string[]) =>
  ns.flatMap((n) => [
    ...n.split('.').flatMap((l) => [l.length, ...[...l].map((c) => c.charCodeAt(0))]),
    0,
  ]);
/** An RA (router lifetime 0: not a default router) with the options; the kernel computes the checksum. */
const ra = (...options: number[][]) =>
  Uint8Array.from([134, 0, 0, 0, 64, 0, 0, 0, ...u32(0), ...u32(0), ...options.flat()]);

describe(
  'RA DNS on the WAN and IPv6 neighbours on the LAN',
  {
    skip: prerequisites({
      netns: true,
      programs: ['dhcpcd', 'radvd', 'dnsmasq', 'socat', 'busybox', 'ping'],
    }),
    timeout: 180_000,
  },
  () => {
    const isp = testNamespace('rais');
    const rtr = testNamespace('rart');
    const host = testNamespace('raho');
    const wan = `lt${randomBytes(3).toString('hex')}w`;
    const HOST_MAC = '02:00:00:00:79:01';
    let dir = '';
    let daemon!: NetnsDaemon;
    let radvd: ChildProcess | undefined;
    let radvdLog = '';
    let sent = 0;

    const query = (p: string, ds: 'config' | 'machine' = 'config') => daemon.query(p, ds);
    const describeState = async () =>
      `-- radvd:\n${radvdLog.slice(-1000)}\n-- $machine:\n${(await query(`<ra-dns "${wan}" _ _>`, 'machine').catch(() => [])).join('\n')}\n-- the daemon:\n${daemon.logTail(20)}`;
    /** Waits until `p` holds exactly `want` (sorted). */
    const waitFor = async (
      what: string,
      p: () => Promise<string[]>,
      want: (got: string[]) => boolean,
    ) => {
      let last: string[] = [];
      await until(async () => want((last = (await p()).sort())), {
        timeoutMs: 30_000,
        describe: () =>
          `${what}; last seen:\n${last.join('\n')}\n${daemon.logTail(20)}\n-- radvd:\n${radvdLog.slice(-800)}`,
      });
      return last;
    };

    /** Sends one RA from the ISP's isp0 to the router's WAN, unicast (hop limit 255 in the ISP's namespace). */
    function sendRa(bytes: Uint8Array): void {
      const shown = run('ip', '-n', rtr, '-6', '-j', 'addr', 'show', 'dev', wan);
      const routerLinkLocal = (
        JSON.parse(shown) as { addr_info?: { scope: string; local: string }[] }[]
      )
        .flatMap((l) => l.addr_info ?? [])
        .find((a) => a.scope === 'link')?.local;
      if (routerLinkLocal === undefined)
        throw new Error(`no link-local address on ${wan}: ${run('ip', '-n', rtr, 'addr')}`);
      const file = join(dir, `ra-${sent++}.bin`);
      writeFileSync(file, bytes);
      inNs(
        isp,
        'socat',
        '-u',
        '-b',
        '65536',
        `OPEN:${file}`,
        `IP6-SENDTO:[${routerLinkLocal}%isp0]:58`,
      );
    }

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'limen-ra-'));
      // dnsmasq drops root: it must be able to reach its files.
      chmodSync(dir, 0o755);
      for (const ns of [isp, rtr, host]) {
        run('ip', 'netns', 'add', ns);
        run('ip', '-n', ns, 'link', 'set', 'lo', 'up');
      }
      // The WAN: a jumbo MTU, so that one RA can carry 1000 servers (the kernel drops fragmented ND).
      run(
        ...`ip -n ${rtr} link add ${wan} mtu 65535 type veth peer name isp0 mtu 65535 netns ${isp}`.split(
          ' ',
        ),
      );
      run(...`ip -n ${rtr} link add lan0 type veth peer name eth0 netns ${host}`.split(' '));
      run('ip', '-n', host, 'link', 'set', 'eth0', 'address', HOST_MAC);
      inNs(rtr, 'sysctl', '-qw', 'net.ipv6.conf.all.forwarding=1');
      inNs(isp, 'sysctl', '-qw', 'net.ipv6.conf.all.forwarding=1');
      inNs(
        isp,
        'sysctl',
        '-qw',
        'net.ipv6.conf.all.hop_limit=255',
        'net.ipv6.conf.default.hop_limit=255',
      );
      inNs(
        isp,
        'sysctl',
        '-qw',
        'net.ipv6.conf.isp0.hop_limit=255',
        'net.ipv6.conf.isp0.accept_dad=0',
      );
      inNs(host, 'sysctl', '-qw', 'net.ipv6.conf.eth0.accept_dad=0');
      run('ip', '-n', isp, 'link', 'set', 'isp0', 'up');
      run('ip', '-n', host, 'link', 'set', 'eth0', 'up');
      writeFileSync(
        join(dir, 'radvd.conf'),
        `interface isp0 {
  AdvSendAdvert on; MinRtrAdvInterval 3; MaxRtrAdvInterval 4;
  RDNSS 2001:db8:a::53 2001:db8:a::54 { AdvRDNSSLifetime 600; };
  DNSSL example.test lab.example.test { AdvDNSSLLifetime 600; };
};
`,
      );
      mkdirSync(join(dir, 'site/core'), { recursive: true });
      writeFileSync(
        join(dir, 'site/core/net.pr'),
        [
          `<configure-interface "${wan}" <dhcpv6 {address: #f prefix: #f}>>`,
          '<configure-interface "lan0" <static "192.168.79.1/24">>',
          '<lan-dhcp "lan0" {range: ["192.168.79.100" "192.168.79.150"]}>',
          '',
        ].join('\n'),
      );
      daemon = new NetnsDaemon(rtr, dir);
      await daemon.start();
      radvd = spawn(
        'ip',
        [
          'netns',
          'exec',
          isp,
          ...`radvd -n -C ${dir}/radvd.conf -p ${dir}/radvd.pid -m stderr`.split(' '),
        ],
        { env: { ...process.env, [MARK]: daemon.marker }, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      for (const s of [radvd.stdout!, radvd.stderr!])
        s.setEncoding('utf8').on('data', (t: string) => void (radvdLog += t));
    });

    after(async () => {
      if (radvd !== undefined && radvd.exitCode === null && radvd.signalCode === null) {
        const exited = new Promise((r) => radvd!.once('exit', r));
        radvd.kill('SIGKILL');
        await exited;
      }
      const left = (await daemon?.dispose()) ?? [];
      for (const ns of [isp, rtr, host]) {
        try {
          run('ip', 'netns', 'del', ns);
        } catch {
          // never made
        }
      }
      rmSync(`/var/lib/dhcpcd/${wan}.lease6`, { force: true });
      rmSync(dir, { recursive: true, force: true });
      assert.deepEqual(left, [], `left running: ${describeProcs(left)}`);
    });

    it("reports the RA's RDNSS and DNSSL as the WAN's DNS, through the contract", async () => {
      // dhcpcd turns the kernel's link-local addresses off; its hook turns them back on.
      await waitFor(
        "the WAN's link-local address",
        () => query(`<address "${wan}" ipv6 _ 64 {scope: link}>`, 'machine'),
        (got) => got.length === 1,
      );
      const machine = await waitFor(
        'both servers in $machine',
        () => query(`<ra-dns "${wan}" _ _>`, 'machine'),
        (got) => got.length === 2,
      );
      for (const [i, a] of ['2001:db8:a::53', '2001:db8:a::54'].entries())
        assert.match(
          machine[i]!,
          new RegExp(`^<ra-dns "${wan}" "${a}" \\{expires: \\d+ router: "fe80::[0-9a-f:]+"\\}>$`),
        );
      await waitFor(
        'the servers and domains through the contract',
        async () => [
          ...(await query(`<dns-server _ <dhcpv6 "${wan}">>`)),
          ...(await query(`<dns-search _ <dhcpv6 "${wan}">>`)),
        ],
        (got) =>
          JSON.stringify(got) ===
          JSON.stringify(
            [
              `<dns-search "example.test" <dhcpv6 "${wan}">>`,
              `<dns-search "lab.example.test" <dhcpv6 "${wan}">>`,
              `<dns-server "2001:db8:a::53" <dhcpv6 "${wan}">>`,
              `<dns-server "2001:db8:a::54" <dhcpv6 "${wan}">>`,
            ].sort(),
          ),
      );
      assert.deepEqual(await query('<dhcpv6-error _ _>'), [], await describeState());
    });

    it('lists a LAN host with a lease and a global IPv6 address that pinged the router', async () => {
      run('ip', '-n', rtr, 'addr', 'add', '2001:db8:79::1/64', 'dev', 'lan0', 'nodad');
      await waitFor(
        'dnsmasq to serve lan0',
        () => daemon.query('<service-state <daemon <dnsmasq "lan0">> ready>'),
        (g) => g.length === 1,
      );
      writeFileSync(
        join(dir, 'udhcpc.sh'),
        '#!/bin/sh\ncase "$1" in bound|renew) echo "lease ip=$ip" ;; esac\n',
        { mode: 0o755 },
      );
      let lease = '';
      await until(
        () => {
          const out = inNs(
            host,
            ...`busybox udhcpc -f -q -n -i eth0 -t 5 -T 1 -s ${join(dir, 'udhcpc.sh')} -x hostname:h1`.split(
              ' ',
            ),
          );
          lease = /lease ip=(\S+)/.exec(out)?.[1] ?? '';
          return lease;
        },
        { timeoutMs: 30_000, describe: () => `a lease for the host\n${daemon.logTail(20)}` },
      );
      run('ip', '-n', host, 'addr', 'add', '2001:db8:79::100/64', 'dev', 'eth0', 'nodad');
      inNs(host, 'ping', '-6', '-c', '1', '-W', '5', '2001:db8:79::1');
      await waitFor(
        'the host as a neighbour',
        () => query(`<neighbour "lan0" ipv6 "2001:db8:79::100" _ _>`, 'machine'),
        (g) => g.length === 1,
      );
      assert.match(
        (await query(`<neighbour "lan0" ipv6 "2001:db8:79::100" _ _>`, 'machine'))[0]!,
        new RegExp(`^<neighbour "lan0" ipv6 "2001:db8:79::100" "${HOST_MAC}" dynamic>$`),
      );
      let clients: {
        mac: string;
        ipv4: string[];
        ipv6: string[];
        hostname: unknown;
        expires: unknown;
        interface: string;
      }[] = [];
      await until(
        async () => {
          const r = await daemon.cli('clients', '--json');
          clients = JSON.parse(r.out) as typeof clients;
          const c = clients.find((x) => x.mac === HOST_MAC);
          return c !== undefined && c.ipv4.length > 0 && c.ipv6.length > 0;
        },
        {
          timeoutMs: 30_000,
          describe: () => `the host in limen clients --json: ${JSON.stringify(clients)}`,
        },
      );
      const c = clients.find((x) => x.mac === HOST_MAC)!;
      assert.deepEqual(
        { ...c, expires: typeof c.expires },
        {
          interface: 'lan0',
          mac: HOST_MAC,
          hostname: 'h1',
          ipv4: [lease],
          ipv6: ['2001:db8:79::100'],
          expires: 'number',
        },
      );
      const table = await daemon.cli('clients');
      assert.equal(table.code, 0, table.err);
      assert.match(
        table.out,
        new RegExp(
          `^lan0 +${HOST_MAC} +h1 +${lease.replace(/\./g, '\\.')} +\\d{4}-\\d\\d-\\d\\d .* 2001:db8:79::100$`,
          'm',
        ),
      );
    });

    it('keeps hostile RAs bounded and reported, and lets them expire', async () => {
      // A zero-length option: the kernel drops the whole RA, and its server with it.
      sendRa(ra(option(25, 600, ip6('2001:db8:bad:f::1')), [25, 0, 0, 0, 0, 0, 0, 0]));
      // A marker after it: once it is seen, the RA before it was handled.
      sendRa(ra(option(25, 8, ip6('2001:db8:bad:e::1'))));
      await waitFor(
        'the marker',
        () => query(`<ra-dns "${wan}" "2001:db8:bad:e::1" _>`, 'machine'),
        (g) => g.length === 1,
      );
      assert.deepEqual(await query(`<ra-dns "${wan}" "2001:db8:bad:f::1" _>`, 'machine'), []);

      // 1000 servers in 8 RDNSS options, an RDNSS of a wrong length, and a DNSSL with a
      // name that is not a domain, one that is not printable, and a compression pointer.
      const servers = Array.from(
        { length: 1000 },
        (_, i) => `2001:db8:bad::${(i + 1).toString(16)}`,
      );
      const rdnss = Array.from({ length: 8 }, (_, i) =>
        option(25, 8, servers.slice(i * 125, (i + 1) * 125).flatMap(ip6)),
      );
      sendRa(
        ra(
          ...rdnss,
          option(25, 8, new Array<number>(8).fill(0x20)),
          option(31, 8, [
            ...names('ok.hostile.test', 'bad!name.test'),
            4,
            0x61,
            0x20,
            0x07,
            0x62,
            0,
            0xc0,
            0x0c,
          ]),
        ),
      );
      const capped = await waitFor(
        'eight servers on the WAN, no more',
        () => query(`<ra-dns "${wan}" _ _>`, 'machine'),
        (g) => g.length === 8,
      );
      assert.equal(capped.filter((x) => x.includes('"2001:db8:a::5')).length, 2, "radvd's stay");
      await waitFor(
        'the search domains (after the servers, in the same RA)',
        () => query(`<ra-search "${wan}" _ _>`, 'machine'),
        (g) => g.length === 4,
      );
      assert.equal((await query(`<ra-dns "${wan}" _ _>`, 'machine')).length, 8, 'still eight');
      await waitFor(
        'the bad name refused by dhcpv6',
        () => query(`<dhcpv6-error "${wan}" _>`),
        (g) => g.some((x) => x.includes('ra-search: \\"bad!name.test\\" is not a domain name')),
      );
      assert.ok((await query(`<dns-search "ok.hostile.test" <dhcpv6 "${wan}">>`)).length === 1);
      assert.ok((await query(`<dns-server _ <dhcpv6 "${wan}">>`)).length <= 8);
      const warnings = daemon.logLines().map((l) => (typeof l['msg'] === 'string' ? l['msg'] : ''));
      for (const w of [
        /DNS servers left out: at most 8/,
        /RDNSS option of length 2/,
        /not printable/,
        /compression is not allowed/,
      ])
        assert.ok(
          warnings.some((m) => w.test(m)),
          `a warning ${w}:\n${warnings.filter((m) => m.includes('router advertisement')).join('\n')}`,
        );
      // Still alive, and the hostile entries go when their 8 s run out: radvd's stay.
      assert.equal((await daemon.cli('status')).code, 0);
      await waitFor(
        "only radvd's servers left",
        () => query(`<ra-dns "${wan}" _ _>`, 'machine'),
        (g) => g.length === 2 && g.every((x) => x.includes('"2001:db8:a::5')),
      );
      await waitFor(
        'the hostile error gone',
        () => query(`<dhcpv6-error "${wan}" _>`),
        (g) => g.length === 0,
      );
      await waitFor(
        'the hostile domains gone',
        () => query(`<ra-search "${wan}" _ _>`, 'machine'),
        (g) => g.length === 2,
      );
    });

    it("withdraws radvd's servers at once when it stops (its last RA has lifetime 0)", async () => {
      assert.equal((await query(`<ra-dns "${wan}" _ _>`, 'machine')).length, 2);
      const exited = new Promise((r) => radvd!.once('exit', r));
      radvd!.kill('SIGTERM');
      await exited;
      // Their lifetime was 600 s: only the final RA can take them away this soon.
      await waitFor(
        'no RA server left',
        () => query(`<ra-dns "${wan}" _ _>`, 'machine'),
        (g) => g.length === 0,
      );
      await waitFor(
        'no RA domain left',
        () => query(`<ra-search "${wan}" _ _>`, 'machine'),
        (g) => g.length === 0,
      );
      await waitFor(
        'no DNS from dhcpv6 left',
        async () => [
          ...(await query(`<dns-server _ <dhcpv6 "${wan}">>`)),
          ...(await query(`<dns-search _ <dhcpv6 "${wan}">>`)),
        ],
        (g) => g.length === 0,
      );
    });
  },
);
