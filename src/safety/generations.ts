// Configuration generations (issue 12; docs/safe-change.md): every site
// configuration the daemon runs is a numbered, immutable file under the state
// directory's generations/, and one small state file says which is current,
// which was last confirmed, and what became of each.
//
//   generations/NNNNNN.gen   <generation {number time message who parent checksum
//                             roots files}> in binary Preserves: `files` maps each
//                             site root to {relative path: #[content]}. Written once
//                             (temporary file, fsync, rename, fsync the directory)
//                             and never changed.
//   generations/state.pr     {current: N last-confirmed: N outcomes: {N: OUTCOME}}
//                             in text, replaced atomically. OUTCOME is `confirmed`,
//                             `trial` or `<rolled-back REASON>`.
//
// What a generation holds is the site configuration (the roots the daemon was
// started with), every regular file under them that is not a dot-file or inside
// a dot-directory (what the config watchers read, and the files scripts use).
// Pruning keeps the newest `keep` generations, and never the current or the last
// confirmed one.

import { createHash } from 'node:crypto';
import { lstat, mkdir, readFile, readdir, rename, rm, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { UserError } from '../base/errors.ts';
import { syncDirectory, writeFileAtomic } from '../platform/atomic-file.ts';
import {
  FileTreeTooLargeError,
  listFileTree,
  readFileTree,
  readWithin,
} from '../platform/file-tree.ts';
export { isDirectory } from '../platform/file-tree.ts';
import {
  Bytes,
  Dict,
  Record,
  canonicalBytes,
  decode,
  encode,
  parse,
  peel,
  record,
  stringify,
  sym,
  type Value,
} from '../preserves/index.ts';

/** What became of a generation. */
export type Outcome =
  | { readonly kind: 'confirmed' }
  | { readonly kind: 'trial' }
  | { readonly kind: 'rolled-back'; readonly reason: string };

export interface GenerationMeta {
  readonly number: number;
  /** Milliseconds since the epoch. */
  readonly time: number;
  readonly message: string;
  /** Who asked: `hand edit`, `limen try (uid 0)`, … */
  readonly who: string;
  /** The generation that was current when this one was made. */
  readonly parent: number | undefined;
  /** SHA-256 (hex) of the files (their canonical Preserves form). */
  readonly checksum: string;
  readonly roots: readonly string[];
}

export interface Generation extends GenerationMeta {
  /** Root → relative path → content. */
  readonly files: ReadonlyMap<string, ReadonlyMap<string, Uint8Array>>;
}

export interface GenerationInfo extends GenerationMeta {
  readonly outcome: Outcome;
  readonly current: boolean;
  readonly lastConfirmed: boolean;
}

export class GenerationError extends UserError {
  readonly code = 'LIMEN_GENERATION';
}

/** A snapshot of the site roots, not yet a generation. */
export interface Snapshot {
  readonly roots: readonly string[];
  readonly files: ReadonlyMap<string, ReadonlyMap<string, Uint8Array>>;
  readonly checksum: string;
}

/** A snapshot larger than this is not recorded (the watchers load at most 4 MiB a layer). */
export const MAX_SNAPSHOT_BYTES = 32 * 1024 * 1024;

/** How many generations are kept by default (besides the current and last confirmed). */
export const DEFAULT_KEEP = 50;

const GEN_FILE = /^(\d{6,})\.gen$/;
const STATE_FILE = 'state.pr';

const fileName = (n: number) => `${String(n).padStart(6, '0')}.gen`;

function filesValue(files: ReadonlyMap<string, ReadonlyMap<string, Uint8Array>>): Dict {
  return new Dict(
    [...files].map(
      ([root, entries]) =>
        [
          root,
          new Dict([...entries].map(([path, bytes]) => [path, new Bytes(bytes)] as const)),
        ] as const,
    ),
  );
}

function checksumOf(files: ReadonlyMap<string, ReadonlyMap<string, Uint8Array>>): string {
  return createHash('sha256')
    .update(canonicalBytes(filesValue(files)))
    .digest('hex');
}

/** `snap` with root `root`'s files replaced by `files` (a candidate for that root). */
export function withRootFiles(
  snap: Snapshot,
  root: string,
  files: ReadonlyMap<string, Uint8Array>,
): Snapshot {
  const all = new Map(snap.files);
  all.set(root, files);
  return { roots: snap.roots, files: all, checksum: checksumOf(all) };
}

/** Reads the site roots as they are now. */
export async function snapshot(roots: readonly string[]): Promise<Snapshot> {
  const files = new Map<string, Map<string, Uint8Array>>();
  const budget = { bytes: 0 };
  for (const root of roots) {
    const entries = new Map<string, Uint8Array>();
    try {
      await readFileTree(root, entries, budget, MAX_SNAPSHOT_BYTES);
    } catch (e) {
      if (!(e instanceof FileTreeTooLargeError)) throw e;
      throw new GenerationError(
        `the site configuration is larger than ${MAX_SNAPSHOT_BYTES / 1024 / 1024} MiB (${e.path} takes it past the limit); it is not recorded as a generation`,
      );
    }
    files.set(root, entries);
  }
  return { roots: [...roots], files, checksum: checksumOf(files) };
}

function outcomeValue(o: Outcome): Value {
  return o.kind === 'rolled-back' ? record('rolled-back', o.reason) : sym(o.kind);
}

function outcomeOf(v: Value): Outcome | undefined {
  const p = peel(v);
  if (p === sym('confirmed')) return { kind: 'confirmed' };
  if (p === sym('trial')) return { kind: 'trial' };
  if (p instanceof Record && peel(p.label) === sym('rolled-back')) {
    const reason = peel(p.fields[0] ?? '');
    return { kind: 'rolled-back', reason: typeof reason === 'string' ? reason : stringify(reason) };
  }
  return undefined;
}

/** Outcome in words, for tables and logs. */
export function describeOutcome(o: Outcome): string {
  return o.kind === 'rolled-back' ? `rolled back: ${o.reason}` : o.kind;
}

interface State {
  current: number | undefined;
  lastConfirmed: number | undefined;
  outcomes: Map<number, Outcome>;
}

function field(d: Dict, name: string): Value | undefined {
  return d.get(sym(name));
}

function num(v: Value | undefined): number | undefined {
  const p = v === undefined ? undefined : peel(v);
  return typeof p === 'number' && Number.isSafeInteger(p) && p > 0 ? p : undefined;
}

function str(v: Value | undefined): string {
  const p = v === undefined ? undefined : peel(v);
  return typeof p === 'string' ? p : '';
}

function decodeMeta(v: Value, source: string): Generation {
  const p = peel(v);
  const d =
    p instanceof Record && peel(p.label) === sym('generation') ? peel(p.fields[0]!) : undefined;
  if (!(d instanceof Dict)) throw new GenerationError(`${source}: not a generation`);
  const number = num(field(d, 'number'));
  if (number === undefined) throw new GenerationError(`${source}: no generation number`);
  const files = new Map<string, Map<string, Uint8Array>>();
  const fv = peel(field(d, 'files') ?? new Dict());
  if (fv instanceof Dict) {
    for (const [root, entries] of fv) {
      const m = new Map<string, Uint8Array>();
      const e = peel(entries);
      if (e instanceof Dict)
        for (const [path, content] of e) {
          const c = peel(content);
          if (c instanceof Bytes) m.set(str(path), c.bytes);
        }
      files.set(str(root), m);
    }
  }
  const rootsV = peel(field(d, 'roots') ?? []);
  return {
    number,
    time: num(field(d, 'time')) ?? 0,
    message: str(field(d, 'message')),
    who: str(field(d, 'who')),
    parent: num(field(d, 'parent')),
    checksum: str(field(d, 'checksum')),
    roots: Array.isArray(rootsV) ? (rootsV as Value[]).map(str) : [...files.keys()],
    files,
  };
}

/**
 * The generations of one state directory. Not safe for two processes at once: the
 * daemon holds the state lock (src/platform/state-lock.ts) while it has one open.
 */
export class GenerationStore {
  readonly dir: string;
  readonly keep: number;
  /** The state file could not be read: it was renamed state.pr.damaged and rebuilt. */
  damagedState = false;
  #state: State = { current: undefined, lastConfirmed: undefined, outcomes: new Map() };
  #numbers: number[] = [];
  /** Checksums by number, read lazily (a generation never changes). */
  readonly #meta = new Map<number, GenerationMeta>();

  private constructor(dir: string, keep: number) {
    this.dir = dir;
    this.keep = keep;
  }

  static async open(dir: string, options: { keep?: number } = {}): Promise<GenerationStore> {
    const s = new GenerationStore(dir, options.keep ?? DEFAULT_KEEP);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await s.#load();
    return s;
  }

  async #load(): Promise<void> {
    const names = await readdir(this.dir);
    this.#numbers = names
      .map((n) => GEN_FILE.exec(n)?.[1])
      .filter((n): n is string => n !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
    let text: string | undefined;
    try {
      text = await readFile(join(this.dir, STATE_FILE), 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    const state: State = { current: undefined, lastConfirmed: undefined, outcomes: new Map() };
    let d: Value | undefined;
    try {
      d = text === undefined ? undefined : peel(parse(text));
    } catch {
      d = undefined;
    }
    if (text !== undefined && !(d instanceof Dict)) {
      // Damaged (by hand?): kept aside for a look, and rebuilt from the generations.
      await rename(join(this.dir, STATE_FILE), join(this.dir, `${STATE_FILE}.damaged`));
      this.damagedState = true;
    }
    if (d instanceof Dict) {
      state.current = num(field(d, 'current'));
      state.lastConfirmed = num(field(d, 'last-confirmed'));
      const o = peel(field(d, 'outcomes') ?? new Dict());
      if (o instanceof Dict)
        for (const [k, v] of o) {
          const n = num(k);
          const out = outcomeOf(v);
          if (n !== undefined && out !== undefined) state.outcomes.set(n, out);
        }
    }
    // A state naming a generation whose file is gone (never written: the state is
    // saved after the file) points at the newest that exists.
    const exists = (n: number | undefined) => n !== undefined && this.#numbers.includes(n);
    if (!exists(state.current)) state.current = this.#numbers.at(-1);
    if (!exists(state.lastConfirmed)) {
      state.lastConfirmed = [...this.#numbers]
        .reverse()
        .find((n) => (state.outcomes.get(n)?.kind ?? 'confirmed') === 'confirmed');
    }
    this.#state = state;
  }

  async #saveState(): Promise<void> {
    const s = this.#state;
    const d = new Dict([
      ...(s.current === undefined ? [] : [[sym('current'), s.current] as const]),
      ...(s.lastConfirmed === undefined ? [] : [[sym('last-confirmed'), s.lastConfirmed] as const]),
      [
        sym('outcomes'),
        new Dict(
          [...s.outcomes]
            .filter(([n]) => this.#numbers.includes(n))
            .map(([n, o]) => [n, outcomeValue(o)] as const),
        ),
      ],
    ]);
    await writeFileAtomic(join(this.dir, STATE_FILE), stringify(d) + '\n', { mode: 0o600 });
  }

  get current(): number | undefined {
    return this.#state.current;
  }

  get lastConfirmed(): number | undefined {
    return this.#state.lastConfirmed;
  }

  outcome(n: number): Outcome {
    return this.#state.outcomes.get(n) ?? { kind: 'confirmed' };
  }

  /** The whole generation (its files too). */
  async read(n: number): Promise<Generation> {
    if (!this.#numbers.includes(n)) throw new GenerationError(`there is no generation ${n}`);
    const path = join(this.dir, fileName(n));
    const g = decodeMeta(decode(await readFile(path)), path);
    if (g.number !== n) throw new GenerationError(`${path} holds generation ${g.number}`);
    return g;
  }

  async meta(n: number): Promise<GenerationMeta> {
    let m = this.#meta.get(n);
    if (m === undefined) {
      const { files: _files, ...rest } = await this.read(n);
      m = rest;
      this.#meta.set(n, m);
    }
    return m;
  }

  /** Every generation kept, oldest first. */
  async list(): Promise<GenerationInfo[]> {
    const out: GenerationInfo[] = [];
    for (const n of this.#numbers) {
      let meta: GenerationMeta;
      try {
        meta = await this.meta(n);
      } catch (e) {
        // Listed all the same, so that the damage shows where an operator looks.
        meta = {
          number: n,
          time: 0,
          message: `unreadable: ${(e as Error).message}`,
          who: '',
          parent: undefined,
          checksum: '',
          roots: [],
        };
      }
      out.push({
        ...meta,
        outcome: this.outcome(n),
        current: n === this.#state.current,
        lastConfirmed: n === this.#state.lastConfirmed,
      });
    }
    return out;
  }

  /** The checksum of the current generation, if there is one. */
  async currentChecksum(): Promise<string | undefined> {
    const c = this.#state.current;
    return c === undefined ? undefined : (await this.meta(c)).checksum;
  }

  /**
   * Writes `snap` as a new generation, makes it current and (for `confirmed`) the last
   * confirmed one, then prunes. Returns its number.
   */
  async record(
    snap: Snapshot,
    options: { message: string; who: string; outcome?: Outcome; time?: number },
  ): Promise<number> {
    const number = (this.#numbers.at(-1) ?? 0) + 1;
    const meta: GenerationMeta = {
      number,
      time: options.time ?? Date.now(),
      message: options.message,
      who: options.who,
      parent: this.#state.current,
      checksum: snap.checksum,
      roots: snap.roots,
    };
    const v = record(
      'generation',
      new Dict([
        [sym('number'), number],
        [sym('time'), meta.time],
        [sym('message'), meta.message],
        [sym('who'), meta.who],
        ...(meta.parent === undefined ? [] : [[sym('parent'), meta.parent] as const]),
        [sym('checksum'), meta.checksum],
        [sym('roots'), [...meta.roots]],
        [sym('files'), filesValue(snap.files)],
      ]),
    );
    await writeFileAtomic(join(this.dir, fileName(number)), encode(v), { mode: 0o600 });
    this.#numbers.push(number);
    this.#meta.set(number, meta);
    const outcome = options.outcome ?? { kind: 'confirmed' };
    this.#state.outcomes.set(number, outcome);
    this.#state.current = number;
    if (outcome.kind === 'confirmed') this.#state.lastConfirmed = number;
    await this.#prune();
    await this.#saveState();
    return number;
  }

  /** Records what became of generation `n`; `current` moves too when given. */
  async settle(n: number, outcome: Outcome, current?: number): Promise<void> {
    if (!this.#numbers.includes(n)) throw new GenerationError(`there is no generation ${n}`);
    this.#state.outcomes.set(n, outcome);
    if (outcome.kind === 'confirmed') this.#state.lastConfirmed = n;
    if (current !== undefined) this.#state.current = current;
    await this.#saveState();
  }

  /** Makes `n` current (its files are what the site roots hold again). */
  async makeCurrent(n: number): Promise<void> {
    if (!this.#numbers.includes(n)) throw new GenerationError(`there is no generation ${n}`);
    this.#state.current = n;
    if (this.outcome(n).kind === 'confirmed') this.#state.lastConfirmed = n;
    await this.#saveState();
  }

  async #prune(): Promise<void> {
    const excess = this.#numbers.length - this.keep;
    if (excess <= 0) return;
    const protectedOnes = new Set([this.#state.current, this.#state.lastConfirmed]);
    const victims = this.#numbers.filter((n) => !protectedOnes.has(n)).slice(0, excess);
    for (const n of victims) {
      await unlink(join(this.dir, fileName(n))).catch(() => undefined);
      this.#meta.delete(n);
      this.#state.outcomes.delete(n);
    }
    this.#numbers = this.#numbers.filter((n) => !victims.includes(n));
    if (victims.length > 0) await syncDirectory(this.dir);
  }
}

/**
 * Makes the site roots hold exactly generation `g`'s files: each file written
 * atomically (only when its content differs), every other file that a snapshot
 * would have read removed. Dot-files (editors' swap files, limen's temporaries) stay.
 */
export async function restoreFiles(
  g: Pick<Generation, 'roots' | 'files'>,
): Promise<{ written: number; removed: number }> {
  let written = 0;
  let removed = 0;
  for (const root of g.roots) {
    const want = g.files.get(root) ?? new Map<string, Uint8Array>();
    // What is there is listed, and a file read only to compare it with what is
    // wanted, no further than that (a stray file of gigabytes costs no memory).
    const have = new Set(await listFileTree(root));
    for (const [path, content] of want) {
      const old = have.has(path)
        ? await readWithin(join(root, ...path.split('/')), content.length).catch(() => undefined)
        : undefined;
      if (old !== undefined && Buffer.compare(old, Buffer.from(content)) === 0) continue;
      const target = join(root, ...path.split('/'));
      await mkdir(dirname(target), { recursive: true });
      await writeFileAtomic(target, content, { mode: await modeOf(target) });
      written++;
    }
    for (const path of have) {
      if (want.has(path)) continue;
      const target = join(root, ...path.split('/'));
      await rm(target, { force: true });
      await syncDirectory(dirname(target));
      removed++;
    }
  }
  return { written, removed };
}

/** A file's mode if it exists (kept on restore), 0644 otherwise. */
async function modeOf(path: string): Promise<number> {
  try {
    const s = await lstat(path);
    return s.isFile() ? s.mode & 0o7777 : 0o644;
  } catch {
    return 0o644;
  }
}
