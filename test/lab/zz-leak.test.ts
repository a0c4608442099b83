// Runs after every other test (scripts/run-tests.mjs runs test/lab last, and
// the files one at a time, sorted by name): nothing of any lab or test may
// remain on this machine. No lab by its directory or namespaces (labNames()),
// no namespace named limen-* (a lab's) or lt-* (an integration test's or a
// benchmark's: test/support/names.ts), no /etc/netns/ directory of either
// (where the LAN clients' resolv.conf lives), no process that names the lab's
// base directory or a lab namespace in its command line or environment, or
// carries a test marker (LIMEN_TEST_…=limen-test-…, test/support/processes.ts)
// or this test run's mark (LIMEN_TEST_RUN, set by scripts/run-tests.mjs for
// everything the run starts), and no link in the host's namespace named like
// one of the lab's or a test's, and no daemon's cgroup subtree (limen-HASH at the
// top of a cgroup v2 hierarchy: a daemon killed with SIGKILL leaves it, and the
// test or lab that killed it removes it). A lab brought up by hand and left running makes
// this fail too: take it down with `limen lab down --all`.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { labBaseDir, labNames } from '../../src/lab/lab.ts';
import { namespaces, run } from '../../src/lab/system.ts';
import { parseCgroup2Mounts } from '../../src/supervisor/cgroup.ts';
import { TEST_LINK, TEST_NAMESPACE } from '../support/names.ts';
import { prerequisites } from '../support/prerequisites.ts';

const skip = prerequisites({
  root: 'to read every process environment, as the lab runs as root',
  programs: ['ip'],
});

const LAB_NAMESPACE = /limen-[a-z][a-z0-9]{0,11}-(?:world|isp|sw|rtr|lan1|lan2)\b/;
const isLeftNamespace = (n: string) => n.startsWith('limen-') || TEST_NAMESPACE.test(n);
/** A test's marker value (newMarker()) or the run's (scripts/run-tests.mjs). */
const MARKER_VALUE = /^[A-Z0-9_]+=limen-test-/;
// The lab's link names, but eth0 (the host's own) and br0 (a common host bridge).
const LAB_LINK = /^(?:to-world|to-rtr|wan0|lan0|p-rtr|p-lan\d+|limen-.*)$/;

function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}

/** This process and its ancestors (a test run may be started with LIMEN_LAB_DIR set). */
function ancestry(): Set<number> {
  const out = new Set<number>();
  let pid: number | undefined = process.pid;
  while (pid !== undefined && pid > 1 && !out.has(pid)) {
    out.add(pid);
    pid = parentOf(pid);
  }
  return out;
}

/**
 * Whether PID descends from this process or its parent (node's test runner):
 * tsx starts esbuild's service as a child of the process that loads it when its
 * transform cache is cold (a fresh clone, as in CI), and that child carries the run's
 * mark without being anything a test left behind. What a finished test left is
 * reparented away from this chain, to init or a subreaper, and is still found.
 */
function descendsFrom(pid: number, chain: Set<number>): boolean {
  const seen = new Set<number>();
  for (let p = parentOf(pid); p !== undefined && p > 1 && !seen.has(p); p = parentOf(p)) {
    if (chain.has(p)) return true;
    seen.add(p);
  }
  return false;
}

function procText(pid: string, file: 'cmdline' | 'environ'): string {
  try {
    return readFileSync(`/proc/${pid}/${file}`, 'utf8');
  } catch {
    return '';
  }
}

describe('no lab is left behind', { skip }, () => {
  it('no lab is up (labNames() is empty)', () => {
    assert.deepEqual(labNames(), [], `labs left: take them down with \`limen lab down --all\``);
  });

  it("no network namespace named limen-* (a lab's) or lt-* (a test's)", () => {
    assert.deepEqual(namespaces().filter(isLeftNamespace), []);
  });

  it('no /etc/netns/ directory of a lab or test namespace', () => {
    const left = existsSync('/etc/netns') ? readdirSync('/etc/netns').filter(isLeftNamespace) : [];
    assert.deepEqual(left, []);
  });

  it("no process names the lab directory or a lab namespace, or carries a test's marker", () => {
    const base = labBaseDir();
    const mine = ancestry();
    const runner = new Set([process.pid, process.ppid]);
    const found: string[] = [];
    for (const pid of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
      if (mine.has(Number(pid)) || descendsFrom(Number(pid), runner)) continue;
      const cmdline = procText(pid, 'cmdline').replace(/\0/g, ' ').trim();
      const variables = procText(pid, 'environ').split('\0');
      const marker = variables.find((v) => MARKER_VALUE.test(v));
      if (marker !== undefined) {
        found.push(`pid ${pid} (a test's process: ${marker}): ${cmdline.slice(0, 200)}`);
        continue;
      }
      const environ = variables.filter((v) => !v.startsWith('LIMEN_LAB_DIR=')).join(' ');
      for (const [what, text] of [
        ['command line', cmdline],
        ['environment', environ],
      ] as const) {
        if (text.includes(base) || LAB_NAMESPACE.test(text)) {
          found.push(`pid ${pid} (${what}): ${cmdline.slice(0, 200)}`);
          break;
        }
      }
    }
    assert.deepEqual(found, []);
  });

  it("no link named like the lab's or a test's in the host's namespace", () => {
    const links = (JSON.parse(run(['ip', '-j', 'link', 'show'])) as { ifname: string }[]).map(
      (l) => l.ifname,
    );
    assert.deepEqual(
      links.filter((n) => LAB_LINK.test(n) || TEST_LINK.test(n)),
      [],
      `host links: ${links.join(', ')}`,
    );
  });

  it('no cgroup subtree of a limen daemon (limen-HASH at the top of a cgroup v2 hierarchy)', () => {
    const left: string[] = [];
    for (const m of parseCgroup2Mounts(readFileSync('/proc/self/mountinfo', 'utf8'))) {
      for (const name of readdirSync(m.mountPoint)) {
        if (/^limen-[0-9a-f]{12}$/.test(name)) left.push(`${m.mountPoint}/${name}`);
      }
    }
    assert.deepEqual(left, [], 'left by a daemon killed with SIGKILL and never restarted');
  });
});
