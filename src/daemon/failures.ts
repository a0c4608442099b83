// The failure collector: every current failure in `$config`, for `limen status`
// and the daemon log. Owners declare the shapes of their failure assertions as
// `<failure-shape PATTERN>` (docs/vocabulary.md, "Failures"); the collector
// follows every declared shape, so a new driver's failures show up here without
// any change to this file or to status.
//
// Invariants: a value matched by several shapes is one failure (read through
// the first shape that matched it). The log follows the set of failures, not
// the assertion traffic: it is compared once the turns that changed it have run
// (a value that goes and comes back in between is not logged), each new failure
// is logged once when it appears, and "KIND fixed" once when the last failure of
// that kind and subject goes; so one error replacing another (a file fixed
// differently wrong) logs the new error, not "fixed". Both the status list and
// the log lines are bounded (a shape that matches thousands of values, or a
// message of megabytes, costs a summary line, not a flood).

import { Dict, Record, ValueMap, peel, record, sym, type Value } from '../preserves/index.ts';
import {
  declareFailures,
  anyRecord,
  P,
  compilePattern,
  during,
  type Facet,
  type Pattern,
  type Ref,
  type Handle,
} from '../dataspace/index.ts';
import { plainText } from '../script/index.ts';
import type { DaemonLog } from './log.ts';

export type FailureLevel = 'warn' | 'error';

/** One current failure, as `limen status` lists it. */
export interface Failure {
  /** The assertion itself. */
  readonly assertion: Value;
  /** The record's label, qualified by the fields the shape pins (`ip-address-state failed`). */
  readonly kind: string;
  /** What it is about: the fields that are neither pinned nor the message (`""` if none). */
  readonly subject: string;
  /** The last field: a string, or a dictionary's `message`. */
  readonly message: string;
  /** One readable line: `PATH:LINE:COL: MESSAGE`, `SUBJECT: MESSAGE` or `MESSAGE`. */
  readonly text: string;
  /** `warn` for a kind ending in `-warning`, `error` for every other. */
  readonly level: FailureLevel;
  /** When it appeared (ms since the epoch). */
  readonly since: number;
  /** The line and column of a `{line: L column: C message: M}` detail. */
  readonly line?: number;
  readonly column?: number;
}

export interface FailureCollectorOptions {
  readonly config: Ref;
  readonly logger: DaemonLog;
  readonly now?: () => number;
}

export interface FailureCollector {
  /** The current failures, sorted by kind, subject and text. */
  current(): Failure[];
  /** Stops following and logging (at shutdown: owners going away is not a fix). */
  stop(): void;
}

/** The longest text kept of a message, subject or assertion (status and log alike). */
export const FAILURE_TEXT_LIMIT = 2000;
/** Appearances logged per kind and subject in one comparison; the rest are counted. */
const LOG_PER_SUBJECT = 20;
/** Appearances logged in one comparison in all; the rest are counted. */
const LOG_PER_ROUND = 200;

/** What the collector asserts for each current failure (docs/vocabulary.md, "Failures"). */
export const CURRENT_FAILURE = 'current-failure';

/** The collector's own shape: a `<failure-shape P>` whose P is not a pattern. */
const SHAPE_ERROR = 'failure-shape-error';

function clip(s: string): string {
  return s.length <= FAILURE_TEXT_LIMIT ? s : `${s.slice(0, FAILURE_TEXT_LIMIT)}…`;
}

/** A literal (possibly captured) in the shape: that field says what kind, not what about. */
function pinned(p: Pattern | undefined): Value | undefined {
  if (p === undefined) return undefined;
  if (p.type === 'literal') return p.value;
  if (p.type === 'capture') return pinned(p.pattern);
  return undefined;
}

function dictGet(d: Dict, key: string): Value | undefined {
  const v = d.get(sym(key));
  return v === undefined ? undefined : peel(v);
}

/** Reads a failure assertion through the shape that matched it. */
export function describeFailure(value: Value, shape: Pattern, since: number): Failure {
  const v = peel(value);
  const base = { assertion: value, since };
  if (!(v instanceof Record)) {
    const t = clip(plainText(v));
    return { ...base, kind: 'failure', subject: '', message: t, text: t, level: 'error' };
  }
  const shapeFields = shape.type === 'record' ? shape.fields : [];
  const kindParts = [plainText(v.label)];
  const subjectParts: string[] = [];
  const fields = v.fields;
  const last = fields.length - 1;
  const lastIsMessage = last >= 0 && pinned(shapeFields[last]) === undefined;
  fields.forEach((f, i) => {
    const lit = pinned(shapeFields[i]);
    if (lit !== undefined) kindParts.push(plainText(lit));
    else if (!(i === last && lastIsMessage)) subjectParts.push(plainText(f));
  });
  const kind = clip(kindParts.join(' '));
  const subject = clip(subjectParts.join(' '));
  const level: FailureLevel = plainText(v.label).endsWith('-warning') ? 'warn' : 'error';
  let message = '';
  let line: number | undefined;
  let column: number | undefined;
  if (lastIsMessage) {
    const m = peel(fields[last]!);
    if (m instanceof Dict) {
      const inner = dictGet(m, 'message');
      message = inner === undefined ? plainText(m) : plainText(inner);
      const l = dictGet(m, 'line');
      const c = dictGet(m, 'column');
      if (typeof l === 'number' && typeof c === 'number') {
        line = l;
        column = c;
      }
    } else message = plainText(m);
  }
  message = clip(message);
  const where = line === undefined ? subject : `${subject}:${line}:${column}`;
  const readable = where === '' ? message || kind : message === '' ? where : `${where}: ${message}`;
  return {
    ...base,
    kind,
    subject,
    message,
    text: readable,
    level,
    ...(line === undefined ? {} : { line, column: column! }),
  };
}

interface Entry {
  failure: Failure;
  /** How many declared shapes match it now. */
  shapes: number;
}

const groupOf = (f: Failure): string => `${f.kind}\u0000${f.subject}`;

function compareFailures(a: Failure, b: Failure): number {
  return (
    (a.kind < b.kind ? -1 : a.kind > b.kind ? 1 : 0) ||
    (a.subject < b.subject ? -1 : a.subject > b.subject ? 1 : 0) ||
    (a.text < b.text ? -1 : a.text > b.text ? 1 : 0)
  );
}

export function startFailureCollector(
  parent: Facet,
  opts: FailureCollectorOptions,
): FailureCollector {
  const { config, logger } = opts;
  const now = opts.now ?? Date.now;
  /** Every value some declared shape matches now. */
  const live = new ValueMap<Entry>();
  /** Live failures per kind and subject: a group is fixed when its count is 0. */
  const groups = new Map<string, number>();
  /** The failures the log has reported (appeared and not yet gone, as last compared). */
  const logged = new ValueMap<Failure>();
  /** Values added or removed since the last comparison. */
  let touched = new ValueMap<true>();
  let pending: NodeJS.Immediate | undefined;
  let stopped = false;
  /** `<current-failure {…}>` asserted for each logged failure, for watchers (the web page). */
  const published = new ValueMap<Handle>();

  const add = (v: Value, shape: Pattern) => {
    const e = live.get(v);
    if (e !== undefined) {
      e.shapes++;
      return;
    }
    const failure = describeFailure(v, shape, now());
    live.set(v, { failure, shapes: 1 });
    const g = groupOf(failure);
    groups.set(g, (groups.get(g) ?? 0) + 1);
    touch(v);
  };

  const remove = (v: Value) => {
    const e = live.get(v);
    if (e === undefined || --e.shapes > 0) return;
    live.delete(v);
    const g = groupOf(e.failure);
    const n = (groups.get(g) ?? 1) - 1;
    if (n === 0) groups.delete(g);
    else groups.set(g, n);
    touch(v);
  };

  // Compared after the turns that caused the change (and those they cause) have run:
  // a failure replaced in a later turn of the same burst is a replacement, not a fix.
  const touch = (v: Value) => {
    touched.set(v, true);
    if (pending === undefined && !stopped) pending = setImmediate(compare);
  };

  const compare = () => {
    pending = undefined;
    if (stopped) return;
    const changed = touched;
    touched = new ValueMap<true>();
    const perGroup = new Map<string, number>();
    const suppressed = new Map<string, { failure: Failure; count: number }>();
    let shown = 0;
    let overflow = 0;
    const fixed = new Map<string, Failure>();
    for (const [v] of changed) {
      const e = live.get(v);
      const was = logged.get(v);
      if (e !== undefined && was === undefined) {
        const f = e.failure;
        logged.set(v, f);
        publish(v, f);
        const g = groupOf(f);
        const n = perGroup.get(g) ?? 0;
        perGroup.set(g, n + 1);
        if (n >= LOG_PER_SUBJECT) {
          const s = suppressed.get(g);
          if (s === undefined) suppressed.set(g, { failure: f, count: 1 });
          else s.count++;
        } else if (shown >= LOG_PER_ROUND) overflow++;
        else {
          shown++;
          logger.log(f.level, f.kind, fieldsOf(f));
        }
      } else if (e === undefined && was !== undefined) {
        logged.delete(v);
        publish(v, undefined);
        const g = groupOf(was);
        if (!groups.has(g)) fixed.set(g, was);
      }
    }
    for (const { failure: f, count } of suppressed.values())
      logger.log(f.level, `${f.kind}: ${count} more`, subjectField(f));
    if (overflow > 0) logger.error(`${overflow} more failures (limen status lists them)`);
    for (const f of fixed.values()) logger.info(`${f.kind} fixed`, subjectField(f));
  };

  // In a turn of the collector's facet: compare runs from setImmediate.
  const publish = (v: Value, f: Failure | undefined) => {
    // `facet` (below) exists by then: compare runs from setImmediate.
    const at = facet;
    at.turn(() => {
      const h = published.get(v);
      if (f === undefined) {
        if (h !== undefined) at.retract(h);
        published.delete(v);
      } else if (h === undefined) {
        published.set(v, at.assert(config, record(CURRENT_FAILURE, failureValue(f))));
      }
    });
  };

  const facet = parent.spawn((f) => {
    f.onStop(() => {
      stopped = true;
      if (pending !== undefined) clearImmediate(pending);
      pending = undefined;
    });
    // The collector's own failures: a declaration that is not a pattern.
    declareFailures(f, config, anyRecord(SHAPE_ERROR, 2));
    during(
      f,
      config,
      P.rec('failure-shape', P.bind('shape')),
      (child, c) => {
        const declared = c.get('shape')!;
        let shape: Pattern;
        try {
          shape = compilePattern(declared);
        } catch (e) {
          const message = e instanceof Error ? e.message : String(e);
          child.assert(config, record(SHAPE_ERROR, declared, `not a pattern: ${message}`));
          return;
        }
        // What this shape matches now: given back when the declaration goes.
        const mine = new ValueMap<true>();
        child.observe(
          config,
          shape,
          {
            onAdd: (v) => {
              mine.set(v, true);
              add(v, shape);
            },
            onRemove: (v) => {
              if (!mine.delete(v)) return;
              remove(v);
            },
          },
          `failures: ${plainText(declared)}`,
        );
        child.onStop(() => {
          if (stopped) return;
          for (const [v] of mine) remove(v);
          mine.clear();
        });
      },
      'failures',
    );
  }, 'failures');

  return {
    current() {
      const out = [...live].map(([, e]) => e.failure);
      out.sort(compareFailures);
      return out;
    },
    stop() {
      facet.stop();
    },
  };
}

function subjectField(f: Failure): { [k: string]: unknown } {
  return f.subject === '' ? {} : { subject: f.subject };
}

function fieldsOf(f: Failure): { [k: string]: unknown } {
  return {
    ...subjectField(f),
    ...(f.line === undefined ? {} : { line: f.line, column: f.column }),
    message: f.message,
  };
}

/** A failure as the status dictionary carries it (plain values: `--json` is plain JSON). */
export function failureValue(f: Failure): Value {
  const entries: [Value, Value][] = [
    [sym('kind'), f.kind],
    [sym('subject'), f.subject],
    [sym('message'), f.message],
    [sym('text'), f.text],
    [sym('level'), f.level],
    [sym('since'), new Date(f.since).toISOString()],
    [sym('assertion'), clip(plainText(f.assertion))],
  ];
  return new Dict(entries);
}
