// Reads the SPEC of `<daemon ID SPEC>` into a DaemonSpec: a string (`sh -c`), an
// argv sequence, `<one-shot CMD>`, or the dictionary form. Pure. Every problem
// is collected and reported together (never just the first), each saying where
// (the key, and the source position when the value has one) and what to do.
//
// Decisions (Synit's externalServices schema, plus limen's keys):
// - `<one-shot CMD>` is `{argv: CMD readyOnStart: #f restart: on-error}`: it is
//   never "ready", it is `complete` once it exits 0, and restarted if it fails.
// - `env` maps string or symbol names to strings; `#f` removes an inherited variable.
// - `stopTimeout` is an integer number of milliseconds (a double is refused, so
//   that `5.0` cannot silently mean 5 ms); `stopSignal` is a symbol, SIGHUP or HUP.
// - `readiness: <notification-fd N>` makes the process ready when it writes a
//   newline to fd N; it conflicts with an explicit `readyOnStart: #t`. Without
//   readiness, `readyOnStart: #f` means the process never reports ready itself.
// - `protocol: none` is the only protocol supported for now.

import { constants as osConstants } from 'node:os';
import { UserError } from '../base/errors.ts';
import {
  Dict,
  Double,
  Record,
  Sym,
  formatPosition,
  peel,
  positionOf,
  showValue,
  type Value,
} from '../preserves/index.ts';
import {
  validateProcessSpec,
  type ProcessSpec,
  type Readiness,
  type StopScope,
} from './process-runner.ts';
import { DEFAULT_RESTART_POLICY, RESTART_POLICIES, type RestartPolicy } from './restart-policy.ts';
import { nearestKey } from '../base/suggest.ts';

export type DaemonSpecForm = 'shell' | 'argv' | 'one-shot' | 'full';

/** A validated daemon spec: everything needed to run one process of a service. */
export interface DaemonSpec {
  /** Which of the SPEC forms it was written in. */
  readonly form: DaemonSpecForm;
  /** The program and its arguments (a shell command is `['sh', '-c', CMD]`). */
  readonly argv: readonly string[];
  readonly env: { readonly [name: string]: string };
  /** Inherited variables to remove (`env: {NAME: #f}`). */
  readonly unsetEnv: readonly string[];
  readonly clearEnv: boolean;
  readonly dir: string | undefined;
  readonly user: string | number | undefined;
  readonly group: string | number | undefined;
  readonly readiness: Readiness;
  readonly restart: RestartPolicy;
  readonly stopSignal: NodeJS.Signals | undefined;
  readonly stopTimeoutMs: number | undefined;
  /** Whom stop() signals first: every process (`all`, the default) or the main one. */
  readonly stopScope: StopScope | undefined;
}

/** One thing wrong with a spec; `key` is the dictionary key it concerns, if any. */
export interface DaemonSpecProblem {
  readonly key: string | undefined;
  /** Complete and self-contained: position and key included. */
  readonly message: string;
}

export type DaemonSpecResult =
  | { readonly ok: true; readonly spec: DaemonSpec }
  | { readonly ok: false; readonly problems: readonly DaemonSpecProblem[] };

/** A spec that cannot be run; carries every problem found. */
export class InvalidDaemonSpecError extends UserError {
  readonly code = 'LIMEN_DAEMON_INVALID_SPEC';
  readonly problems: readonly DaemonSpecProblem[];
  constructor(problems: readonly DaemonSpecProblem[]) {
    super(`invalid daemon spec: ${problems.map((p) => p.message).join('; ')}`);
    this.problems = problems;
  }
}

export const DAEMON_SPEC_KEYS = [
  'argv',
  'env',
  'dir',
  'clearEnv',
  'readyOnStart',
  'restart',
  'protocol',
  'readiness',
  'stopTimeout',
  'stopSignal',
  'stopScope',
  'user',
  'group',
] as const;
export type DaemonSpecKey = (typeof DAEMON_SPEC_KEYS)[number];

const USAGE =
  'a daemon spec is a string (run with sh -c), a sequence of strings (program and arguments), ' +
  '<one-shot CMD>, or a dictionary {argv: … env: … dir: … restart: … …}';
const MAX_NOTIFICATION_FD = 255;
/** A day: anything longer is surely a mistake in units. */
const MAX_STOP_TIMEOUT_MS = 86_400_000;

/** Throws InvalidDaemonSpecError listing every problem. */
export function parseDaemonSpec(value: Value): DaemonSpec {
  const r = checkDaemonSpec(value);
  if (!r.ok) throw new InvalidDaemonSpecError(r.problems);
  return r.spec;
}

/** The spec, or every problem with it. */
export function checkDaemonSpec(value: Value): DaemonSpecResult {
  const c = new Checker();
  const spec = c.spec(value);
  if (spec !== undefined) {
    // Whatever the process layer would still refuse (NUL bytes, say) is a problem here.
    for (const p of validateProcessSpec(toProcessSpec(spec))) c.problem(value, undefined, p);
  }
  if (c.problems.length > 0 || spec === undefined) return { ok: false, problems: c.problems };
  return { ok: true, spec };
}

/** The ProcessSpec to run a DaemonSpec with. */
export function toProcessSpec(
  spec: DaemonSpec,
  extra: { readonly outputsDir?: string; readonly env?: { readonly [name: string]: string } } = {},
): ProcessSpec {
  return {
    argv: spec.argv,
    env: { ...spec.env, ...extra.env },
    unsetEnv: spec.unsetEnv,
    clearEnv: spec.clearEnv,
    readiness: spec.readiness,
    ...(spec.dir !== undefined ? { dir: spec.dir } : {}),
    ...(spec.user !== undefined ? { user: spec.user } : {}),
    ...(spec.group !== undefined ? { group: spec.group } : {}),
    ...(spec.stopSignal !== undefined ? { stopSignal: spec.stopSignal } : {}),
    ...(spec.stopScope !== undefined ? { stopScope: spec.stopScope } : {}),
    ...(spec.stopTimeoutMs !== undefined ? { stopTimeoutMs: spec.stopTimeoutMs } : {}),
    ...(extra.outputsDir !== undefined ? { outputsDir: extra.outputsDir } : {}),
  };
}

function describeKind(v: Value): string {
  const x = peel(v);
  if (typeof x === 'string') return `the string ${showValue(x)}`;
  if (typeof x === 'boolean') return x ? '#t' : '#f';
  if (typeof x === 'number' || typeof x === 'bigint') return `the integer ${String(x)}`;
  if (x instanceof Double) return `the double ${showValue(x)}`;
  if (x instanceof Sym) return `the symbol ${showValue(x)}`;
  if (Array.isArray(x)) return `the sequence ${showValue(x)}`;
  if (x instanceof Record) return `the record ${showValue(x)}`;
  if (x instanceof Dict) return `the dictionary ${showValue(x)}`;
  return showValue(x);
}

function signalName(name: string): NodeJS.Signals | undefined {
  const full = name.startsWith('SIG') ? name : `SIG${name}`;
  return full in osConstants.signals ? (full as NodeJS.Signals) : undefined;
}

interface Command {
  readonly argv: readonly string[];
  readonly form: 'shell' | 'argv';
}

class Checker {
  readonly problems: DaemonSpecProblem[] = [];

  problem(at: Value, key: string | undefined, message: string): void {
    const pos = positionOf(at);
    const where = pos === undefined ? '' : `${formatPosition(pos)}: `;
    this.problems.push({
      key,
      message: `${where}${key === undefined ? '' : `${key}: `}${message}`,
    });
  }

  spec(value: Value): DaemonSpec | undefined {
    const v = peel(value);
    if (typeof v === 'string' || Array.isArray(v)) {
      const cmd = this.command(value, undefined);
      return cmd === undefined
        ? undefined
        : simple(cmd.form, cmd.argv, true, DEFAULT_RESTART_POLICY);
    }
    if (v instanceof Record) {
      const label = peel(v.label);
      if (label instanceof Sym && label.name === 'one-shot') {
        if (v.fields.length !== 1) {
          this.problem(
            value,
            undefined,
            `<one-shot CMD> takes one field, found ${v.fields.length}`,
          );
          return undefined;
        }
        const inner = v.fields[0]!;
        if (peel(inner) instanceof Dict) {
          this.problem(
            inner,
            undefined,
            '<one-shot CMD> takes a string or an argv sequence; for more options use the ' +
              'dictionary form with readyOnStart: #f restart: on-error',
          );
          return undefined;
        }
        const cmd = this.command(inner, undefined);
        return cmd === undefined ? undefined : simple('one-shot', cmd.argv, false, 'on-error');
      }
      this.problem(value, undefined, `unknown spec ${showValue(v)}: ${USAGE}`);
      return undefined;
    }
    if (v instanceof Dict) return this.full(v);
    this.problem(value, undefined, `got ${describeKind(value)}: ${USAGE}`);
    return undefined;
  }

  command(value: Value, key: string | undefined): Command | undefined {
    const v = peel(value);
    if (typeof v === 'string') {
      if (v.trim() === '') {
        this.problem(value, key, 'the command is empty');
        return undefined;
      }
      return { argv: ['sh', '-c', v], form: 'shell' };
    }
    if (Array.isArray(v)) {
      const seq = v as readonly Value[];
      if (seq.length === 0) {
        this.problem(value, key, 'the argv sequence is empty: it needs at least the program');
        return undefined;
      }
      const argv: string[] = [];
      let ok = true;
      seq.forEach((item, i) => {
        const s = peel(item);
        if (typeof s === 'string') argv.push(s);
        else {
          ok = false;
          const hint = s instanceof Sym ? ` (write "${s.name}" in quotes)` : '';
          this.problem(
            item,
            key,
            `argv item ${i} must be a string, got ${describeKind(item)}${hint}`,
          );
        }
      });
      if (ok && argv[0] === '') {
        this.problem(value, key, 'the program (argv item 0) is empty');
        return undefined;
      }
      return ok ? { argv, form: 'argv' } : undefined;
    }
    this.problem(
      value,
      key,
      `expected a string (run with sh -c) or a sequence of strings, got ${describeKind(value)}`,
    );
    return undefined;
  }

  full(d: Dict): DaemonSpec | undefined {
    const entries = new Map<DaemonSpecKey, Value>();
    const known: readonly string[] = DAEMON_SPEC_KEYS;
    for (const [k, x] of d) {
      const key = peel(k);
      if (!(key instanceof Sym)) {
        const hint =
          typeof key === 'string' && known.includes(key) ? ` (write ${key}: without quotes)` : '';
        this.problem(k, undefined, `keys must be symbols, got ${describeKind(k)}${hint}`);
        continue;
      }
      if (!known.includes(key.name)) {
        const s = nearestKey(key.name, known);
        this.problem(
          k,
          undefined,
          `unknown key '${key.name}'` +
            (s !== undefined ? ` (did you mean '${s}'?)` : ` (known keys: ${known.join(', ')})`),
        );
        continue;
      }
      entries.set(key.name as DaemonSpecKey, x);
    }

    let argv: readonly string[] | undefined;
    const argvValue = entries.get('argv');
    if (argvValue === undefined) this.problem(d, undefined, "'argv' is missing: what should run?");
    else argv = this.command(argvValue, 'argv')?.argv;

    const env: { [name: string]: string } = {};
    const unsetEnv: string[] = [];
    const envValue = entries.get('env');
    if (envValue !== undefined) this.env(envValue, env, unsetEnv);

    const dir = this.optional(entries, 'dir', (v, at) => {
      if (typeof v === 'string' && v !== '') return v;
      this.problem(at, 'dir', `expected a non-empty string (a directory), got ${describeKind(at)}`);
      return undefined;
    });
    const clearEnv = this.optional(entries, 'clearEnv', (v, at) => this.bool(v, at, 'clearEnv'));
    const readyOnStart = this.optional(entries, 'readyOnStart', (v, at) =>
      this.bool(v, at, 'readyOnStart'),
    );
    const restart = this.optional(entries, 'restart', (v, at) => this.restart(v, at));
    this.optional(entries, 'protocol', (v, at) => this.protocol(v, at));
    const fd = this.optional(entries, 'readiness', (v, at) => this.readiness(v, at));
    const stopTimeoutMs = this.optional(entries, 'stopTimeout', (v, at) => this.stopTimeout(v, at));
    const stopSignal = this.optional(entries, 'stopSignal', (v, at) => this.stopSignal(v, at));
    const stopScope = this.optional(entries, 'stopScope', (v, at) => this.stopScope(v, at));
    const user = this.optional(entries, 'user', (v, at) => this.id(v, at, 'user'));
    const group = this.optional(entries, 'group', (v, at) => this.id(v, at, 'group'));

    if (readyOnStart === true && entries.has('readiness')) {
      this.problem(
        entries.get('readyOnStart')!,
        'readyOnStart',
        '#t conflicts with readiness: the process is ready when it says so; drop one of them',
      );
    }
    if (this.problems.length > 0 || argv === undefined) return undefined;
    const readiness: Readiness =
      fd !== undefined
        ? { kind: 'notification-fd', fd }
        : readyOnStart === false
          ? { kind: 'none' }
          : { kind: 'on-start' };
    return {
      form: 'full',
      argv,
      env,
      unsetEnv,
      clearEnv: clearEnv ?? false,
      dir,
      user,
      group,
      readiness,
      restart: restart ?? DEFAULT_RESTART_POLICY,
      stopSignal,
      stopTimeoutMs,
      stopScope,
    };
  }

  optional<T>(
    entries: ReadonlyMap<DaemonSpecKey, Value>,
    key: DaemonSpecKey,
    read: (v: Value, at: Value) => T | undefined,
  ): T | undefined {
    const at = entries.get(key);
    return at === undefined ? undefined : read(peel(at), at);
  }

  bool(v: Value, at: Value, key: string): boolean | undefined {
    if (typeof v === 'boolean') return v;
    this.problem(at, key, `expected #t or #f, got ${describeKind(at)}`);
    return undefined;
  }

  env(value: Value, env: { [name: string]: string }, unset: string[]): void {
    const d = peel(value);
    if (!(d instanceof Dict)) {
      this.problem(
        value,
        'env',
        `expected a dictionary {NAME: "value" …}, got ${describeKind(value)}`,
      );
      return;
    }
    for (const [k, x] of d) {
      const kv = peel(k);
      const name = kv instanceof Sym ? kv.name : typeof kv === 'string' ? kv : undefined;
      if (name === undefined) {
        this.problem(
          k,
          'env',
          `a variable name must be a string or a symbol, got ${describeKind(k)}`,
        );
        continue;
      }
      if (name === '' || name.includes('=') || name.includes('\0')) {
        this.problem(k, 'env', `bad variable name ${JSON.stringify(name)}`);
        continue;
      }
      const xv = peel(x);
      if (typeof xv === 'string') env[name] = xv;
      else if (xv === false) unset.push(name);
      else {
        this.problem(
          x,
          'env',
          `${name} must be a string (or #f to remove it), got ${describeKind(x)}`,
        );
      }
    }
  }

  restart(v: Value, at: Value): RestartPolicy | undefined {
    const names: readonly string[] = RESTART_POLICIES;
    if (v instanceof Sym && names.includes(v.name)) return v.name as RestartPolicy;
    const hint = typeof v === 'string' && names.includes(v) ? ` (write ${v} without quotes)` : '';
    this.problem(
      at,
      'restart',
      `expected one of ${RESTART_POLICIES.join(', ')}, got ${describeKind(at)}${hint}`,
    );
    return undefined;
  }

  protocol(v: Value, at: Value): 'none' | undefined {
    if (v instanceof Sym) {
      if (v.name === 'none') return 'none';
      if (v.name === 'application/syndicate' || v.name === 'text/syndicate') {
        this.problem(
          at,
          'protocol',
          `${v.name} is not supported yet: the only protocol for now is none`,
        );
        return undefined;
      }
    }
    this.problem(at, 'protocol', `expected none or application/syndicate, got ${describeKind(at)}`);
    return undefined;
  }

  readiness(v: Value, at: Value): number | undefined {
    const usage = `expected <notification-fd N> with N from 3 to ${MAX_NOTIFICATION_FD}`;
    if (
      v instanceof Record &&
      peel(v.label) instanceof Sym &&
      (peel(v.label) as Sym).name === 'notification-fd' &&
      v.fields.length === 1
    ) {
      const n = peel(v.fields[0]!);
      if (typeof n === 'number' && n >= 3 && n <= MAX_NOTIFICATION_FD) return n;
      this.problem(at, 'readiness', `${usage}, got ${describeKind(v.fields[0]!)}`);
      return undefined;
    }
    this.problem(at, 'readiness', `${usage}, got ${describeKind(at)}`);
    return undefined;
  }

  stopTimeout(v: Value, at: Value): number | undefined {
    if (typeof v === 'number' && v >= 0 && v <= MAX_STOP_TIMEOUT_MS) return v;
    if (v instanceof Double && Number.isFinite(v.value)) {
      this.problem(
        at,
        'stopTimeout',
        `is a whole number of milliseconds: write ${Math.round(v.value * 1000)} for ${v.value} seconds`,
      );
      return undefined;
    }
    this.problem(
      at,
      'stopTimeout',
      `expected milliseconds, an integer from 0 to ${MAX_STOP_TIMEOUT_MS}, got ${describeKind(at)}`,
    );
    return undefined;
  }

  stopSignal(v: Value, at: Value): NodeJS.Signals | undefined {
    const name = v instanceof Sym ? v.name : undefined;
    const signal = name === undefined ? undefined : signalName(name);
    if (signal !== undefined) return signal;
    const hint =
      typeof v === 'string' && signalName(v) !== undefined ? ` (write ${v} without quotes)` : '';
    this.problem(
      at,
      'stopSignal',
      `expected a signal name such as SIGTERM or HUP, got ${describeKind(at)}${hint}`,
    );
    return undefined;
  }

  stopScope(v: Value, at: Value): StopScope | undefined {
    if (v instanceof Sym && (v.name === 'all' || v.name === 'main')) return v.name;
    this.problem(at, 'stopScope', `expected all or main, got ${describeKind(at)}`);
    return undefined;
  }

  id(v: Value, at: Value, key: string): string | number | undefined {
    if (typeof v === 'string' && v !== '' && !v.includes(':') && !v.includes('\0')) return v;
    if (typeof v === 'number' && v >= 0) return v;
    this.problem(at, key, `expected a name (string) or a numeric id, got ${describeKind(at)}`);
    return undefined;
  }
}

function simple(
  form: DaemonSpecForm,
  argv: readonly string[],
  readyOnStart: boolean,
  restart: RestartPolicy,
): DaemonSpec {
  return {
    form,
    argv,
    env: {},
    unsetEnv: [],
    clearEnv: false,
    dir: undefined,
    user: undefined,
    group: undefined,
    readiness: readyOnStart ? { kind: 'on-start' } : { kind: 'none' },
    restart,
    stopSignal: undefined,
    stopScope: undefined,
    stopTimeoutMs: undefined,
  };
}
