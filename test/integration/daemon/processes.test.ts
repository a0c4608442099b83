// Processes the daemon owns, with real signals against `limen daemon` in a
// process of its own (issue 11, point 8):
// - stopping a service stops all of it, a grandchild that called setsid included
//   (it escapes process-group signals: only its cgroup holds it);
// - after the daemon is killed with SIGKILL, a new daemon on the same root finds
//   what was left (a service holding a TCP port on loopback, and its setsid
//   grandchild), stops it before starting anything, and the service starts once;
//   a daemon on another root, running beside them, is not touched;
// - the same without cgroups (`--cgroup off`): the recorded process groups;
// - a record that names a process which is not the one recorded (another start
//   time, another boot) never gets it killed.
// Every process carries a marker in its environment; every cgroup and directory
// the tests make is removed, whatever happens.

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../../src/cli/main.ts';
import { parseProcStat } from '../../../src/supervisor/process-group.ts';
import { cgroup2Mount as mount, removeSubtreeOf, subtreeOf } from '../../support/cgroups.ts';
import { captureIo } from '../../support/cli-io.ts';
import { DaemonProcess } from '../../support/daemon-process.ts';
import { describeProcs, killMarked, newMarker, processesWithEnv } from '../../support/processes.ts';
import { until } from '../../support/until.ts';
import { prerequisites } from '../../support/prerequisites.ts';

const MARK = 'LIMEN_TEST_MARK';

// Serves one line to each connection on 127.0.0.1:PORT; tells readiness on fd 3
// once it listens, so "ready" means "holds the port". Fails at once if the port is
// taken, as a real server would.
const LISTENER = `
const net = require('node:net');
const s = net.createServer((c) => c.end('hello\\n'));
s.on('error', (e) => { console.error('listen failed: ' + e.message); process.exit(1); });
s.listen(Number(process.argv[2]), '127.0.0.1', () => {
  require('node:fs').writeSync(3, '\\n');
  console.log('listening on ' + process.argv[2]);
});
`;

/** A free TCP port on loopback (bound, then released). */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function alive(pid: number): boolean {
  try {
    const st = parseProcStat(pid, readFileSync(`/proc/${pid}/stat`, 'utf8'));
    return st !== null && st.state !== 'Z';
  } catch {
    return false;
  }
}

function startTime(pid: number): number {
  return parseProcStat(pid, readFileSync(`/proc/${pid}/stat`, 'utf8'))!.start;
}

async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const io = captureIo();
  const code = await main(args, io);
  return { code, out: io.stdout(), err: io.stderr() };
}

describe(
  'processes the daemon owns',
  { skip: prerequisites({ root: 'cgroups, signals to other processes' }) },
  () => {
    const dirs: string[] = [];
    const markers: string[] = [];
    const daemons: DaemonProcess[] = [];
    const roots: string[] = [];

    after(async () => {
      for (const d of daemons) await d.kill();
      for (const m of markers) killMarked(MARK, m);
      for (const r of roots) await removeSubtreeOf(r);
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    });

    /** A site in a fresh directory, a marker, and a way to start daemons on its root. */
    function setup(files: { [path: string]: string }) {
      const dir = mkdtempSync(join(tmpdir(), 'limen-processes-test-'));
      dirs.push(dir);
      const marker = newMarker();
      markers.push(marker);
      const root = join(dir, 'root');
      roots.push(root);
      for (const [p, text] of Object.entries(files)) {
        mkdirSync(join(dir, 'site', p, '..'), { recursive: true });
        writeFileSync(join(dir, 'site', p), text);
      }
      writeFileSync(join(dir, 'listen.js'), LISTENER);
      const socket = join(root, 'run/limen/control.sock');
      const start = (...extra: string[]) => {
        // --no-network: these tests run in the host's namespace and must not touch its links.
        const d = new DaemonProcess(
          ['--root', root, '--config', join(dir, 'site'), '--no-network', ...extra],
          { env: { [MARK]: marker, T: dir } },
        );
        daemons.push(d);
        return d;
      };
      return { dir, root, socket, marker, start };
    }

    // The daemon runs from the sources through tsx, which may start esbuild's service as
    // its child (inheriting the marker): the harness's process, not a service's.
    const mine = (marker: string) =>
      processesWithEnv(MARK, marker).filter((p) => p.state !== 'Z' && p.comm !== 'esbuild');

    describe(
      'with cgroups',
      {
        skip: prerequisites({
          check: () => (mount === undefined ? 'no cgroup v2 mounted' : undefined),
        }),
      },
      () => {
        it('stopping a service kills a grandchild that called setsid', async () => {
          const { dir, root, socket, marker, start } = setup({
            // The grandchild leaves the process group (setsid) and tells its pid.
            'services/esc.pr': [
              '<require-service <daemon esc>>',
              `<daemon esc "setsid sh -c 'echo $$ >> $T/grandchildren; exec sleep 1000' & exec sleep 1000">`,
            ].join('\n'),
          });
          // Whole lines only: the shell creates the file before it writes the pid.
          const grandchildren = () =>
            existsSync(join(dir, 'grandchildren'))
              ? (readFileSync(join(dir, 'grandchildren'), 'utf8').match(/^\d+(?=\n)/gm) ?? []).map(
                  Number,
                )
              : [];
          const d = start();
          await d.waitFor('esc ready', d.state('<daemon esc>', 'ready'));
          const [first] = await until(
            () => (grandchildren().length === 1 ? grandchildren() : false),
            {
              describe: () => `the first grandchild's pid; log:\n${d.logText()}`,
            },
          );
          assert.ok(alive(first!), 'the grandchild runs');

          // The status says how processes are tracked, and where.
          const status = await cli('status', '--json', '--socket', socket);
          assert.equal(status.code, 0, status.err);
          const tracking = (JSON.parse(status.out) as { 'process-tracking': string })[
            'process-tracking'
          ];
          assert.equal(tracking, `cgroup v2, a cgroup per process under ${subtreeOf(root).path}`);

          // A restart stops the service: its grandchild goes with it.
          const restarted = await cli('restart', 'esc', '--socket', socket);
          assert.equal(restarted.code, 0, restarted.err);
          await until(() => grandchildren().length === 2, {
            describe: () => `a second grandchild; log:\n${d.logText()}`,
          });
          await until(() => !alive(first!), {
            describe: () => `grandchild ${first} to be gone after the restart`,
          });

          // A clean stop of the daemon stops everything, and removes the subtree.
          d.child.kill('SIGTERM');
          assert.equal(await d.exitCode(), 0);
          const left = mine(marker);
          assert.deepEqual(left, [], `left behind: ${describeProcs(left)}`);
          assert.ok(!existsSync(subtreeOf(root).path), 'the cgroup subtree is removed');
        });

        it('a daemon started after a SIGKILL stops what its predecessor left, then starts the service once', async () => {
          const port = await freePort();
          const site = {
            'services/web.pr': [
              '<require-service <daemon web>>',
              `<daemon web {argv: ["sh" "-c" "setsid sleep 1000 & exec ${process.execPath} $T/listen.js ${port}"] readiness: <notification-fd 3>}>`,
            ].join('\n'),
          };
          const a = setup(site);
          // A second lab beside it, on a root of its own.
          const other = setup({
            'services/other.pr':
              '<require-service <daemon other>>\n<daemon other "exec sleep 1000">',
          });
          const neighbour = other.start();
          await neighbour.waitFor('other ready', neighbour.state('<daemon other>', 'ready'));
          const neighbourProcs = () => mine(other.marker).filter((p) => p.pid !== neighbour.pid);
          const neighbourPids = neighbourProcs().map((p) => p.pid);
          assert.equal(neighbourPids.length, 1, describeProcs(neighbourProcs()));

          const first = a.start();
          await first.waitFor('web ready', first.state('<daemon web>', 'ready'));
          const orphans = mine(a.marker).filter((p) => p.pid !== first.pid);
          // The shell became the listener (exec); the setsid sleep is the grandchild.
          assert.deepEqual(
            orphans.map((p) => p.comm).sort(),
            ['node', 'sleep'],
            describeProcs(orphans),
          );
          assert.notEqual(subtreeOf(a.root).path, subtreeOf(other.root).path);

          await first.kill(); // SIGKILL: no chance to stop anything
          for (const p of orphans)
            assert.ok(alive(p.pid), `${p.comm} ${p.pid} outlived the daemon`);

          const second = a.start();
          await second.waitFor('web ready again', second.state('<daemon web>', 'ready'));
          const reclaimed = second.find(
            (l) => l.msg === 'stopped processes a previous daemon left',
          );
          assert.ok(reclaimed, `the leftovers are reported; log:\n${second.logText()}`);
          assert.equal(reclaimed.processes, 2);
          assert.equal(reclaimed.where, subtreeOf(a.root).path);
          assert.equal(
            second.count(second.event('<daemon web>', /^started \(pid/)),
            1,
            second.logText(),
          );
          assert.equal(second.count(second.output('<daemon web>', /in use/)), 0, second.logText());
          for (const p of orphans) assert.ok(!alive(p.pid), `${p.comm} ${p.pid} is gone`);
          // Exactly the new daemon's: the listener and its grandchild.
          const now = mine(a.marker).filter((p) => p.pid !== second.pid);
          assert.deepEqual(now.map((p) => p.comm).sort(), ['node', 'sleep'], describeProcs(now));
          // The other root's service was not touched.
          assert.deepEqual(
            neighbourProcs().map((p) => p.pid),
            neighbourPids,
          );

          second.child.kill('SIGTERM');
          assert.equal(await second.exitCode(), 0);
          const left = mine(a.marker);
          assert.deepEqual(left, [], `left behind: ${describeProcs(left)}`);
          assert.ok(!existsSync(subtreeOf(a.root).path), 'the cgroup subtree is removed');
          assert.deepEqual(
            neighbourProcs().map((p) => p.pid),
            neighbourPids,
          );
          neighbour.child.kill('SIGTERM');
          assert.equal(await neighbour.exitCode(), 0);
          assert.deepEqual(mine(other.marker), []);
        });
      },
    );

    describe('without cgroups (--cgroup off)', () => {
      it('a daemon started after a SIGKILL stops the recorded process groups, then starts the service once', async () => {
        const port = await freePort();
        const a = setup({
          'services/web.pr': [
            '<require-service <daemon web>>',
            // The background sleep stays in the listener's process group.
            `<daemon web {argv: ["sh" "-c" "sleep 1000 & exec ${process.execPath} $T/listen.js ${port}"] readiness: <notification-fd 3>}>`,
          ].join('\n'),
        });
        const records = join(a.root, 'run/limen/process-groups');
        const first = a.start('--cgroup', 'off');
        await first.waitFor('web ready', first.state('<daemon web>', 'ready'));
        const status = await cli('status', '--json', '--socket', a.socket);
        assert.equal(status.code, 0, status.err);
        assert.equal(
          (JSON.parse(status.out) as { 'process-tracking': string })['process-tracking'],
          `process groups, recorded in ${records} (cgroups turned off)`,
        );
        await until(() => readdirSync(records).filter((n) => n.endsWith('.pr')).length === 1, {
          describe: () => `one record in ${records}: ${readdirSync(records).join(' ')}`,
        });
        const orphans = mine(a.marker).filter((p) => p.pid !== first.pid);
        assert.deepEqual(
          orphans.map((p) => p.comm).sort(),
          ['node', 'sleep'],
          describeProcs(orphans),
        );

        await first.kill();
        for (const p of orphans) assert.ok(alive(p.pid), `${p.comm} ${p.pid} outlived the daemon`);

        const second = a.start('--cgroup', 'off');
        await second.waitFor('web ready again', second.state('<daemon web>', 'ready'));
        const reclaimed = second.find((l) => l.msg === 'stopped processes a previous daemon left');
        assert.ok(reclaimed, `the leftovers are reported; log:\n${second.logText()}`);
        assert.equal(reclaimed.processes, 2);
        assert.equal(
          second.count(second.event('<daemon web>', /^started \(pid/)),
          1,
          second.logText(),
        );
        for (const p of orphans) assert.ok(!alive(p.pid), `${p.comm} ${p.pid} is gone`);

        second.child.kill('SIGTERM');
        assert.equal(await second.exitCode(), 0);
        const left = mine(a.marker);
        assert.deepEqual(left, [], `left behind: ${describeProcs(left)}`);
        assert.ok(!existsSync(records), 'no record is left');
      });

      it('stops cleanly on a SIGTERM that comes while it is still starting', async () => {
        const a = setup({
          'services/idle.pr': '<require-service <daemon idle>>\n<daemon idle "exec sleep 1000">',
        });
        // At its first log line, and at the first sign of its service: both before the
        // daemon has finished starting (before the fix, SIGTERM then killed it outright).
        for (const when of ['first line', 'idle started', 'first line']) {
          const d = a.start('--cgroup', 'off');
          await d.waitFor(
            when,
            when === 'first line' ? () => true : d.event('<daemon idle>', /^started \(pid/),
          );
          d.child.kill('SIGTERM');
          assert.equal(await d.exitCode(), 0, d.logText());
          const left = mine(a.marker);
          assert.deepEqual(left, [], `left behind: ${describeProcs(left)}`);
        }
      });

      it('never kills a process that is not the one recorded (a reused pid, another boot)', async () => {
        const a = setup({
          'services/idle.pr': '<require-service <daemon idle>>\n<daemon idle "exec sleep 1000">',
        });
        // Three strangers, each leading a process group of its own.
        const stranger = () => {
          const c = spawn('sleep', ['1000'], {
            detached: true,
            stdio: 'ignore',
            env: { ...process.env, [MARK]: a.marker },
          });
          c.unref();
          return c.pid!;
        };
        const [recorded, reused, otherBoot] = [stranger(), stranger(), stranger()];
        const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
        const records = join(a.root, 'run/limen/process-groups');
        mkdirSync(records, { recursive: true });
        const write = (pgid: number, start: number, bootId: string) =>
          writeFileSync(
            join(records, `${pgid}-${start}.pr`),
            `{pgid: ${pgid} start: ${start} boot: ${JSON.stringify(bootId)} marker: #f}\n`,
          );
        write(recorded, startTime(recorded), boot); // really ours: it goes
        write(reused, startTime(reused) - 1, boot); // the pid now names a later process
        write(otherBoot, startTime(otherBoot), '00000000-0000-0000-0000-000000000000');
        writeFileSync(join(records, 'junk.pr'), 'not a record');

        const d = a.start('--cgroup', 'off');
        await d.waitFor('idle ready', d.state('<daemon idle>', 'ready'));
        assert.ok(!alive(recorded), 'the recorded group was stopped');
        assert.ok(alive(reused), 'a reused pid is never signalled');
        assert.ok(alive(otherBoot), 'a record from another boot is ignored');
        const reclaimed = d.find((l) => l.msg === 'stopped processes a previous daemon left');
        assert.equal(reclaimed?.processes, 1, d.logText());
        assert.match(String(reclaimed.problems), /junk\.pr/);
        d.child.kill('SIGTERM');
        assert.equal(await d.exitCode(), 0);
        for (const pid of [reused, otherBoot]) process.kill(pid, 'SIGKILL');
      });
    });
  },
);
