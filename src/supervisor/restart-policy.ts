// What to do when a service's process exits: restart it (after a backoff),
// leave it complete or failed, or give up on a crash loop. Pure: time is passed
// in, so the same exits at the same times always give the same decisions.
//
// Policies, as Synit's syndicate-server defines them (externalServices.prs and
// daemon.rs), with limen's backoff and crash-loop limit on top:
//   always    restart after every exit, clean or not, only this process.
//   on-error  a clean exit (code 0) leaves it complete; a failure restarts
//             this process.
//   all       a clean exit leaves it complete; a failure restarts the whole
//             service (every process of the daemon): decision scope 'service'.
//   never     never restart; the service is complete after any exit, even a
//             failed one (Synit: "treat both as normal termination"). Only a
//             program that could not be started at all leaves it failed.
// A failure is a non-zero exit code, death by a signal, or a failure to start.
// An exit that follows a requested stop is never restarted: it is complete.
//
// Every exit that is restarted counts towards the backoff and the crash-loop
// limit, a clean one under `always` included: a program that exits 0 at once
// and for ever is as much a loop as one that crashes (a program meant to exit
// uses `on-error`, or is a one-shot). Only a clean exit after a stable run
// (stableAfterMs) is restarted after the short cleanRestartDelayMs, and ends
// the streak of quick exits; it still counts in the crash-loop window.

import { InvalidRestartOptionsError } from './errors.ts';

export const RESTART_POLICIES = ['always', 'on-error', 'all', 'never'] as const;
export type RestartPolicy = (typeof RESTART_POLICIES)[number];

/** Synit's default when a daemon spec names no policy. */
export const DEFAULT_RESTART_POLICY: RestartPolicy = 'all';

export function isRestartPolicy(x: unknown): x is RestartPolicy {
  return typeof x === 'string' && (RESTART_POLICIES as readonly string[]).includes(x);
}

/** What the policy needs to know about an exit (ManagedProcess's ExitInfo fits). */
export interface ExitOutcome {
  readonly code: number | null;
  readonly signal: string | null;
  /** How long the process ran. */
  readonly durationMs: number;
  /** The exit followed a requested stop. */
  readonly stopped?: boolean;
  /** Set when the program could not be started. */
  readonly error?: { readonly message: string } | undefined;
}

export type RestartDecision =
  | {
      readonly action: 'restart';
      readonly delayMs: number;
      /** 'service': restart every process of the service ('all' policy). */
      readonly scope: 'process' | 'service';
    }
  | { readonly action: 'stop'; readonly state: 'complete' | 'failed' }
  | { readonly action: 'give-up'; readonly reason: string };

export interface RestartOptions {
  /** Delay before restarting after a clean exit that ended a stable run ('always'). Default 100. */
  readonly cleanRestartDelayMs?: number;
  /** Delay after the first quick exit (a failure, or a clean exit under 'always') in a row. Default 250. */
  readonly initialBackoffMs?: number;
  /** Each further failure in a row multiplies the delay by this. Default 2. */
  readonly backoffFactor?: number;
  /** The delay never exceeds this. Default 30 000. */
  readonly maxBackoffMs?: number;
  /** A run at least this long ends a streak of quick exits. Default 10 000. */
  readonly stableAfterMs?: number;
  /** This many restarted exits within crashLoopWindowMs is a crash loop. Default 5; Infinity disables. */
  readonly crashLoopFailures?: number;
  /** Default 60 000. */
  readonly crashLoopWindowMs?: number;
}

export const DEFAULT_RESTART_OPTIONS: Required<RestartOptions> = {
  cleanRestartDelayMs: 100,
  initialBackoffMs: 250,
  backoffFactor: 2,
  maxBackoffMs: 30_000,
  stableAfterMs: 10_000,
  crashLoopFailures: 5,
  crashLoopWindowMs: 60_000,
};

/** Every problem with the options, or an empty list. */
export function validateRestartOptions(options: RestartOptions): string[] {
  const problems: string[] = [];
  const o = { ...DEFAULT_RESTART_OPTIONS, ...options };
  const nonNegative = [
    'cleanRestartDelayMs',
    'initialBackoffMs',
    'maxBackoffMs',
    'stableAfterMs',
    'crashLoopWindowMs',
  ] as const;
  for (const k of nonNegative) {
    if (!Number.isFinite(o[k]) || o[k] < 0) problems.push(`${k} must be a finite number >= 0`);
  }
  if (!Number.isFinite(o.backoffFactor) || o.backoffFactor < 1) {
    problems.push('backoffFactor must be a finite number >= 1');
  }
  if (
    o.crashLoopFailures !== Infinity &&
    (!Number.isInteger(o.crashLoopFailures) || o.crashLoopFailures < 1)
  ) {
    problems.push('crashLoopFailures must be an integer >= 1, or Infinity');
  }
  return problems;
}

export function isFailure(exit: ExitOutcome): boolean {
  return exit.error !== undefined || exit.signal !== null || exit.code !== 0;
}

function describe(exit: ExitOutcome): string {
  if (exit.error !== undefined) return `could not start: ${exit.error.message}`;
  if (exit.signal !== null) return `killed by ${exit.signal}`;
  return `exited with code ${String(exit.code)}`;
}

/** Tracks one service's exits and decides, for each, what happens next. */
export class RestartTracker {
  readonly policy: RestartPolicy;
  readonly options: Required<RestartOptions>;
  #consecutiveFailures = 0;
  /** The restarted exits still inside the crash-loop window, oldest first. */
  #exits: { readonly at: number; readonly failed: boolean }[] = [];
  #gaveUp: string | undefined;

  constructor(policy: RestartPolicy, options: RestartOptions = {}) {
    const problems = validateRestartOptions(options);
    if (!isRestartPolicy(policy)) {
      problems.unshift(
        `unknown restart policy '${String(policy)}' (use ${RESTART_POLICIES.join(', ')})`,
      );
    }
    if (problems.length > 0) throw new InvalidRestartOptionsError(problems);
    this.policy = policy;
    this.options = { ...DEFAULT_RESTART_OPTIONS, ...options };
  }

  /** Quick exits in a row (failures, and clean exits under 'always') since the last stable run. */
  get consecutiveFailures(): number {
    return this.#consecutiveFailures;
  }

  /** Set once a crash loop was detected, until reset(). */
  get givenUpReason(): string | undefined {
    return this.#gaveUp;
  }

  /** Forgets the history: a restart requested by a person starts afresh. */
  reset(): void {
    this.#consecutiveFailures = 0;
    this.#exits = [];
    this.#gaveUp = undefined;
  }

  /** `now` is any monotonic time in milliseconds (the same clock each call). */
  decide(exit: ExitOutcome, now: number): RestartDecision {
    if (exit.stopped) return { action: 'stop', state: 'complete' };
    if (this.#gaveUp !== undefined) return { action: 'give-up', reason: this.#gaveUp };
    const failed = isFailure(exit);
    if (this.policy === 'never') {
      return { action: 'stop', state: exit.error !== undefined ? 'failed' : 'complete' };
    }
    if (!failed && this.policy !== 'always') return { action: 'stop', state: 'complete' };

    const o = this.options;
    const stable = exit.durationMs >= o.stableAfterMs;
    if (stable) this.#consecutiveFailures = 0;
    this.#exits.push({ at: now, failed });
    const windowStart = now - o.crashLoopWindowMs;
    while (this.#exits.length > 0 && this.#exits[0]!.at <= windowStart) this.#exits.shift();
    if (this.#exits.length >= o.crashLoopFailures) {
      const what = this.#exits.every((e) => e.failed) ? 'failures' : 'exits';
      this.#gaveUp =
        `crash loop: ${this.#exits.length} ${what} within ${o.crashLoopWindowMs / 1000} s ` +
        `(last: ${describe(exit)}); restart it on request once fixed`;
      return { action: 'give-up', reason: this.#gaveUp };
    }
    if (!failed && stable) {
      return { action: 'restart', delayMs: o.cleanRestartDelayMs, scope: 'process' };
    }
    this.#consecutiveFailures++;
    const delayMs = Math.min(
      o.initialBackoffMs * o.backoffFactor ** (this.#consecutiveFailures - 1),
      o.maxBackoffMs,
    );
    // A clean exit restarts only its own process, whatever the policy's scope.
    const scope = failed && this.policy === 'all' ? 'service' : 'process';
    return { action: 'restart', delayMs, scope };
  }
}
