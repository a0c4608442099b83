// The LAN client list: DHCPv4 leases and IPv6 neighbours joined by hardware
// address on LAN interfaces only; link-local addresses left out; one replace per
// turn, whatever changed in it; gone with the last lease and neighbour.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parse, stringify, type Value } from '../../../src/preserves/index.ts';
import { Dataspace, P, type Handle } from '../../../src/dataspace/index.ts';
import { isClientIpv6, lanClientValue, startLanClients } from '../../../src/net/lan-clients.ts';
import { checkedEngine } from '../../support/engine-log.ts';

const v = (text: string): Value => parse(text);
const MAC = '02:00:5e:10:00:01';

describe('a LAN client', () => {
  it('is known by its global and ULA addresses, not its link-local one', () => {
    assert.equal(isClientIpv6('2001:db8::10'), true);
    assert.equal(isClientIpv6('fd12:3456:789a:1::10'), true);
    assert.equal(isClientIpv6('fe80::1'), false);
    assert.equal(isClientIpv6('ff02::1'), false);
    assert.equal(isClientIpv6('::1'), false);
  });

  it('joins its leases and addresses in one value', () => {
    assert.equal(
      stringify(
        lanClientValue(
          'lan0',
          MAC,
          [
            { ip: '192.168.1.20', hostname: undefined, expires: 1_700_000_500 },
            { ip: '192.168.1.3', hostname: 'laptop', expires: 1_700_000_000 },
          ],
          ['2001:db8::10', 'fd00::10', '2001:db8::10'],
        ),
      ),
      '<lan-client "lan0" "02:00:5e:10:00:01" {expires: 1700000500 hostname: "laptop" ipv4: ["192.168.1.3" "192.168.1.20"] ipv6: ["2001:db8::10" "fd00::10"]}>',
    );
    assert.equal(
      stringify(lanClientValue('lan0', MAC, [], ['2001:db8::10'])),
      '<lan-client "lan0" "02:00:5e:10:00:01" {expires: #f hostname: #f ipv4: [] ipv6: ["2001:db8::10"]}>',
    );
    const never = lanClientValue(
      'lan0',
      MAC,
      [
        { ip: '192.168.1.3', hostname: 'nas', expires: undefined },
        { ip: '192.168.1.4', hostname: undefined, expires: 1_700_000_000 },
      ],
      [],
    );
    assert.match(stringify(never), /expires: never/);
  });
});

describe('the client list driver', () => {
  function start() {
    const { engine } = checkedEngine();
    const config = new Dataspace(engine, 'config');
    const machine = new Dataspace(engine, 'machine');
    engine.turn(() => startLanClients(engine.root, { config: config.ref, machine: machine.ref }));
    const put = (ds: Dataspace, ...texts: string[]): Handle[] => {
      const hs: Handle[] = [];
      engine.turn(() => {
        for (const t of texts) hs.push(engine.root.assert(ds.ref, v(t)));
      });
      return hs;
    };
    const drop = (...hs: Handle[]) =>
      engine.turn(() => {
        for (const h of hs) engine.root.retract(h);
      });
    const clients = () =>
      machine.query(P.rec('lan-client', P._, P._, P._)).map((r) => stringify(r.value));
    // Every value the list ever published, in order.
    const seen: string[] = [];
    engine.turn(() =>
      engine.root.observe(machine.ref, P.rec('lan-client', P._, P._, P._), {
        onAdd: (x) => seen.push(`+ ${stringify(x)}`),
        onRemove: (x) => seen.push(`- ${stringify(x)}`),
      }),
    );
    return { engine, config, machine, put, drop, clients, seen };
  }

  it('lists a LAN host by its lease and by its IPv6 neighbours, joined by MAC', async () => {
    const t = start();
    t.put(t.config, '<lan-dhcp "lan0" {range: ["192.168.1.100" "192.168.1.200"]}>');
    const [lease] = t.put(
      t.machine,
      `<dhcp-client "lan0" "02:00:5E:10:00:01" "192.168.1.100" "laptop" 1700000000>`,
    );
    const neighbours = t.put(
      t.machine,
      `<neighbour "lan0" ipv6 "2001:db8::10" "${MAC}" dynamic>`,
      `<neighbour "lan0" ipv6 "fe80::10" "${MAC}" dynamic>`,
      // Another host with a global address only (SLAAC, no DHCPv4).
      `<neighbour "lan0" ipv6 "2001:db8::20" "02:00:5e:10:00:02" dynamic>`,
      // Link-local only: no client.
      `<neighbour "lan0" ipv6 "fe80::30" "02:00:5e:10:00:03" dynamic>`,
      // IPv4 neighbours are not joined.
      `<neighbour "lan0" ipv4 "192.168.1.100" "${MAC}" dynamic>`,
      // Not a LAN interface.
      `<neighbour "wan0" ipv6 "2001:db8:f::1" "02:00:5e:10:00:09" dynamic>`,
    );
    await t.engine.sync();
    assert.deepEqual(t.clients().sort(), [
      '<lan-client "lan0" "02:00:5e:10:00:01" {expires: 1700000000 hostname: "laptop" ipv4: ["192.168.1.100"] ipv6: ["2001:db8::10"]}>',
      '<lan-client "lan0" "02:00:5e:10:00:02" {expires: #f hostname: #f ipv4: [] ipv6: ["2001:db8::20"]}>',
    ]);
    // The lease goes: the host stays, by its neighbour.
    t.drop(lease!);
    await t.engine.sync();
    assert.ok(
      t
        .clients()
        .includes(
          '<lan-client "lan0" "02:00:5e:10:00:01" {expires: #f hostname: #f ipv4: [] ipv6: ["2001:db8::10"]}>',
        ),
    );
    t.drop(...neighbours);
    await t.engine.sync();
    assert.deepEqual(t.clients(), []);
  });

  it('replaces a client once per turn, whatever changed in it', async () => {
    const t = start();
    t.put(t.config, '<lan-dhcp "lan0" {range: ["192.168.1.100" "192.168.1.200"]}>');
    const [old] = t.put(t.machine, `<dhcp-client "lan0" "${MAC}" "192.168.1.100" #f 100>`);
    await t.engine.sync();
    t.seen.length = 0;
    // A renewal and a new address in one turn: one replace, nothing transient.
    t.engine.turn(() => {
      t.engine.root.retract(old!);
      t.engine.root.assert(
        t.machine.ref,
        v(`<dhcp-client "lan0" "${MAC}" "192.168.1.100" #f 200>`),
      );
      t.engine.root.assert(
        t.machine.ref,
        v(`<neighbour "lan0" ipv6 "2001:db8::10" "${MAC}" dynamic>`),
      );
      t.engine.root.assert(
        t.machine.ref,
        v(`<neighbour "lan0" ipv6 "2001:db8::11" "${MAC}" dynamic>`),
      );
    });
    await t.engine.sync();
    assert.deepEqual(t.seen, [
      `+ <lan-client "lan0" "${MAC}" {expires: 200 hostname: #f ipv4: ["192.168.1.100"] ipv6: ["2001:db8::10" "2001:db8::11"]}>`,
      `- <lan-client "lan0" "${MAC}" {expires: 100 hostname: #f ipv4: ["192.168.1.100"] ipv6: []}>`,
    ]);
    // A neighbour whose state changes (dynamic to permanent) changes no client.
    t.seen.length = 0;
    t.put(t.machine, `<neighbour "lan0" ipv6 "2001:db8::10" "${MAC}" permanent>`);
    await t.engine.sync();
    assert.deepEqual(t.seen, []);
  });

  it('ends the list of an interface that is no LAN any more', async () => {
    const t = start();
    const [spec] = t.put(t.config, '<lan-dhcp "lan0" {range: ["192.168.1.100" "192.168.1.200"]}>');
    t.put(t.machine, `<neighbour "lan0" ipv6 "2001:db8::10" "${MAC}" dynamic>`);
    await t.engine.sync();
    assert.equal(t.clients().length, 1);
    t.drop(spec!);
    await t.engine.sync();
    assert.deepEqual(t.clients(), []);
  });
});
