// The dhcpv6 protocol's pure half: its options, dhcpcd's configuration, and what
// dhcpcd-script's outputs mean (hostile values refused and never installed); the
// hook itself, run as dhcpcd runs it (a shell, no root), on hostile search domains;
// and the driver on a PPP link's interface, which comes and goes with its session.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse, stringify, type Value } from '../../../src/preserves/index.ts';
import { Dataspace, P, type Handle } from '../../../src/dataspace/index.ts';
import {
  acceptRaKey,
  dhcpcdConfig,
  interpretDhcpv6,
  ipv6UnicastProblem,
  readDhcpv6,
  startDhcpv6,
} from '../../../src/net/dhcpv6.ts';
import { startSysctl } from '../../../src/net/sysctl.ts';
import { protocolOf } from '../../../src/net/protocols.ts';
import { checkedEngine } from '../../support/engine-log.ts';

const v = (t: string): Value => parse(t);
const show = (x: Value) => stringify(x);
const outputs = (o: { [k: string]: string }) =>
  new Map(Object.entries(o).map(([k, t]) => [k, v(t)] as const));

const good = {
  addresses: '[["2001:db8:1::100" 300 600]]',
  prefixes: '[["2001:db8:8000::" 56 300 600]]',
  dns: '["2001:db8:1::53"]',
  domains: '["Example.test"]',
  server: '"00030001aabbcc"',
  event: '"bound6 1"',
};

describe('dhcpv6 options', () => {
  it('reads defaults and every option, and collects every problem', () => {
    assert.deepEqual(readDhcpv6(v('<dhcpv6>')), {
      ok: true,
      options: { address: true, prefix: true, prefixHint: undefined },
    });
    assert.deepEqual(readDhcpv6(v('<dhcpv6 {address: #f prefix-hint: 56}>')), {
      ok: true,
      options: { address: false, prefix: true, prefixHint: 56 },
    });
    assert.deepEqual(readDhcpv6(v('<dhcpv6 {prefix-hint: 65 adress: #t prefix: #f}>')), {
      ok: false,
      problems: [
        'unknown option adress (known: address, prefix, prefix-hint)',
        'prefix-hint must be a prefix length from 32 to 64',
        'prefix-hint asks for a prefix, but prefix is #f',
      ],
    });
  });

  it('tells dhcpcd to leave RAs to the kernel, and asks for IA_NA and IA_PD with the hint', () => {
    const c = dhcpcdConfig('wan0', { address: true, prefix: true, prefixHint: 56 });
    assert.deepEqual(c, [
      'noipv6rs',
      'option dhcp6_name_servers',
      'define6 24 binhex domain_search_raw',
      'option dhcp6_domain_search_raw',
      'interface wan0',
      'ia_na 1',
      'ia_pd 2/::/56',
    ]);
    assert.ok(
      dhcpcdConfig('wan0', { address: false, prefix: false, prefixHint: undefined }).includes(
        'inform6',
      ),
    );
    assert.equal(acceptRaKey('wan0'), 'net.ipv6.conf.wan0.accept_ra');
    assert.equal(acceptRaKey('wan0.7'), 'net/ipv6/conf/wan0.7/accept_ra');
  });

  it('is an IPv6 protocol, so it shares an interface with dhcp', () => {
    assert.deepEqual(protocolOf(v('<dhcpv6 {}>'))?.families(v('<dhcpv6 {}>')), ['ipv6']);
    assert.equal(protocolOf(v('<dhcpv6>'))?.release?.session, 'dhcpv6-lease');
  });
});

describe('interpreting dhcpcd-script outputs', () => {
  it('gives the address, DNS, the delegated prefix and the status, with lifetimes', () => {
    const r = interpretDhcpv6('wan0', outputs(good), {
      addresses: ['2001:db8:1:0:a8bb:ccff:fe00:1/64', '2001:db8:1::100/128'],
      routes: [{ via: 'fe80::1', metric: 1024 }],
    });
    assert.deepEqual(r.problems, []);
    assert.deepEqual(
      r.assertions.map(show).sort(),
      [
        '<ip-address "wan0" "2001:db8:1::100/128" {preferred: 300 renewed: "bound6 1" valid: 600}>',
        '<dns-server "2001:db8:1::53" <dhcpv6 "wan0">>',
        '<dns-search "example.test" <dhcpv6 "wan0">>',
        '<delegated-prefix "wan0" "2001:db8:8000::/56" {preferred: 300 renewed: "bound6 1" valid: 600} <dhcpv6 "wan0">>',
        // The kernel's own (SLAAC, the RA's route): reported, not desired.
        '<kernel-address "wan0" "2001:db8:1:0:a8bb:ccff:fe00:1/64" {} <dhcpv6 "wan0">>',
        '<kernel-route ipv6 "default" {dev: "wan0" metric: 1024 via: "fe80::1"} <dhcpv6 "wan0">>',
        '<dhcpv6-lease "wan0" {addresses: ["2001:db8:1::100/128"] dns: ["2001:db8:1::53"] domains: ["example.test"] event: "bound6 1" prefixes: ["2001:db8:8000::/56"] server: "00030001aabbcc"}>',
      ]
        .map((t) => show(v(t)))
        .sort(),
    );
    // No desired route: the kernel's RA route is never installed a second time.
    assert.ok(!r.assertions.map(show).some((t) => t.startsWith('<ip-route')));
  });

  it('reports the kernel state alone, and nothing of a lease, before the event exists', () => {
    const { event: _, ...partial } = good;
    const r = interpretDhcpv6('wan0', outputs(partial), {
      addresses: ['2001:db8:1::5/64'],
      routes: [],
    });
    assert.deepEqual(r.assertions.map(show), [
      '<kernel-address "wan0" "2001:db8:1::5/64" {} <dhcpv6 "wan0">>',
    ]);
  });

  it('gives an infinite lifetime no number, and canonical addresses', () => {
    const r = interpretDhcpv6(
      'wan0',
      outputs({
        ...good,
        prefixes: '[["2001:0DB8:8000:0000::" 48 4294967295 4294967295]]',
      }),
    );
    assert.ok(
      r.assertions
        .map(show)
        .includes(
          show(
            v(
              '<delegated-prefix "wan0" "2001:db8:8000::/48" {renewed: "bound6 1"} <dhcpv6 "wan0">>',
            ),
          ),
        ),
    );
  });

  it('takes a valid lifetime of 0 beside a live prefix as the server withdrawing it (renumbering), not an error', () => {
    const r = interpretDhcpv6(
      'wan0',
      outputs({
        ...good,
        prefixes: '[["2001:db8:8000::" 56 0 0] ["2001:db8:8100::" 56 300 600]]',
      }),
    );
    assert.deepEqual(r.problems, []);
    const texts = r.assertions.map(show);
    assert.ok(texts.some((t) => t.includes('<delegated-prefix "wan0" "2001:db8:8100::/56"')));
    assert.ok(
      !texts.some((t) => t.includes('"2001:db8:8000::/56"') && !t.startsWith('<dhcpv6-lease')),
    );
    const lease = texts.find((t) => t.startsWith('<dhcpv6-lease'))!;
    assert.match(lease, /withdrawn: \["prefix 2001:db8:8000::\/56"\]/);
  });

  it('refuses hostile values with a message each, and installs none of them', () => {
    const cases: [{ [k: string]: string }, RegExp][] = [
      [{ prefixes: '[["2001:db8:8000::" 80 300 600]]' }, /longer than \/64.*refused/],
      [{ prefixes: '[["2001:db8:8000::1" 56 300 600]]' }, /not a network/],
      [{ prefixes: '[["ff02::" 56 300 600]]' }, /multicast/],
      // Nothing but expired values: a broken server (alone, one is a withdrawal: below).
      [
        { prefixes: '[["2001:db8:8000::" 56 0 0]]', addresses: '[["2001:db8:1::100" 0 0]]' },
        /valid lifetime of 0/,
      ],
      [{ prefixes: '[["2001:db8:8000::" 56 600 300]]' }, /preferred lifetime 600 is longer/],
      [{ prefixes: '[["2001:db8:8000::" 56 "300; x" 600]]' }, /whole numbers/],
      [{ addresses: '[["2001:db8:1::100" 900 600]]' }, /preferred lifetime 900/],
      [{ addresses: '[["fe80::1" 300 600]]' }, /link-local/],
      [{ addresses: '[["1.2.3.4" 300 600]]' }, /not an IPv6 address/],
      [{ dns: '["ff02::1"]' }, /^dns: "ff02::1" is a multicast address$/],
      [{ dns: '["::"]' }, /unspecified/],
      [{ dns: '["::1"]' }, /loopback/],
      [{ dns: '["fe80::1%wan0"]' }, /^dns: "fe80::1%wan0" is a link-local address with a zone$/],
      [{ dns: '["2001:db8::53%wan0"]' }, /^dns: "2001:db8::53%wan0" is an address with a zone$/],
      [{ dns: '["fe80::x%wan0"]' }, /^dns: "fe80::x%wan0" is not an IPv6 address$/],
      [{ dns: '["2001:db8::53\\"] <evil>"]' }, /spaces or characters that are not printable/],
      [{ dns: '["2001:db8::\\u0007"]' }, /not printable/],
      [{ domains: '["a\\u0001b"]' }, /not printable/],
      [{ domains: '["bad\\\\domain"]' }, /not a domain name/],
      [{ dns: '<evil>' }, /expected a sequence/],
    ];
    for (const [change, message] of cases) {
      const r = interpretDhcpv6('wan0', outputs({ ...good, ...change }));
      assert.ok(
        r.problems.some((p) => message.test(p)),
        `${JSON.stringify(change)}: ${JSON.stringify(r.problems)}`,
      );
      const texts = r.assertions.map(show);
      const errors = texts.filter((t) => t.startsWith('<dhcpv6-error "wan0" "'));
      assert.equal(errors.length, r.problems.length);
      // The hostile value is nowhere in the desired state.
      const key = Object.keys(change)[0]!;
      const kind = {
        prefixes: '<delegated-prefix',
        addresses: '<ip-address',
        dns: '<dns-server',
        domains: '<dns-search',
      }[key]!;
      assert.deepEqual(
        texts.filter((t) => t.startsWith(kind)),
        [],
        `${JSON.stringify(change)} installed nothing`,
      );
      // The rest of the lease stands.
      assert.ok(texts.some((t) => t.startsWith('<dhcpv6-lease "wan0"')));
    }
  });

  it("merges the RAs' RDNSS and DNSSL with DHCPv6's, each value once", () => {
    const ra = {
      addresses: [],
      routes: [],
      raDns: ['2001:db8:1::53', '2001:DB8:2::53'],
      raDomains: ['example.test', 'Other.Test'],
    };
    const r = interpretDhcpv6('wan0', outputs(good), ra);
    assert.deepEqual(r.problems, []);
    const texts = r.assertions.map(show);
    assert.deepEqual(
      texts.filter((t) => t.startsWith('<dns-')),
      [
        '<dns-server "2001:db8:1::53" <dhcpv6 "wan0">>',
        '<dns-server "2001:db8:2::53" <dhcpv6 "wan0">>',
        '<dns-search "example.test" <dhcpv6 "wan0">>',
        '<dns-search "other.test" <dhcpv6 "wan0">>',
      ],
    );
    // The lease's status lists the lease's own.
    assert.ok(texts.some((t) => t.includes('dns: ["2001:db8:1::53"] domains: ["example.test"]')));
    // Without a lease (no DHCPv6 server, or before it answered), the RA's alone.
    const { event: _, ...partial } = good;
    assert.deepEqual(interpretDhcpv6('wan0', outputs(partial), ra).assertions.map(show), [
      '<dns-server "2001:db8:1::53" <dhcpv6 "wan0">>',
      '<dns-server "2001:db8:2::53" <dhcpv6 "wan0">>',
      '<dns-search "example.test" <dhcpv6 "wan0">>',
      '<dns-search "other.test" <dhcpv6 "wan0">>',
    ]);
  });

  it("refuses the RAs' values as DHCPv6's, with or without a lease", () => {
    const ra = {
      addresses: [],
      routes: [],
      raDns: ['fe80::1', 'ff02::1', '2001:db8::53'],
      raDomains: ['bad!name.test', 'a b', 'ok.test'],
    };
    const { event: _, ...partial } = good;
    for (const o of [good, partial]) {
      const r = interpretDhcpv6('wan0', outputs(o), ra);
      assert.deepEqual(r.problems, [
        'ra-dns: "fe80::1" is a link-local address',
        'ra-dns: "ff02::1" is a multicast address',
        'ra-search: "bad!name.test" is not a domain name',
        'ra-search: "a b" holds spaces or characters that are not printable',
      ]);
      const texts = r.assertions.map(show);
      assert.equal(texts.filter((t) => t.startsWith('<dhcpv6-error "wan0"')).length, 4);
      assert.ok(texts.includes('<dns-server "2001:db8::53" <dhcpv6 "wan0">>'));
      assert.ok(texts.includes('<dns-search "ok.test" <dhcpv6 "wan0">>'));
      assert.ok(
        !texts.some((t) => /fe80::1"|ff02|bad!|"a b"/.test(t) && !t.startsWith('<dhcpv6-error')),
      );
    }
  });

  it('knows a unicast address', () => {
    assert.equal(ipv6UnicastProblem('2001:db8::1'), undefined);
    assert.equal(ipv6UnicastProblem('::ffff:1.2.3.4'), 'an IPv4-mapped address');
    assert.equal(ipv6UnicastProblem('febf::1'), 'a link-local address');
    assert.equal(ipv6UnicastProblem('fec0::1'), undefined);
  });
});

// ---- libexec/dhcpcd-script ----------------------------------------------------------------

const HOOK = resolve(import.meta.dirname, '../../../libexec/dhcpcd-script');

/** Runs the hook with these variables alone; the outputs it wrote, as limen reads them. */
function runHook(env: { [k: string]: string }): Map<string, Value> {
  const dir = mkdtempSync(join(tmpdir(), 'limen-dhcpcd-script-'));
  try {
    const r = spawnSync('sh', [HOOK], {
      env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', LIMEN_OUTPUTS: dir, ...env },
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    const out = new Map<string, Value>();
    for (const f of readdirSync(dir).filter((n) => !n.startsWith('.'))) {
      const text = readFileSync(join(dir, f), 'utf8').trim();
      if (f.endsWith('.pr')) out.set(f.slice(0, -3), v(text));
      else out.set(f, text);
    }
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** RFC 1035 wire format of names given as lists of labels (bytes as latin1), in hex. */
const wire = (...names: string[][]) =>
  Buffer.concat(
    names.map((labels) =>
      Buffer.concat([
        ...labels.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'latin1')])),
        Buffer.from([0]),
      ]),
    ),
  ).toString('hex');

describe('libexec/dhcpcd-script', () => {
  const bound = {
    reason: 'BOUND6',
    new_dhcp6_ia_na1_iaid: '00000001',
    new_dhcp6_ia_na1_ia_addr1: '2001:db8:1::100',
    new_dhcp6_ia_na1_ia_addr1_pltime: '300',
    new_dhcp6_ia_na1_ia_addr1_vltime: '600',
    new_dhcp6_name_servers: '2001:db8:1::53',
  };

  it('decodes the raw search list: a name with a space or a control byte is refused whole, never split or cleaned', () => {
    const out = runHook({
      ...bound,
      new_dhcp6_domain_search_raw: wire(
        ['a b', 'test'],
        ['Ok', 'test'],
        ['a\x01b', 'test'],
        ['x.y', 'test'],
      ),
    });
    assert.equal(
      show(out.get('domains')!),
      String.raw`["a\\032b.test" "Ok.test" "a\\001b.test" "x\\046y.test"]`,
    );
    const r = interpretDhcpv6('wan0', out);
    assert.deepEqual(r.problems, [
      String.raw`domains: "a\\032b.test" is not a domain name`,
      String.raw`domains: "a\\001b.test" is not a domain name`,
      String.raw`domains: "x\\046y.test" is not a domain name`,
    ]);
    assert.deepEqual(
      r.assertions.map(show).filter((t) => t.startsWith('<dns-search')),
      ['<dns-search "ok.test" <dhcpv6 "wan0">>'],
    );
  });

  it('ends a name cut short, compressed or with a bad length where it stops, and refuses the root', () => {
    const cases: [string, string][] = [
      ['', '[]'],
      // The label cut short is dropped.
      [wire(['ok', 'test']).slice(0, -4), String.raw`["ok\\(truncated)"]`],
      [`${wire(['ok', 'test'])}0361`, String.raw`["ok.test" "\\(truncated)"]`],
      [`${wire(['ok', 'test'])}03616263c00c`, String.raw`["ok.test" "abc\\(compressed)"]`],
      [`${wire(['ok', 'test'])}40`, String.raw`["ok.test" "\\(bad-length)"]`],
      [`00${wire(['ok', 'test'])}`, '["." "ok.test"]'],
      [`${wire(['ok', 'test'])}0`, String.raw`["ok.test" "\\(truncated)"]`],
      ['zz', String.raw`["\\(not-hex)"]`],
    ];
    for (const [hex, want] of cases) {
      const out = runHook({ ...bound, new_dhcp6_domain_search_raw: hex });
      assert.equal(show(out.get('domains')!), want, hex);
      const r = interpretDhcpv6('wan0', out);
      const refused = (v(want) as string[]).filter((d) => d !== 'ok.test');
      assert.deepEqual(
        r.problems,
        refused.map((d) => `domains: ${JSON.stringify(d)} is not a domain name`),
        hex,
      );
    }
  });
});

describe('dhcpv6 on a PPP link', () => {
  it('sets accept_ra while the session’s interface is there, runs dhcpcd once IPV6CP gave it a link-local address, and reports no failure between sessions', async (t) => {
    const root = mkdtempSync(join(tmpdir(), 'limen-dhcpv6-'));
    t.after(() => rmSync(root, { recursive: true, force: true }));
    const key = join(root, 'net/ipv6/conf/ppp-wan0/accept_ra');
    const { engine } = checkedEngine(t);
    const config = new Dataspace(engine, 'config');
    const machine = new Dataspace(engine, 'machine');
    engine.turn(() => {
      startSysctl(engine.root, { config: config.ref, machine: machine.ref, root });
      startDhcpv6(engine.root, { config: config.ref, machine: machine.ref });
    });
    const assertIn = async (ds: Dataspace, text: string): Promise<Handle> => {
      let h!: Handle;
      engine.turn(() => (h = engine.root.assert(ds.ref, parse(text))));
      await engine.sync();
      return h;
    };
    const retract = async (h: Handle) => {
      engine.turn(() => engine.root.retract(h));
      await engine.sync();
    };
    const labels = (...names: string[]) =>
      [...config.values()]
        .map((x) => stringify(x))
        .filter((x) => names.some((n) => x.startsWith(`<${n} `)))
        .sort();
    const dhcpcd = () =>
      config.query(P.rec('require-service', P.rec('daemon', P.rec('dhcpcd', P.lit('ppp-wan0')))))
        .length;
    /**
     * A session: pppd makes ppp-wan0 (the kernel's default accept_ra), which has
     * carrier as soon as it is up (during LCP); IPV6CP gives it its link-local address
     * later, and only then does dhcpcd start.
     */
    const session = async (index: number) => {
      mkdirSync(join(root, 'net/ipv6/conf/ppp-wan0'), { recursive: true });
      writeFileSync(key, '1\n');
      const link = await assertIn(machine, `<interface "ppp-wan0" ${index} ppp up up carrier #f>`);
      assert.equal(dhcpcd(), 0, 'no dhcpcd before the link-local address');
      const ll = await assertIn(
        machine,
        `<address "ppp-wan0" ipv6 "fe80::${index}" 128 {scope: link valid: forever preferred: forever}>`,
      );
      return [link, ll];
    };

    await assertIn(config, '<limen-paths {libexec: "/usr/libexec/limen" state: "/var/lib/limen"}>');
    await assertIn(config, '<configure-interface "ppp-wan0" <dhcpv6 {prefix-hint: 56}>>');
    // Before the first session: nothing asked of the kernel, nothing failed.
    assert.deepEqual(labels('sysctl', 'sysctl-error', 'dhcpv6-error'), []);
    assert.equal(dhcpcd(), 0);

    const first = await session(7);
    assert.equal(readFileSync(key, 'utf8'), '2');
    assert.equal(dhcpcd(), 1);
    assert.deepEqual(labels('sysctl-error'), []);
    // A lease on it, as dhcpcd-script hands it over: the prefix delegated over ppp-wan0.
    const service = '<daemon <dhcpcd "ppp-wan0">>';
    const outputs = [
      await assertIn(config, `<output ${service} prefixes [["2001:db8:8000::" 56 900 1800]]>`),
      await assertIn(config, `<output ${service} event "bound6 1">`),
    ];
    assert.deepEqual(labels('delegated-prefix'), [
      '<delegated-prefix "ppp-wan0" "2001:db8:8000::/56" {preferred: 900 renewed: "bound6 1" valid: 1800} <dhcpv6 "ppp-wan0">>',
    ]);

    // The session ends: the interface goes with it, and with it dhcpcd (whose outputs
    // the supervisor then clears) and the key; no failure while it is away.
    unlinkSync(key);
    for (const h of first) await retract(h);
    assert.equal(dhcpcd(), 0);
    for (const h of outputs) await retract(h);
    assert.deepEqual(labels('sysctl', 'sysctl-error', 'delegated-prefix', 'dhcpv6-error'), []);

    // The redial: a new interface, set again, and a new dhcpcd.
    await session(8);
    assert.equal(readFileSync(key, 'utf8'), '2');
    assert.equal(dhcpcd(), 1);
    assert.deepEqual(labels('sysctl-error'), []);
    engine.turn(() => engine.root.stop());
    await engine.sync();
  });
});
