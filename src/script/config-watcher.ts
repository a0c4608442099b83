// The config watcher: runs every script under a path, each file in its own
// facet, and keeps them in step with the files. Invariants: a changed file's new
// facet starts in the same turn as, and before, the old one stops (unchanged
// assertions never flap); a file that cannot be read, parsed, checked or set up
// keeps its last good version running and publishes one `<config-error PATH
// {line column message}>` per problem, until it is fixed or removed; a removed
// file retracts everything it asserted.
//
// Change detection: fs.watch on every directory of the tree (new ones are
// picked up by the next scan), each event scheduling a full rescan after
// `debounceMs`. A rescan compares each file's stat (device, inode, size, mtime,
// ctime) and then a digest of its contents, not events, so a lost or coalesced
// event costs nothing but latency; `rescan()` (SIGHUP) forces one, which reads
// changed files without waiting for them to settle and runs again the files
// that a budget stopped.
//
// Settling: a changed file is read only once nothing has been written to it for
// `settleMs` (its mtime says when it last was), and one that ends in the middle
// of a value is taken as still being written until `incompleteMs` after its last
// write; waiting for a file is bounded by `incompleteMs` from the first change
// seen. So a file written in place is neither applied nor reported half-written.
// While a new file waits, no file is removed (a rename keeps its assertions).
//
// Bounds: a file over `maxFileBytes`, or one that brings the tree over
// `maxTotalBytes`, is refused unread with a config error; a budget failure
// (interpreter.ts) of the running version is one more config error, until the
// file changes or is rescanned by `rescan()`.

import { createHash } from 'node:crypto';
import { watch, type BigIntStats, type FSWatcher } from 'node:fs';
import { stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Dict, Sym, peel, record, sym, type Value } from '../preserves/index.ts';
import {
  BudgetExceededError,
  driverLog,
  P,
  asRef,
  during,
  type Facet,
  type Handle,
  type Ref,
  anyRecord,
  declareFailures,
} from '../dataspace/index.ts';
import { compileScript, type CompileResult } from './compile.ts';
import {
  ConfigWatcherError,
  ScriptRuntimeError,
  ScriptTooLargeError,
  filePosition,
  sizeText,
  type ScriptProblem,
} from './errors.ts';
import {
  MAX_SCRIPT_BYTES,
  isMissing,
  readProblem,
  readScriptText,
  scanScriptTree,
  type ScriptSource,
  type ScriptTree,
} from './files.ts';
import { runScript, type ScriptBindings } from './interpreter.ts';
import { releaseMemorySoon } from '../platform/memory.ts';

/** Quiet time before a changed file is read (docs/script-language.md, "The config watcher"). */
export const DEFAULT_SETTLE_MS = 100;
/** How long a file that ends in the middle of a value may still be being written. */
export const DEFAULT_INCOMPLETE_MS = 2000;
/** The most all the scripts under one watcher may total. */
export const MAX_TREE_BYTES = 4 * 1024 * 1024;
/** Script text that became garbage in one scan, above which memory is given back at once. */
const RELEASE_BYTES = 256 * 1024;

export interface ConfigWatcherOptions {
  /** A directory (scanned recursively) or a single script file. */
  readonly path: string;
  /** The bindings every script sees; `config` must be a dataspace ref. */
  readonly env: ScriptBindings;
  /** The service this watcher is, in `<service-state NAME ready>`. Default `<config-watcher PATH ENVDICT>`. */
  readonly serviceName?: Value;
  /** How long to wait after a file-system event before rescanning (default 15 ms). */
  readonly debounceMs?: number;
  /** A changed file is read once it has not changed for this long (default DEFAULT_SETTLE_MS). */
  readonly settleMs?: number;
  /** See DEFAULT_INCOMPLETE_MS. */
  readonly incompleteMs?: number;
  /** Default MAX_SCRIPT_BYTES. */
  readonly maxFileBytes?: number;
  /** Default MAX_TREE_BYTES. */
  readonly maxTotalBytes?: number;
  /**
   * Where `<service-state NAME ready>` and `<config-error ...>` go. Default: the env's
   * `config`. The service driver passes the dataspace it serves, because the scripts'
   * `config` may be attenuated (user settings rewrite everything into `<user-setting X>`).
   */
  readonly statusRef?: Ref;
  /**
   * Where the scripts are read from instead of the file system (a SnapshotSource): read
   * once, as they are, never watched and never waited for.
   */
  readonly source?: ScriptSource;
}

interface FileState {
  /** The stat of the file when it was last read; an identical stat is not read again. */
  stamp: string | undefined;
  /** What that read found (a digest of the text, or the problem): the same again changes nothing. */
  seen: string | undefined;
  /** The facet running the last good version, and the size of its text. */
  running: Facet | undefined;
  size: number;
  /** The facet asserting this file's `<config-error ...>`s. */
  errors: Facet | undefined;
  /** The facet asserting the running version's budget failures (its stopped parts). */
  stopped: Facet | undefined;
}

/** What a scan found for one file; `size` (from its stat) counts toward the tree's total. */
type Read = { readonly path: string; readonly size: number } & (
  | { readonly kind: 'missing' }
  | { readonly kind: 'unchanged' }
  /** Still being written: look again in `retryMs`. */
  | { readonly kind: 'wait'; readonly retryMs: number }
  | { readonly kind: 'error'; readonly error: unknown }
  | { readonly kind: 'too-big'; readonly stamp: string }
  | {
      readonly kind: 'text';
      readonly stamp: string;
      readonly digest: string;
      readonly compiled: CompileResult;
    }
);

/** What identifies one version of a file without reading it (ctime moves on every write). */
function stampOf(st: BigIntStats): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
}

/** `<config-watcher PATH {name: value ...}>`. */
export function configWatcherName(path: string, env: ScriptBindings): Value {
  return record('config-watcher', path, new Dict([...env].map(([k, v]) => [sym(k), v] as const)));
}

function runtimeProblem(path: string, error: unknown): ScriptProblem {
  if (
    (error instanceof ScriptRuntimeError || error instanceof BudgetExceededError) &&
    error.pos !== undefined
  )
    return { pos: error.pos, message: error.detail };
  return {
    pos: filePosition(path),
    message: error instanceof Error ? error.message : String(error),
  };
}

export class ConfigWatcher {
  readonly path: string;
  readonly serviceName: Value;
  /** The watcher's own facet (a child of the one given); stopping it stops every script. */
  readonly facet: Facet;
  readonly #env: ScriptBindings;
  readonly #names: readonly string[];
  readonly #config: Ref;
  readonly #debounceMs: number;
  readonly #settleMs: number;
  readonly #incompleteMs: number;
  readonly #maxFileBytes: number;
  readonly #maxTotalBytes: number;
  readonly #source: ScriptSource | undefined;
  readonly #files = new Map<string, FileState>();
  /** Files still being written, and since when (ms) we have been waiting for each. */
  readonly #waiting = new Map<string, number>();
  readonly #watchers = new Map<string, FSWatcher>();
  #timer: NodeJS.Timeout | undefined;
  /** The next look at files still being written. */
  #settleTimer: NodeJS.Timeout | undefined;
  /** The next scan is a forced one (`rescan()`): run budget-stopped files again. */
  #forced = false;
  #ready: Handle | undefined;
  #queued: Promise<void> | undefined;
  #chain: Promise<void> = Promise.resolve();

  constructor(parent: Facet, options: ConfigWatcherOptions) {
    const config = options.env.get('config');
    const ref = config === undefined ? undefined : asRef(config);
    if (ref === undefined)
      throw new ConfigWatcherError(
        `config watcher for ${options.path}: its environment must bind config to a dataspace ref, as in {config: $config}`,
      );
    this.path = options.path;
    this.#env = options.env;
    this.#names = [...options.env.keys()];
    this.#config = options.statusRef ?? ref;
    this.#debounceMs = options.debounceMs ?? 15;
    this.#settleMs = options.settleMs ?? DEFAULT_SETTLE_MS;
    this.#incompleteMs = options.incompleteMs ?? DEFAULT_INCOMPLETE_MS;
    this.#maxFileBytes = options.maxFileBytes ?? MAX_SCRIPT_BYTES;
    this.#maxTotalBytes = options.maxTotalBytes ?? MAX_TREE_BYTES;
    this.#source = options.source;
    this.serviceName = options.serviceName ?? configWatcherName(options.path, options.env);
    this.facet = parent.spawn((f) => {
      f.onStop(() => this.#close());
      // So that `limen status` and the log find them (docs/vocabulary.md, "Failures").
      declareFailures(f, this.#config, anyRecord('config-error', 2));
    }, `config-watcher ${options.path}`);
    void this.#scan();
  }

  /** True once the first scan has been applied (and `<service-state ... ready>` asserted). */
  get isReady(): boolean {
    return this.#ready !== undefined;
  }

  /**
   * Scans now (as on SIGHUP), running again the files whose running version a budget
   * stopped; resolves when a scan that started after this call is applied.
   */
  rescan(): Promise<void> {
    this.#forced = true;
    return this.#scan();
  }

  #scan(): Promise<void> {
    if (this.#queued !== undefined) return this.#queued;
    const p = this.#chain.then(() => {
      this.#queued = undefined;
      return this.#reconcile();
    });
    this.#queued = p;
    this.#chain = p;
    return p;
  }

  /** Stops every script this watcher runs and stops watching. */
  stop(): void {
    this.facet.stop();
  }

  #close(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    clearTimeout(this.#settleTimer);
    this.#settleTimer = undefined;
    for (const w of this.#watchers.values()) w.close();
    this.#watchers.clear();
  }

  /** A file-system event: rescan soon. Events during the wait are absorbed by that scan. */
  #poke(): void {
    if (this.#timer !== undefined || !this.facet.isAlive) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#scan();
    }, this.#debounceMs);
  }

  /** Looks again in `ms` at files still being written (an earlier look stands). */
  #settleLater(ms: number): void {
    if (this.#settleTimer !== undefined || !this.facet.isAlive) return;
    this.#settleTimer = setTimeout(
      () => {
        this.#settleTimer = undefined;
        void this.#scan();
      },
      Math.max(1, Math.ceil(ms)),
    );
  }

  async #reconcile(): Promise<void> {
    if (!this.facet.isAlive) return;
    try {
      const forced = this.#forced;
      if (forced) {
        this.#forced = false;
        for (const st of this.#files.values())
          if (st.stopped !== undefined) st.stamp = st.seen = undefined;
      }
      const source = this.#source;
      const tree = await (source ?? { scan: scanScriptTree }).scan(this.path, this.facet.signal);
      // One at a time: each read holds a whole file (up to the size limit) in memory.
      const reads: Read[] = [];
      for (const f of tree.files)
        reads.push(await (source === undefined ? this.#read(f, forced) : this.#take(source, f)));
      if (source !== undefined) {
        if (this.facet.isAlive) this.facet.turn(() => this.#apply(reads));
        return;
      }
      const watchRoot = tree.missing ? await nearestExisting(this.path) : undefined;
      if (!this.facet.isAlive) return;
      this.facet.turn(() => this.#apply(reads));
      this.#watch(tree, watchRoot);
      let retry = Infinity;
      for (const r of reads) if (r.kind === 'wait') retry = Math.min(retry, r.retryMs);
      if (retry !== Infinity) this.#settleLater(retry);
    } catch (e) {
      if (!this.facet.isAlive) return;
      driverLog(this.facet, `config watcher ${this.path}`).error(`scan failed: ${String(e)}`, {
        origin: this.facet.origin,
        error: e,
      });
    }
  }

  /**
   * Looks at one file: unchanged since it was last read (by its stat), still being
   * written, too big, unreadable, or read and compiled (outside any turn).
   */
  async #read(path: string, forced: boolean): Promise<Read> {
    let st: BigIntStats;
    try {
      st = await stat(path, { bigint: true });
    } catch (e) {
      return isMissing(e)
        ? { path, size: 0, kind: 'missing' }
        : { path, size: 0, kind: 'error', error: e };
    }
    const size = Number(st.size);
    const stamp = stampOf(st);
    if (this.#files.get(path)?.stamp === stamp) {
      this.#waiting.delete(path);
      return { path, size, kind: 'unchanged' };
    }
    const now = Date.now();
    const since = this.#waiting.get(path) ?? now;
    // Waiting is bounded: a file that never stops changing is read all the same. A
    // forced scan (SIGHUP) does not wait: whoever sent it says the files are ready.
    const overdue = forced || now - since >= this.#incompleteMs;
    const wait = (retryMs: number): Read => {
      this.#waiting.set(path, since);
      return {
        path,
        size,
        kind: 'wait',
        retryMs: Math.min(retryMs, since + this.#incompleteMs - now),
      };
    };
    // mtime, not ctime: a file renamed into place (written whole) need not wait.
    const quietFor = now - Number(st.mtimeNs / 1_000_000n);
    if (quietFor < this.#settleMs && !overdue) return wait(this.#settleMs - quietFor);
    this.#waiting.delete(path);
    if (size > this.#maxFileBytes) return { path, size, kind: 'too-big', stamp };
    let text: string;
    try {
      text = await readScriptText(path, this.#maxFileBytes);
      // Written to while we read: what we have may be half of it.
      if (stampOf(await stat(path, { bigint: true })) !== stamp && !overdue)
        return wait(this.#settleMs);
    } catch (e) {
      if (isMissing(e)) return { path, size: 0, kind: 'missing' };
      return { path, size, kind: 'error', error: e };
    }
    const compiled = compileScript(text, { source: path, names: this.#names });
    if (compiled.truncated && quietFor < this.#incompleteMs && !overdue)
      return wait(this.#incompleteMs - quietFor);
    this.#waiting.delete(path);
    const digest = createHash('sha256').update(text).digest('base64');
    return { path, size, kind: 'text', stamp, digest, compiled };
  }

  /** Reads one file of a source given instead of the file system, as it is. */
  async #take(source: ScriptSource, path: string): Promise<Read> {
    let text: string;
    try {
      text = await source.read(path, this.#maxFileBytes);
    } catch (e) {
      if (isMissing(e)) return { path, size: 0, kind: 'missing' };
      if (e instanceof ScriptTooLargeError)
        return { path, size: e.size, kind: 'too-big', stamp: 'too-big' };
      return { path, size: 0, kind: 'error', error: e };
    }
    const digest = createHash('sha256').update(text).digest('base64');
    if (this.#files.get(path)?.seen === digest)
      return { path, size: Buffer.byteLength(text), kind: 'unchanged' };
    const compiled = compileScript(text, { source: path, names: this.#names });
    return { path, size: Buffer.byteLength(text), kind: 'text', stamp: digest, digest, compiled };
  }

  /** Applies one scan in one turn: new versions start first, then old ones stop. */
  #apply(reads: readonly Read[]): void {
    const present = new Set<string>();
    const retired: Facet[] = [];
    let total = 0;
    let waiting = false;
    let newWaiting = false;
    // What this scan turns into garbage: texts read, versions retired.
    let released = 0;
    for (const r of reads) {
      if (r.kind === 'missing') continue; // deleted since the listing: treated as gone
      present.add(r.path);
      total += r.size;
      let st = this.#files.get(r.path);
      if (st === undefined) {
        st = {
          stamp: undefined,
          seen: undefined,
          running: undefined,
          size: 0,
          errors: undefined,
          stopped: undefined,
        };
        this.#files.set(r.path, st);
      }
      // Still being written: the last version read stays as it is, errors included.
      if (r.kind === 'unchanged') continue;
      if (r.kind === 'wait') {
        waiting = true;
        if (st.running === undefined) newWaiting = true;
        continue;
      }
      if (r.kind === 'error') {
        // Not stamped: a read that failed is tried again at the next scan.
        const seen = `error ${String(r.error)}`;
        if (st.seen === seen) continue;
        st.stamp = undefined;
        st.seen = seen;
        this.#publishErrors(st, r.path, [readProblem(r.path, r.error)]);
        continue;
      }
      if (r.kind === 'too-big') {
        st.stamp = r.stamp;
        st.seen = undefined;
        this.#publishErrors(st, r.path, [
          {
            pos: filePosition(r.path),
            message: new ScriptTooLargeError(r.size, this.#maxFileBytes).message,
          },
        ]);
        continue;
      }
      if (total > this.#maxTotalBytes) {
        // Not stamped: it may fit once an earlier file shrinks.
        st.stamp = st.seen = undefined;
        this.#publishErrors(st, r.path, [
          {
            pos: filePosition(r.path),
            message: `not loaded: with it the scripts under ${this.path} total ${total} bytes, over the limit of ${sizeText(this.#maxTotalBytes)}`,
          },
        ]);
        continue;
      }
      st.stamp = r.stamp;
      released += r.size;
      if (st.seen === r.digest) continue;
      st.seen = r.digest;
      const compiled = r.compiled;
      if (compiled.script === undefined) {
        this.#publishErrors(st, r.path, compiled.problems);
        continue;
      }
      const state = st;
      const path = r.path;
      let version: Facet | undefined;
      const run = runScript(this.facet, compiled.script, this.#env, {
        onBudgetExceeded: (p) => {
          if (version !== undefined && state.running === version)
            this.#reportStopped(state, path, p);
        },
      });
      if (run.error !== undefined) {
        this.#publishErrors(st, r.path, [runtimeProblem(r.path, run.error)]);
        continue;
      }
      if (st.running !== undefined) retired.push(st.running);
      released += st.size;
      st.stopped?.stop();
      st.stopped = undefined;
      st.running = version = run.facet;
      st.size = r.size;
      this.#publishErrors(st, r.path, []);
    }
    for (const [path, st] of this.#files) {
      // A new file may be an old one renamed: its assertions stay until the new one runs.
      if (present.has(path) || newWaiting) continue;
      if (st.running !== undefined) retired.push(st.running);
      released += st.size;
      st.errors?.stop();
      st.stopped?.stop();
      this.#files.delete(path);
      this.#waiting.delete(path);
    }
    for (const f of retired) f.stop();
    if (released >= RELEASE_BYTES) releaseMemorySoon();
    // Ready once every file has been read whole (waiting for one is bounded).
    if (!waiting)
      this.#ready ??= this.facet.assert(
        this.#config,
        record('service-state', this.serviceName, sym('ready')),
      );
  }

  /** A part of the running version stopped, over its budget: one more error, until the file changes. */
  #reportStopped(st: FileState, path: string, p: ScriptProblem): void {
    if (!this.facet.isAlive) return;
    st.stopped ??= this.facet.spawn(() => {}, `config-error ${path}`);
    st.stopped.assert(this.#config, configError(path, p));
  }

  /** Replaces the file's error assertions (new ones first, so unchanged ones do not flap). */
  #publishErrors(st: FileState, path: string, problems: readonly ScriptProblem[]): void {
    const old = st.errors;
    st.errors =
      problems.length === 0
        ? undefined
        : this.facet.spawn((f) => {
            for (const p of problems) f.assert(this.#config, configError(path, p));
          }, `config-error ${path}`);
    old?.stop();
  }

  #watch(tree: ScriptTree, watchRoot: string | undefined): void {
    const wanted = new Set(tree.dirs);
    // A single file is watched through its directory, so that replacing it by rename is seen;
    // a missing root through its nearest existing ancestor, so that its creation is seen.
    if (tree.isFile) wanted.add(dirname(this.path));
    if (watchRoot !== undefined) wanted.add(watchRoot);
    for (const [dir, w] of this.#watchers) {
      if (wanted.has(dir)) continue;
      w.close();
      this.#watchers.delete(dir);
    }
    let added = false;
    for (const dir of wanted) {
      if (this.#watchers.has(dir)) continue;
      added = true;
      let w: FSWatcher;
      try {
        w = watch(dir, { persistent: true }, () => this.#poke());
      } catch {
        // Gone since the scan: the next scan will notice.
        this.#poke();
        continue;
      }
      w.on('error', () => {
        w.close();
        if (this.#watchers.get(dir) === w) this.#watchers.delete(dir);
        this.#poke();
      });
      this.#watchers.set(dir, w);
    }
    // What changed in a directory between its scan and its watch sent no event: look again.
    if (added) this.#poke();
  }
}

function configError(path: string, p: ScriptProblem): Value {
  return record(
    'config-error',
    path,
    new Dict([
      [sym('line'), p.pos.line],
      [sym('column'), p.pos.column],
      [sym('message'), p.message],
    ]),
  );
}

async function nearestExisting(path: string): Promise<string | undefined> {
  for (let dir = dirname(path); ; dir = dirname(dir)) {
    try {
      if ((await stat(dir)).isDirectory()) return dir;
    } catch {
      // keep climbing
    }
    if (dirname(dir) === dir) return undefined;
  }
}

// ---- The `<run-service <config-watcher PATH ENV>>` driver ---------------------------------------

/** Turns `{config: #:ref, ...}` into bindings; throws ConfigWatcherError for anything else. */
export function defaultEnvFor(envdict: Value): Map<string, Value> {
  const d = peel(envdict);
  if (!(d instanceof Dict))
    throw new ConfigWatcherError(
      `a config watcher's environment must be a dictionary of bindings, as in {config: $config}`,
    );
  const out = new Map<string, Value>();
  for (const [k, v] of d) {
    const key = peel(k);
    if (!(key instanceof Sym))
      throw new ConfigWatcherError(
        `a config watcher's environment is keyed by symbols (binding names)`,
      );
    out.set(key.name, v);
  }
  return out;
}

export interface ConfigWatcherServiceOptions {
  readonly debounceMs?: number;
  /** Every watcher reads its scripts from here (ConfigWatcherOptions.source). */
  readonly source?: ScriptSource;
}

/** The running `<config-watcher ...>` driver. */
export interface ConfigWatcherService {
  /** The observer of `<run-service <config-watcher ...>>`; retracting it stops every watcher. */
  readonly handle: Handle;
  /** The watchers running now. */
  watchers(): readonly ConfigWatcher[];
  /** Rescans every watcher (SIGHUP). */
  rescan(): Promise<void>;
}

/**
 * Runs a ConfigWatcher for each `<run-service <config-watcher PATH ENVDICT>>` in
 * `config`, while it is asserted. ENVDICT's keys name the bindings the scripts
 * see; `envFor` turns it into bindings (default: the dictionary as it is). A bad
 * request fails (logged) without affecting the others.
 */
export function startConfigWatcherService(
  facet: Facet,
  config: Ref,
  envFor: (envdict: Value) => ScriptBindings = defaultEnvFor,
  options: ConfigWatcherServiceOptions = {},
): ConfigWatcherService {
  const running = new Set<ConfigWatcher>();
  const pattern = P.rec(
    'run-service',
    P.bind('service', P.rec('config-watcher', P.bind('path'), P.bind('env'))),
  );
  const handle = during(
    facet,
    config,
    pattern,
    (child, captures) => {
      const path = peel(captures.get('path')!);
      if (typeof path !== 'string')
        throw new ConfigWatcherError(`<config-watcher PATH ...> needs a string PATH`);
      const watcher = new ConfigWatcher(child, {
        path,
        env: envFor(captures.get('env')!),
        serviceName: captures.get('service')!,
        statusRef: config,
        ...(options.debounceMs === undefined ? {} : { debounceMs: options.debounceMs }),
        ...(options.source === undefined ? {} : { source: options.source }),
      });
      running.add(watcher);
      child.onStop(() => running.delete(watcher));
    },
    'config-watcher service',
  );
  return {
    handle,
    watchers: () => [...running],
    rescan: async () => {
      await Promise.all([...running].map((w) => w.rescan()));
    },
  };
}
