// Plans (docs/safe-change.md, "A plan before applying"): what a change of
// configuration does, in the daemon's own terms. A configuration is evaluated
// (src/daemon/plan.ts runs it in a sandbox with the drivers that only assert) into
// an Evaluation: what would be asserted in $config, and which services would run
// with which spec; two evaluations compare into a Plan: assertions that appear and
// disappear, and services that start, stop or restart (a daemon whose spec
// changed restarts, as the supervisor does).
//
// What says how things run rather than what the configuration asks (service
// states, outputs, the daemon's own paths) is left out: it is the same in both
// evaluations, or a consequence shown as a start or stop.

import {
  Dict,
  Record,
  Sym,
  ValueMap,
  is,
  peel,
  stringify,
  type Value,
} from '../preserves/index.ts';
import { presentable } from '../script/index.ts';

/** Labels of assertions that are runtime state or the daemon's own, not configuration. */
const RUNTIME_LABELS: ReadonlySet<string> = new Set([
  'service-state',
  'service-process',
  'run-service',
  'output',
  'failure-shape',
  'limen-paths',
  'site-config-dir',
  'maintenance',
  'ip-address-state',
  'ip-route-state',
]);

/** Services that only load configuration: their starts and stops are not the change. */
const LOADERS: ReadonlySet<string> = new Set(['config-watcher', 'boot-layer']);

export interface PlannedService {
  readonly service: Value;
  /** The `<daemon ID SPEC>` spec of a daemon, as shown; undefined for other services. */
  readonly spec: Value | undefined;
}

/** One configuration as it would run. */
export interface Evaluation {
  /** The configuration's assertions in $config, live references described. */
  readonly assertions: ValueMap<true>;
  /** The services that would run (`<run-service S>`), loaders left out. */
  readonly services: ValueMap<PlannedService>;
}

function labelOf(v: Value): string | undefined {
  const r = peel(v);
  if (!(r instanceof Record)) return undefined;
  const l = peel(r.label);
  return l instanceof Sym ? l.name : undefined;
}

/** Reads an evaluation from everything asserted in a sandbox's $config. */
export function evaluationOf(values: Iterable<Value>): Evaluation {
  const assertions = new ValueMap<true>();
  const running: Value[] = [];
  const specs = new ValueMap<Value>();
  for (const raw of values) {
    const v = presentable(raw);
    const label = labelOf(v);
    if (label === 'run-service') running.push((peel(v) as Record).fields[0]!);
    if (label === 'daemon') {
      const r = peel(v) as Record;
      if (r.fields.length === 2) specs.set(presentable(r.fields[0]!), r.fields[1]!);
    }
    if (label !== undefined && RUNTIME_LABELS.has(label)) continue;
    assertions.set(v, true);
  }
  const services = new ValueMap<PlannedService>();
  for (const s of running) {
    const kind = labelOf(s);
    if (kind !== undefined && LOADERS.has(kind)) continue;
    const id = kind === 'daemon' ? (peel(s) as Record).fields[0] : undefined;
    services.set(s, { service: s, spec: id === undefined ? undefined : specs.get(id) });
  }
  return { assertions, services };
}

/** One field of a daemon's spec that differs. */
export interface SpecChange {
  readonly key: string;
  readonly from: Value | undefined;
  readonly to: Value | undefined;
}

export interface Restart {
  readonly service: Value;
  readonly changes: readonly SpecChange[];
}

export interface Plan {
  readonly appear: readonly Value[];
  readonly disappear: readonly Value[];
  readonly start: readonly Value[];
  readonly stop: readonly Value[];
  readonly restart: readonly Restart[];
}

function sorted(values: Iterable<Value>): Value[] {
  return [...values]
    .map((v) => [stringify(v), v] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([, v]) => v);
}

/** The keys of two specs whose values differ (a spec that is not a dictionary: one change). */
export function specChanges(from: Value | undefined, to: Value | undefined): SpecChange[] {
  const a = from === undefined ? undefined : peel(from);
  const b = to === undefined ? undefined : peel(to);
  if (!(a instanceof Dict) || !(b instanceof Dict)) {
    if (from === undefined ? to === undefined : to !== undefined && is(from, to)) return [];
    return [{ key: 'spec', from, to }];
  }
  const keys = new ValueMap<true>();
  for (const [k] of a) keys.set(k, true);
  for (const [k] of b) keys.set(k, true);
  const out: SpecChange[] = [];
  for (const k of sorted([...keys].map(([k]) => k))) {
    const x = a.get(k);
    const y = b.get(k);
    if (x !== undefined && y !== undefined && is(x, y)) continue;
    const key = peel(k);
    out.push({ key: key instanceof Sym ? key.name : stringify(k), from: x, to: y });
  }
  return out;
}

/** What going from `before` to `after` does. */
export function comparePlans(before: Evaluation, after: Evaluation): Plan {
  const appear = [...after.assertions].filter(([v]) => !before.assertions.has(v)).map(([v]) => v);
  const disappear = [...before.assertions]
    .filter(([v]) => !after.assertions.has(v))
    .map(([v]) => v);
  const start: Value[] = [];
  const restart: Restart[] = [];
  for (const [s, next] of after.services) {
    const prev = before.services.get(s);
    if (prev === undefined) start.push(s);
    else {
      const changes = specChanges(prev.spec, next.spec);
      if (changes.length > 0) restart.push({ service: s, changes });
    }
  }
  const stop = [...before.services].filter(([s]) => !after.services.has(s)).map(([s]) => s);
  const order = new Map(sorted(restart.map((r) => r.service)).map((s, i) => [s, i]));
  return {
    appear: sorted(appear),
    disappear: sorted(disappear),
    start: sorted(start),
    stop: sorted(stop),
    restart: restart.sort((x, y) => order.get(x.service)! - order.get(y.service)!),
  };
}

/** True when the plan changes nothing. */
export function isEmptyPlan(p: Plan): boolean {
  return (
    p.appear.length + p.disappear.length + p.start.length + p.stop.length + p.restart.length === 0
  );
}
