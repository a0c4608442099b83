// `limen try`: a candidate site configuration applied as a trial, kept only when
// confirmed before its deadline (docs/safe-change.md, "Try, confirm, rollback").
//
// 1. The candidate (files for the first site root) is checked as `limen check`
//    would; any problem refuses it, and nothing is applied.
// 2. It is recorded as a generation in state `trial`, and trial.pr (generation,
//    previous confirmed generation, deadline, token hash) is written before any
//    file changes: a daemon killed from here on finds it at its next start and
//    puts the previous generation back before it loads anything.
// 3. Its files replace the site root's; the config watchers apply them.
// 4. Checks, every 200 ms after a settling second: every required service up (or
//    complete) and none failed; no failure that was not there before the trial
//    lasting 2 s. Passing for one second is "checks passed"; with auto-confirm
//    that confirms it.
// 5. `confirm TOKEN` keeps it; a failed check, or the deadline, rolls it back:
//    the previous confirmed generation's files are written back, and the trial's
//    generation is recorded as rolled back with the reason.
// A hand edit while a trial runs ends it (the edit wins: it is recorded as a
// generation of its own, made on top of the trial's files).

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../platform/atomic-file.ts';
import { Dict, Sym, parse, peel, stringify, sym } from '../preserves/index.ts';
import { P, type Dataspace, type Logger } from '../dataspace/index.ts';
import { compileScript, formatProblem, type ScriptProblem } from '../script/index.ts';
import {
  GenerationError,
  restoreFiles,
  snapshot,
  withRootFiles,
  type GenerationStore,
} from './generations.ts';
import type { GenerationRecorder } from './recorder.ts';

/** The bindings the site configuration's scripts are loaded with. */
const BINDINGS = ['config', 'machine', 'log'];

export const DEFAULT_TRIAL_TIMEOUT_MS = 120_000;
const SETTLE_MS = 1000;
const CHECK_EVERY_MS = 200;
const PASS_FOR_MS = 1000;
const NEW_FAILURE_FOR_MS = 2000;

export interface TrialRequest {
  /** Relative path → content: the candidate for the first site root. */
  readonly files: ReadonlyMap<string, Uint8Array>;
  /** How the candidate's files are named in messages (the client's directory). */
  readonly source: string;
  readonly timeoutMs: number;
  readonly message: string;
  readonly who: string;
  readonly autoConfirm: boolean;
  /** Progress, in words. */
  readonly onProgress: (text: string) => void;
  /** Told once the trial is recorded, before its files are applied: the token first. */
  readonly onStarted?: (t: { generation: number; token: string; deadline: number }) => void;
}

export interface TrialResult {
  readonly generation: number;
  /** The confirmed generation it went back to, or would have. */
  readonly previous: number;
  readonly confirmed: boolean;
  /** Files written back and removed by the rollback. */
  readonly written: number;
  readonly removed: number;
  /** Why it was rolled back. */
  readonly reason?: string | undefined;
}

export interface StartedTrial {
  readonly generation: number;
  readonly token: string;
  readonly deadline: number;
  /** Settles when the trial is confirmed or rolled back. */
  readonly done: Promise<TrialResult>;
}

export class CandidateError extends GenerationError {
  readonly problems: readonly ScriptProblem[];
  constructor(problems: readonly ScriptProblem[]) {
    super(
      `the candidate has ${problems.length} problem(s); nothing was applied:\n` +
        problems.map(formatProblem).join('\n'),
    );
    this.problems = problems;
  }
}

interface TrialRecord {
  readonly generation: number;
  readonly previous: number;
  readonly deadline: number;
  readonly tokenHash: string;
}

const hashToken = (token: string) => createHash('sha256').update(token).digest('hex');

async function readRecord(path: string): Promise<TrialRecord | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  const d = peel(parse(text));
  const get = (k: string) => (d instanceof Dict ? peel(d.get(sym(k)) ?? false) : false);
  const generation = get('generation');
  const previous = get('previous');
  if (typeof generation !== 'number' || typeof previous !== 'number')
    throw new GenerationError(`${path}: not a trial record`);
  const deadline = get('deadline');
  const tokenHash = get('token-hash');
  return {
    generation,
    previous,
    deadline: typeof deadline === 'number' ? deadline : 0,
    tokenHash: typeof tokenHash === 'string' ? tokenHash : '',
  };
}

/** Checks the candidate's scripts as `limen check` does; every problem, in file order. */
export function checkCandidate(
  files: ReadonlyMap<string, Uint8Array>,
  source: string,
): ScriptProblem[] {
  const problems: ScriptProblem[] = [];
  for (const [path, content] of [...files].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (!path.endsWith('.pr')) continue;
    const name = `${source}/${path}`;
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(content);
    } catch {
      problems.push({
        pos: { source: name, line: 0, column: 0, offset: 0 },
        message: 'not UTF-8 text',
      });
      continue;
    }
    problems.push(...compileScript(text, { source: name, names: BINDINGS }).problems);
  }
  return problems;
}

/**
 * The required services (`<require-service S>`) that are not up or complete yet,
 * and the first that failed, if any.
 */
export function requiredServices(config: Dataspace): { waiting: string[]; failed?: string } {
  const required = config
    .query(P.rec('require-service', P.bind('s')))
    .map((r) => r.captures.get('s')!);
  // A service has several states at once (ready, then up as well).
  const states = new Map<string, Set<string>>();
  for (const r of config.query(P.rec('service-state', P.bind('s'), P.bind('state')))) {
    const st = peel(r.captures.get('state')!);
    const key = stringify(r.captures.get('s')!);
    let set = states.get(key);
    if (set === undefined) states.set(key, (set = new Set()));
    set.add(st instanceof Sym ? st.name : stringify(st));
  }
  const waiting: string[] = [];
  for (const s of required) {
    const key = stringify(s);
    const st = states.get(key) ?? new Set<string>();
    if (st.has('failed')) return { waiting, failed: key };
    if (!st.has('up') && !st.has('complete'))
      waiting.push(`${key} ${st.size === 0 ? 'not started' : [...st].join('/')}`);
  }
  return { waiting };
}

/**
 * Before the daemon loads the site configuration: a trial that was running when the
 * daemon died is rolled back (its previous generation's files written back), whatever
 * its deadline. Returns the trial's generation, if there was one.
 */
export async function recoverInterruptedTrial(
  store: GenerationStore,
  logger: Logger,
): Promise<number | undefined> {
  const path = join(store.dir, TRIAL_FILE);
  let rec: TrialRecord | undefined;
  try {
    rec = await readRecord(path);
  } catch (e) {
    logger.error('cannot read the trial record; the configuration is left as it is', {
      error: (e as Error).message,
    });
    return undefined;
  }
  if (rec === undefined) return undefined;
  const reason = 'the daemon restarted during the trial';
  const g = await store.read(rec.previous);
  await store.settle(rec.generation, { kind: 'rolled-back', reason }, rec.previous);
  await store.makeCurrent(rec.previous);
  await restoreFiles(g);
  await rm(path, { force: true });
  logger.warn('trial rolled back', { generation: rec.generation, to: rec.previous, reason });
  return rec.generation;
}

export const TRIAL_FILE = 'trial.pr';

export interface TrialManagerOptions {
  readonly store: GenerationStore;
  readonly recorder: GenerationRecorder;
  /** The site roots; a candidate replaces the first one's files. */
  readonly roots: readonly string[];
  readonly config: Dataspace;
  /** The current failures, in words (the daemon's failure collector). */
  readonly failures: () => readonly string[];
  /** Runs every probe again now, their old results withdrawn (`<probes-rerun>`). */
  readonly rerunProbes?: () => void;
  readonly logger: Logger;
}

interface Running extends TrialRecord {
  /** The next check, while the trial runs. */
  timer: NodeJS.Timeout | undefined;
  finish(confirmed: boolean, reason?: string): Promise<TrialResult>;
}

export class TrialManager {
  readonly #o: TrialManagerOptions;
  #running: Running | undefined;
  #closed = false;

  constructor(o: TrialManagerOptions) {
    this.#o = o;
  }

  /** The trial running, if one is. */
  get running(): { generation: number; previous: number; deadline: number } | undefined {
    const r = this.#running;
    return r === undefined
      ? undefined
      : { generation: r.generation, previous: r.previous, deadline: r.deadline };
  }

  /** Settles once a trial being started is running (or was refused). */
  #starting: Promise<unknown> | undefined;

  start(req: TrialRequest): Promise<StartedTrial> {
    const p = this.#start(req);
    this.#starting = p.catch(() => undefined);
    return p;
  }

  async #start(req: TrialRequest): Promise<StartedTrial> {
    const root = this.#admit(req);
    const token = randomBytes(16).toString('hex');
    const tokenHash = hashToken(token);
    const deadline = Date.now() + req.timeoutMs;
    const baseline = new Set(this.#o.failures());
    const { generation, previous } = await this.#o.recorder.exclusive(() =>
      this.#recordAndApply(req, root, token, tokenHash, deadline),
    );
    this.#o.logger.warn('trial started', {
      generation,
      previous,
      deadline: new Date(deadline).toISOString(),
    });
    req.onProgress(`applied generation ${generation} as a trial (previous: ${previous})`);
    const { running, done } = this.#run(req, { generation, previous, deadline, tokenHash });
    this.#running = running;
    this.#runChecks(req, running, token, baseline);
    return { generation, token, deadline, done };
  }

  /** Refuses a trial that cannot start (step 1 above); the site root its files go to. */
  #admit(req: TrialRequest): string {
    if (this.#running !== undefined)
      throw new GenerationError(
        `a trial of generation ${this.#running.generation} is running: confirm it or roll it back first`,
      );
    const root = this.#o.roots[0];
    if (root === undefined) throw new GenerationError('the daemon has no site configuration root');
    const problems = checkCandidate(req.files, req.source);
    if (problems.length > 0) throw new CandidateError(problems);
    req.onProgress(`checked: ${req.files.size} file(s), no problems`);
    return root;
  }

  /**
   * Records the candidate as a trial generation and writes trial.pr, tells the token,
   * then writes the candidate's files (steps 2 and 3 above). Run under `exclusive`.
   */
  async #recordAndApply(
    req: TrialRequest,
    root: string,
    token: string,
    tokenHash: string,
    deadline: number,
  ): Promise<{ generation: number; previous: number }> {
    const { store, roots } = this.#o;
    const previous = store.lastConfirmed;
    if (previous === undefined)
      throw new GenerationError('there is no confirmed generation to go back to');
    const snap = withRootFiles(await snapshot(roots), root, req.files);
    const generation = await store.record(snap, {
      message: req.message,
      who: req.who,
      outcome: { kind: 'trial' },
    });
    await writeFileAtomic(
      join(store.dir, TRIAL_FILE),
      stringify(
        new Dict([
          [sym('generation'), generation],
          [sym('previous'), previous],
          [sym('deadline'), deadline],
          [sym('token-hash'), tokenHash],
        ]),
      ) + '\n',
      { mode: 0o600 },
    );
    // The token reaches the operator before anything changes (the change may cut
    // their session).
    req.onStarted?.({ generation, token, deadline });
    await restoreFiles(await store.read(generation));
    return { generation, previous };
  }

  /** The running trial, whose `finish` ends it once; `done` settles with how it ended. */
  #run(req: TrialRequest, rec: TrialRecord): { running: Running; done: Promise<TrialResult> } {
    let settle!: (r: TrialResult) => void;
    const done = new Promise<TrialResult>((r) => (settle = r));
    let finished: Promise<TrialResult> | undefined;
    const running: Running = {
      ...rec,
      timer: undefined,
      finish: (confirmed, reason) => {
        finished ??= (async () => {
          clearTimeout(running.timer);
          const result = await this.#o.recorder.exclusive(() =>
            this.#end(running, confirmed, reason),
          );
          req.onProgress(
            result.confirmed
              ? `confirmed generation ${rec.generation}`
              : `rolled back to generation ${rec.previous}: ${result.reason}`,
          );
          settle(result);
          return result;
        })();
        return finished;
      },
    };
    return { running, done };
  }

  /**
   * Keeps the trial's generation, or rolls it back: the previous confirmed generation's
   * files written back, unless a hand edit took over (step 5 above). Run under `exclusive`.
   */
  async #end(running: Running, confirmed: boolean, reason?: string): Promise<TrialResult> {
    const { store, logger } = this.#o;
    const { generation, previous } = running;
    if (this.#running === running) this.#running = undefined;
    if (confirmed) {
      await store.settle(generation, { kind: 'confirmed' });
      await rm(join(store.dir, TRIAL_FILE), { force: true });
      logger.warn('trial confirmed', { generation });
      return { generation, previous, confirmed: true, written: 0, removed: 0 };
    }
    const why = reason ?? 'rolled back';
    let files = { written: 0, removed: 0 };
    if (store.current === generation) {
      await store.settle(generation, { kind: 'rolled-back', reason: why }, previous);
      await store.makeCurrent(previous);
      files = await restoreFiles(await store.read(previous));
    } else {
      // A hand edit took over: it stays, the trial is over.
      await store.settle(generation, { kind: 'rolled-back', reason: why });
    }
    await rm(join(store.dir, TRIAL_FILE), { force: true });
    logger.warn('trial rolled back', { generation, to: previous, reason: why });
    return { generation, previous, confirmed: false, reason: why, ...files };
  }

  /**
   * Runs the checks every CHECK_EVERY_MS (step 4 above) until the trial ends: by a hand
   * edit, its deadline, a failed check, or (with auto-confirm) the checks passing.
   */
  #runChecks(
    req: TrialRequest,
    running: Running,
    token: string,
    baseline: ReadonlySet<string>,
  ): void {
    const { store } = this.#o;
    const { generation, deadline } = running;
    const started = Date.now();
    let passingSince: number | undefined;
    let probesRerun = false;
    let announced = false;
    const newSince = new Map<string, number>();
    const pending = { text: 'the checks had not run' };
    const tick = (): void => {
      if (this.#running !== running || this.#closed) return;
      const now = Date.now();
      if (store.current !== generation) {
        void running.finish(false, `ended by a hand edit (generation ${store.current})`);
        return;
      }
      if (now >= deadline) {
        void running.finish(
          false,
          announced
            ? `not confirmed within ${Math.round(req.timeoutMs / 1000)} s`
            : `not confirmed within ${Math.round(req.timeoutMs / 1000)} s; ${pending.text}`,
        );
        return;
      }
      if (now - started >= SETTLE_MS) {
        if (!probesRerun) {
          // The new configuration has been applied: what the probes say from now on is its.
          probesRerun = true;
          this.#o.rerunProbes?.();
        }
        const verdict = this.#evaluate(baseline, newSince, now, pending);
        if (verdict !== undefined) {
          void running.finish(false, verdict);
          return;
        }
        if (pending.text === '') {
          passingSince ??= now;
          if (!announced && now - passingSince >= PASS_FOR_MS) {
            announced = true;
            req.onProgress(
              'checks passed: every required service is up, every probe passed, no new failure',
            );
            if (req.autoConfirm) {
              void running.finish(true);
              return;
            }
            req.onProgress(
              `waiting for limen confirm ${token} until ${new Date(deadline).toISOString()}`,
            );
          }
        } else passingSince = undefined;
      }
      running.timer = setTimeout(tick, CHECK_EVERY_MS);
    };
    running.timer = setTimeout(tick, CHECK_EVERY_MS);
  }

  /**
   * A failed check's reason, or undefined; `pending.text` says what has not passed
   * yet ('' when everything has).
   */
  #evaluate(
    baseline: ReadonlySet<string>,
    newSince: Map<string, number>,
    now: number,
    pending: { text: string },
  ): string | undefined {
    const { config } = this.#o;
    const services = requiredServices(config);
    if (services.failed !== undefined) return `service ${services.failed} failed`;
    const waiting = [...services.waiting];
    // Probes: each must have passed since the rerun; one failed for 2 s rolls back.
    const probes = config
      .query(P.rec('probe', P.bind('name'), P._))
      .map((r) => r.captures.get('name')!);
    const results = new Map<string, { state: string; detail: string }>();
    for (const r of config.query(
      P.rec('probe-state', P.bind('name'), P.bind('state'), P.bind('detail')),
    )) {
      const st = peel(r.captures.get('state')!);
      const d = peel(r.captures.get('detail')!);
      results.set(stringify(r.captures.get('name')!), {
        state: st instanceof Sym ? st.name : stringify(st),
        detail: typeof d === 'string' ? d : stringify(d),
      });
    }
    for (const name of probes) {
      const key = stringify(name);
      const r = results.get(key);
      const tag = `probe ${key}`;
      if (r?.state === 'failed') {
        const since = newSince.get(tag) ?? now;
        newSince.set(tag, since);
        if (now - since >= NEW_FAILURE_FOR_MS) return `probe ${key} failed: ${r.detail}`;
      } else newSince.delete(tag);
      if (r?.state !== 'passed')
        waiting.push(`probe ${key} ${r === undefined ? 'not run yet' : 'failed'}`);
    }
    const current = new Set(this.#o.failures());
    for (const k of [...newSince.keys()])
      if (!k.startsWith('probe ') && !current.has(k)) newSince.delete(k);
    for (const f of current) {
      if (baseline.has(f)) continue;
      const since = newSince.get(f) ?? now;
      newSince.set(f, since);
      if (now - since >= NEW_FAILURE_FOR_MS) return `a new failure: ${f}`;
    }
    pending.text =
      waiting.length > 0
        ? `waiting for ${waiting.join(', ')}`
        : [...newSince.keys()].some((k) => !k.startsWith('probe '))
          ? `a new failure: ${[...newSince.keys()].find((k) => !k.startsWith('probe '))}`
          : '';
    return undefined;
  }

  /** Keeps the running trial, given its token. */
  async confirm(token: string): Promise<number> {
    // A confirmation may arrive while the trial's files are still being written.
    await this.#starting;
    const r = this.#running;
    if (r === undefined) throw new GenerationError('no trial is running');
    const a = Buffer.from(hashToken(token), 'hex');
    const b = Buffer.from(r.tokenHash, 'hex');
    if (a.length !== b.length || !timingSafeEqual(a, b))
      throw new GenerationError(
        'that is not the token of the running trial (limen try printed it)',
      );
    await r.finish(true);
    return r.generation;
  }

  /** Rolls the running trial back now (limen rollback during a trial), if there is one. */
  async rollBack(reason: string): Promise<TrialResult | undefined> {
    await this.#starting;
    return this.#running?.finish(false, reason);
  }

  close(): void {
    this.#closed = true;
  }
}
