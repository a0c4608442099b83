// Kernel feature checks on a fake filesystem tree, and the driver's answer to a
// configuration that needs a missing feature.

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from '../../../src/preserves/index.ts';
import { Dataspace, P } from '../../../src/dataspace/index.ts';
import {
  KERNEL_FEATURES,
  checkFeature,
  hasModule,
  startKernelFeatures,
} from '../../../src/net/kernel-features.ts';
import { checkedEngine } from '../../support/engine-log.ts';

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function fakeRoot(files: { [path: string]: string }): string {
  const root = mkdtempSync(join(tmpdir(), 'limen-kfeat-'));
  dirs.push(root);
  for (const [p, text] of Object.entries(files)) {
    mkdirSync(join(root, p, '..'), { recursive: true });
    writeFileSync(join(root, p), text);
  }
  return root;
}

const pppoe = KERNEL_FEATURES.find((f) => f.protocol === 'pppoe')!;

describe('kernel features', () => {
  it('finds modules that are loaded, built in, or available to load', () => {
    const root = fakeRoot({
      'proc/sys/kernel/osrelease': '6.1.0-test\n',
      'sys/module/ppp_generic/refcnt': '0\n',
      'lib/modules/6.1.0-test/modules.builtin': 'kernel/net/8021q/8021q.ko\n',
      'lib/modules/6.1.0-test/modules.dep':
        'kernel/drivers/net/ppp/pppoe.ko.xz: kernel/drivers/net/ppp/pppox.ko.xz\n',
    });
    assert.equal(hasModule('ppp_generic', root), true, 'loaded');
    assert.equal(hasModule('8021q', root), true, 'built in');
    assert.equal(hasModule('pppoe', root), true, 'loadable');
    assert.equal(hasModule('wireguard', root), false);
    assert.deepEqual(checkFeature(pppoe, root), { present: true, missing: [] });
  });

  it('names what is missing, and a configuration that needs it fails with that reason', async () => {
    const root = fakeRoot({ 'proc/sys/kernel/osrelease': '6.1.0-test\n' });
    assert.deepEqual(checkFeature(pppoe, root).missing, ['ppp_generic', 'pppoe']);
    const engine = checkedEngine().engine;
    const config = new Dataspace(engine, 'config');
    const machine = new Dataspace(engine, 'machine');
    startKernelFeatures(engine.root, { config: config.ref, machine: machine.ref, root });
    engine.turn(() =>
      engine.root.assert(config.ref, parse('<configure-interface "wan0" <pppoe {user: "u"}>>')),
    );
    await engine.sync();
    const failed = config.query(P.rec('interface-failed', P.lit('wan0'), P.bind('reason')));
    assert.equal(failed.length, 1);
    assert.match(
      failed[0]!.captures.get('reason') as string,
      /PPPoE needs PPP over Ethernet .*ppp_generic, pppoe not loaded/,
    );
    assert.ok(machine.has(parse('<kernel-feature pppoe missing>')));
  });

  it('answers a link that needs a feature: missing is a failure, present a fact', async () => {
    const bare = fakeRoot({ 'proc/sys/kernel/osrelease': '6.1.0-test\n' });
    const withVlan = fakeRoot({
      'proc/sys/kernel/osrelease': '6.1.0-test\n',
      'proc/net/vlan/config': '',
    });
    const run = async (root: string, text: string) => {
      const engine = checkedEngine().engine;
      const config = new Dataspace(engine, 'config');
      const machine = new Dataspace(engine, 'machine');
      startKernelFeatures(engine.root, { config: config.ref, machine: machine.ref, root });
      engine.turn(() => engine.root.assert(config.ref, parse(text)));
      await engine.sync();
      const failed = config.query(P.rec('interface-failed', P.bind('if'), P.bind('reason')));
      return {
        failed: failed.map(
          (f) => `${f.captures.get('if') as string}: ${f.captures.get('reason') as string}`,
        ),
        machine,
      };
    };
    const missing = await run(bare, '<vlan "wan0.7" {parent: "wan0" id: 7}>');
    assert.equal(missing.failed.length, 1);
    assert.match(
      missing.failed[0]!,
      /^wan0\.7: VLAN interfaces need 802\.1Q support .*8021q not loaded/,
    );
    assert.ok(missing.machine.has(parse('<kernel-feature vlan missing>')));
    const present = await run(withVlan, '<vlan "wan0.7" {parent: "wan0" id: 7}>');
    assert.deepEqual(present.failed, []);
    assert.ok(present.machine.has(parse('<kernel-feature vlan present>')));
    const misused = await run(withVlan, '<configure-interface "wan0.7" <vlan>>');
    assert.match(misused.failed[0]!, /create the link with <vlan NAME \{…\}> and configure NAME/);
  });
});
