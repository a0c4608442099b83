// The systemd notify protocol (src/daemon/sd-notify.ts) against a datagram socket
// the test owns (socat receiving on it: Node has no Unix datagrams): the real
// daemon, started with $NOTIFY_SOCKET and a 1 s watchdog, sends READY=1 once it
// runs, WATCHDOG=1 every half second from its event loop — none while the process
// is stopped (SIGSTOP: a hung daemon pings nothing), again once it continues —
// and STOPPING=1 when it is asked to stop. Without $NOTIFY_SOCKET it sends nothing
// and runs no systemd-notify.

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DaemonProcess } from '../../support/daemon-process.ts';
import { prerequisites } from '../../support/prerequisites.ts';
import { until } from '../../support/until.ts';

const count = (text: string, what: string) => text.split(what).length - 1;

describe(
  'systemd notify and watchdog',
  { skip: prerequisites({ programs: ['socat', 'systemd-notify'] }) },
  () => {
    const dir = mkdtempSync(join(tmpdir(), 'limen-sd-notify-'));
    const daemons: DaemonProcess[] = [];
    const receivers: ChildProcess[] = [];
    after(async () => {
      for (const d of daemons) await d.dispose();
      for (const r of receivers) r.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    });

    it('says READY=1, pings the watchdog from its event loop, and says STOPPING=1', async () => {
      const socket = join(dir, 'notify.sock');
      const receiver = spawn('socat', ['-u', `UNIX-RECV:${socket}`, 'STDOUT'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      receivers.push(receiver);
      let got = '';
      receiver.stdout.setEncoding('utf8').on('data', (s: string) => void (got += s));
      await until(() => existsSync(socket), {
        describe: () => 'socat listening',
      });
      const site = join(dir, 'site');
      mkdirSync(join(site, 'services'), { recursive: true });
      const d = new DaemonProcess(['--root', join(dir, 'root'), '--config', site, '--no-network'], {
        env: { NOTIFY_SOCKET: socket, WATCHDOG_USEC: '1000000' },
      });
      daemons.push(d);
      await d.started();
      await until(() => got.includes('READY=1') && count(got, 'WATCHDOG=1') >= 3, {
        timeoutMs: 20_000,
        describe: () => `READY=1 and pings; got ${JSON.stringify(got)}`,
      });
      assert.match(got, new RegExp(`MAINPID=${d.pid}`), 'sent for the daemon, not the helper');

      // A stopped event loop pings nothing; a running one pings again.
      process.kill(d.pid, 'SIGSTOP');
      // Whatever was in flight lands first.
      const settled = Date.now() + 1000;
      await until(() => Date.now() >= settled, { timeoutMs: 3000 });
      const atStop = count(got, 'WATCHDOG=1');
      const quiet = Date.now() + 1500;
      await until(() => Date.now() >= quiet, { timeoutMs: 3000 });
      assert.equal(count(got, 'WATCHDOG=1'), atStop, 'no ping while the daemon is stopped');
      process.kill(d.pid, 'SIGCONT');
      await until(() => count(got, 'WATCHDOG=1') > atStop + 1, {
        timeoutMs: 10_000,
        describe: () => `pings again; got ${JSON.stringify(got)}`,
      });

      await d.stop();
      await until(() => got.includes('STOPPING=1'), {
        describe: () => `STOPPING=1; got ${JSON.stringify(got)}`,
      });
    });
  },
);
