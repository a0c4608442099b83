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
