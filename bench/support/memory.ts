// Memory of a process and of its process tree, from /proc: RSS, PSS, USS and swap
// in bytes. RSS counts every resident page a process maps, so pages shared between
// processes (the node binary's text, libc) count once per process; PSS divides each
// shared page among all its sharers, including processes outside the tree (any other
// node), so it moves with whatever else runs; USS (private pages) is what exiting the
// process would free. A tree's `resident` counts its distinct pages: its cost alone.
//
// Processes may exit while we read: a tree walk skips them; processMemory throws.

import { closeSync, openSync, readFileSync, readSync, readdirSync } from 'node:fs';

export interface ProcessMemory {
  /** Resident set size, in bytes. */
  readonly rss: number;
  /** Proportional set size: each shared page divided among the processes that map it. */
  readonly pss: number;
  /** Unique set size: Private_Clean + Private_Dirty. */
  readonly uss: number;
  /** The part of PSS that is file-backed (mapped binaries, libraries; NaN if unknown). */
  readonly pssFile: number;
  readonly swap: number;
}

export interface ProcessRow extends ProcessMemory {
  readonly pid: number;
  /** The kernel's name for the process (`comm`; process.title sets it for node). */
  readonly comm: string;
}

export interface TreeMemory {
  /** The root first, then its descendants in breadth-first order. */
  readonly processes: readonly ProcessRow[];
  /** Sums over `processes`. */
  readonly total: ProcessMemory;
  /**
   * Distinct physical pages resident in any process of the tree, in bytes: what the
   * tree costs as if nothing else mapped its pages (PSS instead depends on what else
   * runs, e.g. other node processes sharing node's text). NaN without root.
   */
  readonly resident: number;
}

/** Thrown by processMemory when there is no such process (or it exited while read). */
export class ProcessGoneError extends Error {
  readonly code = 'ESRCH';
  readonly pid: number;
  constructor(pid: number) {
    super(`process ${pid} does not exist`);
    this.pid = pid;
  }
}

function kbFields(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z_]+):\s+(\d+) kB$/.exec(line.trim());
    if (m !== null) out.set(m[1]!, Number(m[2]) * 1024);
  }
  return out;
}

/**
 * Parses /proc/PID/smaps_rollup. A process without memory (a zombie, a kernel
 * thread) has an empty rollup and comes out as zeros.
 */
export function parseSmapsRollup(text: string): ProcessMemory {
  const f = kbFields(text);
  const get = (k: string) => f.get(k) ?? 0;
  return {
    rss: get('Rss'),
    pss: get('Pss'),
    uss: get('Private_Clean') + get('Private_Dirty'),
    // Pss_File appeared in Linux 5.12.
    pssFile: f.get('Pss_File') ?? (f.has('Rss') ? NaN : 0),
    swap: get('Swap'),
  };
}

/**
 * Parses /proc/PID/status, for kernels without smaps_rollup (before 4.14, or built
 * without CONFIG_PROC_PAGE_MONITOR): RSS and swap only; PSS and USS are NaN.
 */
export function parseStatus(text: string): ProcessMemory {
  const f = kbFields(text);
  return { rss: f.get('VmRSS') ?? 0, pss: NaN, uss: NaN, pssFile: NaN, swap: f.get('VmSwap') ?? 0 };
}

/** Parses /proc/PID/stat: the comm (which may hold spaces and parentheses) and the ppid. */
export function parseStat(text: string): { comm: string; ppid: number } {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) throw new Error(`unexpected /proc/PID/stat: ${text.slice(0, 80)}`);
  // After the comm: state, then ppid.
  const rest = text.slice(close + 2).split(' ');
  return { comm: text.slice(open + 1, close), ppid: Number(rest[1]) };
}

const isGone = (e: unknown) => {
  const code = (e as { code?: unknown }).code;
  return code === 'ENOENT' || code === 'ESRCH';
};

/** The file's text, or undefined if the process is gone. */
function readProc(pid: number, file: string): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/${file}`, 'utf8');
  } catch (e) {
    if (isGone(e)) return undefined;
    throw e;
  }
}

function procExists(pid: number): boolean {
  return readProc(pid, 'stat') !== undefined;
}

/** RSS, PSS, USS and swap of one process, in bytes. Throws ProcessGoneError if it is gone. */
export function processMemory(pid: number): ProcessMemory {
  let rollup: string | undefined;
  try {
    rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  } catch (e) {
    if (!isGone(e)) throw e;
  }
  if (rollup !== undefined) return parseSmapsRollup(rollup);
  // ENOENT: either the process is gone or the kernel has no smaps_rollup.
  const status = procExists(pid) ? readProc(pid, 'status') : undefined;
  if (status === undefined) throw new ProcessGoneError(pid);
  return parseStatus(status);
}

function sum(rows: readonly ProcessMemory[]): ProcessMemory {
  const t = { rss: 0, pss: 0, uss: 0, pssFile: 0, swap: 0 };
  for (const r of rows) {
    t.rss += r.rss;
    t.pss += r.pss;
    t.uss += r.uss;
    t.pssFile += r.pssFile;
    t.swap += r.swap;
  }
  return t;
}

/**
 * The memory of pid and of every descendant (found through the ppid field of each
 * process's /proc/PID/stat), one row each, and their sums. Processes that exit during the
 * walk are left out; throws ProcessGoneError only if pid itself is gone.
 */
export function treeMemory(pid: number): TreeMemory {
  const children = new Map<number, number[]>();
  const comms = new Map<number, string>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const p = Number(name);
    const stat = readProc(p, 'stat');
    if (stat === undefined) continue;
    const { comm, ppid } = parseStat(stat);
    comms.set(p, comm);
    const list = children.get(ppid);
    if (list === undefined) children.set(ppid, [p]);
    else list.push(p);
  }
  if (!comms.has(pid)) throw new ProcessGoneError(pid);
  const rows: ProcessRow[] = [];
  const queue = [pid];
  for (let i = 0; i < queue.length; i++) {
    const p = queue[i]!;
    queue.push(...(children.get(p) ?? []));
    try {
      rows.push({ pid: p, comm: comms.get(p) ?? '?', ...processMemory(p) });
    } catch (e) {
      if (!(e instanceof ProcessGoneError)) throw e;
      if (p === pid) throw e;
    }
  }
  return {
    processes: rows,
    total: sum(rows),
    resident: distinctResident(rows.map((r) => r.pid)),
  };
}

let pageSize: number | undefined;
/** The kernel's base page size (4 KiB on x86; 16 or 64 KiB on some arm64 kernels). */
function page(): number {
  if (pageSize === undefined) {
    const m = /^KernelPageSize:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/smaps', 'utf8'));
    pageSize = m === null ? 4096 : Number(m[1]) * 1024;
  }
  return pageSize;
}
const PRESENT = 1 << 31; // bit 63 of a pagemap entry, in its high u32
const PFN_HIGH = (1 << 23) - 1; // bits 32-54

/**
 * The bytes of distinct physical pages resident in any of pids (from
 * /proc/PID/maps and /proc/PID/pagemap). Processes that are gone count nothing.
 * NaN if the kernel hides page frame numbers (without CAP_SYS_ADMIN).
 */
export function distinctResident(pids: readonly number[]): number {
  const frames = new Set<number>();
  let hidden = false;
  const buf = Buffer.alloc(8 * 8192);
  const size = page();
  for (const pid of pids) {
    const maps = readProc(pid, 'maps');
    if (maps === undefined) continue;
    let fd: number;
    try {
      fd = openSync(`/proc/${pid}/pagemap`, 'r');
    } catch (e) {
      if (isGone(e)) continue;
      throw e;
    }
    try {
      for (const line of maps.split('\n')) {
        const m = /^([0-9a-f]+)-([0-9a-f]+) /.exec(line);
        if (m === null || line.endsWith('[vsyscall]')) continue;
        const first = parseInt(m[1]!, 16) / size;
        const end = parseInt(m[2]!, 16) / size;
        for (let page = first; page < end;) {
          const want = Math.min(end - page, buf.length / 8);
          const got = Math.floor(readSync(fd, buf, 0, want * 8, page * 8) / 8);
          if (got === 0) break;
          for (let i = 0; i < got; i++) {
            const high = buf.readUInt32LE(8 * i + 4);
            if ((high & PRESENT) === 0) continue;
            const pfn = (high & PFN_HIGH) * 2 ** 32 + buf.readUInt32LE(8 * i);
            if (pfn === 0) hidden = true;
            else frames.add(pfn);
          }
          page += got;
        }
      }
    } catch (e) {
      // ESRCH: it exited while we read; what was read still counts.
      if (!isGone(e)) throw e;
    } finally {
      closeSync(fd);
    }
  }
  return hidden ? NaN : frames.size * size;
}

/** Bytes as MiB with one decimal, for printing. */
export const mib = (bytes: number): string => (bytes / 1048576).toFixed(1);
