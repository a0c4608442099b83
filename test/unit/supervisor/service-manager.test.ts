// The service manager on its own dataspace: dependencies gate run-service,
// dependencies are required automatically, milestones are ready when run, and
// stopping goes dependents first. A scripted stand-in plays the supervisor
// (no processes here; the supervisor has its own integration tests).

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parse, record, stringify, sym, type Value } from '../../../src/preserves/index.ts';
import type { Engine } from '../../../src/dataspace/index.ts';
import { Dataspace, P, during, type Facet, type Handle } from '../../../src/dataspace/index.ts';
import { startServiceManager } from '../../../src/supervisor/service-manager.ts';
import { checkedEngine } from '../../support/engine-log.ts';

const v = (text: string): Value => parse(text);

function world() {
  const engine = checkedEngine().engine;
  const config = new Dataspace(engine, 'config');
  const manager = startServiceManager(engine.root, {
    config: config.ref,
    shutdownStepTimeoutMs: 2000,
  });
  const has = (text: string) => config.has(v(text));
  const assertText = (text: string): Handle => {
    let h: Handle | undefined;
    engine.turn(() => (h = engine.root.assert(config.ref, v(text))));
    return h!;
  };
  const retract = (h: Handle) => engine.turn(() => engine.root.retract(h));
  return { engine, config, manager, has, assertText, retract };
}

/**
 * Plays the supervisor: a running service reports `up` at once; when its run-service
 * goes away it reports nothing, unless `holdDown` keeps the state until released.
 */
function fakeSupervisor(engine: Engine, config: Dataspace) {
  const events: string[] = [];
  const held = new Map<string, Facet>();
  let holdDown = false;
  during(engine.root, config.ref, P.rec('run-service', P.bind('s')), (f, c) => {
    const s = c.get('s')!;
    const name = stringify(s);
    events.push(`start ${name}`);
    // The state lives in a sibling facet so that it can outlive the run-service.
    const stateFacet = engine.root.spawn((sf) =>
      sf.assert(config.ref, record('service-state', s, sym('up'))),
    );
    f.onStop(() => {
      events.push(`stop ${name}`);
      if (holdDown) held.set(name, stateFacet);
      else stateFacet.stop();
    });
  });
  return {
    events,
    holdStops(on: boolean) {
      holdDown = on;
    },
    release(name: string) {
      const f = held.get(name);
      held.delete(name);
      engine.turn(() => f?.stop());
    },
  };
}

describe('service manager', () => {
  it('runs a required service with no dependencies', async () => {
    const w = world();
    const h = w.assertText('<require-service <daemon a>>');
    await w.manager.settled();
    assert.ok(w.has('<run-service <daemon a>>'));
    w.retract(h);
    await w.manager.settled();
    assert.ok(!w.has('<run-service <daemon a>>'));
  });

  it('holds a service back until its dependencies hold, and requires them', async () => {
    const w = world();
    w.assertText('<require-service <daemon web>>');
    w.assertText('<depends-on <daemon web> <service-state <daemon db> up>>');
    await w.manager.settled();
    assert.ok(!w.has('<run-service <daemon web>>'), 'web must wait for db');
    assert.ok(w.has('<require-service <daemon db>>'), 'db is required because web depends on it');
    assert.ok(w.has('<run-service <daemon db>>'));
    const up = w.assertText('<service-state <daemon db> up>');
    await w.manager.settled();
    assert.ok(w.has('<run-service <daemon web>>'));
    // The dependency goes down: the dependent is stopped, and started again when it returns.
    w.retract(up);
    await w.manager.settled();
    assert.ok(!w.has('<run-service <daemon web>>'));
    w.assertText('<service-state <daemon db> up>');
    await w.manager.settled();
    assert.ok(w.has('<run-service <daemon web>>'));
  });

  it('treats any assertion as a dependency, and all of them must hold', async () => {
    const w = world();
    w.assertText('<require-service <daemon ntpd>>');
    w.assertText('<depends-on <daemon ntpd> <default-route ipv4>>');
    w.assertText('<depends-on <daemon ntpd> <user-setting ntp-enabled>>');
    await w.manager.settled();
    assert.ok(!w.has('<run-service <daemon ntpd>>'));
    w.assertText('<default-route ipv4>');
    await w.manager.settled();
    assert.ok(!w.has('<run-service <daemon ntpd>>'), 'one of two dependencies is not enough');
    w.assertText('<user-setting ntp-enabled>');
    await w.manager.settled();
    assert.ok(w.has('<run-service <daemon ntpd>>'));
  });

  it('makes a milestone ready as soon as it runs', async () => {
    const w = world();
    w.assertText('<require-service <milestone core>>');
    await w.manager.settled();
    assert.ok(w.has('<service-state <milestone core> ready>'));
  });

  it('keeps a milestone up once reached, while a dependency comes and goes', async () => {
    const w = world();
    const req = w.assertText('<require-service <milestone network>>');
    const dep = w.assertText('<depends-on <milestone network> <interface-configured "wan0">>');
    await w.manager.settled();
    assert.ok(!w.has('<run-service <milestone network>>'), 'not before its dependency holds');
    const configured = w.assertText('<interface-configured "wan0">');
    await w.manager.settled();
    assert.ok(w.has('<run-service <milestone network>>'));
    w.retract(configured);
    await w.manager.settled();
    assert.ok(w.has('<run-service <milestone network>>'), 'a milestone reached stays up');
    w.retract(dep);
    w.retract(req);
    await w.manager.settled();
    assert.ok(!w.has('<run-service <milestone network>>'), 'no longer required: down');
    // A daemon, unlike a milestone, follows its dependency down.
    w.assertText('<require-service <daemon ntpd>>');
    w.assertText('<depends-on <daemon ntpd> <default-route ipv4>>');
    const route = w.assertText('<default-route ipv4>');
    await w.manager.settled();
    assert.ok(w.has('<run-service <daemon ntpd>>'));
    w.retract(route);
    await w.manager.settled();
    assert.ok(!w.has('<run-service <daemon ntpd>>'));
  });

  it('stops a subtree dependents first: a dependency stays required until its dependent is down', async () => {
    const w = world();
    const sup = fakeSupervisor(w.engine, w.config);
    const req = w.assertText('<require-service <daemon web>>');
    w.assertText('<depends-on <daemon web> <service-state <daemon db> up>>');
    await w.manager.settled();
    assert.deepEqual(sup.events, ['start <daemon db>', 'start <daemon web>']);
    sup.holdStops(true);
    w.retract(req);
    await w.manager.settled();
    assert.deepEqual(sup.events.slice(2), ['stop <daemon web>']);
    assert.ok(w.has('<require-service <daemon db>>'), 'db stays while web is still stopping');
    assert.ok(w.has('<run-service <daemon db>>'));
    sup.release('<daemon web>');
    await w.manager.settled();
    assert.deepEqual(sup.events.slice(2), ['stop <daemon web>', 'stop <daemon db>']);
    assert.ok(!w.has('<require-service <daemon db>>'));
  });

  it('shuts everything down in reverse dependency order', async () => {
    const w = world();
    const sup = fakeSupervisor(w.engine, w.config);
    // app -> web -> db, and app -> cache; core milestone depends on db.
    w.assertText('<require-service <daemon app>>');
    w.assertText('<depends-on <daemon app> <service-state <daemon web> up>>');
    w.assertText('<depends-on <daemon app> <service-state <daemon cache> up>>');
    w.assertText('<depends-on <daemon web> <service-state <daemon db> up>>');
    await w.manager.settled();
    assert.equal(sup.events.filter((e) => e.startsWith('start')).length, 4);
    const waves: string[][] = [];
    await w.manager.shutdown((services) => waves.push(services.map((s) => stringify(s)).sort()));
    assert.deepEqual(waves, [
      ['<daemon app>'],
      ['<daemon cache>', '<daemon web>'],
      ['<daemon db>'],
    ]);
    const stops = sup.events.filter((e) => e.startsWith('stop'));
    assert.equal(stops[0], 'stop <daemon app>');
    assert.equal(stops[3], 'stop <daemon db>');
    assert.ok(!w.has('<run-service <daemon db>>'));
  });
});
