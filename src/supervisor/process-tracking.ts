// How the daemon keeps hold of every process a service starts, so that stopping a
// service stops all of it, and a daemon started after its predecessor was killed
// (SIGKILL, a crash) finds what was left and stops it before starting anything.
// Two mechanisms, chosen once at start:
//   cgroup         a cgroup v2 per process, in the daemon's own subtree (named after
//                  its state directory); whatever the process starts stays in it,
//                  a grandchild that calls setsid included.
//   process-group  where there is no usable cgroup v2 (or `--cgroup off`): the
//                  process group, recorded in a file under the run dir. A process
//                  that leaves its group (setsid) escapes this one.
// Invariants: a process is in its cgroup before it runs a single instruction of its
// own (the daemon forks it from inside the cgroup); a recorded process is signalled
// only while its start time says it is the very process recorded, never a process
// that got its pid later; the daemon never signals itself.

import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, readdir, realpath, rmdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../platform/atomic-file.ts';
import { Dict, parse, peel, stringify, sym, type Value } from '../preserves/index.ts';
import {
  Cgroup,
  cgroupDirectory,
  cgroupSubtreeName,
  parseCgroup2Mounts,
  parseOwnCgroup,
  type Cgroup2Mount,
} from './cgroup.ts';
import { CgroupError } from './errors.ts';
import {
  bootId,
  hasEnvironmentEntry,
  liveGroupMembers,
  liveProcesses,
  parseProcStat,
  readProcStat,
  signalGroup,
} from './process-group.ts';

/** Where one process and everything it starts are held. */
export interface Enclosure {
  /** For messages: the cgroup's directory, or `process group N`. */
  readonly where: string;
  /** Calls `fork` (a synchronous spawn) so that the child starts inside. */
  spawn(fork: () => ChildProcess): ChildProcess;
  /** Sends `signal` to every process inside. */
  signal(signal: NodeJS.Signals): void;
  /** SIGKILL to every process inside; false when nothing was there. */
  kill(): boolean;
  /** True when no live process is left inside. */
  isEmpty(): Promise<boolean>;
  /** Forgets it (removes the cgroup, or the record); call once it is empty. */
  release(): Promise<void>;
}

export type TrackingMechanism = 'cgroup' | 'process-group';

export interface ReclaimReport {
  /** Processes a previous daemon left that were stopped. */
  readonly processes: number;
  /** Of those, how many had to be killed (SIGKILL) after the stop timeout. */
  readonly killed: number;
  /** What could not be cleaned (a process stuck in the kernel, an unreadable record…). */
  readonly problems: readonly string[];
}

export interface ProcessTracking {
  readonly mechanism: TrackingMechanism;
  /** The cgroup subtree, or the directory of process-group records. */
  readonly location: string;
  /** Why cgroups are not used, when they are not. */
  readonly fallbackReason: string | undefined;
  /** One line for `limen status`: the mechanism and where. */
  describe(): string;
  /**
   * A new, empty enclosure for one process of `group` (a service's directory
   * name); `marker` (NAME=VALUE) is in the environment of the service's processes,
   * and identifies them once their group leader is gone.
   */
  create(group: string, marker?: string): Promise<Enclosure>;
  /** Stops what a previous daemon on the same state directory left; before starting anything. */
  reclaim(options?: { readonly stopTimeoutMs?: number }): Promise<ReclaimReport>;
  /** Removes what is left of the subtree or the records (at shutdown, every process gone). */
  close(): Promise<void>;
}

export interface ProcessTrackingOptions {
  /** The daemon's state directory: names the cgroup subtree. */
  readonly stateDir: string;
  /** The process-group records go in `${runDir}/process-groups`. */
  readonly runDir: string;
  /** `off`: process groups even where cgroup v2 could be used. Default `auto`. */
  readonly mode?: 'auto' | 'off';
  /** The daemon's environment (default process.env): tells a systemd unit. */
  readonly env?: NodeJS.ProcessEnv;
}

/** How long a leftover gets between SIGTERM and SIGKILL at start. */
export const RECLAIM_STOP_TIMEOUT_MS = 5000;
/** How long SIGKILLed processes get to vanish (one stuck in D state does not hold the daemon). */
const KILL_GRACE_MS = 5000;

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `done` with a growing interval until it holds or `ms` pass; returns its last answer. */
async function waitFor(done: () => Promise<boolean> | boolean, ms: number): Promise<boolean> {
  const deadline = performance.now() + ms;
  let pollMs = 5;
  for (;;) {
    if (await done()) return true;
    if (performance.now() >= deadline) return false;
    await delay(pollMs);
    pollMs = Math.min(pollMs * 2, 100);
  }
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function errno(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException).code;
}

// ---- process groups, recorded ----------------------------------------------------------

/** One record: enough to find the group again, and to know it is still the same one. */
interface GroupRecord {
  readonly pgid: number;
  /** The leader's start time (clock ticks since boot). */
  readonly start: number;
  readonly boot: string;
  readonly marker: string | undefined;
}

function encodeRecord(r: GroupRecord): string {
  const d = new Dict([
    [sym('pgid'), r.pgid],
    [sym('start'), r.start],
    [sym('boot'), r.boot],
    [sym('marker'), r.marker ?? false],
  ]);
  return `${stringify(d)}\n`;
}

function decodeRecord(text: string, source: string): GroupRecord | undefined {
  const d = peel(parse(text, { source }));
  if (!(d instanceof Dict)) return undefined;
  const get = (k: string): Value | undefined => {
    const v = d.get(sym(k));
    return v === undefined ? undefined : peel(v);
  };
  const pgid = get('pgid');
  const start = get('start');
  const boot = get('boot');
  const marker = get('marker');
  if (typeof pgid !== 'number' || typeof start !== 'number' || typeof boot !== 'string') {
    return undefined;
  }
  return { pgid, start, boot, marker: typeof marker === 'string' ? marker : undefined };
}

/** The records of a daemon's process groups, one file each under the run dir. */
class GroupRecords {
  readonly dir: string;
  #boot: Promise<string> | undefined;

  constructor(dir: string) {
    this.dir = dir;
  }

  boot(): Promise<string> {
    return (this.#boot ??= bootId());
  }

  fileName(pgid: number, start: number): string {
    // The start time too: a pid recorded again after a reuse gets a file of its own.
    return join(this.dir, `${pgid}-${start}.pr`);
  }

  async write(pgid: number, start: number, marker: string | undefined): Promise<string> {
    const file = this.fileName(pgid, start);
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await writeFileAtomic(file, encodeRecord({ pgid, start, boot: await this.boot(), marker }), {
      mode: 0o600,
    });
    return file;
  }

  /** Stops every recorded group that is still the one recorded, and removes the records. */
  async reclaim(stopTimeoutMs: number): Promise<ReclaimReport> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (e) {
      if (errno(e) === 'ENOENT') return { processes: 0, killed: 0, problems: [] };
      throw e;
    }
    const problems: string[] = [];
    const boot = await this.boot();
    const records: [string, GroupRecord][] = [];
    for (const name of names) {
      if (!name.endsWith('.pr')) continue; // a temporary: its write never finished
      const file = join(this.dir, name);
      try {
        const r = decodeRecord(await readFile(file, 'utf8'), file);
        if (r === undefined) problems.push(`${file}: not a process-group record; removed`);
        else if (r.boot === boot) records.push([file, r]);
      } catch (e) {
        problems.push(`${file}: ${message(e)}; removed`);
      }
    }
    // Who belongs to a recorded group, now. While the leader lives with the recorded
    // start time, the group id cannot have been reused: every member is ours. Once it
    // is gone, a member must have started after it and carry the service's marker.
    const victims = new Map<number, number>(); // pid → start time
    const collect = async (): Promise<void> => {
      if (records.length === 0) return;
      const all = await liveProcesses();
      for (const [, r] of records) {
        const leader = all.find((p) => p.pid === r.pgid);
        const leaderIsOurs = leader !== undefined && leader.start === r.start;
        for (const p of all) {
          if (p.pgrp !== r.pgid || p.pid === process.pid || victims.has(p.pid)) continue;
          if (leaderIsOurs) victims.set(p.pid, p.start);
          else if (
            p.start >= r.start &&
            r.marker !== undefined &&
            (await hasEnvironmentEntry(p.pid, r.marker))
          ) {
            victims.set(p.pid, p.start);
          }
        }
      }
    };
    const alive = async (): Promise<[number, number][]> => {
      const out: [number, number][] = [];
      for (const [pid, start] of victims) {
        const st = await readProcStat(pid);
        if (st !== null && st.start === start) out.push([pid, start]);
        else victims.delete(pid);
      }
      return out;
    };
    const send = async (signal: NodeJS.Signals): Promise<void> => {
      for (const [pid] of await alive()) {
        try {
          process.kill(pid, signal);
        } catch {
          // gone meanwhile
        }
      }
    };
    await collect();
    const processes = victims.size;
    let killed = 0;
    if (processes > 0) {
      await send('SIGTERM');
      const stopped = await waitFor(async () => {
        await collect(); // a member forked meanwhile
        return (await alive()).length === 0;
      }, stopTimeoutMs);
      if (!stopped) {
        killed = (await alive()).length;
        await send('SIGKILL');
        if (!(await waitFor(async () => (await alive()).length === 0, KILL_GRACE_MS))) {
          const left = (await alive()).map(([pid]) => pid);
          problems.push(`processes ${left.join(', ')} did not die of SIGKILL`);
        }
      }
    }
    for (const name of names) {
      await unlink(join(this.dir, name)).catch(() => undefined);
    }
    return { processes, killed, problems };
  }

  async close(): Promise<void> {
    await rmdir(this.dir).catch(() => undefined); // only when empty: a live record stays
  }
}

/** A process group, recorded in a file while it lives (when `records` is given). */
class ProcessGroupEnclosure implements Enclosure {
  readonly #records: GroupRecords | undefined;
  readonly #marker: string | undefined;
  #pgid: number | undefined;
  #recorded: Promise<string | undefined> = Promise.resolve(undefined);

  constructor(records?: GroupRecords, marker?: string) {
    this.#records = records;
    this.#marker = marker;
  }

  get where(): string {
    return this.#pgid === undefined ? 'a process group' : `process group ${this.#pgid}`;
  }

  spawn(fork: () => ChildProcess): ChildProcess {
    const child = fork();
    const pid = child.pid;
    if (pid === undefined) return child;
    this.#pgid = pid; // spawned detached: the child leads a group of its own
    const records = this.#records;
    if (records !== undefined) {
      // The start time is read now, before the event loop can reap the child.
      let start: number | undefined;
      try {
        start = parseProcStat(pid, readFileSync(`/proc/${pid}/stat`, 'utf8'))?.start;
      } catch {
        start = undefined;
      }
      if (start !== undefined) {
        this.#recorded = records.write(pid, start, this.#marker).catch(() => undefined);
      }
    }
    return child;
  }

  signal(signal: NodeJS.Signals): void {
    if (this.#pgid !== undefined) signalGroup(this.#pgid, signal);
  }

  kill(): boolean {
    return this.#pgid !== undefined && signalGroup(this.#pgid, 'SIGKILL');
  }

  async isEmpty(): Promise<boolean> {
    const pgid = this.#pgid;
    if (pgid === undefined) return true;
    try {
      return (await liveGroupMembers(pgid)).length === 0;
    } catch {
      return !signalGroup(pgid, 0);
    }
  }

  async release(): Promise<void> {
    const file = await this.#recorded;
    if (file !== undefined) await unlink(file).catch(() => undefined);
  }
}

/** A plain process group, recorded nowhere: what a ManagedProcess uses by default. */
export function processGroupEnclosure(): Enclosure {
  return new ProcessGroupEnclosure();
}

// ---- cgroups ------------------------------------------------------------------------------

class CgroupEnclosure implements Enclosure {
  readonly cgroup: Cgroup;
  readonly #home: Cgroup;
  readonly #groupDir: Cgroup;

  constructor(cgroup: Cgroup, home: Cgroup, groupDir: Cgroup) {
    this.cgroup = cgroup;
    this.#home = home;
    this.#groupDir = groupDir;
  }

  get where(): string {
    return this.cgroup.path;
  }

  spawn(fork: () => ChildProcess): ChildProcess {
    // Node cannot fork into a cgroup (no CLONE_INTO_CGROUP), and a pid written after
    // the fork races a child that forks at once. So the daemon steps into the cgroup,
    // forks (spawn forks synchronously: nothing else of the daemon runs meanwhile) and
    // steps back out: the child is born inside, whatever user it then becomes.
    try {
      this.cgroup.enter(process.pid);
    } catch (e) {
      throw new CgroupError(`cannot enter cgroup ${this.cgroup.path}: ${message(e)}`, errno(e));
    }
    let child: ChildProcess | undefined;
    let forkError: unknown;
    try {
      child = fork();
    } catch (e) {
      forkError = e;
    }
    try {
      this.#home.enter(process.pid);
    } catch (e) {
      // The daemon is stuck in the service's cgroup: kill() refuses to kill it, and
      // the child must not run unwatched.
      if (child?.pid !== undefined) signalGroup(child.pid, 'SIGKILL');
      throw new CgroupError(
        `cannot leave cgroup ${this.cgroup.path} for ${this.#home.path}: ${message(e)}`,
        errno(e),
      );
    }
    if (child === undefined) throw forkError;
    return child;
  }

  signal(signal: NodeJS.Signals): void {
    this.cgroup.signal(signal);
  }

  kill(): boolean {
    return this.cgroup.kill();
  }

  isEmpty(): Promise<boolean> {
    return Promise.resolve(!this.cgroup.populated());
  }

  async release(): Promise<void> {
    // A process that has just exited may hold it for a moment longer; one stuck in
    // the kernel keeps it busy: then it stays, and close() or the next start removes it.
    for (let attempt = 1; attempt <= 5; attempt++) {
      if (await this.cgroup.remove()) {
        await this.#groupDir.remove().catch(() => false);
        return;
      }
      await delay(attempt * 10);
    }
  }
}

/** Where the daemon's subtree can live, or why there is no usable cgroup v2. */
interface CgroupPlace {
  readonly mount: Cgroup2Mount;
  /** The daemon's own cgroup. */
  readonly home: Cgroup;
  /** The daemon's subtree: one directory per service below it, one cgroup per process below those. */
  readonly subtree: Cgroup;
}

/** With `create` false: only a subtree that exists already, untouched. */
async function findCgroupPlace(
  stateDir: string,
  env: NodeJS.ProcessEnv,
  create: boolean,
): Promise<CgroupPlace | string> {
  let mounts: Cgroup2Mount[];
  let own: string | undefined;
  try {
    mounts = parseCgroup2Mounts(await readFile('/proc/self/mountinfo', 'utf8'));
    own = parseOwnCgroup(await readFile('/proc/self/cgroup', 'utf8'));
  } catch (e) {
    return `cannot read /proc: ${message(e)}`;
  }
  if (mounts.length === 0) return 'no cgroup v2 hierarchy is mounted';
  if (own === undefined) return 'the daemon is in no cgroup v2 (/proc/self/cgroup has no 0:: line)';
  let mount: Cgroup2Mount | undefined;
  let homeDir: string | undefined;
  for (const m of mounts) {
    homeDir = cgroupDirectory(m, own);
    if (homeDir !== undefined) {
      mount = m;
      break;
    }
  }
  if (mount === undefined || homeDir === undefined) {
    return `the daemon's cgroup ${own} is not under any cgroup v2 mount`;
  }
  // A systemd unit's own cgroup is delegated to it (Delegate=yes in the unit): the
  // subtree goes there, so that systemd sees it as the unit's. Anywhere else, at the
  // top of the hierarchy. SYSTEMD_EXEC_PID names the process systemd started; a
  // child of some other unit merely inherits the variable.
  const delegated = env['SYSTEMD_EXEC_PID'] === String(process.pid) && own !== '/';
  const base = delegated ? homeDir : mount.mountPoint;
  const home = new Cgroup(homeDir, mount);
  const subtree = new Cgroup(join(base, cgroupSubtreeName(stateDir)), mount);
  if (!create) return existsSync(subtree.path) ? { mount, home, subtree } : 'no subtree';
  try {
    await mkdir(subtree.path, { recursive: true });
  } catch (e) {
    return `cannot create ${subtree.path}: ${message(e)}`;
  }
  // Proves that the daemon can step into a cgroup of its subtree and back, as each
  // spawn does.
  const probe = new Cgroup(join(subtree.path, `probe-${process.pid}`), mount);
  try {
    await mkdir(probe.path);
    probe.enter(process.pid);
    home.enter(process.pid);
  } catch (e) {
    try {
      home.enter(process.pid);
    } catch {
      // it never left
    }
    await probe.remove().catch(() => false);
    await subtree.remove().catch(() => false);
    return `cannot move a process into ${probe.path}: ${message(e)}`;
  }
  await probe.remove();
  return { mount, home, subtree };
}

class CgroupTracking implements ProcessTracking {
  readonly mechanism = 'cgroup';
  readonly fallbackReason = undefined;
  readonly place: CgroupPlace;
  readonly records: GroupRecords;
  #next = 0;

  constructor(place: CgroupPlace, records: GroupRecords) {
    this.place = place;
    this.records = records;
  }

  get location(): string {
    return this.place.subtree.path;
  }

  describe(): string {
    return `cgroup v2, a cgroup per process under ${this.location}`;
  }

  async create(group: string): Promise<Enclosure> {
    const { mount, home, subtree } = this.place;
    const groupDir = new Cgroup(join(subtree.path, group), mount);
    let lastError: unknown;
    // EEXIST: a leftover nobody could remove; ENOENT: the group's directory was
    // removed by a sibling's release in between. Both: try the next name.
    for (let attempt = 0; attempt < 20; attempt++) {
      const leaf = new Cgroup(join(groupDir.path, `p${++this.#next}`), mount);
      try {
        await mkdir(groupDir.path, { recursive: true });
        await mkdir(leaf.path);
        return new CgroupEnclosure(leaf, home, groupDir);
      } catch (e) {
        lastError = e;
        if (errno(e) !== 'EEXIST' && errno(e) !== 'ENOENT') break;
      }
    }
    throw new CgroupError(
      `cannot create a cgroup under ${groupDir.path}: ${message(lastError)}`,
      errno(lastError),
    );
  }

  async reclaim(options: { readonly stopTimeoutMs?: number } = {}): Promise<ReclaimReport> {
    const stopTimeoutMs = options.stopTimeoutMs ?? RECLAIM_STOP_TIMEOUT_MS;
    // Records too: the previous daemon may have run with --cgroup off.
    const fromRecords = await this.records.reclaim(stopTimeoutMs);
    return addReports(fromRecords, await reclaimSubtree(this.place.subtree, stopTimeoutMs));
  }

  async close(): Promise<void> {
    const { subtree } = this.place;
    for (const c of await subtree.descendants()) await c.remove().catch(() => false);
    await subtree.remove().catch(() => false);
    await this.records.close();
  }
}

function addReports(a: ReclaimReport, b: ReclaimReport): ReclaimReport {
  return {
    processes: a.processes + b.processes,
    killed: a.killed + b.killed,
    problems: [...a.problems, ...b.problems],
  };
}

/**
 * Stops everything in a subtree (SIGTERM, then cgroup.kill after the timeout) and
 * removes the cgroups below it; the subtree itself too unless it is `kept`.
 */
async function reclaimSubtree(
  subtree: Cgroup,
  stopTimeoutMs: number,
  keep = true,
): Promise<ReclaimReport> {
  const problems: string[] = [];
  const cgroups = await subtree.descendants();
  let processes = 0;
  let killed = 0;
  if (subtree.populated()) {
    for (const c of [...cgroups, subtree]) processes += c.signal('SIGTERM');
    if (!(await waitFor(() => !subtree.populated(), stopTimeoutMs))) {
      for (const c of [...cgroups, subtree]) killed += c.procs().length;
      subtree.kill();
      if (!(await waitFor(() => !subtree.populated(), KILL_GRACE_MS))) {
        problems.push(`processes in ${subtree.path} did not die of SIGKILL`);
      }
    }
  }
  for (const c of keep ? cgroups : [...cgroups, subtree]) {
    if (!(await c.remove())) problems.push(`cannot remove ${c.path}: still busy`);
  }
  return { processes, killed, problems };
}

class ProcessGroupTracking implements ProcessTracking {
  readonly mechanism = 'process-group';
  readonly fallbackReason: string;
  readonly records: GroupRecords;
  /** A subtree an earlier daemon on the same state directory used (with cgroups). */
  readonly #earlier: Cgroup | undefined;

  constructor(records: GroupRecords, fallbackReason: string, earlier?: Cgroup) {
    this.records = records;
    this.fallbackReason = fallbackReason;
    this.#earlier = earlier;
  }

  get location(): string {
    return this.records.dir;
  }

  describe(): string {
    return `process groups, recorded in ${this.location} (${this.fallbackReason})`;
  }

  create(_group: string, marker?: string): Promise<Enclosure> {
    return Promise.resolve(new ProcessGroupEnclosure(this.records, marker));
  }

  async reclaim(options: { readonly stopTimeoutMs?: number } = {}): Promise<ReclaimReport> {
    const stopTimeoutMs = options.stopTimeoutMs ?? RECLAIM_STOP_TIMEOUT_MS;
    const fromRecords = await this.records.reclaim(stopTimeoutMs);
    if (this.#earlier === undefined) return fromRecords;
    return addReports(fromRecords, await reclaimSubtree(this.#earlier, stopTimeoutMs, false));
  }

  close(): Promise<void> {
    return this.records.close();
  }
}

/** Chooses the mechanism: cgroup v2 where it can be used, recorded process groups otherwise. */
export async function openProcessTracking(o: ProcessTrackingOptions): Promise<ProcessTracking> {
  const records = new GroupRecords(join(o.runDir, 'process-groups'));
  const env = o.env ?? process.env;
  if (o.mode === 'off') {
    // An earlier daemon may have used cgroups: what it left is stopped all the same.
    const earlier = await findCgroupPlace(o.stateDir, env, false);
    return new ProcessGroupTracking(
      records,
      'cgroups turned off',
      typeof earlier === 'string' ? undefined : earlier.subtree,
    );
  }
  const place = await findCgroupPlace(o.stateDir, env, true);
  if (typeof place === 'string') return new ProcessGroupTracking(records, place);
  return new CgroupTracking(place, records);
}

/**
 * Stops what a daemon that is gone left on `stateDir` (its services' processes, in its
 * cgroup subtree or in process-group records under `runDir`) and removes its subtree:
 * what the next daemon on that root would do at start, for a root that will have none
 * (`limen lab down`, a test that killed its daemon). Only once that daemon is gone.
 */
export async function reclaimAbandoned(
  stateDir: string,
  runDir: string,
  stopTimeoutMs = RECLAIM_STOP_TIMEOUT_MS,
): Promise<ReclaimReport> {
  let real: string;
  try {
    // The daemon names its subtree after the real path (daemon.ts).
    real = await realpath(stateDir);
  } catch {
    return { processes: 0, killed: 0, problems: [] };
  }
  const tracking = await openProcessTracking({ stateDir: real, runDir, mode: 'off' });
  try {
    return await tracking.reclaim({ stopTimeoutMs });
  } finally {
    await tracking.close();
  }
}
