// Process-group helpers over kill(2) and /proc (Linux): signal a whole group,
// and list its live members. Zombies are not live: they have exited and only
// wait for their parent (or init) to reap them.

import { readdir, readFile } from 'node:fs/promises';

/** Sends `signal` to every process in group `pgid`; false if the group is empty. */
export function signalGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    // ESRCH: nobody left. EPERM: only possible for members we may not signal,
    // which a later check will still see; either way there is nothing to do now.
    if (code === 'ESRCH' || code === 'EPERM') return false;
    throw e;
  }
}

/** Parses /proc/PID/stat: the state letter and the process group. */
export function parseStat(text: string): { state: string; pgrp: number } | null {
  // The command name (field 2) is in parentheses and may contain anything.
  const close = text.lastIndexOf(')');
  if (close < 0) return null;
  const fields = text.slice(close + 2).split(' ');
  const state = fields[0];
  const pgrp = Number(fields[2]);
  if (state === undefined || !Number.isInteger(pgrp)) return null;
  return { state, pgrp };
}

/** Pids of the live (not zombie) processes in group `pgid`, from /proc. */
export async function liveGroupMembers(pgid: number): Promise<number[]> {
  // Fast path: kill(-pgid, 0) fails when the group has no member at all.
  if (!signalGroup(pgid, 0)) return [];
  const out: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^[0-9]+$/.test(name)) continue;
    let text: string;
    try {
      text = await readFile(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue; // exited while we looked
    }
    const st = parseStat(text);
    if (st && st.pgrp === pgid && st.state !== 'Z' && st.state !== 'X') out.push(Number(name));
  }
  return out;
}

/** What limen needs from /proc/PID/stat to know a process again. */
export interface ProcStat {
  readonly pid: number;
  readonly state: string;
  readonly pgrp: number;
  /** Clock ticks since boot when the process started: with the pid, it names one process. */
  readonly start: number;
}

/** Parses /proc/PID/stat fully enough to tell a reused pid from the process once seen. */
export function parseProcStat(pid: number, text: string): ProcStat | null {
  const close = text.lastIndexOf(')');
  if (close < 0) return null;
  // Fields from the third (state) on; the start time is the 22nd field.
  const fields = text.slice(close + 2).split(' ');
  const state = fields[0];
  const pgrp = Number(fields[2]);
  const start = Number(fields[19]);
  if (state === undefined || !Number.isInteger(pgrp) || !Number.isInteger(start)) return null;
  return { pid, state, pgrp, start };
}

/** The process's stat, or null when it is gone (or a zombie: it has exited). */
export async function readProcStat(pid: number): Promise<ProcStat | null> {
  let text: string;
  try {
    text = await readFile(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  const st = parseProcStat(pid, text);
  return st === null || st.state === 'Z' || st.state === 'X' ? null : st;
}

/** Every live process, from /proc. */
export async function liveProcesses(): Promise<ProcStat[]> {
  const out: ProcStat[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^[0-9]+$/.test(name)) continue;
    const st = await readProcStat(Number(name));
    if (st !== null) out.push(st);
  }
  return out;
}

/** Whether the process's environment holds exactly `entry` (NAME=VALUE). */
export async function hasEnvironmentEntry(pid: number, entry: string): Promise<boolean> {
  try {
    const env = await readFile(`/proc/${pid}/environ`);
    return env.toString('utf8').split('\0').includes(entry);
  } catch {
    return false;
  }
}

/** This boot's identity: a start time from an earlier boot names nothing now. */
export async function bootId(): Promise<string> {
  return (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim();
}
