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
// `debounceMs`. A rescan compares file contents, not events, so a lost or
// coalesced event costs nothing but latency; `rescan()` (SIGHUP) forces one.

import { watch, type FSWatcher } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Dict, Sym, peel, record, sym, type Value } from '../preserves/index.ts';
import { P, asRef, during, type Facet, type Handle, type Ref } from '../dataspace/index.ts';
import { compileScript } from './compile.ts';
import {
  ConfigWatcherError,
  ScriptRuntimeError,
  filePosition,
  type ScriptProblem,
} from './errors.ts';
import { isMissing, readProblem, scanScriptTree, type ScriptTree } from './files.ts';
import { runScript, type ScriptBindings } from './interpreter.ts';

export interface ConfigWatcherOptions {
  /** A directory (scanned recursively) or a single script file. */
  readonly path: string;
  /** The bindings every script sees; `config` must be a dataspace ref. */
  readonly env: ScriptBindings;
  /** The service this watcher is, in `<service-state NAME ready>`. Default `<config-watcher PATH ENVDICT>`. */
  readonly serviceName?: Value;
  /** How long to wait after a file-system event before rescanning (default 15 ms). */
  readonly debounceMs?: number;
  /**
   * Where `<service-state NAME ready>` and `<config-error ...>` go. Default: the env's
   * `config`. The service driver passes the dataspace it serves, because the scripts'
   * `config` may be attenuated (user settings rewrite everything into `<user-setting X>`).
   */
  readonly statusRef?: Ref;
}

type Seen = { readonly text: string } | { readonly error: unknown };

interface FileState {
  /** What the last scan read (content or read error): an identical scan changes nothing. */
  seen: Seen | undefined;
  /** The facet running the last good version. */
  running: Facet | undefined;
  /** The facet asserting this file's `<config-error ...>`s. */
  errors: Facet | undefined;
}

type Read = { readonly path: string } & ({ text: string } | { error: unknown } | { missing: true });

/** `<config-watcher PATH {name: value ...}>`. */
export function configWatcherName(path: string, env: ScriptBindings): Value {
  return record('config-watcher', path, new Dict([...env].map(([k, v]) => [sym(k), v] as const)));
}

function sameSeen(a: Seen | undefined, b: Seen): boolean {
  if (a === undefined) return false;
  if ('text' in a) return 'text' in b && a.text === b.text;
  return 'error' in b && String(a.error) === String(b.error);
}

function runtimeProblem(path: string, error: unknown): ScriptProblem {
  if (error instanceof ScriptRuntimeError && error.pos !== undefined)
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
  readonly #files = new Map<string, FileState>();
  readonly #watchers = new Map<string, FSWatcher>();
  #timer: NodeJS.Timeout | undefined;
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
    this.serviceName = options.serviceName ?? configWatcherName(options.path, options.env);
    this.facet = parent.spawn((f) => {
      f.onStop(() => this.#close());
      // So that `limen status` and the log find them (docs/vocabulary.md, "Failures").
      f.assert(this.#config, record('failure-shape', record('config-error', sym('_'), sym('_'))));
    }, `config-watcher ${options.path}`);
    void this.rescan();
  }

  /** True once the first scan has been applied (and `<service-state ... ready>` asserted). */
  get isReady(): boolean {
    return this.#ready !== undefined;
  }

  /** Scans now (as on SIGHUP); resolves when a scan that started after this call is applied. */
  rescan(): Promise<void> {
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
    for (const w of this.#watchers.values()) w.close();
    this.#watchers.clear();
  }

  /** A file-system event: rescan soon. Events during the wait are absorbed by that scan. */
  #poke(): void {
    if (this.#timer !== undefined || !this.facet.isAlive) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.rescan();
    }, this.#debounceMs);
  }

  async #reconcile(): Promise<void> {
    if (!this.facet.isAlive) return;
    try {
      const tree = await scanScriptTree(this.path, this.facet.signal);
      const reads = await Promise.all(tree.files.map((f) => this.#read(f)));
      const watchRoot = tree.missing ? await nearestExisting(this.path) : undefined;
      if (!this.facet.isAlive) return;
      this.facet.turn(() => this.#apply(reads));
      this.#watch(tree, watchRoot);
    } catch (e) {
      if (!this.facet.isAlive) return;
      this.facet.engine.logger.error(`config watcher ${this.path}: scan failed: ${String(e)}`, {
        origin: this.facet.origin,
        error: e,
      });
    }
  }

  async #read(path: string): Promise<Read> {
    try {
      return { path, text: await readFile(path, 'utf8') };
    } catch (e) {
      return isMissing(e) ? { path, missing: true } : { path, error: e };
    }
  }

  /** Applies one scan in one turn: new versions start first, then old ones stop. */
  #apply(reads: readonly Read[]): void {
    const present = new Set<string>();
    const retired: Facet[] = [];
    for (const r of reads) {
      if ('missing' in r) continue; // deleted since the listing: treated as gone
      present.add(r.path);
      let st = this.#files.get(r.path);
      if (st === undefined) {
        st = { seen: undefined, running: undefined, errors: undefined };
        this.#files.set(r.path, st);
      }
      const seen: Seen = 'text' in r ? { text: r.text } : { error: r.error };
      if (sameSeen(st.seen, seen)) continue;
      st.seen = seen;
      if (!('text' in r)) {
        this.#publishErrors(st, r.path, [readProblem(r.path, r.error)]);
        continue;
      }
      const compiled = compileScript(r.text, { source: r.path, names: this.#names });
      if (compiled.script === undefined) {
        this.#publishErrors(st, r.path, compiled.problems);
        continue;
      }
      const run = runScript(this.facet, compiled.script, this.#env);
      if (run.error !== undefined) {
        this.#publishErrors(st, r.path, [runtimeProblem(r.path, run.error)]);
        continue;
      }
      if (st.running !== undefined) retired.push(st.running);
      st.running = run.facet;
      this.#publishErrors(st, r.path, []);
    }
    for (const [path, st] of this.#files) {
      if (present.has(path)) continue;
      if (st.running !== undefined) retired.push(st.running);
      st.errors?.stop();
      this.#files.delete(path);
    }
    for (const f of retired) f.stop();
    this.#ready ??= this.facet.assert(
      this.#config,
      record('service-state', this.serviceName, sym('ready')),
    );
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
