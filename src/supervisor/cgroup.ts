// cgroup v2, as far as limen uses it: find the unified hierarchy and the daemon's
// own place in it, and handle one cgroup (its members, a signal to all of them,
// cgroup.kill, emptiness, removal). cgroups here track and kill; limen enables no
// controller, so they limit nothing. Invariant: nothing here ever signals the
// daemon itself, and a cgroup that holds the daemon is never killed.

import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { readdir, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { InternalError } from '../base/errors.ts';

/** One line of /proc/self/mountinfo that mounts a cgroup2 filesystem. */
export interface Cgroup2Mount {
  /** Where it is mounted, e.g. /sys/fs/cgroup or /sys/fs/cgroup/unified. */
  readonly mountPoint: string;
  /** The hierarchy path mounted there (/ unless a namespace or bind mount says otherwise). */
  readonly root: string;
}

/** mountinfo escapes space, tab, newline and backslash as \ooo. */
function unescapeMountField(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** The cgroup2 mounts in a mountinfo text, in order (the first is the one to use). */
export function parseCgroup2Mounts(mountinfo: string): Cgroup2Mount[] {
  const out: Cgroup2Mount[] = [];
  for (const line of mountinfo.split('\n')) {
    const fields = line.split(' ');
    // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
    const dash = fields.indexOf('-', 6);
    if (dash < 0 || fields[dash + 1] !== 'cgroup2') continue;
    out.push({ root: unescapeMountField(fields[3]!), mountPoint: unescapeMountField(fields[4]!) });
  }
  return out;
}

/** The process's cgroup v2 path (`0::PATH` in /proc/PID/cgroup), or undefined. */
export function parseOwnCgroup(procCgroup: string): string | undefined {
  for (const line of procCgroup.split('\n')) {
    if (line.startsWith('0::')) return line.slice(3);
  }
  return undefined;
}

/** A hierarchy path as a directory under the mount, or undefined when outside the mount. */
export function cgroupDirectory(mount: Cgroup2Mount, path: string): string | undefined {
  const root = mount.root === '/' ? '' : mount.root.replace(/\/+$/, '');
  if (root !== '' && path !== root && !path.startsWith(`${root}/`)) return undefined;
  const rest = path.slice(root.length).replace(/^\/+|\/+$/g, '');
  return rest === '' ? mount.mountPoint : join(mount.mountPoint, rest);
}

/**
 * The name of a daemon's subtree, from its state directory: two daemons with
 * different roots never share one, and a restarted daemon finds its own again.
 */
export function cgroupSubtreeName(stateDir: string): string {
  return `limen-${createHash('sha256').update(stateDir).digest('hex').slice(0, 12)}`;
}

function errno(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException).code;
}

/** One cgroup v2 directory. Reads and writes are synchronous: cgroupfs answers from memory. */
export class Cgroup {
  readonly path: string;
  /** The mount it is under: how the daemon's own cgroup is found in it. */
  readonly mount: Cgroup2Mount;

  constructor(path: string, mount: Cgroup2Mount) {
    this.path = path;
    this.mount = mount;
  }

  /** The pids of its own processes (not its children's); zombies are not listed. */
  procs(): number[] {
    let text: string;
    try {
      text = readFileSync(join(this.path, 'cgroup.procs'), 'utf8');
    } catch (e) {
      if (errno(e) === 'ENOENT') return [];
      throw e;
    }
    return text
      .split('\n')
      .filter((l) => l !== '')
      .map(Number);
  }

  /** Whether a live process is in it or in any cgroup below it. */
  populated(): boolean {
    let text: string;
    try {
      text = readFileSync(join(this.path, 'cgroup.events'), 'utf8');
    } catch (e) {
      if (errno(e) === 'ENOENT') return false;
      throw e;
    }
    return /^populated 1$/m.test(text);
  }

  /** Moves process `pid` (0: the caller) into this cgroup. */
  enter(pid: number): void {
    writeFileSync(join(this.path, 'cgroup.procs'), String(pid));
  }

  /** Sends `signal` to each of its own processes (a fork in between is caught by kill()). */
  signal(signal: NodeJS.Signals): number {
    let sent = 0;
    for (const pid of this.procs()) {
      if (pid === process.pid) continue;
      try {
        process.kill(pid, signal);
        sent++;
      } catch {
        // gone meanwhile
      }
    }
    return sent;
  }

  /**
   * SIGKILL to everything in it and below, by cgroup.kill (Linux 5.14), which also
   * catches a process forked meanwhile; older kernels get SIGKILL per process.
   * Returns whether anything was there to kill.
   */
  kill(): boolean {
    if (!this.populated()) return false;
    if (this.holdsDaemon()) {
      throw new InternalError(`refusing to kill cgroup ${this.path}: the daemon is in it`);
    }
    try {
      writeFileSync(join(this.path, 'cgroup.kill'), '1');
    } catch (e) {
      if (errno(e) !== 'ENOENT') throw e;
      this.#signalTree('SIGKILL', 0);
    }
    return true;
  }

  /** Sends `signal` to every process in this cgroup and below it (depth-bounded). */
  #signalTree(signal: NodeJS.Signals, depth: number): void {
    this.signal(signal);
    if (depth >= 16) return;
    let entries;
    try {
      entries = readdirSync(this.path, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (e.isDirectory())
        new Cgroup(join(this.path, e.name), this.mount).#signalTree(signal, depth + 1);
    }
  }

  /** Whether the daemon itself is in this cgroup or below it. */
  holdsDaemon(): boolean {
    const own = parseOwnCgroup(readFileSync('/proc/self/cgroup', 'utf8'));
    const dir = own === undefined ? undefined : cgroupDirectory(this.mount, own);
    return dir !== undefined && (dir === this.path || dir.startsWith(`${this.path}/`));
  }

  /** Removes it; true if it is gone (it must be empty: EBUSY otherwise). */
  async remove(): Promise<boolean> {
    try {
      await rmdir(this.path);
      return true;
    } catch (e) {
      if (errno(e) === 'ENOENT') return true;
      if (errno(e) === 'EBUSY' || errno(e) === 'ENOTEMPTY') return false;
      throw e;
    }
  }

  /** Every cgroup below this one, deepest first (so that they can be removed in order). */
  async descendants(): Promise<Cgroup[]> {
    const out: Cgroup[] = [];
    const walk = async (dir: string, depth: number): Promise<void> => {
      if (depth > 16) return; // limen makes two levels; anything deeper is not its own
      let entries;
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (e) {
        if (errno(e) === 'ENOENT') return;
        throw e;
      }
      for (const e of entries) {
        if (!e.isDirectory()) continue;
        const child = join(dir, e.name);
        await walk(child, depth + 1);
        out.push(new Cgroup(child, this.mount));
      }
    };
    await walk(this.path, 0);
    return out;
  }
}
