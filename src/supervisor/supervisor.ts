// The supervisor: runs `<daemon ID SPEC>` processes while `<run-service <daemon ID>>`
// is asserted in $config, and reports on them through the dataspace —
// `<service-state S …>`, `<service-process S {…}>`, `<service-error S "…">`,
// `<service-gave-up S "…">`, `<output S KEY VALUE>` in $config, and `<log TIME {…}>` messages on $log.
//
// Ownership: the supervisor's facet owns one facet per running service, which owns
// one facet per spec value (one process each). Stopping a facet stops what it owns
// gracefully; `closed` resolves once every process is gone. A failure in one
// service's handling stops only that service (it is then `failed` until restarted).
//
// Invariants: at most one `<service-state S _>` per service at a time (replaced, not
// accumulated); it is held until the service's processes have exited, so its
// disappearance means the service is down. The same holds for `<service-process S _>`,
// which is replaced only when what it says changed (a PID, a restart, an exit). A new run of a service starts only after
// the previous run's processes are gone and its outputs directory was emptied.

import { chown } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import { join } from 'node:path';
import {
  driverLog,
  type Driver,
  P,
  type Captures,
  type Facet,
  type Handle,
  type LogFields,
  type Ref,
  anyRecord,
  declareFailures,
} from '../dataspace/index.ts';
import {
  Record,
  Sym,
  ValueMap,
  dict,
  is,
  parse,
  peel,
  record,
  strip,
  sym,
  type Value,
} from '../preserves/index.ts';
import { checkDaemonSpec, toProcessSpec, type DaemonSpec } from './daemon-spec.ts';
import { LogBuffer, type LogLine } from './log-buffer.ts';
import { OutputsDir, type OutputChange } from './outputs-dir.ts';
import { ManagedProcess, describeExit, type ExitInfo } from './process-runner.ts';
import type { ProcessTracking } from './process-tracking.ts';
import { RestartTracker, type RestartOptions } from './restart-policy.ts';
import { outputsDirName, rfc3339, serviceLabel } from './service-names.ts';
import { serviceProcessRecord } from './service-process.ts';
import { resolveCredentials, type UserDbPaths } from './user-db.ts';

/** What `<service-state S STATE>` says. */
export type ServiceState = 'started' | 'ready' | 'complete' | 'failed';

/** One process's state, as `services()` shows it. */
export type ProcessStatusState =
  | 'waiting' // not spawned yet (waiting for the outputs directory or a previous run)
  | 'starting'
  | 'started'
  | 'ready'
  | 'restarting' // exited, or being stopped, and due to start again
  | 'complete'
  | 'failed'
  | 'invalid' // the spec has problems: see `problems`
  | 'stopping';

export interface ProcessStatus {
  readonly spec: Value;
  readonly state: ProcessStatusState;
  readonly pid: number | undefined;
  readonly restarts: number;
  readonly lastExit: ExitInfo | undefined;
  readonly problems: readonly string[];
  /** Why the restart policy gave up on it (a crash loop), until it is restarted. */
  readonly failure: string | undefined;
  /** Where it runs: its cgroup's directory, or its process group. */
  readonly where: string | undefined;
}

export interface ServiceStatus {
  readonly service: Value;
  /** The published state; 'stopping' while the processes of a stopped service exit. */
  readonly state: ServiceState | 'starting' | 'stopping';
  readonly pids: readonly number[];
  readonly restarts: number;
  readonly lastExit: ExitInfo | undefined;
  /** Wall-clock milliseconds of the last state change. */
  readonly since: number;
  readonly outputsDir: string;
  readonly processes: readonly ProcessStatus[];
  /** Why it is failed, when the supervisor knows: a give-up, an outputs directory it could not make. */
  readonly failure: string | undefined;
}

export interface SupervisorOptions {
  readonly config: Ref;
  readonly log: Ref;
  /** Outputs go under `${runDir}/outputs/`. */
  readonly runDir: string;
  /** Lines kept per service; default 1000. */
  readonly logCapacity?: number;
  /** Wall clock in ms since the epoch, for log times; default the engine's. */
  readonly clock?: () => number;
  /** Monotonic ms for restart decisions; default performance.now. */
  readonly monotonic?: () => number;
  /** Backoff and crash-loop limits (see restart-policy.ts). */
  readonly restart?: RestartOptions;
  /** Debounce of the outputs directories' change notifications (ms). */
  readonly outputsDebounceMs?: number;
  /** Alternative passwd/group files (tests). */
  readonly userDb?: UserDbPaths;
  /** Where processes run (cgroups, recorded process groups); default: plain process groups. */
  readonly tracking?: ProcessTracking;
}

export interface Supervisor extends Driver {
  /** Resolves once the facet stopped and every process it ran has exited. */
  readonly closed: Promise<void>;
  /** The recent output of a service (`<daemon ID>`), kept after it stops. */
  logs(service: Value): LogBuffer | undefined;
  services(): ServiceStatus[];
  /** Where a service's `$LIMEN_OUTPUTS` is. */
  outputsDir(service: Value): string;
  /** Resolves when no process is being stopped. */
  whenIdle(): Promise<void>;
}

type Level = 'info' | 'warn' | 'error';

/** Starts a supervisor in a child facet of `parent`. */
export function startSupervisor(parent: Facet, options: SupervisorOptions): Supervisor {
  return new SupervisorImpl(parent, options);
}

// A Record whose label is `daemon` and has exactly one field: a service we run.
function isDaemonService(v: Value): v is Record {
  return (
    v instanceof Record &&
    v.fields.length === 1 &&
    peel(v.label) instanceof Sym &&
    (peel(v.label) as Sym).name === 'daemon'
  );
}

class SupervisorImpl implements Supervisor {
  readonly facet: Facet;
  readonly closed: Promise<void>;
  readonly config: Ref;
  readonly logRef: Ref;
  readonly runDir: string;
  readonly logCapacity: number | undefined;
  readonly clock: () => number;
  readonly monotonic: () => number;
  readonly restartOptions: RestartOptions;
  readonly outputsDebounceMs: number | undefined;
  readonly userDb: UserDbPaths | undefined;
  readonly tracking: ProcessTracking | undefined;
  /** The current run of each service whose run-service is asserted. */
  readonly runs = new ValueMap<ServiceRun>();
  /** Runs not yet finished (current ones, and stopped ones whose processes are exiting). */
  readonly live = new Set<ServiceRun>();
  /** Each service's latest shutdown, which its next run waits for. */
  readonly shutdowns = new ValueMap<Promise<void>>();
  readonly #logs = new ValueMap<LogBuffer>();
  readonly #runServiceCount = new ValueMap<number>();
  readonly #pending = new Set<Promise<unknown>>();

  constructor(parent: Facet, o: SupervisorOptions) {
    this.config = o.config;
    this.logRef = o.log;
    this.runDir = o.runDir;
    this.logCapacity = o.logCapacity;
    this.clock = o.clock ?? (() => parent.engine.now());
    this.monotonic = o.monotonic ?? (() => performance.now());
    this.restartOptions = o.restart ?? {};
    this.outputsDebounceMs = o.outputsDebounceMs;
    this.userDb = o.userDb;
    this.tracking = o.tracking;
    // Fail now, not at the first process, when the restart options are wrong.
    new RestartTracker('always', this.restartOptions);
    if (o.logCapacity !== undefined) new LogBuffer({ capacity: o.logCapacity });

    let stopped!: () => void;
    const whenStopped = new Promise<void>((res) => (stopped = res));
    this.closed = whenStopped.then(() => this.whenIdle());
    this.facet = parent.spawn((f) => {
      f.onStop(stopped);
      // So that `limen status` and the log find them (docs/vocabulary.md, "Failures").
      declareFailures(f, this.config, anyRecord('service-error', 2));
      declareFailures(f, this.config, anyRecord('service-gave-up', 2));
      const service = P.bind('service', P.rec('daemon', P._));
      f.observe(
        this.config,
        P.rec('run-service', service),
        {
          onAdd: (_v, c) => this.#runService(c),
          onRemove: (_v, c) => this.#stopService(c),
        },
        'supervisor: run-service',
      );
      f.observe(
        this.config,
        P.rec('restart-service', service),
        { onMessage: (_v, c) => this.#restartService(c) },
        'supervisor: restart-service',
      );
      f.observe(
        this.config,
        P.rec('signal-service', service, P.bind('signal')),
        { onMessage: (v, c) => this.#signalService(v, c) },
        'supervisor: signal-service',
      );
    }, 'supervisor');
    // A parent that was already stopping: the child never ran.
    if (!this.facet.isAlive) stopped();
  }

  logs(service: Value): LogBuffer | undefined {
    return this.#logs.get(service);
  }

  logBuffer(service: Value): LogBuffer {
    return this.#logs.getOrCreate(service, () =>
      this.logCapacity === undefined
        ? new LogBuffer({ onListenerError: (e) => this.bug(e) })
        : new LogBuffer({ capacity: this.logCapacity, onListenerError: (e) => this.bug(e) }),
    );
  }

  services(): ServiceStatus[] {
    return [...new Set([...this.runs.values(), ...this.live])].map((r) => r.status());
  }

  outputsDir(service: Value): string {
    return join(this.runDir, 'outputs', outputsDirName(strip(service)));
  }

  async whenIdle(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all([...this.#pending]);
  }

  stop(): void {
    this.facet.stop();
  }

  /** Keeps `whenIdle` and `closed` waiting for p. */
  track(p: Promise<unknown>): void {
    const q = p.then(
      () => {},
      (e: unknown) => this.bug(e),
    );
    this.#pending.add(q);
    void q.finally(() => this.#pending.delete(q));
  }

  /**
   * A supervisor event, reported once: as `<log TIME {service level message}>` on $log,
   * which the daemon mirrors to its own log. Only when $log cannot be reached any more
   * (the supervisor has stopped, as at the very end of a shutdown) does it go to the
   * engine's logger instead, so that nothing is lost.
   */
  event(service: Value, level: Level, message: string, owner?: Facet): void {
    const sent = this.sendLog(
      record('log', rfc3339(this.clock()), dict({ service, level: sym(level), message })),
      owner,
    );
    if (sent) return;
    const label = serviceLabel(service);
    const fields: LogFields = { service: label };
    driverLog(this.facet, label)[level](message, fields);
  }

  /** Sends on $log through the first of owner and the supervisor's facet that can; false if neither can. */
  sendLog(message: Value, owner: Facet | undefined): boolean {
    const f = owner !== undefined && !owner.isStopped ? owner : this.facet;
    if (f.isStopped) return false;
    if (f.engine.inTurn) f.send(this.logRef, message);
    else f.turn(() => f.send(this.logRef, message));
    return true;
  }

  /** An exception where none should be: logged, never thrown at an event source. */
  bug(e: unknown): void {
    driverLog(this.facet, 'supervisor').error(
      `internal error: ${e instanceof Error ? e.message : String(e)}`,
      { error: e },
    );
  }

  // Several run-service assertions may name one service (`<run-service S extra>`
  // matches too): it runs while any of them holds.
  #runService(c: Captures): void {
    const service = strip(c.get('service')!);
    if (!isDaemonService(service)) return;
    const n = this.#runServiceCount.get(service) ?? 0;
    this.#runServiceCount.set(service, n + 1);
    if (n > 0) return;
    const run = new ServiceRun(this, service);
    this.runs.set(service, run);
    run.start();
  }

  #stopService(c: Captures): void {
    const service = strip(c.get('service')!);
    const n = this.#runServiceCount.get(service);
    if (n === undefined) return;
    if (n > 1) {
      this.#runServiceCount.set(service, n - 1);
      return;
    }
    this.#runServiceCount.delete(service);
    const run = this.runs.get(service);
    if (run === undefined) return;
    this.runs.delete(service);
    run.release();
  }

  #restartService(c: Captures): void {
    const service = strip(c.get('service')!);
    const run = this.runs.get(service);
    if (run === undefined || !isDaemonService(service)) return;
    if (!run.isDead) {
      run.restart();
      return;
    }
    // A run that failed as a whole is replaced by a fresh one.
    const fresh = new ServiceRun(this, service);
    this.runs.set(service, fresh);
    run.release();
    fresh.start();
  }

  // `! <signal-service S SIGNAL>`: SIGNAL goes to the main process of each of S's
  // processes, not to their groups: udhcpc's script, say, runs in udhcpc's group
  // and would die of the SIGUSR1 meant for udhcpc.
  #signalService(message: Value, c: Captures): void {
    const service = strip(c.get('service')!);
    if (!isDaemonService(service)) return;
    const given = strip(c.get('signal')!);
    const signal = given instanceof Sym ? signalName(given.name) : undefined;
    let problem: string | undefined;
    if ((message as Record).fields.length !== 2) {
      problem = 'expected exactly <signal-service S SIGNAL>';
    } else if (signal === undefined) {
      const hint =
        typeof given === 'string' && signalName(given) !== undefined
          ? ` (write ${given} without quotes)`
          : '';
      problem = `expected a signal name such as SIGHUP or USR1, got ${showValue(given)}${hint}`;
    } else if (FREEZING_SIGNALS.has(signal)) {
      problem = `${signal} would freeze the service behind the supervisor's back`;
    }
    if (problem !== undefined || signal === undefined) {
      this.event(service, 'warn', `<signal-service> ignored: ${problem ?? 'no signal'}`);
      return;
    }
    const run = this.runs.get(service);
    if (run === undefined || run.isDead || run.signal(signal) === 0) {
      this.event(service, 'info', `${signal} not sent: no process of the service is running`);
    }
  }
}

/** Signals that stop a process without ending it: the supervisor would wait on a frozen service. */
const FREEZING_SIGNALS: ReadonlySet<string> = new Set(['SIGSTOP', 'SIGTSTP', 'SIGTTIN', 'SIGTTOU']);

/** `SIGHUP` or `HUP` as Node knows it, or undefined. */
function signalName(name: string): NodeJS.Signals | undefined {
  const full = name.startsWith('SIG') ? name : `SIG${name}`;
  return Object.hasOwn(osConstants.signals, full) ? (full as NodeJS.Signals) : undefined;
}

function showValue(v: Value): string {
  return typeof v === 'string' ? JSON.stringify(v) : serviceLabel(v, 40);
}

/** One run of a service: from run-service's assertion to its retraction. */
class ServiceRun {
  readonly sup: SupervisorImpl;
  readonly service: Record;
  readonly outputsPath: string;
  readonly slots = new ValueMap<ProcessSlot>();
  /** Exits of this run's processes that were asked to stop; new processes wait for them. */
  readonly exiting = new Set<Promise<ExitInfo>>();
  facet!: Facet;
  #prepared = false;
  #prepareProblem: string | undefined;
  #outputs: OutputsDir | undefined;
  #opening: Promise<void> | undefined;
  readonly #outputHandles = new Map<string, Handle>();
  #stateHandle: Handle | undefined;
  #state: ServiceState | undefined;
  #since: number;
  #lastQueued: ServiceState | undefined;
  #released = false;
  #abnormal = false;
  #shuttingDown = false;
  #finished = false;
  #shutdown: Promise<void> | undefined;
  #processHandle: Handle | undefined;
  #processValue: Value | undefined;
  #processQueued = false;
  lastExit: ExitInfo | undefined;
  /** Wall-clock ms of lastExit. */
  lastExitAt = 0;

  constructor(sup: SupervisorImpl, service: Record) {
    this.sup = sup;
    this.service = service;
    this.outputsPath = sup.outputsDir(service);
    this.#since = sup.clock();
  }

  /** The run stopped after a failure in its own handling, or could not prepare: only a fresh run helps. */
  get isDead(): boolean {
    return !this.facet.isAlive || this.#prepareProblem !== undefined;
  }

  get isPrepared(): boolean {
    return this.#prepared;
  }

  event(level: Level, message: string, owner: Facet = this.facet): void {
    this.sup.event(this.service, level, message, owner);
  }

  start(): void {
    this.sup.live.add(this);
    const id = this.service.fields[0]!;
    this.facet = this.sup.facet.spawn(
      (f) => {
        f.onStop(() => this.#onStop());
        f.observe(
          this.sup.config,
          P.rec('daemon', P.lit(id), P.bind('spec')),
          {
            onAdd: (v, c) => {
              if (v instanceof Record && v.fields.length === 2) this.#addSpec(c.get('spec')!);
            },
            onRemove: (v, c) => {
              if (v instanceof Record && v.fields.length === 2) this.#removeSpec(c.get('spec')!);
            },
          },
          `supervisor: ${serviceLabel(this.service)}`,
        );
      },
      `service ${serviceLabel(this.service)}`,
    );
    if (this.facet.isAlive) this.sup.track(this.#prepare());
  }

  /** Stops this run for good (run-service retracted, or replaced by a fresh run). */
  release(): void {
    this.#released = true;
    if (this.facet.isAlive) this.facet.stop();
    else if (this.#finished) this.#retractState();
  }

  /** `! <restart-service S>`: every process starts afresh, with its restart history cleared. */
  restart(): void {
    this.facet.turn(() => {
      this.event('info', 'restart requested');
      for (const slot of this.slots.values()) slot.restart(0, true);
    });
  }

  /** Sends `signal` to every running main process; returns how many got it. */
  signal(signal: NodeJS.Signals): number {
    let sent = 0;
    for (const slot of this.slots.values()) if (slot.signal(signal)) sent++;
    return sent;
  }

  /** Restarts every process but `except` (restart policy `all`). */
  restartOthers(except: ProcessSlot, delayMs: number): void {
    for (const slot of this.slots.values()) if (slot !== except) slot.restart(delayMs, false);
  }

  trackExit(exited: Promise<ExitInfo>): void {
    this.exiting.add(exited);
    this.sup.track(exited);
    void exited.then((exit) => {
      this.exiting.delete(exited);
      this.noteExit(exit);
    });
  }

  noteExit(exit: ExitInfo): void {
    if (exit === this.lastExit) return;
    this.lastExit = exit;
    this.lastExitAt = this.sup.clock();
    this.refreshProcess();
  }

  /**
   * Brings `<service-process S _>` up to date once the current turn is over: changes
   * made in one turn give one new record, and none when nothing it says changed.
   */
  refreshProcess(): void {
    const f = this.sup.facet;
    if (this.#processQueued || this.#finished || f.isStopped) return;
    // Not before the previous run of the service has gone with its record: one per service.
    if (!this.#prepared && this.#prepareProblem === undefined) return;
    this.#processQueued = true;
    f.turn(() => {
      this.#processQueued = false;
      if (!this.#finished) this.#setProcess(this.#processRecord());
    });
  }

  #processRecord(): Value {
    const slots = [...this.slots.values()];
    const starts = slots.flatMap((s) => (s.startedAt === undefined ? [] : [s.startedAt]));
    return serviceProcessRecord(this.service, {
      pids: slots.flatMap((s) => (s.pid === undefined ? [] : [s.pid])),
      restarts: slots.reduce((n, s) => n + s.restarts, 0),
      started: starts.length === 0 ? undefined : Math.max(...starts),
      lastExit:
        this.lastExit === undefined ? undefined : { exit: this.lastExit, at: this.lastExitAt },
    });
  }

  /** Must run in a turn. */
  #setProcess(value: Value | undefined): void {
    const old = this.#processValue;
    if (old === value || (old !== undefined && value !== undefined && is(old, value))) return;
    this.#processValue = value;
    const f = this.sup.facet;
    if (f.isStopped) return;
    this.#processHandle = f.replace(this.#processHandle, this.sup.config, value);
  }

  async #prepare(): Promise<void> {
    const previous = this.sup.shutdowns.get(this.service);
    if (previous !== undefined) await previous;
    if (!this.facet.isAlive) return;
    const od = new OutputsDir(this.outputsPath, {
      ...(this.sup.outputsDebounceMs !== undefined
        ? { debounceMs: this.sup.outputsDebounceMs }
        : {}),
      onListenerError: (e) => this.sup.bug(e),
    });
    this.#outputs = od;
    od.onDidChange((change) => this.facet.turn(() => this.#output(change)));
    od.onDidProblem((p) =>
      this.facet.turn(() =>
        this.event('warn', `outputs: ${p.file === null ? '' : `${p.file}: `}${p.message}`),
      ),
    );
    this.#opening = od.open({ signal: this.facet.signal });
    try {
      await this.#opening;
    } catch (e) {
      if (!this.facet.isAlive) return;
      const message = `cannot prepare the outputs directory ${this.outputsPath}: ${
        e instanceof Error ? e.message : String(e)
      }`;
      this.facet.turn(() => {
        this.#prepareProblem = message;
        this.event('error', message);
        this.facet.assert(this.sup.config, record('service-error', this.service, message));
        this.publish();
      });
      return;
    }
    this.facet.turn(() => {
      this.#prepared = true;
      for (const slot of this.slots.values()) slot.launch();
      this.publish();
    });
  }

  #addSpec(specValue: Value): void {
    const spec = strip(specValue);
    if (this.slots.has(spec)) return;
    const slot = new ProcessSlot(this, spec);
    this.slots.set(spec, slot);
    slot.start();
    this.publish();
  }

  #removeSpec(specValue: Value): void {
    const spec = strip(specValue);
    const slot = this.slots.get(spec);
    if (slot === undefined) return;
    this.slots.delete(spec);
    slot.remove();
    this.publish();
  }

  #output(change: OutputChange): void {
    const old = this.#outputHandles.get(change.key);
    if (change.kind === 'delete') {
      if (old !== undefined) this.facet.retract(old);
      this.#outputHandles.delete(change.key);
      return;
    }
    let value: Value = change.value;
    if (change.isPreserves) {
      try {
        value = strip(parse(change.value, { source: `${change.key}.pr` }));
      } catch (e) {
        if (old !== undefined) this.facet.retract(old);
        this.#outputHandles.delete(change.key);
        this.event(
          'warn',
          `output ${change.key}.pr is not valid Preserves, so it is not published: ${
            e instanceof Error ? e.message : String(e)
          }`,
        );
        return;
      }
    }
    const h = this.facet.replace(
      old,
      this.sup.config,
      record('output', this.service, sym(change.key), value),
    );
    if (h !== undefined) this.#outputHandles.set(change.key, h);
  }

  /** Publishes the service's state once the current turn is over. */
  publish(): void {
    this.refreshProcess();
    // Computed now and applied in order, so that every transition (started, then
    // ready) is seen, even when both happen before the queued turns run.
    const state = this.#aggregate();
    if (state === this.#lastQueued) return;
    this.#lastQueued = state;
    this.sup.facet.turn(() => {
      if (!this.#shuttingDown && !this.#finished) this.#setState(state);
    });
  }

  #aggregate(): ServiceState | undefined {
    if (this.#prepareProblem !== undefined) return 'failed';
    if (this.slots.size === 0) return undefined;
    let anyStarted = false;
    let allUp = true;
    let allComplete = true;
    for (const slot of this.slots.values()) {
      const s = slot.state;
      if (s === 'failed' || s === 'invalid') return 'failed';
      if (s !== 'complete') allComplete = false;
      if (s !== 'ready' && s !== 'complete') allUp = false;
      if (s !== 'waiting' && s !== 'starting') anyStarted = true;
    }
    if (allComplete) return 'complete';
    if (allUp) return 'ready';
    return anyStarted ? 'started' : undefined;
  }

  /** Must run in a turn. */
  #setState(state: ServiceState | undefined): void {
    if (state === this.#state) return;
    this.#state = state;
    this.#since = this.sup.clock();
    const f = this.sup.facet;
    if (f.isStopped) return;
    this.#stateHandle = f.replace(
      this.#stateHandle,
      this.sup.config,
      state === undefined ? undefined : record('service-state', this.service, sym(state)),
    );
  }

  #retractState(): void {
    const f = this.sup.facet;
    if (f.isStopped) return;
    f.turn(() => {
      this.#setState(undefined);
      this.#setProcess(undefined);
    });
  }

  #onStop(): void {
    // The slots' facets stopped first (children first): their exits are in `exiting`.
    this.#shuttingDown = true;
    this.#abnormal = !this.#released && this.sup.facet.isAlive;
    if (this.#abnormal) {
      this.event('error', 'stopped after an internal error; restart it with <restart-service>');
    }
    this.#outputs?.dispose();
    this.#outputHandles.clear();
    const exits = [...this.exiting];
    const opening = this.#opening;
    const outputs = this.#outputs;
    const shutdown = (async () => {
      await Promise.all(exits);
      if (opening !== undefined) await opening.catch(() => {});
      if (outputs !== undefined) {
        try {
          await outputs.clear();
        } catch (e) {
          this.event('warn', `cannot empty ${this.outputsPath}: ${(e as Error).message}`);
        }
      }
      this.#finish();
    })();
    this.#shutdown = shutdown;
    this.sup.shutdowns.set(this.service, shutdown);
    this.sup.track(shutdown);
  }

  #finish(): void {
    this.#finished = true;
    this.sup.live.delete(this);
    if (this.sup.shutdowns.get(this.service) === this.#shutdown) {
      this.sup.shutdowns.delete(this.service);
    }
    const f = this.sup.facet;
    if (f.isStopped) return;
    f.turn(() => {
      // A run that failed in itself stays `failed` until restarted or released.
      if (this.#abnormal && !this.#released && f.isAlive) {
        this.#setState('failed');
        this.#setProcess(this.#processRecord());
      } else {
        this.#setState(undefined);
        this.#setProcess(undefined);
      }
    });
  }

  #failure(processes: readonly ProcessStatus[]): string | undefined {
    if (this.#prepareProblem !== undefined) return this.#prepareProblem;
    const several = this.slots.size > 1;
    const reasons = [...this.slots.values()].flatMap((slot, i) => {
      const f = processes[i]!.failure;
      return f === undefined ? [] : [several ? `${slot.name}: ${f}` : f];
    });
    return reasons.length === 0 ? undefined : reasons.join('; ');
  }

  status(): ServiceStatus {
    const processes = [...this.slots.values()].map((s) => s.status());
    const lastExit = this.lastExit;
    const state: ServiceStatus['state'] =
      this.#shuttingDown && !this.#finished ? 'stopping' : (this.#state ?? 'starting');
    return {
      service: this.service,
      state,
      pids: processes.flatMap((p) => (p.pid === undefined ? [] : [p.pid])),
      restarts: processes.reduce((n, p) => n + p.restarts, 0),
      lastExit,
      since: this.#since,
      outputsDir: this.outputsPath,
      processes,
      failure: this.#failure(processes),
    };
  }
}

/** One process of a service: one spec value, run (and rerun) by its restart policy. */
class ProcessSlot {
  readonly run: ServiceRun;
  readonly specValue: Value;
  readonly spec: DaemonSpec | undefined;
  readonly problems: readonly string[];
  readonly tracker: RestartTracker | undefined;
  readonly name: string;
  facet!: Facet;
  state: ProcessStatusState = 'waiting';
  restarts = 0;
  lastExit: ExitInfo | undefined;
  /** Wall-clock ms when the running process started; undefined while none runs. */
  startedAt: number | undefined;
  #proc: ManagedProcess | undefined;
  /** Processes stopped on purpose: their exit is not a policy matter. */
  readonly #stopping = new WeakSet<ManagedProcess>();
  #timer: NodeJS.Timeout | undefined;
  /** A restart asked for while the process was still stopping: the delay to start after. */
  #startAfterExit: number | undefined;
  #launching = false;
  #owned = false;
  #removed = false;
  /** `<service-gave-up S REASON>` while the restart policy has given up. */
  #gaveUp: Handle | undefined;

  constructor(run: ServiceRun, specValue: Value) {
    this.run = run;
    this.specValue = specValue;
    const r = checkDaemonSpec(specValue);
    this.spec = r.ok ? r.spec : undefined;
    this.problems = r.ok ? [] : r.problems.map((p) => p.message);
    this.tracker = r.ok ? new RestartTracker(r.spec.restart, run.sup.restartOptions) : undefined;
    this.name = r.ok ? describeCommand(r.spec) : serviceLabel(specValue, 40);
    if (!r.ok) this.state = 'invalid';
  }

  get pid(): number | undefined {
    return this.#proc?.pid;
  }

  start(): void {
    this.facet = this.run.facet.spawn((f) => {
      f.onStop(() => this.#onStop());
      if (this.spec === undefined) {
        for (const message of this.problems) {
          f.assert(this.run.sup.config, record('service-error', this.run.service, message));
          this.run.event('error', `invalid spec: ${message}`, f);
        }
        return;
      }
      // Queued: a spec that replaces another is added before the old one is removed,
      // and its process must wait for the old one's exit.
      f.turn(() => this.launch());
    }, `process ${this.name}`);
  }

  remove(): void {
    this.#removed = true;
    this.facet.stop();
  }

  /** Starts the process when nothing stands in the way (idempotent). */
  launch(): void {
    if (this.spec === undefined || !this.facet.isAlive) return;
    if (this.#proc !== undefined || this.#launching || this.#timer !== undefined) return;
    if (!this.run.isPrepared) return; // the run launches every slot once prepared
    const waits: Promise<unknown>[] = [...this.run.exiting];
    const owning = this.#giveOutputsDir();
    if (owning !== undefined) waits.push(owning);
    if (waits.length === 0) {
      this.#spawn();
      return;
    }
    this.#launching = true;
    void Promise.all(waits).then(() =>
      this.facet.turn(() => {
        this.#launching = false;
        this.launch();
      }),
    );
  }

  /**
   * A process that runs as another user gets the outputs directory, so that it can
   * write there (with several such processes, the last one's user wins).
   */
  #giveOutputsDir(): Promise<void> | undefined {
    const spec = this.spec!;
    if ((spec.user === undefined && spec.group === undefined) || this.#owned) return undefined;
    this.#owned = true;
    const userDb = this.run.sup.userDb;
    const path = this.run.outputsPath;
    return resolveCredentials(spec.user, spec.group, userDb !== undefined ? { paths: userDb } : {})
      .catch(() => undefined) // starting the process reports an unknown user, and how to fix it
      .then(async (creds) => {
        if (creds !== undefined) await chown(path, creds.uid, creds.gid);
      })
      .catch((e: unknown) =>
        this.#event('warn', `cannot give ${path} to the service's user: ${(e as Error).message}`),
      );
  }

  /**
   * Stops the process (if running) and starts it again after delayMs; `reset`
   * forgets the restart history (a restart a person asked for).
   */
  restart(delayMs: number, reset: boolean): void {
    if (this.spec === undefined || !this.facet.isAlive) return;
    if (reset) {
      this.tracker!.reset();
      if (this.#gaveUp !== undefined) this.facet.retract(this.#gaveUp);
      this.#gaveUp = undefined;
    }
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.state = 'restarting';
    const proc = this.#proc;
    if (proc !== undefined) {
      this.#startAfterExit = delayMs;
      if (!this.#stopping.has(proc)) {
        this.#stopping.add(proc);
        this.run.trackExit(proc.stop());
      }
    } else {
      this.#scheduleStart(delayMs);
    }
    this.run.publish();
  }

  /** Sends `signal` to the main process if it runs and is not being stopped; true if sent. */
  signal(signal: NodeJS.Signals): boolean {
    const proc = this.#proc;
    // Once the main process exited (state 'stopping'), its pid may belong to another.
    if (proc === undefined || proc.state !== 'running' || this.#stopping.has(proc)) return false;
    const pid = proc.pid!;
    try {
      process.kill(pid, signal);
    } catch (e) {
      this.#event('warn', `cannot send ${signal} to pid ${pid}: ${(e as Error).message}`);
      return false;
    }
    this.#event('info', `sent ${signal} to pid ${pid}`);
    return true;
  }

  #scheduleStart(delayMs: number): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.facet.turn(() => {
        // Shown with the new PID (or the failed start's exit), not on its own.
        this.restarts++;
        this.launch();
      });
    }, delayMs);
  }

  #spawn(): void {
    const spec = this.spec!;
    const sup = this.run.sup;
    const tracking = sup.tracking;
    const outputsPath = this.run.outputsPath;
    const proc = new ManagedProcess(toProcessSpec(spec, { outputsDir: outputsPath }), {
      clock: sup.clock,
      onListenerError: (e) => sup.bug(e),
      ...(sup.userDb !== undefined ? { userDb: sup.userDb } : {}),
      ...(tracking !== undefined
        ? {
            // LIMEN_OUTPUTS is in the environment of the service's processes: it
            // identifies them for the process-group records once their leader is gone.
            enclosure: () =>
              tracking.create(outputsDirName(this.run.service), `LIMEN_OUTPUTS=${outputsPath}`),
          }
        : {}),
    });
    this.#proc = proc;
    this.state = 'starting';
    const buffer = sup.logBuffer(this.run.service);
    proc.onDidStart((pid) =>
      this.facet.turn(() => {
        if (this.#proc !== proc) return;
        this.startedAt = sup.clock();
        this.run.refreshProcess();
        if (this.#stopping.has(proc)) return;
        this.state = 'started';
        this.#event('info', `started (pid ${pid})`);
        this.run.publish();
      }),
    );
    proc.onDidBecomeReady(() =>
      this.facet.turn(() => {
        if (this.#proc !== proc || this.#stopping.has(proc)) return;
        this.state = 'ready';
        this.#event('info', 'ready');
        this.run.publish();
      }),
    );
    proc.onDidLogLine((line) => this.#line(buffer, line, proc.pid));
    proc.onDidExit((exit) => this.#exited(proc, exit));
    proc.start();
  }

  #line(buffer: LogBuffer, line: LogLine, pid: number | undefined): void {
    buffer.append(line);
    const fields: { [k: string]: Value } = {
      service: this.run.service,
      stream: sym(line.stream),
      line: line.line,
    };
    if (pid !== undefined) fields['pid'] = pid;
    this.run.sup.sendLog(record('log', rfc3339(line.time), dict(fields)), this.facet);
  }

  #exited(proc: ManagedProcess, exit: ExitInfo): void {
    this.lastExit = exit;
    if (this.#proc === proc) {
      this.#proc = undefined;
      this.startedAt = undefined;
    }
    this.run.noteExit(exit);
    if (this.#stopping.has(proc)) {
      // Stopped on purpose: for a restart, or because the slot or service stopped.
      const why = this.facet.isAlive ? 'stopped for a restart' : 'stopped';
      this.#event('info', `${why} (${describeExit(exit)})`);
      this.facet.turn(() => {
        const delay = this.#startAfterExit;
        this.#startAfterExit = undefined;
        if (delay !== undefined) this.#scheduleStart(delay);
      });
      return;
    }
    this.facet.turn(() => this.#decide(exit));
  }

  #decide(exit: ExitInfo): void {
    const d = this.tracker!.decide(exit, this.run.sup.monotonic());
    const what = describeExit(exit);
    switch (d.action) {
      case 'restart': {
        this.state = 'restarting';
        const others = d.scope === 'service' && this.run.slots.size > 1;
        this.#event(
          exit.code === 0 && exit.signal === null && exit.error === undefined ? 'info' : 'warn',
          `${what}; restarting ${others ? 'the whole service ' : ''}in ${d.delayMs} ms`,
        );
        if (others) this.run.restartOthers(this, d.delayMs);
        this.#scheduleStart(d.delayMs);
        break;
      }
      case 'stop':
        this.state = d.state;
        if (d.state === 'complete') this.#event('info', `${what}; complete`);
        else this.#event('error', `${what}; failed (restart policy ${this.tracker!.policy})`);
        break;
      case 'give-up':
        this.state = 'failed';
        this.#event('error', `${what}; giving up: ${d.reason}`);
        this.#gaveUp = this.facet.replace(
          this.#gaveUp,
          this.run.sup.config,
          record('service-gave-up', this.run.service, d.reason),
        );
        break;
    }
    this.run.publish();
  }

  #event(level: Level, message: string): void {
    const prefix = this.run.slots.size > 1 ? `${this.name}: ` : '';
    this.run.event(level, `${prefix}${message}`, this.facet);
  }

  #onStop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const proc = this.#proc;
    if (proc !== undefined) {
      this.state = 'stopping';
      if (!this.#stopping.has(proc)) {
        this.#stopping.add(proc);
        this.run.trackExit(proc.stop());
      }
    }
    // Stopped by neither its spec's retraction nor its service's stop: a failure in
    // this process's handling. It takes its service down (which reports it).
    if (!this.#removed && this.run.facet.isAlive) {
      const runFacet = this.run.facet;
      runFacet.turn(() => runFacet.stop());
    }
  }

  status(): ProcessStatus {
    return {
      spec: this.specValue,
      state: this.state,
      pid: this.#proc?.pid,
      restarts: this.restarts,
      lastExit: this.lastExit,
      problems: this.problems,
      failure: this.tracker?.givenUpReason,
      where: this.#proc?.where,
    };
  }
}

/** A short name for a process in messages: its command line, shortened. */
function describeCommand(spec: DaemonSpec): string {
  const a = spec.argv;
  const text = a.length === 3 && a[0] === 'sh' && a[1] === '-c' ? a[2]! : a.join(' ');
  return text.length > 40 ? `${text.slice(0, 37)}...` : text;
}
