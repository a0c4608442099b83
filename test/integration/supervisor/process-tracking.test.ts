// ManagedProcess inside the enclosures of process-tracking.ts, with real programs
// and the real cgroup v2 hierarchy (as root):
// - a program that forks setsid children as its very first act has every one of
//   them in its cgroup, and stop() ends them all (none escapes between fork and
//   placement: the daemon forks from inside the cgroup);
// - a program run as an unprivileged user (nobody) is in its cgroup too, which a
//   wrapper writing to cgroup.procs after dropping privileges could not do;
// - a process that ignores the stop signal is killed (cgroup.kill) after the timeout;
// - a second tracking on the same state directory (a daemon started after a
//   SIGKILL) finds and stops what the first left, and removes its cgroups;
// - a daemon that may not write the hierarchy falls back to process groups, and
//   says why (run as nobody).
// Every cgroup the tests create is removed.

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Cgroup, cgroupSubtreeName, parseOwnCgroup } from '../../../src/supervisor/cgroup.ts';
import { ManagedProcess, type ProcessSpec } from '../../../src/supervisor/process-runner.ts';
import {
  openProcessTracking,
  type ProcessTracking,
} from '../../../src/supervisor/process-tracking.ts';
import { cgroup2Mount } from '../../support/cgroups.ts';
import { describeProcs, killMarked, newMarker, processesWithEnv } from '../../support/processes.ts';
import { until } from '../../support/until.ts';
import { prerequisites } from '../../support/prerequisites.ts';

const repo = resolve(import.meta.dirname, '../../..');
const MARK = 'LIMEN_TEST_MARKER';

/** The cgroup v2 path of a live process, from /proc. */
function cgroupOf(pid: number): string | undefined {
  try {
    return parseOwnCgroup(readFileSync(`/proc/${pid}/cgroup`, 'utf8'));
  } catch {
    return undefined;
  }
}

/** The hierarchy path of a cgroup directory under the mount. */
function hierarchyPath(dir: string): string {
  return dir.slice(cgroup2Mount!.mountPoint.length) || '/';
}

describe(
  'process tracking with cgroups',
  {
    skip: prerequisites({
      root: 'cgroups',
      check: () => (cgroup2Mount === undefined ? 'no cgroup v2 mounted' : undefined),
    }),
  },
  () => {
    const dirs: string[] = [];
    const markers: string[] = [];
    const trackings: ProcessTracking[] = [];

    after(async () => {
      for (const m of markers) killMarked(MARK, m);
      for (const t of trackings) {
        if (t.mechanism !== 'cgroup') continue;
        const subtree = new Cgroup(t.location, cgroup2Mount!);
        if (subtree.populated()) subtree.kill();
        await until(() => !subtree.populated(), { describe: () => `${t.location} empty` });
        await t.close();
        assert.ok(!existsSync(t.location), `${t.location} removed`);
      }
      for (const d of dirs) await rm(d, { recursive: true, force: true });
    });

    async function tracking(stateDir?: string): Promise<ProcessTracking> {
      let dir = stateDir;
      if (dir === undefined) {
        dir = await mkdtemp(join(tmpdir(), 'limen-tracking-test-'));
        dirs.push(dir);
      }
      const t = await openProcessTracking({ stateDir: dir, runDir: join(dir, 'run') });
      trackings.push(t);
      assert.equal(t.mechanism, 'cgroup', t.fallbackReason);
      assert.equal(t.location, join(cgroup2Mount!.mountPoint, cgroupSubtreeName(dir)));
      return t;
    }

    function start(t: ProcessTracking, spec: ProcessSpec, marker: string): ManagedProcess {
      markers.push(marker);
      const p = new ManagedProcess(
        { ...spec, env: { ...spec.env, [MARK]: marker } },
        { enclosure: () => t.create('svc') },
      );
      p.start();
      return p;
    }

    it('holds children that call setsid as their first act, and stop() ends them all', async () => {
      const t = await tracking();
      const marker = newMarker();
      const p = start(
        t,
        { argv: ['sh', '-c', 'for i in $(seq 20); do setsid sleep 1000 & done; exec sleep 1000'] },
        marker,
      );
      const all = await until(
        () => {
          const ps = processesWithEnv(MARK, marker);
          return ps.length === 21 ? ps : false;
        },
        { describe: () => describeProcs(processesWithEnv(MARK, marker)) },
      );
      const where = p.where!;
      assert.match(where, new RegExp(`^${t.location}/svc/p\\d+$`));
      for (const q of all) assert.equal(cgroupOf(q.pid), hierarchyPath(where), `${q.pid}`);
      // The daemon (this process) went back where it was.
      assert.ok(!cgroupOf(process.pid)!.startsWith(hierarchyPath(t.location)));

      const exit = await p.stop();
      assert.equal(exit.stopped, true);
      assert.deepEqual(processesWithEnv(MARK, marker), []);
      assert.ok(!existsSync(where), 'its cgroup is removed');
    });

    it('puts a program that runs as nobody in its cgroup too', async () => {
      const t = await tracking();
      const marker = newMarker();
      const p = start(t, { argv: ['sleep', '1000'], user: 'nobody' }, marker);
      const pid = await until(() => p.pid !== undefined && p.state === 'running' && p.pid);
      assert.equal(cgroupOf(pid), hierarchyPath(p.where!));
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      assert.match(status, /^Uid:\s+65534\s/m);
      await p.stop();
      assert.deepEqual(processesWithEnv(MARK, marker), []);
    });

    it('kills a setsid child that ignores the stop signal after the timeout', async () => {
      const t = await tracking();
      const marker = newMarker();
      const p = start(
        t,
        {
          argv: [
            'sh',
            '-c',
            'setsid sh -c \'trap "" TERM; echo deaf; exec sleep 1000\' & exec sleep 1000',
          ],
          stopTimeoutMs: 200,
        },
        marker,
      );
      const lines: string[] = [];
      p.onDidLogLine((l) => lines.push(l.line));
      // Stopped only once the child ignores SIGTERM (its trap is set).
      await until(() => lines.includes('deaf'), { describe: () => lines.join('\n') });
      const exit = await p.stop();
      assert.equal(exit.forced, true, 'SIGKILL was needed');
      assert.deepEqual(processesWithEnv(MARK, marker), []);
    });

    it('a tracking opened again on the same state directory stops what the first left', async () => {
      const first = await tracking();
      const stateDir = dirs.at(-1)!;
      const marker = newMarker();
      markers.push(marker);
      // Spawned into an enclosure and then forgotten, as by a daemon killed with SIGKILL.
      const enclosure = await first.create('svc');
      const child = enclosure.spawn(() =>
        spawn('sh', ['-c', 'setsid sleep 1000 & sleep 1000 & exec sleep 1000'], {
          detached: true,
          stdio: 'ignore',
          env: { ...process.env, [MARK]: marker },
        }),
      );
      child.unref();
      await until(() => processesWithEnv(MARK, marker).length === 3, {
        describe: () => describeProcs(processesWithEnv(MARK, marker)),
      });
      const second = await tracking(stateDir);
      assert.equal(second.location, first.location);
      const report = await second.reclaim({ stopTimeoutMs: 2000 });
      assert.deepEqual(report, { processes: 3, killed: 0, problems: [] });
      assert.deepEqual(processesWithEnv(MARK, marker), []);
      assert.ok(!existsSync(enclosure.where), 'the leftover cgroup is removed');
      assert.ok(!existsSync(join(second.location, 'svc')), "and its service's directory");
      assert.ok(existsSync(second.location), 'the subtree stays for the new daemon');
    });

    it('stops what the other mechanism left, when a daemon switches between them', async () => {
      const cg = await tracking();
      const stateDir = dirs.at(-1)!;
      const runDir = join(stateDir, 'run');
      const forgotten = async (t: ProcessTracking, marker: string) => {
        markers.push(marker);
        const e = await t.create('svc', `${MARK}=${marker}`);
        e.spawn(() =>
          spawn('sh', ['-c', 'sleep 1000 & exec sleep 1000'], {
            detached: true,
            stdio: 'ignore',
            env: { ...process.env, [MARK]: marker },
          }),
        ).unref();
        await until(() => processesWithEnv(MARK, marker).length === 2, {
          describe: () => describeProcs(processesWithEnv(MARK, marker)),
        });
        // The record is written just after the fork: the daemon dies once it is there.
        const records = join(runDir, 'process-groups');
        if (t.mechanism === 'process-group') {
          await until(
            () => existsSync(records) && readdirSync(records).some((n) => n.endsWith('.pr')),
            { describe: () => `a record in ${records}` },
          );
        }
      };
      // A daemon with cgroups dies; the next one runs with --cgroup off.
      const inCgroup = newMarker();
      await forgotten(cg, inCgroup);
      const off = await openProcessTracking({ stateDir, runDir, mode: 'off' });
      assert.equal(off.mechanism, 'process-group');
      assert.equal((await off.reclaim({ stopTimeoutMs: 2000 })).processes, 2);
      assert.deepEqual(processesWithEnv(MARK, inCgroup), []);
      assert.ok(!existsSync(cg.location), 'the unused subtree is removed');
      // That one dies in turn; the next one has cgroups again.
      const inGroup = newMarker();
      await forgotten(off, inGroup);
      const again = await tracking(stateDir);
      assert.equal((await again.reclaim({ stopTimeoutMs: 2000 })).processes, 2);
      assert.deepEqual(processesWithEnv(MARK, inGroup), []);
      assert.deepEqual(readdirSync(join(runDir, 'process-groups')), [], 'no record is left');
    });

    it('falls back to process groups where the hierarchy cannot be written (as nobody)', async () => {
      const dir = await mkdtemp(join(tmpdir(), 'limen-tracking-test-'));
      dirs.push(dir);
      await chmod(dir, 0o777);
      const script = `
        import { openProcessTracking } from ${JSON.stringify(join(repo, 'src/supervisor/process-tracking.ts'))};
        const t = await openProcessTracking({ stateDir: ${JSON.stringify(dir)}, runDir: ${JSON.stringify(join(dir, 'run'))} });
        console.log(JSON.stringify({ mechanism: t.mechanism, description: t.describe() }));
      `;
      const r = spawnSync(
        process.execPath,
        ['--import', 'tsx', '--input-type=module', '-e', script],
        {
          cwd: repo,
          uid: 65534,
          gid: 65534,
          encoding: 'utf8',
          timeout: 30_000,
        },
      );
      assert.equal(r.status, 0, r.stderr);
      const out = JSON.parse(r.stdout) as { mechanism: string; description: string };
      assert.equal(out.mechanism, 'process-group');
      const subtree = join(cgroup2Mount!.mountPoint, cgroupSubtreeName(dir));
      assert.equal(
        out.description,
        `process groups, recorded in ${join(dir, 'run/process-groups')} (cannot create ${subtree}: EACCES: permission denied, mkdir '${subtree}')`,
      );
      assert.ok(!existsSync(subtree));
    });
  },
);
