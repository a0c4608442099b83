// What the lab asks of the host: running ip and friends, starting programs in
// a namespace detached from us (they outlive `limen lab up`), and killing them
// again by PID without ever hitting a stranger that reused the PID (each PID
// is recorded with the process's start time from /proc/PID/stat).

import { execFile, spawn, spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { LimenError, UserError } from '../base/errors.ts';

export class LabError extends UserError {
  readonly code = 'LIMEN_LAB';
}

/** A command the lab ran failed; the message carries its stderr. */
export class LabCommandError extends LimenError {
  readonly code = 'LIMEN_LAB_COMMAND';
  readonly argv: readonly string[];
  readonly stderr: string;
  readonly status: number | null;
  constructor(argv: readonly string[], stderr: string, status: number | null) {
    super(`${argv.join(' ')}: ${stderr.trim() || `exit status ${String(status)}`}`);
    this.argv = argv;
    this.stderr = stderr;
    this.status = status;
  }
}

export interface RunResult {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs argv to completion (bounded by timeoutMs); never throws for a non-zero exit. */
export function tryRun(argv: readonly string[], timeoutMs = 15_000, input?: string): RunResult {
  const r = spawnSync(argv[0]!, argv.slice(1), {
    encoding: 'utf8',
    timeout: timeoutMs,
    ...(input === undefined ? { stdio: ['ignore', 'pipe', 'pipe'] } : { input }),
  });
  const stderr = r.error !== undefined ? `${r.error.message}\n${r.stderr ?? ''}` : r.stderr;
  return { status: r.status, stdout: r.stdout ?? '', stderr: stderr ?? '' };
}

/** Runs argv; its stdout, or LabCommandError. */
export function run(argv: readonly string[], timeoutMs = 15_000, input?: string): string {
  const r = tryRun(argv, timeoutMs, input);
  if (r.status !== 0) throw new LabCommandError(argv, r.stderr, r.status);
  return r.stdout;
}

/** Like tryRun, without blocking the event loop (for waits and the demo). */
export function runAsync(argv: readonly string[], timeoutMs = 15_000): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(
      argv[0]!,
      argv.slice(1),
      { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 16 << 20 },
      (error, stdout, stderr) => {
        const status =
          error === null
            ? 0
            : typeof error.code === 'number'
              ? error.code
              : error.killed
                ? null
                : 1;
        resolve({ status, stdout, stderr: stderr || (error?.message ?? '') });
      },
    );
  });
}

/** s as one word for sh, in single quotes. */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export function have(program: string): boolean {
  return (
    spawnSync('sh', ['-c', `command -v "$1"`, 'sh', program], { stdio: 'ignore' }).status === 0
  );
}

/** A process the lab started: enough to find it again, and only it. */
export interface ProcessRecord {
  readonly pid: number;
  /** Field 22 of /proc/PID/stat: clock ticks after boot; tells a reused PID apart. */
  readonly starttime: string;
  readonly argv: readonly string[];
  readonly log: string;
  /** Date.now() just before it was spawned. */
  readonly startedAt: number;
}

function statFields(pid: number): string[] | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // comm is in parentheses and may hold spaces or parentheses: split after the last ')'.
  const close = text.lastIndexOf(')');
  return close < 0 ? undefined : text.slice(close + 2).split(' ');
}

/** The start time of PID, or undefined if there is no such process (or it is a zombie). */
export function processStartTime(pid: number): string | undefined {
  const f = statFields(pid);
  if (f === undefined || f[0] === 'Z') return undefined;
  return f[19];
}

/** True while the recorded process (not merely its PID) is alive. */
export function isAlive(p: Pick<ProcessRecord, 'pid' | 'starttime'>): boolean {
  return processStartTime(p.pid) === p.starttime;
}

export interface StartOptions {
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
}

/**
 * Starts argv inside namespace ns, detached (its own session, output appended to
 * log), and returns its record. `ip netns exec` execs the program, so the PID is
 * the program's own.
 */
export function startInNamespace(
  ns: string,
  argv: readonly string[],
  log: string,
  options: StartOptions = {},
): ProcessRecord {
  const fd = openSync(log, 'a');
  const startedAt = Date.now();
  try {
    const child = spawn('ip', ['netns', 'exec', ns, ...argv], {
      detached: true,
      stdio: ['ignore', fd, fd],
      env: options.env ?? process.env,
      ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    });
    child.on('error', () => {
      /* reported below: no PID */
    });
    child.unref();
    const pid = child.pid;
    if (pid === undefined) throw new LabError(`cannot start ${argv.join(' ')} in ${ns}`);
    const starttime = processStartTime(pid);
    if (starttime === undefined) {
      throw new LabError(`${argv.join(' ')} in ${ns} exited at once; see ${log}`);
    }
    return { pid, starttime, argv, log, startedAt };
  } finally {
    closeSync(fd);
  }
}

/** Polls cond every intervalMs until it holds or timeoutMs passes; returns whether it held. */
export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  timeoutMs: number,
  intervalMs = 20,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * Stops a recorded process: `signal`, then SIGKILL after graceMs. Resolves with
 * true once it is gone (false if it was not running).
 */
export async function stopProcess(
  p: Pick<ProcessRecord, 'pid' | 'starttime'>,
  signal: NodeJS.Signals = 'SIGTERM',
  graceMs = 5000,
): Promise<boolean> {
  if (!isAlive(p)) return false;
  try {
    process.kill(p.pid, signal);
  } catch {
    return false;
  }
  if (await waitFor(() => !isAlive(p), graceMs)) return true;
  try {
    process.kill(p.pid, 'SIGKILL');
  } catch {
    /* gone meanwhile */
  }
  await waitFor(() => !isAlive(p), 2000);
  return true;
}

/** Kills every process in namespace ns (used by `down`, after the graceful stops). */
export async function killNamespaceProcesses(ns: string): Promise<number> {
  const pids = () =>
    tryRun(['ip', 'netns', 'pids', ns])
      .stdout.split('\n')
      .map((s) => Number(s.trim()))
      .filter((n) => Number.isInteger(n) && n > 1 && n !== process.pid);
  const found = pids();
  for (const pid of found) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  if (found.length > 0) await waitFor(() => pids().length === 0, 3000);
  return found.length;
}

export function namespaces(): string[] {
  return tryRun(['ip', 'netns', 'list'])
    .stdout.split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n !== '');
}
