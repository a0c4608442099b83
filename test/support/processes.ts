// Leak checks for tests that start real processes: find processes by process
// group or by a marker in their environment, straight from /proc (Linux), and
// kill what a failed test left behind; and end the children a test started.

import type { ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';

export interface ProcInfo {
  readonly pid: number;
  readonly ppid: number;
  readonly pgrp: number;
  /** R, S, D, Z (zombie)… */
  readonly state: string;
  readonly comm: string;
}

function readStat(pid: number): ProcInfo | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  const f = text.slice(close + 2).split(' ');
  return {
    pid,
    comm: text.slice(open + 1, close),
    state: f[0]!,
    ppid: Number(f[1]),
    pgrp: Number(f[2]),
  };
}

function allPids(): number[] {
  return readdirSync('/proc')
    .filter((n) => /^[0-9]+$/.test(n))
    .map(Number);
}

/** Every process (zombies included) in process group `pgid`. */
export function groupMembers(pgid: number): ProcInfo[] {
  return allPids()
    .map(readStat)
    .filter((p): p is ProcInfo => p !== null && p.pgrp === pgid);
}

/** Live processes whose environment contains NAME=VALUE (zombies have no environment). */
export function processesWithEnv(name: string, value: string): ProcInfo[] {
  const needle = Buffer.from(`${name}=${value}\0`);
  const out: ProcInfo[] = [];
  for (const pid of allPids()) {
    if (pid === process.pid) continue;
    let env: Buffer;
    try {
      env = readFileSync(`/proc/${pid}/environ`);
    } catch {
      continue;
    }
    // The value is random, so a match inside another variable cannot happen.
    if (env.includes(needle)) {
      const info = readStat(pid);
      if (info && info.state !== 'Z') out.push(info);
    }
  }
  return out;
}

export function describeProcs(ps: readonly ProcInfo[]): string {
  return ps.map((p) => `${p.pid}(${p.comm},${p.state},ppid ${p.ppid})`).join(' ') || 'none';
}

/** A fresh value for a marker variable (one per test). */
export function newMarker(): string {
  return `limen-test-${randomBytes(6).toString('hex')}`;
}

/** SIGKILLs every live process carrying the marker; returns what it found. */
export function killMarked(name: string, value: string): ProcInfo[] {
  const found = processesWithEnv(name, value);
  for (const p of found) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  return found;
}

/** SIGTERM to each child still running, and waits for all of them to exit. */
export async function terminate(children: readonly ChildProcess[]): Promise<void> {
  await Promise.all(
    children.map(async (p) => {
      if (p.exitCode !== null || p.signalCode !== null) return;
      const exited = new Promise((r) => p.once('exit', r));
      p.kill('SIGTERM');
      await exited;
    }),
  );
}
