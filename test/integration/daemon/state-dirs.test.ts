// Every directory limen makes has the mode docs/running.md gives it, whatever
// the umask the daemon was started under, and whatever mode an older version
// left: the run directory and outputs 0755 (services running as other users
// reach their outputs), the state directory 0755, user settings and generations
// 0700 (they used to be 0755), the socket 0600, a setting 0600. And with a fresh
// --root, what limen owns there is made: resolv.conf is written (its directory
// did not exist, and it never was).

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ControlClient } from '../../../src/control/client.ts';
import { parse } from '../../../src/preserves/index.ts';
import { settingFileName } from '../../../src/control/settings-store.ts';
import { DaemonProcess } from '../../support/daemon-process.ts';
import { until } from '../../support/until.ts';
import { prerequisites } from '../../support/prerequisites.ts';

function mode(path: string): string {
  return (statSync(path).mode & 0o777).toString(8).padStart(4, '0');
}

describe('state directories', () => {
  const dirs: string[] = [];
  const daemons: DaemonProcess[] = [];
  after(async () => {
    for (const d of daemons) if (d.running) await d.stop('SIGKILL');
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  function tempDir(): string {
    const d = mkdtempSync(join(tmpdir(), 'limen-dirs-'));
    chmodSync(d, 0o755);
    dirs.push(d);
    return d;
  }

  for (const umask of ['000', '077']) {
    it(`have their documented modes under umask ${umask}, an older mode corrected`, async () => {
      const dir = tempDir();
      const root = join(dir, 'root');
      const settings = join(root, 'var/lib/limen/user-settings');
      // What versions before 0700 left.
      mkdirSync(settings, { recursive: true, mode: 0o755 });
      chmodSync(settings, 0o755);
      const d = new DaemonProcess(['--root', root, '--no-network'], { umask });
      daemons.push(d);
      await d.started();
      const socket = join(root, 'run/limen/control.sock');
      const c = await ControlClient.connect(socket);
      const setting = parse('<dirs-test 1>');
      await c.settingsSet(setting);
      c.close();
      const expected = {
        run: '0755',
        'run/limen': '0755',
        'run/limen/outputs': '0755',
        'run/limen/control.sock': '0600',
        var: '0755',
        'var/lib': '0755',
        'var/lib/limen': '0755',
        'var/lib/limen/lock': '0644',
        'var/lib/limen/user-settings': '0700',
        [`var/lib/limen/user-settings/${settingFileName(setting)}`]: '0600',
        'var/lib/limen/generations': '0700',
      };
      const actual = Object.fromEntries(Object.keys(expected).map((p) => [p, mode(join(root, p))]));
      assert.deepEqual(actual, expected);
      await d.stop();
    });
  }

  it(
    'are made under a fresh --root, and resolv.conf is written there',
    { skip: prerequisites({ netns: true }) },
    async () => {
      const dir = tempDir();
      const root = join(dir, 'root');
      // The network drivers run, in a namespace of their own (the host's links are left alone).
      const d = new DaemonProcess(['--root', root], { umask: '077', prefix: ['unshare', '--net'] });
      daemons.push(d);
      await d.started();
      const resolvConf = join(root, 'etc/resolv.conf');
      const text = await until(
        () => {
          try {
            return readFileSync(resolvConf, 'utf8');
          } catch {
            return undefined;
          }
        },
        { timeoutMs: 10_000, describe: () => `${resolvConf}; log:\n${d.stderr.join('\n')}` },
      );
      assert.match(text, /^# Written by limen/);
      assert.equal(mode(join(root, 'etc')), '0755');
      assert.equal(mode(resolvConf), '0644');
      assert.equal(
        d.log.filter((l) => l.msg === 'config-error' || /resolver-error/.test(JSON.stringify(l)))
          .length,
        0,
        d.stderr.join('\n'),
      );
      await d.stop();
    },
  );
});
