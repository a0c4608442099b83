import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  ProcessGoneError,
  distinctResident,
  parseSmapsRollup,
  parseStat,
  parseStatus,
  processMemory,
  treeMemory,
} from '../../../bench/support/memory.ts';
import { skipUnmet } from '../../support/prerequisites.ts';

// From a node process on Linux 6.x.
const rollup = `55d0c0a8e000-7ffd4b5f2000 ---p 00000000 00:00 0                          [rollup]
Rss:               41236 kB
Pss:               22101 kB
Pss_Dirty:         12840 kB
Pss_Anon:          12832 kB
Pss_File:           9261 kB
Pss_Shmem:             8 kB
Shared_Clean:      27904 kB
Shared_Dirty:          4 kB
Private_Clean:       484 kB
Private_Dirty:     12844 kB
Referenced:        41236 kB
Anonymous:         12832 kB
KSM:                   0 kB
LazyFree:              0 kB
AnonHugePages:         0 kB
ShmemPmdMapped:        0 kB
FilePmdMapped:         0 kB
Shared_Hugetlb:        0 kB
Private_Hugetlb:       0 kB
Swap:                128 kB
SwapPss:             128 kB
Locked:                0 kB
`;

describe('bench/support/memory', () => {
  it('reads RSS, PSS, USS (private clean + dirty) and swap from smaps_rollup, in bytes', () => {
    assert.deepEqual(parseSmapsRollup(rollup), {
      rss: 41236 * 1024,
      pss: 22101 * 1024,
      uss: (484 + 12844) * 1024,
      pssFile: 9261 * 1024,
      swap: 128 * 1024,
    });
  });

  it('reads an empty rollup (a zombie) as zeros, and a pre-5.12 one without Pss_File as NaN', () => {
    assert.deepEqual(parseSmapsRollup(''), { rss: 0, pss: 0, uss: 0, pssFile: 0, swap: 0 });
    const old = rollup.replace(/^Pss_\w+:.*\n/gm, '');
    assert.ok(Number.isNaN(parseSmapsRollup(old).pssFile));
    assert.equal(parseSmapsRollup(old).pss, 22101 * 1024);
  });

  it('falls back to RSS and swap from status, with PSS and USS unknown', () => {
    const m = parseStatus(
      'Name:\tnode\nVmRSS:\t   41236 kB\nRssAnon:\t   12832 kB\nVmSwap:\t     128 kB\n',
    );
    assert.equal(m.rss, 41236 * 1024);
    assert.equal(m.swap, 128 * 1024);
    assert.ok(Number.isNaN(m.pss) && Number.isNaN(m.uss));
  });

  it('reads a comm holding spaces and parentheses from stat', () => {
    assert.deepEqual(parseStat('4242 (a (b) c) S 17 4242 4242 0 -1 4194560 152 0 0 0'), {
      comm: 'a (b) c',
      ppid: 17,
    });
  });

  it('measures this process and finds a child in its tree', async () => {
    const own = processMemory(process.pid);
    assert.ok(own.rss > 0 && own.pss > 0 && own.uss > 0 && own.uss <= own.rss);
    const child = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      await new Promise((r) => child.once('spawn', r));
      const tree = treeMemory(process.pid);
      assert.equal(tree.processes[0]?.pid, process.pid);
      assert.ok(tree.processes.some((p) => p.pid === child.pid));
      assert.ok(tree.total.rss >= tree.processes[0].rss);
    } finally {
      child.kill();
    }
    await new Promise((r) => child.once('exit', r));
    assert.throws(() => processMemory(child.pid!), ProcessGoneError);
  });

  it('counts a page mapped by several processes once', (t) => {
    const once = distinctResident([process.pid]);
    if (Number.isNaN(once) && skipUnmet(t, { root: 'page frame numbers are hidden' })) return;
    const own = processMemory(process.pid);
    assert.ok(once > own.uss && once <= own.rss * 1.5, `${once} vs ${own.uss}..${own.rss}`);
    // The same process twice: the same pages (give or take what it allocated meanwhile).
    assert.ok(distinctResident([process.pid, process.pid]) < once * 1.5);
  });
});
