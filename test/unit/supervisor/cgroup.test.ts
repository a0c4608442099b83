import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  cgroupDirectory,
  cgroupSubtreeName,
  parseCgroup2Mounts,
  parseOwnCgroup,
} from '../../../src/supervisor/cgroup.ts';
import { parseProcStat } from '../../../src/supervisor/process-group.ts';

// Lines as this machine's kernel writes them (hybrid mode), and a pure v2 system's.
const HYBRID = [
  '30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755',
  '31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu',
  '39 30 0:36 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd',
  '40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw',
].join('\n');
const PURE_V2 =
  '35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot';

describe('cgroup v2: finding the hierarchy', () => {
  it('finds the cgroup2 mount in hybrid mode, beside the v1 controllers', () => {
    assert.deepEqual(parseCgroup2Mounts(HYBRID), [
      { root: '/', mountPoint: '/sys/fs/cgroup/unified' },
    ]);
  });

  it('finds it on a pure v2 system, past optional fields', () => {
    assert.deepEqual(parseCgroup2Mounts(PURE_V2), [{ root: '/', mountPoint: '/sys/fs/cgroup' }]);
  });

  it('finds none where there is none, and unescapes paths', () => {
    assert.deepEqual(parseCgroup2Mounts(HYBRID.split('\n').slice(0, 3).join('\n')), []);
    assert.deepEqual(parseCgroup2Mounts('50 1 0:40 /a\\040b /mnt/c\\040g rw - cgroup2 none rw'), [
      { root: '/a b', mountPoint: '/mnt/c g' },
    ]);
  });

  it("reads the process's own v2 cgroup", () => {
    assert.equal(parseOwnCgroup('9:name=systemd:/\n4:memory:/x\n0::/\n'), '/');
    assert.equal(parseOwnCgroup('0::/system.slice/limen.service\n'), '/system.slice/limen.service');
    assert.equal(parseOwnCgroup('4:memory:/x\n'), undefined);
  });

  it('maps a hierarchy path to its directory, or to nothing outside the mount', () => {
    const root = { root: '/', mountPoint: '/sys/fs/cgroup' };
    assert.equal(cgroupDirectory(root, '/'), '/sys/fs/cgroup');
    assert.equal(
      cgroupDirectory(root, '/system.slice/limen.service'),
      '/sys/fs/cgroup/system.slice/limen.service',
    );
    const bound = { root: '/lab', mountPoint: '/mnt/cg' };
    assert.equal(cgroupDirectory(bound, '/lab/x'), '/mnt/cg/x');
    assert.equal(cgroupDirectory(bound, '/lab'), '/mnt/cg');
    assert.equal(cgroupDirectory(bound, '/labs/x'), undefined);
    assert.equal(cgroupDirectory(bound, '/'), undefined);
  });

  it('names a subtree after the state directory: stable, and one per directory', () => {
    const a = cgroupSubtreeName('/tmp/lab-a/var/lib/limen');
    assert.match(a, /^limen-[0-9a-f]{12}$/);
    assert.equal(cgroupSubtreeName('/tmp/lab-a/var/lib/limen'), a);
    assert.notEqual(cgroupSubtreeName('/tmp/lab-b/var/lib/limen'), a);
  });
});

describe('/proc/PID/stat', () => {
  it('reads the state, the process group and the start time, whatever the name holds', () => {
    const text =
      '4242 (a) (b) c) S 17 4240 4240 0 -1 4194560 152 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100';
    assert.deepEqual(parseProcStat(4242, text), {
      pid: 4242,
      state: 'S',
      pgrp: 4240,
      start: 987654,
    });
    assert.equal(parseProcStat(1, 'garbage'), null);
  });
});
