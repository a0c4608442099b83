// A daemon killed with SIGKILL in the middle of `settings set` writes leaves a
// temporary file beside the settings (the write is atomic: temporary, fsync,
// rename); the next daemon removes every such leftover when it starts, those of
// older versions' naming too, and every setting file is whole. The kill is real:
// the daemon is busy storing settings, and is killed as soon as a temporary
// appears (bounded: at most MAX_KILLS daemons). Before, leftovers stayed for ever.
// The same for a rollback's temporaries in the site roots' trees: only names that
// writeFileAtomic gives, and only where a rollback writes (not in dot-directories).

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  watch,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ControlClient } from '../../../src/control/client.ts';
import { readSettingText, settingFileName } from '../../../src/control/settings-store.ts';
import { record } from '../../../src/preserves/index.ts';
import { decodeSettingsAnswer } from '../../../src/control/protocol.ts';
import { DaemonProcess } from '../../support/daemon-process.ts';

const MAX_KILLS = 20;
/** Settings stored by one daemon before it is killed, if no temporary was seen first. */
const MAX_SETS = 100;
const IN_FLIGHT = 4;
/** Settings each daemon stores before the kill is armed. */
const ARM_AFTER = 10;

describe('stale temporaries', () => {
  const dirs: string[] = [];
  const daemons: DaemonProcess[] = [];
  after(async () => {
    for (const d of daemons) await d.dispose();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it(
    'are removed when the daemon starts after a SIGKILL during settings set',
    { timeout: 180_000 },
    async (t) => {
      const dir = mkdtempSync(join(tmpdir(), 'limen-stale-'));
      dirs.push(dir);
      const root = join(dir, 'root');
      const settings = join(root, 'var/lib/limen/user-settings');
      const socket = join(root, 'run/limen/control.sock');
      const temporaries = () => readdirSync(settings).filter((n) => n.startsWith('.'));

      let next = 0;
      let left: string[] = [];
      let kills = 0;
      while (left.length === 0 && kills < MAX_KILLS) {
        const d = new DaemonProcess(['--root', root, '--no-network']);
        daemons.push(d);
        await d.started();
        const client = await ControlClient.connect(socket);
        // Once some settings are stored, killed the moment a temporary appears (its fsync
        // is still running).
        const armAt = next + ARM_AFTER;
        const watcher = watch(settings, (_e, name) => {
          if (next >= armAt && name?.startsWith('.') === true && name.endsWith('.tmp'))
            d.child.kill('SIGKILL');
        });
        const writer = async (): Promise<void> => {
          while (d.running && next < MAX_SETS * (kills + 1)) {
            await client.settingsSet(record('stale-test', next++, 'x'.repeat(512)));
          }
        };
        await Promise.allSettled(Array.from({ length: IN_FLIGHT }, writer));
        if (d.running) d.child.kill('SIGKILL');
        await d.exit();
        watcher.close();
        client.close();
        kills++;
        left = temporaries();
      }
      assert.ok(
        left.length > 0,
        `no temporary was left in ${kills} kills: the test proves nothing`,
      );
      t.diagnostic(`${kills} kill(s) left ${left.length} temporary file(s) after ${next} sets`);

      // A leftover as versions before writeFileAtomic named it (.NAME.pr.PID.HEX.tmp).
      const legacy = `.${'0'.repeat(40)}.pr.4242.0123456789ab.tmp`;
      writeFileSync(join(settings, legacy), '<stale-test');

      const d = new DaemonProcess(['--root', root, '--no-network']);
      daemons.push(d);
      await d.started();
      assert.deepEqual(temporaries(), [], 'no temporary remains');
      const removed = d.log.filter((l) => l.msg === 'removed a stale temporary').map((l) => l.path);
      assert.deepEqual(
        removed.sort(),
        [...left, legacy].map((n) => join(settings, n)).sort(),
        'each is logged',
      );
      // Every setting file is whole, and named by its setting.
      const files = readdirSync(settings);
      assert.ok(files.length > 0);
      for (const f of files) {
        const value = readSettingText(readFileSync(join(settings, f), 'utf8'), f);
        assert.equal(settingFileName(value), f);
      }
      const client = await ControlClient.connect(socket);
      const listed = decodeSettingsAnswer(await client.settingsList());
      client.close();
      assert.deepEqual(listed.problems, [], 'the store reports no problem');
      assert.equal(listed.settings.length, files.length);
      assert.equal((await d.stop()).code, 0);
    },
  );

  it('are removed from the site roots, where a rollback writes, and nothing else', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'limen-stale-site-'));
    dirs.push(dir);
    const root = join(dir, 'root');
    const site = join(dir, 'site');
    mkdirSync(join(site, 'core'), { recursive: true });
    mkdirSync(join(site, '.git'));
    const plant = (path: string): string => {
      writeFileSync(join(site, path), 'x');
      return join(site, path);
    };
    const stale = [
      plant('.wan.pr.limen-0123456789ab.tmp'),
      plant('core/.base.pr.limen-abcdef012345.tmp'),
    ];
    const kept = [
      plant('.keep'),
      plant('core/.base.pr.swp'),
      plant('core/.base.pr.limen-nothex012345.tmp'),
      plant('core/base.pr.limen-0123456789ab.tmp'),
      // Not a directory a rollback writes (a snapshot skips dot-directories).
      plant('.git/.HEAD.limen-0123456789ab.tmp'),
    ];
    const d = new DaemonProcess(['--root', root, '--no-network', '--config', site]);
    daemons.push(d);
    await d.started();
    for (const p of stale) assert.equal(existsSync(p), false, `${p} is removed`);
    for (const p of kept) assert.equal(existsSync(p), true, `${p} is kept`);
    const removed = d.log.filter((l) => l.msg === 'removed a stale temporary').map((l) => l.path);
    assert.deepEqual(removed.sort(), stale.sort(), 'each is logged');
    assert.equal((await d.stop()).code, 0);
  });
});
