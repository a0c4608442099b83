// The interface protocols' table (src/net/protocols.ts): each method is found by its
// label, and one IPv4 and one IPv6 protocol may share an interface, not two of one
// family (that is `<interface-failed IF "…">` while it lasts).

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parse, stringify, type Value } from '../../../src/preserves/index.ts';
import { Dataspace, P, type Handle } from '../../../src/dataspace/index.ts';
import { protocolOf, startInterfaceProtocols } from '../../../src/net/protocols.ts';
import { checkedEngine } from '../../support/engine-log.ts';

const v = (text: string): Value => parse(text);

describe('interface protocols', () => {
  it('finds a protocol by its method, and says which families a method configures', () => {
    assert.equal(protocolOf(v('<dhcp>'))?.name, 'dhcp');
    assert.equal(protocolOf(v('<dhcp {hostname: "gw"}>'))?.name, 'dhcp');
    assert.equal(protocolOf(v('<pppoe {}>'))?.name, 'pppoe');
    assert.equal(protocolOf(v('<l2tp {}>'))?.creates, true);
    assert.equal(protocolOf(v('<dhcpv6 {}>'))?.name, 'dhcpv6');
    assert.equal(protocolOf(v('<slaac {}>')), undefined);
    const st = protocolOf(v('<static "2001:db8::1/64">'))!;
    assert.deepEqual(st.families(v('<static "2001:db8::1/64">')), ['ipv6']);
    assert.deepEqual(st.families(v('<static "192.0.2.1/24">')), ['ipv4']);
  });

  it('reports two protocols of one family on an interface, and lets one of each be', async () => {
    const engine = checkedEngine().engine;
    const config = new Dataspace(engine, 'config');
    const machine = new Dataspace(engine, 'machine');
    engine.turn(() =>
      startInterfaceProtocols(engine.root, { config: config.ref, machine: machine.ref }),
    );
    const held = new Map<string, Handle>();
    const assertText = (text: string) =>
      engine.turn(() => held.set(text, engine.root.assert(config.ref, v(text))));
    const retractText = (text: string) => engine.turn(() => engine.root.retract(held.get(text)!));
    const failed = () =>
      config
        .query(P.rec('interface-failed', P.lit('wan0'), P.bind('why')))
        .map((r) => stringify(r.captures.get('why')!));

    assertText('<configure-interface "wan0" <dhcp>>');
    assertText('<configure-interface "wan0" <static "2001:db8::2/64">>');
    await engine.sync();
    assert.deepEqual(failed(), [], 'dhcp (IPv4) and a static IPv6 address share wan0');

    assertText('<configure-interface "wan0" <static "192.0.2.2/24">>');
    await engine.sync();
    assert.deepEqual(failed(), [
      '"dhcp and static both configure one address family here: keep one (one IPv4 and one IPv6 protocol per interface)"',
    ]);

    retractText('<configure-interface "wan0" <dhcp>>');
    await engine.sync();
    assert.deepEqual(failed(), [], 'the clash goes with one of the two');

    assertText('<configure-interface "wan0" <dhcpv6 {prefix-hint: 56}>>');
    await engine.sync();
    assert.deepEqual(failed(), [
      '"dhcpv6 and static both configure one address family here: keep one (one IPv4 and one IPv6 protocol per interface)"',
    ]);
    retractText('<configure-interface "wan0" <static "2001:db8::2/64">>');
    await engine.sync();
    assert.deepEqual(failed(), [], 'a static IPv4 address and dhcpv6 share wan0');
    engine.turn(() => engine.root.stop());
    await engine.sync();
  });
});
