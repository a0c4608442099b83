// One daemon per state directory and per control socket. A second daemon on the
// same --root, or with the same --socket, exits 1 with one line naming what is in
// use, and starts nothing (its services never run, nothing is left behind);
// several started at once on one root leave exactly one running. The state lock is
// the kernel's (flock), so a daemon killed with SIGKILL leaves it free for the
// next, and its services never hold it. (Before the lock, a second daemon on the
// same root started every service; with the same socket it started them, then
// said the socket was in use.)

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ControlClient } from '../../../src/control/client.ts';
import { DaemonProcess } from '../../support/daemon-process.ts';
import { until } from '../../support/until.ts';
import { describeProcs, killMarked, newMarker, processesWithEnv } from '../../support/processes.ts';

const MARK = 'LIMEN_TEST_MARK';

describe('one daemon per root and per socket', () => {
  const dirs: string[] = [];
  const markers: string[] = [];
  const daemons: DaemonProcess[] = [];
  after(async () => {
    for (const d of daemons) await d.dispose();
    for (const m of markers) killMarked(MARK, m);
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  function tempDir(): string {
    const d = mkdtempSync(join(tmpdir(), 'limen-exclusive-'));
    dirs.push(d);
    return d;
  }

  /** A site whose one service leaves a file named after it when it runs, and then waits. */
  function site(dir: string, name: string): { site: string; marker: string; ran: string } {
    const marker = newMarker();
    markers.push(marker);
    const s = join(dir, `site-${name}`);
    const ran = join(dir, `${name}-ran`);
    mkdirSync(join(s, 'services'), { recursive: true });
    writeFileSync(
      join(s, 'services', `${name}.pr`),
      `<require-service <daemon ${name}>>\n<daemon ${name} {argv: ["sh" "-c" "echo $$ >> ${ran}; exec sleep 1000"] env: {${MARK}: "${marker}"}}>\n`,
    );
    return { site: s, marker, ran };
  }

  function daemon(args: string[]): DaemonProcess {
    const d = new DaemonProcess([...args, '--no-network']);
    daemons.push(d);
    return d;
  }

  async function serviceRuns(d: DaemonProcess, name: string): Promise<void> {
    await d.waitFor(
      `${name} running`,
      (l) => l.msg === 'service state' && l.service === `<daemon ${name}>` && l.state === 'ready',
    );
  }

  /** What a refused daemon shows: exit 1, one line, no stack trace. */
  async function refused(d: DaemonProcess, says: RegExp): Promise<void> {
    const { code } = await d.exit();
    assert.equal(code, 1, d.stderr.join('\n'));
    assert.equal(d.stderr.length, 1, `one line: ${d.stderr.join('\n')}`);
    assert.match(d.stderr[0]!, says);
    assert.doesNotMatch(d.stderr[0]!, /\n\s+at /);
  }

  it('refuses a second daemon on the same root, naming the first one, and starts nothing', async () => {
    const dir = tempDir();
    const root = join(dir, 'root');
    const a = site(dir, 'a');
    const b = site(dir, 'b');
    const first = daemon(['--root', root, '--config', a.site]);
    await serviceRuns(first, 'a');
    // Another socket, so that only the state lock can stop it.
    const second = daemon(['--root', root, '--config', b.site, '--socket', join(dir, 'b.sock')]);
    await refused(
      second,
      new RegExp(
        `^limen daemon: ${join(root, 'var/lib/limen')} is in use by another limen daemon \\(pid ${first.pid}\\)`,
      ),
    );
    assert.equal(existsSync(b.ran), false, 'the second daemon ran no service');
    assert.deepEqual(
      processesWithEnv(MARK, b.marker),
      [],
      'no process of the second daemon is left',
    );
    assert.equal(existsSync(join(dir, 'b.sock')), false, 'nor its socket');
    // The first still runs and answers.
    const c = await ControlClient.connect(join(root, 'run/limen/control.sock'));
    await c.status();
    c.close();
    assert.equal(first.running, true);
    await first.stop();
  });

  it('refuses a daemon with another root but the same socket, before it starts anything', async () => {
    const dir = tempDir();
    const socket = join(dir, 'control.sock');
    const a = site(dir, 'a');
    const b = site(dir, 'b');
    const first = daemon(['--root', join(dir, 'root-a'), '--config', a.site, '--socket', socket]);
    await serviceRuns(first, 'a');
    const second = daemon(['--root', join(dir, 'root-b'), '--config', b.site, '--socket', socket]);
    await refused(
      second,
      new RegExp(`^limen daemon: ${socket} is in use: another limen daemon is listening there`),
    );
    assert.equal(existsSync(b.ran), false, 'the second daemon ran no service');
    assert.deepEqual(
      processesWithEnv(MARK, b.marker),
      [],
      'no process of the second daemon is left',
    );
    // The socket is still the first daemon's.
    const c = await ControlClient.connect(socket);
    await c.status();
    c.close();
    await first.stop();
  });

  it('leaves exactly one of several daemons started at once on one root', async () => {
    const dir = tempDir();
    const root = join(dir, 'root');
    const a = site(dir, 'a');
    const all = [0, 1, 2, 3].map(() => daemon(['--root', root, '--config', a.site]));
    await until(() => all.filter((d) => !d.running).length === all.length - 1, {
      timeoutMs: 60_000,
      describe: () =>
        all
          .map((d) => `${d.pid}: ${d.running ? 'running' : 'exited'} ${d.stderr.join(' | ')}`)
          .join('\n'),
    });
    const [winner] = all.filter((d) => d.running);
    await serviceRuns(winner!, 'a');
    for (const d of all)
      if (d !== winner)
        await refused(d, /is in use: another limen daemon|is in use by another limen daemon/);
    const ran = readFileSync(a.ran, 'utf8').trim().split('\n');
    assert.equal(ran.length, 1, `the service ran once: ${ran.join(' ')}`);
    const procs = processesWithEnv(MARK, a.marker);
    assert.equal(procs.length, 1, describeProcs(procs));
    await winner!.stop();
  });

  it('is free again once its holder is killed with SIGKILL (its services never hold it)', async () => {
    const dir = tempDir();
    const root = join(dir, 'root');
    const a = site(dir, 'a');
    const first = daemon(['--root', root, '--config', a.site]);
    await serviceRuns(first, 'a');
    // The services never inherit the lock's descriptor (Node opens files O_CLOEXEC).
    const lock = join(root, 'var/lib/limen/lock');
    const services = processesWithEnv(MARK, a.marker);
    assert.ok(services.length > 0);
    for (const p of services) {
      const fds = readdirSync(`/proc/${p.pid}/fd`).map((fd) => {
        try {
          return readlinkSync(`/proc/${p.pid}/fd/${fd}`);
        } catch {
          return '';
        }
      });
      assert.equal(fds.includes(lock), false, `service ${p.pid} holds ${lock}`);
    }
    await first.stop('SIGKILL');
    const next = daemon(['--root', root, '--config', a.site]);
    await next.started();
    assert.equal(
      readFileSync(lock, 'utf8').trim(),
      String(next.pid),
      'the lock file names its holder',
    );
    await next.stop();
  });
});
