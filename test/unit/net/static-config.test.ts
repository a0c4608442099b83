// Static interface configuration: `<configure-interface IF <static …>>` becomes
// the desired address, default route and DNS; every problem is reported
// together in one <interface-failed …>, and nothing is installed then.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parse, stringify, type Value } from '../../../src/preserves/index.ts';
import { Dataspace, type Handle } from '../../../src/dataspace/index.ts';
import { interpretStatic, startStaticConfig } from '../../../src/net/static-config.ts';
import { checkedEngine } from '../../support/engine-log.ts';

const v = (text: string): Value => parse(text);
const method = (text: string) => {
  const c = v(text) as unknown as { fields: Value[] };
  return { ifname: c.fields[0]!, method: c.fields[1]! };
};
const interpret = (text: string) => {
  const m = method(text);
  const r = interpretStatic(m.ifname, m.method);
  return { texts: r.assertions.map((a) => stringify(a)).sort(), problems: r.problems };
};
const sorted = (...texts: string[]) => texts.map((t) => stringify(v(t))).sort();

describe('static configuration', () => {
  it('gives the address, the default route and the DNS servers', () => {
    const r = interpret(
      '<configure-interface "lan0" <static "192.168.8.1/24" {gateway: "192.168.8.254" dns: ["192.168.8.254" "2001:db8::53"] search: ["Lan"]}>>',
    );
    assert.deepEqual(r.problems, []);
    assert.deepEqual(
      r.texts,
      sorted(
        '<ip-address "lan0" "192.168.8.1/24" {}>',
        '<ip-route ipv4 "default" {via: "192.168.8.254" dev: "lan0" metric: 100}>',
        '<dns-server "192.168.8.254" static>',
        '<dns-server "2001:db8::53" static>',
        '<dns-search "lan" static>',
      ),
    );
  });

  it('takes the address alone, and IPv6', () => {
    assert.deepEqual(
      interpret('<configure-interface "lan0" <static "192.168.8.1/24">>').texts,
      sorted('<ip-address "lan0" "192.168.8.1/24" {}>'),
    );
    assert.deepEqual(
      interpret('<configure-interface "lan0" <static "2001:db8::1/64" {gateway: "fe80::1"}>>')
        .texts,
      sorted(
        '<ip-address "lan0" "2001:db8::1/64" {}>',
        '<ip-route ipv6 "default" {via: "fe80::1" dev: "lan0" metric: 100}>',
      ),
    );
  });

  it('reports every problem together, says what to do, and installs nothing', () => {
    const r = interpret(
      '<configure-interface "a very long interface name" <static "192.168.8.300/24" {gateway: "224.0.0.1" dns: ["1.1.1.1" "x"] gatway: "1.2.3.4" search: ["a b"]}>>',
    );
    assert.deepEqual(r.problems, [
      'interface "a very long interface name" is longer than 15 characters',
      'address "192.168.8.300/24": "192.168.8.300" is not an IP address',
      'gateway: "224.0.0.1" is a multicast address',
      'dns: "x" is not an IP address',
      "unknown option 'gatway' (did you mean 'gateway'?)",
      'search: "a b" is not a domain name',
    ]);
    assert.equal(r.texts.length, 1);
    assert.equal(
      r.texts[0],
      stringify(
        v(
          `<interface-failed "a very long interface name" ${JSON.stringify(`static: ${r.problems.join('; ')}`)}>`,
        ),
      ),
    );
  });

  it('explains malformed shapes', () => {
    assert.deepEqual(interpret('<configure-interface "lan0" <static>>').problems, [
      'expected <static "ADDR/LEN" {gateway: "GW" dns: ["A" …] search: ["DOMAIN" …]}>, got 0 fields',
    ]);
    assert.deepEqual(interpret('<configure-interface lan0 <static "10.0.0.1" ["x"]>>').problems, [
      'the interface must be a string, got the symbol lan0',
      'the options must be a dictionary <static "ADDR/LEN" {gateway: "GW" dns: ["A" …] search: ["DOMAIN" …]}>, got a sequence',
      'address "10.0.0.1": needs a prefix length, as in "192.168.8.1/24"',
    ]);
    assert.deepEqual(interpret('<configure-interface "lan0" <static "127.0.0.1/8">>').problems, [
      'address "127.0.0.1/8": 127.0.0.1 is a loopback address',
    ]);
  });

  it('follows the configuration: asserted while it is, replaced when it changes', async () => {
    const engine = checkedEngine().engine;
    const config = new Dataspace(engine, 'config');
    engine.turn(() => startStaticConfig(engine.root, { config: config.ref, routeMetric: 50 }));
    const assertText = (text: string): Handle => {
      let h: Handle | undefined;
      engine.turn(() => (h = engine.root.assert(config.ref, v(text))));
      return h!;
    };
    const all = () => [...config.values()].map((x) => stringify(x));
    // Its failures' shape is declared while it runs, whatever the configuration.
    assert.ok(all().includes('<failure-shape <interface-failed _ _>>'), all().join(' '));
    const derived = () =>
      all()
        .filter((s) => !s.startsWith('<configure-interface') && !s.startsWith('<failure-shape'))
        .sort();
    const a = assertText(
      '<configure-interface "lan0" <static "10.0.0.1/24" {gateway: "10.0.0.254"}>>',
    );
    await engine.sync();
    assert.deepEqual(
      derived(),
      sorted(
        '<ip-address "lan0" "10.0.0.1/24" {}>',
        '<ip-route ipv4 "default" {via: "10.0.0.254" dev: "lan0" metric: 50}>',
      ),
    );
    const b = assertText('<configure-interface "lan0" <static "10.0.0.1/33">>');
    engine.turn(() => engine.root.retract(a));
    await engine.sync();
    assert.equal(derived().length, 1);
    assert.match(derived()[0]!, /^<interface-failed "lan0" "static: address/);
    engine.turn(() => engine.root.retract(b));
    await engine.sync();
    assert.deepEqual(derived(), []);
  });
});
