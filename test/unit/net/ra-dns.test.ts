// RDNSS and DNSSL options as routers send them, built byte by byte: well-formed,
// truncated, of zero or inconsistent length, huge, with labels that are not
// printable or not labels at all; and the table that keeps them with their lifetimes.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseIp } from '../../../src/net/netlink-codec.ts';
import { ND_INFINITE_LIFETIME, RaDnsTable, decodeNdOption } from '../../../src/net/ra-dns.ts';

const ip = (s: string) => [...parseIp(s)!.bytes];
const u32 = (n: number) => [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];

/** An option: type, length in 8-octet units (computed unless given), 2 reserved bytes, lifetime, body. */
function option(type: number, lifetime: number, body: number[], units?: number): Uint8Array {
  const padded = [...body, ...new Array<number>((8 - (body.length % 8)) % 8).fill(0)];
  return Uint8Array.from([
    type,
    units ?? (8 + padded.length) / 8,
    0,
    0,
    ...u32(lifetime),
    ...padded,
  ]);
}
const rdnss = (lifetime: number, ...servers: string[]) => option(25, lifetime, servers.flatMap(ip));
/** Names in wire form: each label with its length, a zero after each name. */
const wire = (...names: string[]) =>
  names.flatMap((n) => [
    ...n.split('.').flatMap((l) => [l.length, ...[...l].map((c) => c.charCodeAt(0))]),
    0,
  ]);
const dnssl = (lifetime: number, body: number[]) => option(31, lifetime, body);

describe('RA options: decoding', () => {
  it('reads an RDNSS option: lifetime and every server', () => {
    assert.deepEqual(decodeNdOption(rdnss(600, '2001:db8::53', '2001:db8::54')), {
      kind: 'rdnss',
      lifetime: 600,
      servers: ['2001:db8::53', '2001:db8::54'],
    });
    assert.deepEqual(decodeNdOption(rdnss(ND_INFINITE_LIFETIME, 'fe80::1')), {
      kind: 'rdnss',
      lifetime: ND_INFINITE_LIFETIME,
      servers: ['fe80::1'],
    });
  });

  it('reads the biggest RDNSS there is (127 servers), bounded by the length byte', () => {
    const servers = Array.from({ length: 127 }, (_, i) => `2001:db8::${(i + 1).toString(16)}`);
    const o = decodeNdOption(rdnss(600, ...servers));
    assert.equal(o.kind, 'rdnss');
    assert.equal(o.kind === 'rdnss' && o.servers.length, 127);
  });

  it('reads a DNSSL option: names, lower-cased, and the padding after them', () => {
    assert.deepEqual(decodeNdOption(dnssl(300, wire('Example.TEST', 'lan'))), {
      kind: 'dnssl',
      lifetime: 300,
      domains: ['example.test', 'lan'],
      problems: [],
    });
  });

  it('refuses options of zero, short or inconsistent length, and RDNSS of an even length', () => {
    const cases: [Uint8Array, RegExp][] = [
      [Uint8Array.of(25), /shorter than 2 bytes/],
      [Uint8Array.of(25, 0, 0, 0, 0, 0, 0, 0), /length 0/],
      [rdnss(600, '2001:db8::53').subarray(0, 20), /says 24 bytes but holds 20/],
      [option(25, 600, ip('2001:db8::53'), 4), /says 32 bytes but holds 24/],
      [option(25, 600, new Array<number>(8).fill(1)), /RDNSS option of length 2/],
      [Uint8Array.of(25, 1, 0, 0, 0, 0, 2, 88), /RDNSS option of length 1/],
      [Uint8Array.of(31, 1, 0, 0, 0, 0, 2, 88), /DNSSL option of length 1/],
    ];
    for (const [bytes, problem] of cases) {
      const o = decodeNdOption(bytes);
      assert.equal(o.kind, 'invalid', `${[...bytes].join(',')}`);
      assert.match(o.kind === 'invalid' ? o.problem : '', problem);
    }
    assert.deepEqual(decodeNdOption(option(38, 0, [])), { kind: 'other', type: 38 });
  });

  it('reports DNSSL names that are not printable, truncated, too long or compressed', () => {
    const bad = (body: number[]) => {
      const o = decodeNdOption(dnssl(300, body));
      if (o.kind !== 'dnssl') assert.fail(`expected a DNSSL option, got ${o.kind}`);
      return { domains: o.domains, problems: o.problems };
    };
    // A label with a space and a control character: left out, the next name kept.
    assert.deepEqual(bad([...wire('ok.test'), 4, 0x61, 0x20, 0x07, 0x62, 0, ...wire('lan')]), {
      domains: ['ok.test', 'lan'],
      problems: ['"a\\x20\\x07b" holds characters that are not printable'],
    });
    // A compression pointer (0xc0): nothing after it can be read.
    assert.deepEqual(bad([...wire('ok.test'), 0xc0, 0x0c, ...wire('lan')]), {
      domains: ['ok.test'],
      problems: ['a label length of 192 (compression is not allowed; labels are at most 63 bytes)'],
    });
    // A label past the end of the option.
    const truncated = option(31, 300, [5, 0x61, 0x62, 0x63, 0x64, 0x65, 9, 0x61], 2);
    const t = decodeNdOption(truncated);
    assert.deepEqual(t.kind === 'dnssl' && t.problems, ['a label runs past the end of the option']);
    // A name that never ends.
    const endless = decodeNdOption(
      dnssl(300, [3, 0x61, 0x62, 0x63, 3, 0x64, 0x65, 0x66]).subarray(0, 16),
    );
    assert.deepEqual(endless.kind === 'dnssl' && endless.problems, [
      'a name runs past the end of the option',
    ]);
    // A dot inside a label would change the name's meaning.
    assert.deepEqual(bad([3, 0x61, 0x2e, 0x62, 0]).problems, [
      '"a.b" holds characters that are not printable',
    ]);
    // Longer than 255 bytes in all.
    const long = Array.from({ length: 5 }, () => 'a'.repeat(60)).join('.');
    assert.match(bad(wire(long)).problems[0]!, /longer than 255 bytes/);
  });

  it('never throws, whatever the bytes', () => {
    let seed = 7;
    const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) % 256;
    for (let i = 0; i < 2000; i++) {
      const bytes = Uint8Array.from({ length: rnd() % 64 }, rnd);
      if (bytes.length > 0 && i % 2 === 0) bytes[0] = i % 4 === 0 ? 25 : 31;
      decodeNdOption(bytes);
    }
  });
});

describe('RA options: the table', () => {
  const R1 = 'fe80::1';
  const R2 = 'fe80::2';

  it('keeps servers and domains with their lifetimes, and expires them', () => {
    const t = new RaDnsTable();
    const u = t.apply(2, R1, rdnss(600, '2001:db8::53'), 1_000_000);
    assert.deepEqual(u.problems, []);
    assert.deepEqual(
      u.changes.map((c) => [c.before?.value, c.after?.value, c.after?.expires]),
      [[undefined, '2001:db8::53', 1_600_000]],
    );
    t.apply(2, R1, dnssl(ND_INFINITE_LIFETIME, wire('example.test')), 1_000_000);
    assert.equal(t.nextExpiry(), 1_600_000);
    // The same again at the same time: no change. Later: a refreshed lifetime.
    assert.deepEqual(t.apply(2, R1, rdnss(600, '2001:db8::53'), 1_000_000).changes, []);
    assert.equal(t.apply(2, R1, rdnss(600, '2001:db8::53'), 1_200_000).changes.length, 1);
    assert.deepEqual(t.expire(1_700_000), []);
    assert.deepEqual(
      t.expire(1_800_000).map((c) => c.before?.value),
      ['2001:db8::53'],
    );
    assert.deepEqual(
      [...t.entries.values()].map((e) => [e.kind, e.value, e.expires]),
      [['search', 'example.test', undefined]],
    );
    assert.equal(t.nextExpiry(), undefined);
  });

  it('withdraws at once on a lifetime of 0, per router', () => {
    const t = new RaDnsTable();
    t.apply(2, R1, rdnss(600, '2001:db8::53', '2001:db8::54'), 0);
    t.apply(2, R2, rdnss(600, '2001:db8::53'), 0);
    const u = t.apply(2, R1, rdnss(0, '2001:db8::53', '2001:db8::54'), 1000);
    assert.deepEqual(
      u.changes.map((c) => [c.before?.value, c.after]),
      [
        ['2001:db8::53', undefined],
        ['2001:db8::54', undefined],
      ],
    );
    // The other router still advertises the first one.
    assert.deepEqual(
      [...t.entries.values()].map((e) => [e.router, e.value]),
      [[R2, '2001:db8::53']],
    );
    assert.deepEqual(t.apply(3, R1, dnssl(0, wire('gone.test')), 0).changes, []);
  });

  it('keeps at most the limit per interface and kind, and says how many it left out', () => {
    const t = new RaDnsTable(8);
    const servers = Array.from({ length: 127 }, (_, i) => `2001:db8::${(i + 1).toString(16)}`);
    const u = t.apply(2, R1, rdnss(600, ...servers), 0);
    assert.equal(u.changes.length, 8);
    assert.deepEqual(u.problems, [
      '119 more DNS servers left out: at most 8 are kept per interface',
    ]);
    // Eight more routers with more of them: still eight on the interface.
    for (let r = 0; r < 8; r++) t.apply(2, `fe80::${r + 10}`, rdnss(600, ...servers), 0);
    assert.equal(t.entries.size, 8);
    // Another interface and the domains have limits of their own.
    assert.equal(t.apply(3, R1, rdnss(600, ...servers), 0).changes.length, 8);
    const names = Array.from({ length: 40 }, (_, i) => `d${i}.test`);
    assert.equal(t.apply(2, R1, dnssl(600, wire(...names)), 0).changes.length, 8);
    // A withdrawn one makes room again.
    t.apply(2, R1, rdnss(0, servers[0]!), 0);
    assert.equal(t.apply(2, R2, rdnss(600, '2001:db8::ffff'), 0).changes.length, 1);
  });

  it('reports what is wrong, drops an interface, ignores other options', () => {
    const t = new RaDnsTable();
    assert.deepEqual(t.apply(2, R1, Uint8Array.of(25, 0), 0), {
      changes: [],
      problems: ['an option of type 25 with length 0'],
    });
    const u = t.apply(2, R1, dnssl(600, [...wire('ok.test'), 2, 0x20, 0x20, 0]), 0);
    assert.deepEqual(u.problems, ['DNSSL: "\\x20\\x20" holds characters that are not printable']);
    assert.equal(u.changes.length, 1);
    assert.deepEqual(t.apply(2, R1, option(37, 600, [0x68, 0x74]), 0), {
      changes: [],
      problems: [],
    });
    t.apply(3, R1, rdnss(600, '2001:db8::53'), 0);
    assert.deepEqual(
      t.dropInterface(2).map((c) => c.before?.value),
      ['ok.test'],
    );
    assert.equal(t.entries.size, 1);
  });
});
