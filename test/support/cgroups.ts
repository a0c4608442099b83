// The cgroup subtree a test's daemon uses (src/supervisor/cgroup.ts names it after
// the state directory), and its removal after a test that killed the daemon.

import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import {
  Cgroup,
  cgroupSubtreeName,
  parseCgroup2Mounts,
  type Cgroup2Mount,
} from '../../src/supervisor/cgroup.ts';
import { until } from './until.ts';

/** The first cgroup v2 mount, as the daemon chooses it; undefined without one. */
export const cgroup2Mount: Cgroup2Mount | undefined = parseCgroup2Mounts(
  readFileSync('/proc/self/mountinfo', 'utf8'),
)[0];

/** The subtree of a daemon run with `--root root` (outside systemd). */
export function subtreeOf(root: string): Cgroup {
  const stateDir = realpathSync(join(root, 'var/lib/limen'));
  return new Cgroup(join(cgroup2Mount!.mountPoint, cgroupSubtreeName(stateDir)), cgroup2Mount!);
}

/** Kills what a daemon on `root` left in its subtree and removes the subtree. */
export async function removeSubtreeOf(root: string): Promise<void> {
  if (cgroup2Mount === undefined || !existsSync(join(root, 'var/lib/limen'))) return;
  const c = subtreeOf(root);
  if (!existsSync(c.path)) return;
  if (c.populated()) c.kill();
  await until(() => !c.populated(), { timeoutMs: 5000, describe: () => `${c.path} empty` });
  for (const d of await c.descendants()) await d.remove();
  await c.remove();
}
