// `<service-process S INFO>`: what the supervisor knows of a service's processes
// (PIDs, restarts, last start and exit), as an assertion in $config, so that a
// watch follows them instead of polling `limen services`.
//
// Invariants: the record is built from facts alone (no clock reads), so that the
// same facts give the same value and the supervisor replaces it only on a change;
// it stays small: at most MAX_PIDS PIDs, and a start error's message shortened.

import { dict, record, sym, type Value } from '../preserves/index.ts';
import type { ExitInfo } from './process-runner.ts';
import { rfc3339 } from './service-names.ts';

/** PIDs listed at most; `pidCount` says how many there were when more. */
export const MAX_PIDS = 64;
/** Characters of a start error's message kept in `lastExit.error`. */
export const MAX_ERROR_CHARS = 200;

export interface ServiceProcessFacts {
  /** The main PID of each running process of the service, in spec order. */
  readonly pids: readonly number[];
  /** Restarts of its processes since the service started (summed). */
  readonly restarts: number;
  /** Wall-clock ms when the most recent of its running processes started. */
  readonly started: number | undefined;
  /** The last exit of one of its processes, and its wall-clock ms. */
  readonly lastExit: { readonly exit: ExitInfo; readonly at: number } | undefined;
}

/**
 * `<service-process S {pids: [P …] restarts: N started: T lastExit: {…}}>`:
 * `started` and `lastExit` only when known; `pidCount` only when more than
 * MAX_PIDS PIDs were left out.
 */
export function serviceProcessRecord(service: Value, facts: ServiceProcessFacts): Value {
  const info: { [k: string]: Value } = {
    pids: facts.pids.slice(0, MAX_PIDS),
    restarts: facts.restarts,
  };
  if (facts.pids.length > MAX_PIDS) info['pidCount'] = facts.pids.length;
  if (facts.started !== undefined) info['started'] = rfc3339(facts.started);
  if (facts.lastExit !== undefined)
    info['lastExit'] = exitValue(facts.lastExit.exit, facts.lastExit.at);
  return record('service-process', service, dict(info));
}

/** `{pid: P code: C at: T}` or `{pid: P signal: SIGKILL at: T}`; `stopped: #t` when asked to stop. */
function exitValue(exit: ExitInfo, at: number): Value {
  const d: { [k: string]: Value } = { at: rfc3339(at) };
  if (exit.pid !== null) d['pid'] = exit.pid;
  if (exit.code !== null) d['code'] = exit.code;
  if (exit.signal !== null) d['signal'] = sym(exit.signal);
  if (exit.error !== undefined) {
    const m = exit.error.message;
    d['error'] = m.length > MAX_ERROR_CHARS ? `${m.slice(0, MAX_ERROR_CHARS - 3)}...` : m;
  }
  if (exit.stopped) d['stopped'] = true;
  if (exit.forced) d['forced'] = true;
  return dict(d);
}
