// What the daemon hands the control server: views of the services and their logs,
// the interface controller, and the settings store. These are interfaces so that
// src/control never imports src/supervisor or src/net (the daemon adapts them) and
// tests can pass fakes. Times are milliseconds since the epoch.

import type { Disposable } from '../base/disposable.ts';
import type { Value } from '../preserves/index.ts';

/** One service, as `limen services` lists it. */
export interface ServiceInfo {
  /** The service's value, e.g. `<daemon sshd>`. */
  readonly service: Value;
  /** started, ready, complete, failed, starting, stopping... (the supervisor's word). */
  readonly state: string;
  readonly pids: readonly number[];
  readonly restarts: number;
  /** When the state last changed. */
  readonly since?: number | undefined;
  /** How the last process exited, in words ("exited with code 1"). */
  readonly lastExit?: string | undefined;
  /** Why it is failed, when known: "crash loop: 5 failures within 60 s (…)". */
  readonly failure?: string | undefined;
}

/** One process of a service (a service's spec may run several). */
export interface ProcessInfo {
  readonly spec: Value;
  readonly state: string;
  readonly pid?: number | undefined;
  readonly restarts: number;
  readonly lastExit?: string | undefined;
  /** What is wrong with the spec, if it is invalid. */
  readonly problems: readonly string[];
  /** Why the restart policy gave up on it, until it is restarted. */
  readonly failure?: string | undefined;
  /** Where it runs: its cgroup's directory, or `process group N`. */
  readonly where?: string | undefined;
}

/** One service in detail, as `limen service S` shows it. */
export interface ServiceDetail extends ServiceInfo {
  readonly outputsDir?: string | undefined;
  readonly processes: readonly ProcessInfo[];
  /** `<output S KEY VALUE>` pairs; the server fills these in from $config when absent. */
  readonly outputs?: readonly (readonly [Value, Value])[] | undefined;
}

/** One line a service printed. */
export interface LogEntry {
  readonly time: number;
  /** stdout or stderr. */
  readonly stream: string;
  readonly line: string;
}

/** A service's recent output: the supervisor's LogBuffer has this shape. */
export interface LogSource {
  /** The last n lines (all kept lines when n is undefined), oldest first. */
  tail(n?: number): readonly LogEntry[];
  /** Calls listener for every line appended from now on, until disposed. */
  follow(listener: (entry: LogEntry) => void): Disposable;
}

/** The daemon's services, read-only. */
export interface ServiceView {
  list(): readonly ServiceInfo[];
  /** Undefined when the service is unknown. */
  detail(service: Value): ServiceDetail | undefined;
  /** Undefined when no output was ever kept for the service. */
  logs(service: Value): LogSource | undefined;
}

export interface InterfaceRequestOptions {
  /** Aborted when the client cancels, disconnects, or the timeout passes. */
  readonly signal: AbortSignal;
  /** Progress for the client: a string, or any value (shown as Preserves text). */
  readonly onProgress: (progress: Value) => void;
}

export type InterfaceResult =
  { readonly ok: true; readonly detail: Value } | { readonly ok: false; readonly reason: string };

/**
 * Brings interfaces up and down for `limen ifup/ifdown`. `up` settles when the interface
 * is configured (ok, with a detail such as its address) or has failed (with the reason);
 * it must stop working and settle soon after `signal` aborts. The network layer supplies it.
 */
export interface InterfaceController {
  up(ifname: string, options: InterfaceRequestOptions): Promise<InterfaceResult>;
  down(ifname: string, options: InterfaceRequestOptions): Promise<InterfaceResult>;
}

/** One configuration generation, as `limen generations` lists it (docs/safe-change.md). */
export interface GenerationSummary {
  readonly number: number;
  /** Milliseconds since the epoch. */
  readonly time: number;
  readonly message: string;
  readonly who: string;
  readonly parent?: number | undefined;
  readonly checksum: string;
  /** `confirmed`, `trial` or `rolled back: REASON`. */
  readonly outcome: string;
  readonly current: boolean;
  readonly lastConfirmed: boolean;
}

/** What a rollback did. */
export interface RollbackSummary {
  readonly from?: number | undefined;
  readonly to: number;
  /** Files written back, and files removed, in the site configuration. */
  readonly written: number;
  readonly removed: number;
}

/** A candidate configuration to try (limen try). */
export interface TrialRequest {
  /** Relative path → content: the candidate for the first site root. */
  readonly files: ReadonlyMap<string, Uint8Array>;
  /** How the candidate's files are named in messages (the client's directory). */
  readonly source: string;
  readonly timeoutMs: number;
  readonly message: string;
  readonly who: string;
  readonly autoConfirm: boolean;
  readonly onProgress: (text: string) => void;
  /** Told once the trial is recorded, before its files are applied. */
  readonly onStarted?: (t: {
    readonly generation: number;
    readonly token: string;
    readonly deadline: number;
  }) => void;
}

export interface TrialStart {
  readonly generation: number;
  readonly token: string;
  /** Milliseconds since the epoch. */
  readonly deadline: number;
  /** Settles when the trial is confirmed or rolled back. */
  readonly done: Promise<{
    readonly generation: number;
    readonly confirmed: boolean;
    readonly reason?: string | undefined;
  }>;
}

/** A configuration to plan with: a generation, or a candidate for the first site root. */
export type ConfigurationChoice =
  | { readonly generation: number }
  | {
      readonly files: ReadonlyMap<string, Uint8Array>;
      /** How the candidate's files are named in messages (the client's directory). */
      readonly source: string;
    };

/**
 * `limen diff` and `limen try --dry-run`: neither side given, the current generation's
 * parent to the current; only `from`, from it to the current; only `to`, from the
 * current to it.
 */
export interface PlanRequest {
  readonly from?: ConfigurationChoice | undefined;
  readonly to?: ConfigurationChoice | undefined;
}

/** What a change of configuration does (docs/safe-change.md, "A plan before applying"). */
export interface PlanAnswer {
  /** The two configurations, in words (`generation 12`, `candidate ./new`). */
  readonly from: string;
  readonly to: string;
  /** Assertions in $config that appear and disappear. */
  readonly appear: readonly Value[];
  readonly disappear: readonly Value[];
  /** Services that start, stop, and restart (a daemon whose spec changed). */
  readonly start: readonly Value[];
  readonly stop: readonly Value[];
  readonly restart: readonly {
    readonly service: Value;
    readonly changes: readonly {
      readonly key: string;
      readonly from: Value | undefined;
      readonly to: Value | undefined;
    }[];
  }[];
  /** What the reader should know: an evaluation that did not settle, maintenance mode. */
  readonly notes: readonly string[];
}

/** The daemon's configuration generations (the safety layer supplies them). */
export interface GenerationsProvider {
  /** What going from one configuration to another would do; nothing is applied. */
  plan(request: PlanRequest): Promise<PlanAnswer>;
  list(): Promise<readonly GenerationSummary[]>;
  /** Back to generation `to`, or to the last confirmed one before the current (ending a trial). */
  rollback(to: number | undefined): Promise<RollbackSummary>;
  /** Checks and applies a candidate as a trial; throws (a UserError) when it is refused. */
  try(request: TrialRequest): Promise<TrialStart>;
  /** Keeps the running trial; throws when there is none or the token is not its. */
  confirm(token: string): Promise<number>;
  /** Generation `n`'s (default: the current one's) files of the first site root: a trial's base. */
  files(n: number | undefined): Promise<GenerationFiles>;
}

export interface GenerationFiles {
  readonly generation: number;
  /** Relative path → content. */
  readonly files: ReadonlyMap<string, Uint8Array>;
}

/** Maintenance mode (docs/safe-change.md): only the recovery bundle runs. */
export interface MaintenanceControl {
  /** Why it is on, or undefined. */
  reason(): string | undefined;
  /** Turns it on or off, durably; the reason when on. */
  set(on: boolean): Promise<string | undefined>;
}
