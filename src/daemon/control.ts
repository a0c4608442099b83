// Wires the control server to the daemon: adapts the supervisor to the
// control layer's ServiceView (control never imports the supervisor), and
// builds the `limen status` summary from the dataspaces and the failure collector.

import { dict, is, type Value } from '../preserves/index.ts';
import { P, type Dataspace } from '../dataspace/index.ts';
import type { ServiceDetail, ServiceInfo, ServiceView } from '../control/index.ts';
import { describeExit } from '../supervisor/process-runner.ts';
import type { ServiceStatus, Supervisor } from '../supervisor/supervisor.ts';
import { plainText } from '../script/index.ts';
import { failureValue, type Failure } from './failures.ts';

function info(s: ServiceStatus): ServiceInfo {
  return {
    service: s.service,
    state: s.state,
    pids: s.pids,
    restarts: s.restarts,
    since: s.since,
    ...(s.lastExit === undefined ? {} : { lastExit: describeExit(s.lastExit) }),
    ...(s.failure === undefined ? {} : { failure: s.failure }),
  };
}

export function serviceView(sup: Supervisor): ServiceView {
  return {
    list: () => sup.services().map(info),
    detail(v: Value): ServiceDetail | undefined {
      const s = sup.services().find((x) => is(x.service, v));
      if (s === undefined) return undefined;
      return {
        ...info(s),
        outputsDir: s.outputsDir,
        processes: s.processes.map((p) => ({
          spec: p.spec,
          state: p.state,
          pid: p.pid,
          restarts: p.restarts,
          ...(p.lastExit === undefined ? {} : { lastExit: describeExit(p.lastExit) }),
          problems: p.problems,
          ...(p.failure === undefined ? {} : { failure: p.failure }),
          ...(p.where === undefined ? {} : { where: p.where }),
        })),
      };
    },
    logs: (v) => sup.logs(v),
  };
}

export interface StatusSources {
  readonly version: string;
  readonly startedAt: number;
  readonly config: Dataspace;
  readonly supervisor: Supervisor;
  readonly socket: string;
  /** How service processes are tracked, and where (process-tracking.ts). */
  readonly processTracking?: string;
  /** The current failures (failures.ts). */
  readonly failures: () => readonly Failure[];
  /** The configuration generation running, in words (docs/safe-change.md). */
  readonly configuration?: string | undefined;
  /** Why maintenance mode is on; undefined when it is off. */
  readonly maintenance?: string | undefined;
  /** The trial running, if one is (its token is never shown). */
  readonly trial?: { generation: number; previous: number; deadline: number } | undefined;
}

/** At most this many failures are listed; `failures-omitted` counts the rest. */
export const STATUS_FAILURE_LIMIT = 100;

/** The daemon's summary for `limen status`: a dictionary of plain values. */
export function daemonStatus(s: StatusSources): Value {
  const services = s.supervisor.services();
  const count = (state: string) => services.filter((x) => x.state === state).length;
  const milestones = s.config
    .query(P.rec('service-state', P.rec('milestone', P.bind('m')), P.bind('state')))
    .map((r) => `${plainText(r.captures.get('m')!)} ${plainText(r.captures.get('state')!)}`)
    .filter((m) => !m.endsWith(' ready'))
    .sort();
  const failures = s.failures();
  const listed = failures.slice(0, STATUS_FAILURE_LIMIT).map(failureValue);
  return dict({
    version: s.version,
    pid: process.pid,
    uptime: `${Math.round((Date.now() - s.startedAt) / 1000)}s`,
    socket: s.socket,
    services: `${services.length} (${count('ready')} ready, ${count('started')} started, ${count('complete')} complete, ${count('failed')} failed)`,
    milestones: milestones.length === 0 ? 'none' : milestones.join(', '),
    'process-tracking': s.processTracking ?? 'unknown',
    ...(s.configuration === undefined ? {} : { configuration: s.configuration }),
    // For a client that did not start the trial (a page loaded again): what runs and
    // until when, so that it can show the countdown and roll it back.
    ...(s.trial === undefined
      ? {}
      : {
          trial: dict({
            generation: s.trial.generation,
            previous: s.trial.previous,
            deadline: new Date(s.trial.deadline).toISOString(),
          }),
        }),
    ...(s.maintenance === undefined
      ? {}
      : {
          maintenance: `ON: ${s.maintenance} (only the recovery bundle runs; limen maintenance off)`,
        }),
    failures: listed,
    ...(failures.length > listed.length
      ? { 'failures-omitted': failures.length - listed.length }
      : {}),
  });
}
