// Hostile and broken DHCPv6 replies from a real server (issue test 5): the real
// daemon runs in a "router" namespace with five WAN links, each a veth to one "ISP"
// namespace where one Kea serves every link from a subnet of its own, each subnet
// configured to send one bad thing. Every case says who refuses it:
//
//   /80       a delegated prefix longer than /64: dhcpcd takes it; limen refuses it
//   dns       DNS servers ff02::1, ::, ::1, fe80::1, ::ffff:192.0.2.53 beside a good
//             one, and a search domain "-x-.test" beside a good one: dhcpcd passes
//             them (fe80::1 with its zone); limen refuses each bad one
//   zero      valid (and preferred) lifetime 0: dhcpcd binds and at once expires the
//             lease, over and over; limen refuses it each time it is bound
//   inverted  preferred lifetime 900 > valid 600: dhcpcd refuses the reply ("no
//             useable IA"), so limen never sees a lease
//   label     a search domain with a space inside a label (raw option bytes):
//             dhcpcd's own text would split "a b.test" in two, so limen has it hand
//             over the raw option; limen refuses the name whole
//
// Kea sends every one of them (a raw option where its own parser would refuse the
// text). A sixth link goes to a fake server (fake-dhcp6-server.mjs, in a namespace of
// its own) for what Kea cannot be made to send:
//
//   fake      a delegated prefix with bits set beyond its length (Kea allocates
//             whole prefixes), a search domain with a control byte in a label (Kea
//             drops that name) and one ending in a compression pointer (Kea writes
//             names itself): dhcpcd passes them all; limen refuses each
//
// A `<lan-ipv6 "lan0" {subnet: 1}>` on a LAN link carves a /64 out of every
// delegated prefix limen accepts: a refused prefix never reaches a LAN address. No
// radvd: dhcpcd runs with noipv6rs and solicits at once, and the RA's part is tested
// in dhcpv6.test.ts.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { keaDhcp6Config, type KeaDhcp6Link } from '../../../src/lab/ipv6-isp.ts';
import { keaLink } from '../../support/kea-link.ts';
import { NetnsDaemon, MARK, type Watch } from '../../support/netns-daemon.ts';
import { testLink, testNamespace } from '../../support/names.ts';
import { prerequisites } from '../../support/prerequisites.ts';
import { describeProcs, terminate } from '../../support/processes.ts';
import { until } from '../../support/until.ts';

const ip = (...args: string[]) => execFileSync('ip', args, { encoding: 'utf8' });
const sysctl = (ns: string, setting: string) =>
  execFileSync('ip', ['netns', 'exec', ns, 'sysctl', '-qw', setting]);

/** One WAN link, and the subnet Kea serves on it (`link`, its ISP end `isp` + n). */
interface Case {
  /** The router's end: `lt` + hex + the tag. */
  readonly wan: string;
  /** The link's /64 is NET::/64 (2001:db8:1N). */
  readonly net: string;
  readonly link: KeaDhcp6Link;
}

/** What the helpers below need of a link: its router end and its /64. */
type Wan = Pick<Case, 'wan' | 'net'>;

function makeCase(n: number, tag: string, o: Partial<KeaDhcp6Link>): Case {
  const net = `2001:db8:1${n}`;
  return {
    wan: testLink(tag),
    net,
    link: keaLink(`isp${n}`, net, `2001:db8:80${n}0::/48`, o),
  };
}

const cases = {
  long: makeCase(1, 'a', { pdPrefix: '2001:db8:8010::/64', pdLength: 64, delegatedLength: 80 }),
  dns: makeCase(2, 'b', {
    options: [
      {
        name: 'dns-servers',
        data: 'ff02::1, ::, ::1, fe80::1, ::ffff:192.0.2.53, 2001:db8:12::53',
      },
      { name: 'domain-search', data: '-x-.test, ok.test' },
    ],
  }),
  zero: makeCase(3, 'c', { preferred: 0, valid: 0 }),
  inverted: makeCase(4, 'd', { preferred: 900, valid: 600 }),
  label: makeCase(5, 'e', {
    options: [
      { name: 'dns-servers', data: '2001:db8:15::53' },
      // "a b.test" and "ok.test" in DNS wire format (RFC 1035): Kea's own parser
      // refuses the space, so the bytes are given raw. (A control byte in a label Kea
      // drops itself: the hook's unit test has that case.)
      {
        name: 'domain-search',
        'csv-format': false,
        data: '03612062047465737400026f6b047465737400',
      },
    ],
  }),
};
const all = Object.values(cases);
/** The sixth link, to the fake server: the ISP's end is isp6 in its own namespace. */
const fake = { wan: testLink('f'), net: '2001:db8:16' };
const FAKE_SERVER = join(import.meta.dirname, 'fake-dhcp6-server.mjs');
const fakeReply = {
  address: '2001:db8:16::100',
  // Bits set beyond /56 (the low byte of the fourth group).
  prefix: '2001:db8:8060:ff::',
  prefixLength: 56,
  preferred: 300,
  valid: 600,
  dns: ['2001:db8:16::53'],
  // "a\x01b.test", "ok.test", and "xix" then a pointer to offset 12 (RFC 1035 4.1.4).
  domainSearchHex: '03610162047465737400026f6b04746573740003786978c00c',
};

describe(
  'dhcpv6: hostile and broken replies from Kea, and from a fake server',
  { skip: prerequisites({ netns: true, programs: ['dhcpcd', 'kea-dhcp6'] }) },
  () => {
    const isp = testNamespace('v6hisp');
    const fakeIsp = testNamespace('v6hfake');
    const rtr = testNamespace('v6hrtr');
    let dir = '';
    let daemon!: NetnsDaemon;
    /** Kea and the fake server, and what they print. */
    const peers: ChildProcess[] = [];
    let peerLog = '';
    let watch: Watch | undefined;

    function peer(ns: string, argv: string[], env: NodeJS.ProcessEnv = {}) {
      const child = spawn('ip', ['netns', 'exec', ns, ...argv], {
        env: { ...process.env, ...env, [MARK]: daemon.marker },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      for (const stream of [child.stdout, child.stderr])
        stream.setEncoding('utf8').on('data', (t: string) => void (peerLog += t));
      child.on('exit', (code, sig) => void (peerLog += `[${argv[0]} exited: ${code ?? sig}]\n`));
      peers.push(child);
    }

    const query = (p: string) => daemon.query(p);
    /** What dhcpcd on c's link printed (the daemon logs every line of a service's). */
    const dhcpcdLog = (c: Wan) =>
      daemon
        .logLines()
        .filter((e) => e['msg'] === 'output' && e['service'] === `<daemon <dhcpcd "${c.wan}">>`)
        .map((e) => String(e['line']))
        .join('\n');
    const seen = (c: Wan) => () =>
      `-- dhcpcd on ${c.wan}:\n${dhcpcdLog(c).slice(-1500)}\n` +
      `-- Kea and the fake server:\n${peerLog.slice(-1500)}\n-- the daemon:\n${daemon.logTail(20)}`;
    const addrs = (dev: string) => ip('-n', rtr, '-6', 'addr', 'show', 'dev', dev);

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'limen-dhcpv6-hostile-'));
      for (const ns of [isp, fakeIsp, rtr]) {
        ip('netns', 'add', ns);
        ip('-n', ns, 'link', 'set', 'lo', 'up');
      }
      sysctl(rtr, 'net.ipv6.conf.all.forwarding=1');
      for (const [c, ns, end] of [
        ...all.map((c) => [c, isp, c.link.ifname] as const),
        [fake, fakeIsp, 'isp6'] as const,
      ]) {
        ip('-n', rtr, 'link', 'add', c.wan, 'type', 'veth', 'peer', 'name', end, 'netns', ns);
        // The servers answer from the link-local address, which DAD would keep
        // tentative for a while.
        sysctl(ns, `net.ipv6.conf.${end}.accept_dad=0`);
        ip('-n', ns, 'addr', 'add', `${c.net}::1/64`, 'dev', end, 'nodad');
        ip('-n', ns, 'link', 'set', end, 'up');
      }
      // The LAN: a veth whose other end stays in the router's namespace (no dummy module here).
      ip('-n', rtr, 'link', 'add', 'lan0', 'type', 'veth', 'peer', 'name', 'lan0peer');
      ip('-n', rtr, 'link', 'set', 'lan0peer', 'up');
      const [first, ...more] = all.map((c) => c.link);
      writeFileSync(join(dir, 'kea.json'), JSON.stringify(keaDhcp6Config(first!, more)));
      mkdirSync(join(dir, 'site/core'), { recursive: true });
      writeFileSync(
        join(dir, 'site/core/net.pr'),
        [
          ...[...all, fake].map(
            (c) => `<configure-interface "${c.wan}" <dhcpv6 {prefix-hint: 56}>>`,
          ),
          '<lan-ipv6 "lan0" {subnet: 1}>',
          '',
        ].join('\n'),
      );
      daemon = new NetnsDaemon(rtr, dir);
      await daemon.start();
      // The zero-lifetime lease lives for a moment each time: watch from the start.
      const zero = cases.zero.wan;
      watch = daemon.watch(
        'config',
        `<dhcpv6-lease "${zero}" _>`,
        `<dhcpv6-error "${zero}" _>`,
        `<ip-address "${zero}" _ _>`,
        `<delegated-prefix "${zero}" _ _ _>`,
      );
      // The servers open their sockets only on running links: start them once every
      // one runs (the daemon sets the router's ends up).
      const running = () =>
        [...all.map((c) => [isp, c.link.ifname]), [fakeIsp, 'isp6']].every(([ns, end]) =>
          /LOWER_UP/.test(ip('-n', ns!, 'link', 'show', end!)),
        );
      await until(() => running() || undefined, {
        timeoutMs: 30_000,
        describe: () => `every ISP link running\n${ip('-n', isp, 'link')}\n${daemon.logTail(25)}`,
      });
      peer(isp, ['kea-dhcp6', '-c', join(dir, 'kea.json')], {
        KEA_PIDFILE_DIR: dir,
        KEA_LOCKFILE_DIR: dir,
      });
      peer(fakeIsp, [process.execPath, FAKE_SERVER, 'isp6', JSON.stringify(fakeReply)]);
    });

    after(async () => {
      await watch?.stop();
      await terminate(peers);
      const left = (await daemon?.dispose()) ?? [];
      for (const ns of [isp, fakeIsp, rtr])
        spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
      // dhcpcd's DUID and lease copies are in the daemon's state, in dir.
      rmSync(dir, { recursive: true, force: true });
      assert.deepEqual(left, [], `left running: ${describeProcs(left)}`);
    });

    /** Waits for `<dhcpv6-lease WAN …>` and returns it. */
    const lease = async (c: Wan) =>
      (
        await until(() => query(`<dhcpv6-lease "${c.wan}" _>`), {
          timeoutMs: 30_000,
          describe: seen(c),
        })
      )[0]!;
    const errors = async (c: Wan) => (await query(`<dhcpv6-error "${c.wan}" _>`)).sort();
    const error = (c: Wan, m: string) => `<dhcpv6-error "${c.wan}" ${JSON.stringify(m)}>`;
    /** The IA_NA address, once the reconciler installed it: in the kernel too. */
    /**
     * The good part of c's lease stands: its one good DNS server (NET::53) and search
     * domain, and its IA_NA address, installed (in the kernel too).
     */
    const restStands = async (c: Wan, search: string) => {
      assert.deepEqual(await query(`<dns-server _ <dhcpv6 "${c.wan}">>`), [
        `<dns-server "${c.net}::53" <dhcpv6 "${c.wan}">>`,
      ]);
      assert.deepEqual(await query(`<dns-search _ <dhcpv6 "${c.wan}">>`), [
        `<dns-search "${search}" <dhcpv6 "${c.wan}">>`,
      ]);
      await until(() => query(`<ip-address-state "${c.wan}" _ installed _>`), {
        timeoutMs: 15_000,
        describe: seen(c),
      });
      assert.match(addrs(c.wan), new RegExp(`${c.net}::1[0-9a-f]{2}/128`));
    };

    it('/80: dhcpcd takes a delegated prefix longer than /64; limen refuses it, and the address and DNS stand', async () => {
      const c = cases.long;
      assert.match(
        await lease(c),
        /addresses: \["2001:db8:11::1[0-9a-f]{2}\/128"\] .*prefixes: \[\]/,
      );
      // dhcpcd handed it over as it came: the hook's output holds the /80.
      assert.match(
        (await query(`<output <daemon <dhcpcd "${c.wan}">> prefixes _>`))[0] ?? '',
        /\[\["2001:db8:8010::" 80 300 600\]\]/,
      );
      assert.deepEqual(await errors(c), [
        error(
          c,
          'prefix "2001:db8:8010::/80": longer than /64, so it holds no /64 for a LAN: refused',
        ),
      ]);
      assert.deepEqual(await query(`<delegated-prefix "${c.wan}" _ _ _>`), []);
      await restStands(c, 'example.test');
      assert.doesNotMatch(
        ip('-n', rtr, '-6', 'addr') + ip('-n', rtr, '-6', 'route'),
        /2001:db8:8010:/,
      );
    });

    it('dns: dhcpcd passes bogus DNS servers and a bad search domain; limen refuses each, and the rest stands', async () => {
      const c = cases.dns;
      await lease(c);
      assert.deepEqual(
        await errors(c),
        [
          'dns: "ff02::1" is a multicast address',
          'dns: "::" is the unspecified address',
          'dns: "::1" is the loopback address',
          // dhcpcd adds the zone to a link-local address.
          `dns: "fe80::1%${c.wan}" is a link-local address with a zone`,
          'dns: "::ffff:192.0.2.53" is an IPv4-mapped address',
          'domains: "-x-.test" is not a domain name',
        ]
          .map((m) => error(c, m))
          .sort(),
      );
      assert.deepEqual(await query(`<delegated-prefix "${c.wan}" _ _ _>`), [
        `<delegated-prefix "${c.wan}" "2001:db8:8020::/56" {preferred: 300 renewed: "bound6 1" valid: 600} <dhcpv6 "${c.wan}">>`,
      ]);
      await restStands(c, 'ok.test');
    });

    it('zero: dhcpcd binds a valid lifetime of 0 and expires it at once; limen refuses it each time, and installs nothing', async () => {
      const c = cases.zero;
      const lines = () => watch!.lines();
      // dhcpcd's own view: bound, expired at once, and again (it asks anew).
      await until(() => (dhcpcdLog(c).match(/DHCPv6 lease expired/g) ?? []).length >= 2, {
        timeoutMs: 30_000,
        describe: seen(c),
      });
      // Each bound lease lives a moment: the watch saw limen refuse it.
      const refused = [
        `address 2001:db8:13::1[0-9a-f]{2}`,
        `prefix 2001:db8:8030:[0-9a-f:]*/56`,
      ].map(
        (what) =>
          new RegExp(
            `^\\+ <dhcpv6-error "${c.wan}" "${what}: a valid lifetime of 0 \\(expired\\)">$`,
          ),
      );
      await until(
        () =>
          lines().some((l) => l.startsWith(`+ <dhcpv6-lease "${c.wan}"`)) &&
          refused.every((re) => lines().some((l) => re.test(l))),
        {
          timeoutMs: 30_000,
          describe: () => `the watch:\n${lines().join('\n')}\n${seen(c)()}`,
        },
      );
      const added = lines().filter((l) => l.startsWith('+ '));
      for (const l of added.filter((x) => x.startsWith(`+ <dhcpv6-lease`)))
        assert.match(l, /addresses: \[\] .*prefixes: \[\]/);
      // Never desired, so never installed.
      assert.deepEqual(
        added.filter((l) => /^\+ <(ip-address|delegated-prefix) /.test(l)),
        [],
      );
      assert.doesNotMatch(addrs(c.wan), /2001:db8:13:/);
    });

    it('inverted: dhcpcd refuses a preferred lifetime longer than the valid one, so limen never sees a lease', async () => {
      const c = cases.inverted;
      const log = await until(
        () => {
          const l = dhcpcdLog(c);
          return /no useable IA found in lease/.test(l) && l;
        },
        { timeoutMs: 30_000, describe: seen(c) },
      );
      assert.match(log, /IA Address pltime 900 > vltime 600/);
      assert.match(log, /IA Prefix pltime 900 > vltime 600/);
      assert.deepEqual(await query(`<output <daemon <dhcpcd "${c.wan}">> _ _>`), []);
      assert.deepEqual(await query(`<dhcpv6-lease "${c.wan}" _>`), []);
      assert.deepEqual(await errors(c), []);
      assert.deepEqual(await query(`<ip-address "${c.wan}" _ _>`), []);
      assert.doesNotMatch(addrs(c.wan), /2001:db8:14:/);
    });

    it('label: a space inside a name; limen refuses the name whole, and the rest stands', async () => {
      const c = cases.label;
      await lease(c);
      // The hook decoded the raw option: nothing split at the space, nothing cleaned.
      assert.deepEqual(await query(`<output <daemon <dhcpcd "${c.wan}">> domains _>`), [
        String.raw`<output <daemon <dhcpcd "${c.wan}">> domains ["a\\032b.test" "ok.test"]>`,
      ]);
      assert.deepEqual(await errors(c), [
        error(c, String.raw`domains: "a\\032b.test" is not a domain name`),
      ]);
      await restStands(c, 'ok.test');
    });

    it('fake: dhcpcd passes a prefix with bits beyond its length and names with a control byte or a pointer; limen refuses each, and the rest stands', async () => {
      const c = fake;
      await lease(c);
      // dhcpcd handed the prefix over as it came.
      assert.deepEqual(await query(`<output <daemon <dhcpcd "${c.wan}">> prefixes _>`), [
        `<output <daemon <dhcpcd "${c.wan}">> prefixes [["2001:db8:8060:ff::" 56 300 600]]>`,
      ]);
      assert.deepEqual(
        await errors(c),
        [
          'prefix "2001:db8:8060:ff::/56": not a network (bits set beyond /56)',
          String.raw`domains: "a\\001b.test" is not a domain name`,
          String.raw`domains: "xix\\(compressed)" is not a domain name`,
        ]
          .map((m) => error(c, m))
          .sort(),
      );
      assert.deepEqual(await query(`<delegated-prefix "${c.wan}" _ _ _>`), []);
      await restStands(c, 'ok.test');
    });

    it('the LAN gets a /64 from each accepted prefix, and none from a refused one', async () => {
      const want = ['2001:db8:8020:1::1/64', '2001:db8:8050:1::1/64'];
      const lan = () =>
        [...addrs('lan0').matchAll(/inet6 (2001:db8:[0-9a-f:]+\/\d+)/g)].map((m) => m[1]);
      await until(() => lan().length === want.length || undefined, {
        timeoutMs: 15_000,
        describe: () => `lan0's addresses:\n${addrs('lan0')}\n${daemon.logTail(20)}`,
      });
      assert.deepEqual(lan().sort(), want);
    });
  },
);
