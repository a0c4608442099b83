// The link-admin driver against a real kernel: links in a private namespace
// are brought up when they appear, kept down on request, and left alone when
// unmanaged. The monitor is not under test here, so the test publishes the
// <interface ...> assertions itself from what `ip -json link` reports.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { parse, record, sym, type Value } from '../../../src/preserves/index.ts';
import { Dataspace, type Handle } from '../../../src/dataspace/index.ts';
import { startLinkAdmin } from '../../../src/net/link-admin.ts';
import { prerequisites } from '../../support/prerequisites.ts';
import { until } from '../../support/until.ts';
import { checkedEngine } from '../../support/engine-log.ts';

const ns = `lt-${randomBytes(3).toString('hex')}`;

function adminUp(link: string): boolean {
  const out = JSON.parse(
    execFileSync('ip', ['-n', ns, '-json', 'link', 'show', link], { encoding: 'utf8' }),
  ) as {
    flags: string[];
  }[];
  return out[0]!.flags.includes('UP');
}

describe('link admin', { skip: prerequisites({ netns: true }) }, () => {
  before(() => {
    execFileSync('ip', ['netns', 'add', ns]);
    execFileSync('ip', ['-n', ns, 'link', 'add', 'la', 'type', 'veth', 'peer', 'name', 'lb']);
  });
  after(() => {
    execFileSync('ip', ['netns', 'del', ns]);
  });

  it('brings links up, keeps one down on request, and leaves unmanaged ones alone', async (t) => {
    const { engine } = checkedEngine(t);
    const config = new Dataspace(engine, 'config');
    const machine = new Dataspace(engine, 'machine');
    startLinkAdmin(engine.root, { config: config.ref, machine: machine.ref, ip: ['ip', '-n', ns] });
    const iface = (name: string, admin: string): Value =>
      parse(`<interface "${name}" 1 normal ${admin} down no-carrier "00:00:00:00:00:00">`);
    const published = new Map<string, Handle>();
    const publish = (name: string) =>
      engine.turn(() => {
        const old = published.get(name);
        if (old) engine.root.retract(old);
        published.set(
          name,
          engine.root.assert(machine.ref, iface(name, adminUp(name) ? 'up' : 'down')),
        );
      });
    let unmanaged!: Handle;
    engine.turn(
      () => (unmanaged = engine.root.assert(config.ref, record('interface-unmanaged', 'lb'))),
    );
    publish('la');
    publish('lb');
    await until(() => adminUp('la'), { describe: () => 'la to be brought up' });
    await engine.sync();
    assert.equal(adminUp('lb'), false, 'an unmanaged link is left alone');

    publish('la'); // the monitor would report the new state
    let down!: Handle;
    engine.turn(
      () => (down = engine.root.assert(config.ref, record('link-admin', 'la', sym('down')))),
    );
    await until(() => !adminUp('la'), { describe: () => 'la to be set down on request' });
    publish('la');
    engine.turn(() => engine.root.retract(down));
    await until(() => adminUp('la'), { describe: () => 'la up again once the request is gone' });

    engine.turn(() => engine.root.retract(unmanaged));
    await until(() => adminUp('lb'), { describe: () => 'lb up once it is managed' });
    engine.turn(() => engine.root.stop());
  });
});
