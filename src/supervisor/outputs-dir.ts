// A service's outputs directory ($LIMEN_OUTPUTS): programs write one file per
// output (atomically, by rename) and this reports each as set or deleted.
// Every report comes from a full rescan diffed against the last one, run after
// each change notification (debounced), so a lost or merged notification can
// never leave the reported state different from the directory's.
//
// Naming: a regular file NAME gives key NAME, its text trimmed as the value;
// NAME.pr gives key NAME with isPreserves set (the text is Preserves syntax, to
// be parsed by the caller), and wins over a plain NAME if both exist. Ignored:
// names starting with '.', or ending in '.tmp' or '~' (editors' and writers'
// temporary files), directories, symlinks and other non-regular files.

import { watch, constants as fsConstants, type FSWatcher } from 'node:fs';
import { chmod, chown, mkdir, open, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Disposable } from '../base/disposable.ts';
import { InternalError } from '../base/errors.ts';
import { Emitter, type Listener, type ListenerErrorHandler } from './emitter.ts';

export interface OutputValue {
  readonly value: string;
  readonly isPreserves: boolean;
  /** The file it came from. */
  readonly file: string;
}

export type OutputChange =
  | {
      readonly kind: 'set';
      readonly key: string;
      readonly value: string;
      readonly isPreserves: boolean;
    }
  | { readonly kind: 'delete'; readonly key: string };

/** A file that cannot be an output (too big, unreadable), or a failing directory. */
export interface OutputProblem {
  /** The file's name, or null for the directory itself. */
  readonly file: string | null;
  readonly message: string;
}

export interface OutputsDirOptions {
  /** Coalesces bursts of notifications into one rescan. Default 1 ms (a rescan already in
   * progress coalesces everything that arrives meanwhile into one more). */
  readonly debounceMs?: number;
  /** Larger files are not outputs (reported as a problem). Default 64 KiB. */
  readonly maxValueBytes?: number;
  /** Owner to give the directory, so that a service running as them can write. */
  readonly owner?: { readonly uid: number; readonly gid: number };
  readonly onListenerError?: ListenerErrorHandler;
}

export const DEFAULT_MAX_VALUE_BYTES = 64 * 1024;
const DIR_MODE = 0o755;

/** The key a file name gives, or null when the file is ignored. */
export function outputKey(fileName: string): { key: string; isPreserves: boolean } | null {
  if (fileName.startsWith('.') || fileName.endsWith('.tmp') || fileName.endsWith('~')) return null;
  if (fileName.endsWith('.pr')) return { key: fileName.slice(0, -3), isPreserves: true };
  return { key: fileName, isPreserves: false };
}

type ReadResult =
  { kind: 'value'; text: string } | { kind: 'absent' } | { kind: 'problem'; message: string };

export class OutputsDir implements Disposable {
  readonly path: string;
  readonly #debounceMs: number;
  readonly #maxValueBytes: number;
  readonly #owner: { readonly uid: number; readonly gid: number } | undefined;
  readonly #changes: Emitter<OutputChange>;
  readonly #problems: Emitter<OutputProblem>;

  #values = new Map<string, OutputValue>();
  /** Problems already reported, by file (or '' for the directory), to report each once. */
  #reported = new Map<string, string>();
  #watcher: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  #opened = false;
  #disposed = false;
  #dirty = false;
  #loop: Promise<void> | undefined;

  constructor(path: string, options: OutputsDirOptions = {}) {
    this.path = path;
    this.#debounceMs = options.debounceMs ?? 1;
    this.#maxValueBytes = options.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES;
    this.#owner = options.owner;
    this.#changes = new Emitter(options.onListenerError);
    this.#problems = new Emitter(options.onListenerError);
  }

  /** The outputs as last reported. */
  get values(): ReadonlyMap<string, OutputValue> {
    return this.#values;
  }

  onDidChange(listener: Listener<OutputChange>): Disposable {
    return this.#changes.event(listener);
  }

  onDidProblem(listener: Listener<OutputProblem>): Disposable {
    return this.#problems.event(listener);
  }

  /**
   * Creates the directory (mode 0755, parents too), empties it, starts watching
   * and reports what it holds (nothing, unless a writer was quick).
   */
  async open(options: { signal?: AbortSignal } = {}): Promise<void> {
    if (this.#opened || this.#disposed) {
      throw new InternalError(`OutputsDir.open() called twice or after dispose: ${this.path}`);
    }
    this.#opened = true;
    const signal = options.signal;
    await mkdir(this.path, { recursive: true, mode: DIR_MODE });
    await chmod(this.path, DIR_MODE); // mkdir's mode passes through the umask
    if (this.#owner) await chown(this.path, this.#owner.uid, this.#owner.gid);
    signal?.throwIfAborted();
    await this.#empty();
    signal?.throwIfAborted();
    if (this.#disposed) return;
    // Watch before the first scan, so nothing written in between is missed.
    this.#watcher = watch(this.path, { persistent: false }, () => this.#schedule());
    this.#watcher.on('error', (e) => {
      this.#report('', `watching ${this.path} failed: ${e.message}`);
      this.#schedule();
    });
    await this.rescan();
  }

  /** Reads the directory now and reports the difference; resolves once reported. */
  rescan(): Promise<void> {
    this.#dirty = true;
    this.#loop ??= this.#runScans();
    return this.#loop;
  }

  /** Removes everything in the directory and reports the deletes. */
  async clear(): Promise<void> {
    await this.#loop;
    await this.#empty();
    if (this.#opened && !this.#disposed) await this.rescan();
  }

  /** Stops watching; nothing is reported after this. The files stay. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    clearTimeout(this.#timer);
    this.#watcher?.close();
    this.#changes.clear();
    this.#problems.clear();
  }

  #schedule(): void {
    if (this.#disposed || this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.rescan();
    }, this.#debounceMs);
  }

  async #empty(): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw e;
    }
    await Promise.all(names.map((n) => rm(join(this.path, n), { recursive: true, force: true })));
  }

  async #runScans(): Promise<void> {
    // No await between the last test of #dirty and clearing #loop: a rescan()
    // that comes after the test starts a new loop, one before it is seen here.
    try {
      while (this.#dirty && !this.#disposed) {
        this.#dirty = false;
        await this.#scanOnce();
      }
    } finally {
      this.#loop = undefined;
    }
  }

  async #scanOnce(): Promise<void> {
    let names: string[];
    try {
      names = (await readdir(this.path)).sort();
      this.#resolved('');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
        this.#report('', `cannot read ${this.path}: ${(e as Error).message}`);
        return; // keep what was reported: better stale than falsely empty
      }
      this.#report('', `${this.path} was removed`);
      names = [];
    }
    const candidates = names.flatMap((file) => {
      const k = outputKey(file);
      return k ? [{ file, ...k }] : [];
    });
    const reads = await Promise.all(candidates.map((c) => this.#read(c.file)));
    if (this.#disposed) return;

    const next = new Map<string, OutputValue>();
    const seen = new Set<string>();
    candidates.forEach((c, i) => {
      const r = reads[i]!;
      seen.add(c.file);
      if (r.kind === 'problem') return this.#report(c.file, r.message);
      this.#resolved(c.file);
      if (r.kind === 'absent') return;
      const have = next.get(c.key);
      if (have && have.isPreserves && !c.isPreserves) return; // NAME.pr wins over NAME
      next.set(c.key, { value: r.text, isPreserves: c.isPreserves, file: c.file });
    });
    for (const file of [...this.#reported.keys()]) {
      if (file !== '' && !seen.has(file)) this.#reported.delete(file);
    }

    const prev = this.#values;
    this.#values = next;
    const keys = [...new Set([...prev.keys(), ...next.keys()])].sort();
    for (const key of keys) {
      const before = prev.get(key);
      const after = next.get(key);
      if (!after) this.#changes.fire({ kind: 'delete', key });
      else if (
        !before ||
        before.value !== after.value ||
        before.isPreserves !== after.isPreserves
      ) {
        this.#changes.fire({
          kind: 'set',
          key,
          value: after.value,
          isPreserves: after.isPreserves,
        });
      }
    }
  }

  async #read(file: string): Promise<ReadResult> {
    // O_NOFOLLOW and the fstat make the check and the read one: a symlink (to
    // a secret, say) or a FIFO swapped in after readdir is never read.
    const flags = fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK;
    let fh;
    try {
      fh = await open(join(this.path, file), flags);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ELOOP' || code === 'EISDIR') return { kind: 'absent' };
      return { kind: 'problem', message: `cannot read ${file}: ${(e as Error).message}` };
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) return { kind: 'absent' };
      if (st.size > this.#maxValueBytes) {
        return {
          kind: 'problem',
          message: `${file} is ${st.size} bytes, more than the ${this.#maxValueBytes} an output may hold`,
        };
      }
      const buf = Buffer.alloc(this.#maxValueBytes + 1);
      let n = 0;
      for (;;) {
        const { bytesRead } = await fh.read(buf, n, buf.length - n, n);
        if (bytesRead === 0) break;
        n += bytesRead;
        if (n > this.#maxValueBytes) {
          return { kind: 'problem', message: `${file} grew past ${this.#maxValueBytes} bytes` };
        }
      }
      return { kind: 'value', text: buf.subarray(0, n).toString('utf8').trim() };
    } catch (e) {
      return { kind: 'problem', message: `cannot read ${file}: ${(e as Error).message}` };
    } finally {
      await fh.close();
    }
  }

  #report(file: string, message: string): void {
    if (this.#reported.get(file) === message || this.#disposed) return;
    this.#reported.set(file, message);
    this.#problems.fire({ file: file === '' ? null : file, message });
  }

  #resolved(file: string): void {
    this.#reported.delete(file);
  }
}
