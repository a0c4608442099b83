// Runs one program from a normalised ProcessSpec in a process group of its own,
// inside an enclosure (its own cgroup, or just that process group: see
// process-tracking.ts), and reports its life through typed events: start,
// readiness, each output line, exit. Invariants: a ManagedProcess runs its program
// at most once; every outcome, a failure to start included, ends in exactly one
// onDidExit (after every line was delivered); and no process of the enclosure
// outlives the exit.

import { spawn, type ChildProcess } from 'node:child_process';
import { constants as fsConstants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import { resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { toDisposable, type Disposable } from '../base/disposable.ts';
import { InternalError } from '../base/errors.ts';
import { Emitter, type Listener, type ListenerErrorHandler } from './emitter.ts';
import {
  BadDirectoryError,
  InvalidProcessSpecError,
  ProcessStartError,
  ProgramNotExecutableError,
  ProgramNotFoundError,
  SpawnError,
} from './errors.ts';
import { DEFAULT_MAX_LINE_BYTES, LineSplitter } from './line-splitter.ts';
import { processGroupEnclosure, type Enclosure } from './process-tracking.ts';
import { resolveCredentials, type Credentials, type UserDbPaths } from './user-db.ts';

export type Readiness =
  | { readonly kind: 'on-start' }
  | { readonly kind: 'notification-fd'; readonly fd: number }
  /** Readiness is never signalled (one-shots: they complete instead). */
  | { readonly kind: 'none' };

export interface ProcessSpec {
  /** argv[0] is looked up on the child's PATH unless it contains '/'. */
  readonly argv: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  /** Inherited variables to remove (applied before `env`). */
  readonly unsetEnv?: readonly string[];
  /** Start from an empty environment instead of limen's own. */
  readonly clearEnv?: boolean;
  /** Working directory; relative paths in argv[0] and PATH resolve against it. */
  readonly dir?: string;
  readonly user?: string | number;
  readonly group?: string | number;
  /** Default: on-start. */
  readonly readiness?: Readiness;
  /** Sent to every process of the enclosure by stop(); default SIGTERM. */
  readonly stopSignal?: NodeJS.Signals;
  /**
   * `main`: stop() signals the main process alone, and the rest of the enclosure
   * once it has exited (as systemd's KillMode=mixed); for a program whose helpers
   * must not be stopped under it (dhcpcd's privilege-separation proxies). Default `all`.
   */
  readonly stopScope?: StopScope;
  /** After this, stop() sends SIGKILL to the enclosure; default 5000. */
  readonly stopTimeoutMs?: number;
  /** Exported to the child as LIMEN_OUTPUTS. */
  readonly outputsDir?: string;
}

export type LogStream = 'stdout' | 'stderr';

export interface LogLine {
  /** Milliseconds since the epoch, when the line was complete. */
  readonly time: number;
  readonly stream: LogStream;
  readonly line: string;
}

export interface ExitInfo {
  /** Null when the program never ran. */
  readonly pid: number | null;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** From start to the main process's exit; 0 when it never ran. */
  readonly durationMs: number;
  /** The exit followed a stop() (or dispose) request. */
  readonly stopped: boolean;
  /** SIGKILL had to be sent: the stop timeout passed, or leftovers would not go. */
  readonly forced: boolean;
  /** Set when the program could not be started: why. */
  readonly error?: ProcessStartError;
}

export type ProcessState = 'idle' | 'starting' | 'running' | 'stopping' | 'exited';

export interface ManagedProcessOptions {
  /** Wall clock for log-line times; default Date.now. */
  readonly clock?: () => number;
  /** Where a listener's exception goes; default: rethrown as uncaught. */
  readonly onListenerError?: ListenerErrorHandler;
  readonly maxLineBytes?: number;
  /** Alternative passwd/group files (tests). */
  readonly userDb?: UserDbPaths;
  /** Makes the enclosure the program runs in (default: its process group, recorded nowhere). */
  readonly enclosure?: () => Promise<Enclosure>;
}

export const DEFAULT_STOP_SIGNAL: NodeJS.Signals = 'SIGTERM';

/** stopScope main: how often the stop signal is sent again while the main process runs. */
const RESIGNAL_MS = 250;

/** Whom stop() signals first (ProcessSpec.stopScope). */
export type StopScope = 'all' | 'main';
export const DEFAULT_STOP_TIMEOUT_MS = 5000;
/** The PATH used to find argv[0] when the child's environment has none. */
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const MAX_NOTIFICATION_FD = 255;
/** How long to wait for SIGKILLed processes to vanish (stuck in D state?). */
const KILL_GRACE_MS = 5000;
/** After the group is gone, how long a pipe may stay open (held outside the group). */
const STREAM_DRAIN_MS = 1000;

/** Every problem with a spec, or an empty list. */
export function validateProcessSpec(spec: ProcessSpec): string[] {
  const problems: string[] = [];
  const hasNul = (s: string) => s.includes('\0');
  if (!Array.isArray(spec.argv) || spec.argv.length === 0) problems.push('argv is empty');
  else {
    spec.argv.forEach((a, i) => {
      if (typeof a !== 'string') problems.push(`argv[${i}] is not a string`);
      else if (hasNul(a)) problems.push(`argv[${i}] contains a NUL byte`);
    });
    if (spec.argv[0] === '') problems.push('argv[0] (the program) is empty');
  }
  for (const [k, v] of Object.entries(spec.env ?? {})) {
    if (k === '' || k.includes('=') || hasNul(k)) problems.push(`env: bad variable name '${k}'`);
    if (typeof v !== 'string') problems.push(`env: ${k} is not a string`);
    else if (hasNul(v)) problems.push(`env: ${k} contains a NUL byte`);
  }
  for (const k of spec.unsetEnv ?? []) {
    if (typeof k !== 'string' || k === '' || hasNul(k))
      problems.push(`unsetEnv: bad variable name '${String(k)}'`);
  }
  if (spec.dir !== undefined && (spec.dir === '' || hasNul(spec.dir))) {
    problems.push('dir is empty or contains a NUL byte');
  }
  for (const [what, v] of [
    ['user', spec.user],
    ['group', spec.group],
  ] as const) {
    if (v === undefined) continue;
    if (typeof v === 'number' ? !Number.isInteger(v) || v < 0 : v === '' || v.includes(':')) {
      problems.push(`${what} must be a name or a non-negative integer id, got '${String(v)}'`);
    }
  }
  const r = spec.readiness;
  if (r !== undefined && r.kind === 'notification-fd') {
    if (!Number.isInteger(r.fd) || r.fd < 3 || r.fd > MAX_NOTIFICATION_FD) {
      problems.push(`notification fd must be an integer from 3 to ${MAX_NOTIFICATION_FD}`);
    }
  }
  if (spec.stopSignal !== undefined && !(spec.stopSignal in osConstants.signals)) {
    problems.push(`unknown stop signal '${String(spec.stopSignal)}'`);
  }
  if (
    spec.stopTimeoutMs !== undefined &&
    (!Number.isFinite(spec.stopTimeoutMs) || spec.stopTimeoutMs < 0)
  ) {
    problems.push('stopTimeoutMs must be a finite number >= 0');
  }
  if (spec.outputsDir !== undefined && (spec.outputsDir === '' || hasNul(spec.outputsDir))) {
    problems.push('outputsDir is empty or contains a NUL byte');
  }
  return problems;
}

/** A one-line account of an exit, for logs and status displays. */
export function describeExit(exit: ExitInfo): string {
  if (exit.error) return `failed to start: ${exit.error.message}`;
  if (exit.pid === null) return 'stopped before it started';
  let s =
    exit.signal !== null ? `killed by ${exit.signal}` : `exited with code ${String(exit.code)}`;
  if (exit.forced) s += ' (forced: did not stop in time)';
  return s;
}

type Checked = 'ok' | 'missing' | 'not-executable';

async function checkExecutable(path: string): Promise<Checked> {
  try {
    const st = await stat(path);
    if (!st.isFile()) return 'not-executable';
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'ENOENT' || code === 'ENOTDIR' ? 'missing' : 'not-executable';
  }
  try {
    await access(path, fsConstants.X_OK);
    return 'ok';
  } catch {
    return 'not-executable';
  }
}

/** Finds argv[0] as execvp would, but says clearly why it cannot. */
export async function resolveProgram(name: string, pathVar: string, cwd: string): Promise<string> {
  if (name.includes('/')) {
    const p = resolve(cwd, name);
    const r = await checkExecutable(p);
    if (r === 'ok') return p;
    if (r === 'missing') throw new ProgramNotFoundError(`program '${name}' does not exist (${p})`);
    throw new ProgramNotExecutableError(`'${p}' is not an executable file`);
  }
  let notExecutable: string | undefined;
  for (const dir of pathVar.split(':')) {
    const p = resolve(cwd, dir === '' ? '.' : dir, name);
    const r = await checkExecutable(p);
    if (r === 'ok') return p;
    if (r === 'not-executable') notExecutable ??= p;
  }
  if (notExecutable !== undefined) {
    throw new ProgramNotExecutableError(
      `program '${name}' was found at ${notExecutable}, but it is not an executable file`,
    );
  }
  throw new ProgramNotFoundError(`program '${name}' not found on PATH (${pathVar})`);
}

function spawnFailure(argv0: string, e: unknown): ProcessStartError {
  if (e instanceof ProcessStartError) return e;
  const err = e as NodeJS.ErrnoException;
  switch (err.code) {
    case 'ENOENT':
      return new ProgramNotFoundError(
        `cannot run '${argv0}': it, or the interpreter named on its #! line, does not exist`,
      );
    case 'EACCES':
      return new ProgramNotExecutableError(`cannot run '${argv0}': permission denied`);
    default:
      return new SpawnError(`cannot run '${argv0}': ${err.message ?? String(e)}`, err.code);
  }
}

function monotonicMs(): number {
  return performance.now();
}

function delay(ms: number): Promise<void> {
  return new Promise((res) => setTimeout(res, ms));
}

interface Prepared {
  readonly program: string;
  readonly cwd: string;
  readonly env: Record<string, string>;
  readonly creds: Credentials | undefined;
}

export class ManagedProcess implements Disposable {
  readonly spec: ProcessSpec;
  /** Resolves once, with the same value onDidExit delivers; never rejects. */
  readonly exited: Promise<ExitInfo>;

  readonly #clock: () => number;
  readonly #maxLineBytes: number;
  readonly #userDb: UserDbPaths | undefined;
  readonly #stopSignal: NodeJS.Signals;
  readonly #stopScope: StopScope;
  /** stop() signalled the main process alone: the rest of the enclosure is still to be. */
  #restUnsignalled = false;
  readonly #stopTimeoutMs: number;
  readonly #newEnclosure: () => Promise<Enclosure>;

  readonly #startEmitter: Emitter<number>;
  readonly #readyEmitter: Emitter<void>;
  readonly #lineEmitter: Emitter<LogLine>;
  readonly #exitEmitter: Emitter<ExitInfo>;

  #state: ProcessState = 'idle';
  #child: ChildProcess | undefined;
  #enclosure: Enclosure | undefined;
  #pid: number | undefined;
  #ready = false;
  #startedAt = 0;
  #mainExit: { code: number | null; signal: NodeJS.Signals | null; durationMs: number } | undefined;
  #stopRequested = false;
  #termSent = false;
  #killSent = false;
  #forced = false;
  #deadline = Infinity;
  #killTimer: NodeJS.Timeout | undefined;
  /** stopScope main: the stop signal again every RESIGNAL_MS until the main process exits. */
  #resignalTimer: NodeJS.Timeout | undefined;
  #abortListener: Disposable | undefined;
  #resolveExited!: (exit: ExitInfo) => void;
  #finishing = false;
  #finished = false;

  constructor(spec: ProcessSpec, options: ManagedProcessOptions = {}) {
    const problems = validateProcessSpec(spec);
    if (problems.length > 0) throw new InvalidProcessSpecError(problems);
    this.spec = spec;
    this.#clock = options.clock ?? Date.now;
    this.#maxLineBytes = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
    this.#userDb = options.userDb;
    this.#stopSignal = spec.stopSignal ?? DEFAULT_STOP_SIGNAL;
    this.#stopScope = spec.stopScope ?? 'all';
    this.#stopTimeoutMs = spec.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS;
    this.#newEnclosure = options.enclosure ?? (() => Promise.resolve(processGroupEnclosure()));
    const onErr = options.onListenerError;
    this.#startEmitter = new Emitter(onErr);
    this.#readyEmitter = new Emitter(onErr);
    this.#lineEmitter = new Emitter(onErr);
    this.#exitEmitter = new Emitter(onErr);
    this.exited = new Promise((res) => (this.#resolveExited = res));
  }

  get state(): ProcessState {
    return this.#state;
  }

  /** The main process's pid (also its process group id) once spawned. */
  get pid(): number | undefined {
    return this.#pid;
  }

  /** Where the program runs (a cgroup's directory, or its process group) once spawned. */
  get where(): string | undefined {
    return this.#pid === undefined ? undefined : this.#enclosure?.where;
  }

  get isReady(): boolean {
    return this.#ready;
  }

  onDidStart(listener: Listener<number>): Disposable {
    return this.#startEmitter.event(listener);
  }

  /** At most once, before onDidExit, and never after stop() was called. */
  onDidBecomeReady(listener: () => void): Disposable {
    return this.#readyEmitter.event(listener);
  }

  onDidLogLine(listener: Listener<LogLine>): Disposable {
    return this.#lineEmitter.event(listener);
  }

  /** Exactly once, after the last line and after the group is gone. */
  onDidExit(listener: Listener<ExitInfo>): Disposable {
    return this.#exitEmitter.event(listener);
  }

  /**
   * Starts the program; everything that follows, failure included, is reported
   * through the events. Aborting `signal` stops the program as stop() does.
   */
  start(options: { signal?: AbortSignal } = {}): void {
    if (this.#state !== 'idle') {
      throw new InternalError(`ManagedProcess.start() called in state ${this.#state}`);
    }
    this.#state = 'starting';
    const signal = options.signal;
    if (signal) {
      if (signal.aborted) this.#stopRequested = true;
      else {
        const onAbort = () => void this.stop();
        signal.addEventListener('abort', onAbort, { once: true });
        this.#abortListener = toDisposable(() => signal.removeEventListener('abort', onAbort));
      }
    }
    this.#launch().catch((e: unknown) => {
      // A bug, not the program's fault: still never leave a process behind.
      if (this.#pid !== undefined) this.#killGroup();
      else this.#finishUnstarted(new SpawnError(`internal error while starting: ${String(e)}`));
    });
  }

  /**
   * Stops the program: the stop signal to every process of its enclosure, then
   * SIGKILL to all of them after the stop timeout. Resolves with the exit, once the whole
   * group is gone. Calling it again, or after the exit, returns the same exit.
   */
  stop(): Promise<ExitInfo> {
    switch (this.#state) {
      case 'idle':
        this.#stopRequested = true;
        this.#finish({ pid: null, code: null, signal: null, durationMs: 0, stopped: true });
        break;
      case 'starting':
        this.#stopRequested = true;
        if (this.#pid !== undefined) this.#sendStop();
        break;
      case 'running':
        this.#stopRequested = true;
        this.#sendStop();
        break;
      case 'stopping':
      case 'exited':
        break;
    }
    return this.exited;
  }

  /**
   * The hard verb: SIGKILL to the group now, and no more events. The group is
   * still waited for in the background, and `exited` still resolves.
   */
  dispose(): void {
    if (this.#state === 'idle') {
      void this.stop();
    } else if (this.#state !== 'exited') {
      if (this.#mainExit === undefined) this.#stopRequested = true;
      if (this.#pid !== undefined) {
        this.#state = 'stopping';
        this.#killGroup();
      }
    }
    this.#startEmitter.clear();
    this.#readyEmitter.clear();
    this.#lineEmitter.clear();
    this.#exitEmitter.clear();
  }

  async #prepare(): Promise<Prepared> {
    const spec = this.spec;
    const env: Record<string, string> = {};
    if (!spec.clearEnv) {
      for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
    }
    for (const k of spec.unsetEnv ?? []) delete env[k];
    Object.assign(env, spec.env ?? {});
    if (spec.outputsDir !== undefined) env['LIMEN_OUTPUTS'] = spec.outputsDir;
    const cwd = resolve(spec.dir ?? process.cwd());
    if (spec.dir !== undefined) {
      try {
        if (!(await stat(cwd)).isDirectory()) {
          throw new BadDirectoryError(`working directory '${spec.dir}' is not a directory`);
        }
      } catch (e) {
        if (e instanceof BadDirectoryError) throw e;
        const code = (e as NodeJS.ErrnoException).code;
        throw new BadDirectoryError(
          code === 'ENOENT' || code === 'ENOTDIR'
            ? `working directory '${spec.dir}' does not exist`
            : `working directory '${spec.dir}' cannot be used: ${(e as Error).message}`,
        );
      }
    }
    const creds = await resolveCredentials(spec.user, spec.group, {
      ...(this.#userDb ? { paths: this.#userDb } : {}),
    });
    const program = await resolveProgram(spec.argv[0]!, env['PATH'] ?? DEFAULT_PATH, cwd);
    return { program, cwd, env, creds };
  }

  async #launch(): Promise<void> {
    let prepared: Prepared;
    try {
      prepared = await this.#prepare();
    } catch (e) {
      this.#finishUnstarted(this.#stopRequested ? undefined : spawnFailure(this.spec.argv[0]!, e));
      return;
    }
    if (this.#stopRequested) {
      this.#finishUnstarted(undefined);
      return;
    }
    try {
      this.#enclosure = await this.#newEnclosure();
    } catch (e) {
      this.#finishUnstarted(this.#stopRequested ? undefined : spawnFailure(this.spec.argv[0]!, e));
      return;
    }
    const enclosure = this.#enclosure;
    if (this.#stopRequested) {
      this.#finishUnstarted(undefined);
      return;
    }

    const readiness = this.spec.readiness ?? { kind: 'on-start' };
    const notifyFd = readiness.kind === 'notification-fd' ? readiness.fd : undefined;
    const stdio: ('ignore' | 'pipe')[] = ['ignore', 'pipe', 'pipe'];
    if (notifyFd !== undefined) {
      while (stdio.length < notifyFd) stdio.push('ignore');
      stdio.push('pipe');
    }

    let child: ChildProcess;
    try {
      child = enclosure.spawn(() =>
        spawn(prepared.program, this.spec.argv.slice(1), {
          argv0: this.spec.argv[0]!,
          cwd: prepared.cwd,
          env: prepared.env,
          stdio,
          detached: true, // setsid(): a session and process group of its own
          ...(prepared.creds ? { uid: prepared.creds.uid, gid: prepared.creds.gid } : {}),
        }),
      );
    } catch (e) {
      this.#finishUnstarted(spawnFailure(this.spec.argv[0]!, e));
      return;
    }
    this.#child = child;
    this.#pid = child.pid;

    child.on('error', (e) => {
      // Only a failure to spawn ends here; later errors (a failed kill) do not
      // change what happens to the process, whose exit is still reported.
      if (this.#pid === undefined && !this.#finished) {
        this.#destroyStreams();
        this.#finishUnstarted(spawnFailure(this.spec.argv[0]!, e));
      }
    });
    if (child.pid === undefined) return; // the 'error' event follows

    // Each pipe's 'close', listened for from the start: `readable.closed` turns
    // true a tick before 'close' fires, and the last line is flushed on 'close'.
    const streams: Promise<void>[] = [];
    const closed = (r: Readable) =>
      streams.push(new Promise<void>((res) => r.once('close', () => res())));
    for (const [stream, readable] of [
      ['stdout', child.stdout],
      ['stderr', child.stderr],
    ] as const) {
      if (!readable) continue;
      const splitter = new LineSplitter(
        (line) => this.#lineEmitter.fire({ time: this.#clock(), stream, line }),
        this.#maxLineBytes,
      );
      readable.on('data', (chunk: Buffer) => splitter.push(chunk));
      readable.once('close', () => splitter.end());
      readable.on('error', () => {}); // a broken pipe ends the stream; the exit tells why
      closed(readable);
    }
    if (notifyFd !== undefined) {
      const notify = child.stdio[notifyFd] as Readable | null | undefined;
      if (notify) {
        notify.on('data', (chunk: Buffer) => {
          if (chunk.includes(0x0a)) this.#becomeReady();
        });
        notify.on('error', () => {});
        closed(notify);
      }
    }

    this.#startedAt = monotonicMs();
    child.once('spawn', () => {
      if (this.#state === 'starting') this.#state = 'running';
      this.#startEmitter.fire(child.pid!);
      if (readiness.kind === 'on-start') this.#becomeReady();
    });
    child.once('exit', (code, signal) => {
      this.#mainExit = { code, signal, durationMs: monotonicMs() - this.#startedAt };
      if (this.#state === 'running' || this.#state === 'starting') this.#state = 'stopping';
      void this.#afterMainExit(child.pid!, streams);
    });
    // stop() may have come between spawn() and here.
    if (this.#stopRequested) this.#sendStop();
  }

  #becomeReady(): void {
    // A newline written just before exiting still counts (it comes before
    // onDidExit, since the pipes are drained first); after stop() nothing does.
    if (this.#ready || this.#stopRequested || this.#finished) return;
    this.#ready = true;
    this.#readyEmitter.fire();
  }

  #sendStop(): void {
    if (this.#termSent || this.#mainExit !== undefined || this.#pid === undefined) return;
    this.#state = 'stopping';
    this.#termSent = true;
    if (this.#stopScope === 'main') {
      this.#restUnsignalled = true;
      const pid = this.#pid;
      const send = () => {
        try {
          process.kill(pid, this.#stopSignal);
        } catch {
          // Gone already: its exit is on its way.
        }
      };
      send();
      // dhcpcd loses a signal that arrives while it runs its hook on a carrier loss.
      this.#resignalTimer = setInterval(() => {
        if (this.#mainExit === undefined && !this.#killSent) send();
        else clearInterval(this.#resignalTimer);
      }, RESIGNAL_MS);
    } else this.#enclosure?.signal(this.#stopSignal);
    this.#deadline = monotonicMs() + this.#stopTimeoutMs;
    this.#killTimer = setTimeout(() => {
      if (!this.#finished) this.#killGroup();
    }, this.#stopTimeoutMs);
  }

  #killGroup(): void {
    if (this.#pid === undefined || this.#enclosure === undefined) return;
    this.#killSent = true;
    try {
      if (this.#enclosure.kill()) this.#forced = true;
    } catch {
      // Only a cgroup that holds the daemon itself refuses (a bug elsewhere): the
      // wait for the exit gives up after KILL_GRACE_MS and the exit is reported.
    }
  }

  /** The main process has exited: clear out its enclosure, drain its output, report. */
  async #afterMainExit(pgid: number, streams: readonly Promise<void>[]): Promise<void> {
    const enclosure = this.#enclosure!;
    let pollMs = 5;
    let killDeadline = Infinity;
    for (;;) {
      if (await enclosure.isEmpty()) break;
      const now = monotonicMs();
      if (!this.#termSent && !this.#killSent) {
        // Leftovers of a program that exited on its own: they get the same
        // treatment as a stop, signal first, SIGKILL after the timeout.
        this.#termSent = true;
        enclosure.signal(this.#stopSignal);
        this.#deadline = now + this.#stopTimeoutMs;
      } else if (this.#restUnsignalled && !this.#killSent) {
        // Stopped by its main process alone (stopScope main): now the rest, within
        // the same deadline.
        this.#restUnsignalled = false;
        enclosure.signal(this.#stopSignal);
      } else if (this.#killSent || now >= this.#deadline) {
        // Sent again on each round: a member may have forked since the last.
        this.#killGroup();
        if (killDeadline === Infinity) killDeadline = now + KILL_GRACE_MS;
        else if (now >= killDeadline) break; // unkillable (D state): report the exit anyway
      }
      await delay(pollMs);
      pollMs = Math.min(pollMs * 2, 100);
    }
    await this.#drain(streams);
    await enclosure.release().catch(() => undefined);
    const m = this.#mainExit!;
    this.#finish({
      pid: pgid,
      code: m.code,
      signal: m.signal,
      durationMs: m.durationMs,
      stopped: this.#stopRequested,
    });
  }

  /** Waits for the pipes to reach EOF; one held open outside the group is cut. */
  async #drain(streams: readonly Promise<void>[]): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const all = Promise.all(streams);
    await Promise.race([
      all,
      new Promise<void>((res) => (timer = setTimeout(res, STREAM_DRAIN_MS))),
    ]);
    clearTimeout(timer);
    this.#destroyStreams(); // no-op for the closed ones
    await all;
  }

  #destroyStreams(): void {
    for (const s of this.#child?.stdio ?? []) s?.destroy();
  }

  #finishUnstarted(error: ProcessStartError | undefined): void {
    if (this.#finishing) return;
    this.#finishing = true;
    const finish = () =>
      this.#finish({
        pid: null,
        code: null,
        signal: null,
        durationMs: 0,
        stopped: this.#stopRequested,
        ...(error ? { error } : {}),
      });
    const enclosure = this.#enclosure;
    if (enclosure === undefined) finish();
    else void enclosure.release().then(finish, finish);
  }

  #finish(exit: Omit<ExitInfo, 'forced'>): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#state = 'exited';
    clearTimeout(this.#killTimer);
    clearInterval(this.#resignalTimer);
    this.#abortListener?.dispose();
    const info: ExitInfo = { ...exit, forced: this.#forced };
    this.#exitEmitter.fire(info);
    this.#resolveExited(info);
  }
}
