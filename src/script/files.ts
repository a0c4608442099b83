// Finding, reading and running script files: every `*.pr` under a directory
// (recursively; dot-files and dot-directories skipped) in name order, where a
// directory's entries are visited by name and subdirectories take their place
// among the files. Used by the config watcher, `limen check` and `limen eval`.

import { open, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Facet } from '../dataspace/index.ts';
import type { Script } from './ast.ts';
import { compileScript, type CompileResult } from './compile.ts';
import {
  ScriptPathError,
  ScriptTooLargeError,
  filePosition,
  type ScriptProblem,
} from './errors.ts';
import { runScript, type RunOptions, type RunResult, type ScriptBindings } from './interpreter.ts';

export const SCRIPT_EXTENSION = '.pr';

/**
 * The largest script file limen reads (docs/script-language.md, "Limits"): reading,
 * checking and running one costs some 50 times its size in memory, and it is applied
 * in one turn, during which the daemon answers nothing.
 */
export const MAX_SCRIPT_BYTES = 1024 * 1024;

/**
 * Reads a script's text, refusing (ScriptTooLargeError) a file over `maxBytes` before
 * reading it, and never reading more than `maxBytes` + 1 bytes of one that grows meanwhile.
 */
export async function readScriptText(path: string, maxBytes = MAX_SCRIPT_BYTES): Promise<string> {
  const fh = await open(path, 'r');
  try {
    const size = (await fh.stat()).size;
    if (size > maxBytes) throw new ScriptTooLargeError(size, maxBytes);
    const buf = Buffer.alloc(Math.min(size, maxBytes) + 1);
    let got = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, got, buf.length - got, got);
      if (bytesRead === 0) break;
      got += bytesRead;
      if (got === buf.length) {
        if (got > maxBytes) throw new ScriptTooLargeError(got, maxBytes);
        break; // grew since the stat, but not past the limit: what was there
      }
    }
    return buf.toString('utf8', 0, got);
  } finally {
    await fh.close();
  }
}

/** What a scan of a script tree found. */
export interface ScriptTree {
  /** Script files in load order. */
  readonly files: readonly string[];
  /** Directories visited (the root included, when it is one). */
  readonly dirs: readonly string[];
  /** The root does not exist. */
  readonly missing: boolean;
  /** The root is a file (it is then the only script, whatever its name). */
  readonly isFile: boolean;
}

function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Lists the scripts under `root` (a directory or a single file). */
export async function scanScriptTree(root: string, signal?: AbortSignal): Promise<ScriptTree> {
  let st;
  try {
    st = await stat(root);
  } catch (e) {
    if (isMissing(e)) return { files: [], dirs: [], missing: true, isFile: false };
    throw e;
  }
  if (!st.isDirectory()) return { files: [root], dirs: [], missing: false, isFile: true };
  const files: string[] = [];
  const dirs: string[] = [];
  // Symlinked directories are followed once: a link loop must not recurse forever.
  const seen = new Set<string>();
  const walk = async (dir: string, id: string): Promise<void> => {
    if (seen.has(id)) return;
    seen.add(id);
    dirs.push(dir);
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (e) {
      if (isMissing(e)) return; // removed while we looked: the next scan settles it
      throw e;
    }
    entries.sort((a, b) => compareNames(a.name, b.name));
    for (const e of entries) {
      signal?.throwIfAborted();
      if (e.name.startsWith('.')) continue;
      const p = join(dir, e.name);
      let isDir = e.isDirectory();
      let isFile = e.isFile();
      let subId = '';
      if (e.isSymbolicLink() || isDir) {
        try {
          const s = await stat(p);
          isDir = s.isDirectory();
          isFile = s.isFile();
          subId = `${s.dev}:${s.ino}`;
        } catch (err) {
          if (isMissing(err)) continue; // a dangling link is not a script
          throw err;
        }
      }
      if (isDir) await walk(p, subId);
      else if (isFile && e.name.endsWith(SCRIPT_EXTENSION)) files.push(p);
    }
  };
  await walk(root, `${st.dev}:${st.ino}`);
  return { files, dirs, missing: false, isFile: false };
}

/**
 * Where a config watcher finds its scripts. The default is the file system, watched
 * for changes; a source given instead (a snapshot) is read once and never watched.
 */
export interface ScriptSource {
  /** Lists the scripts under `root` as scanScriptTree does. */
  scan(root: string, signal?: AbortSignal): Promise<ScriptTree>;
  /** A script's text; ScriptTooLargeError past `maxBytes`, an ENOENT error when missing. */
  read(path: string, maxBytes: number): Promise<string>;
}

/** A path component by component, for the order scanScriptTree visits files in. */
function compareComponents(a: readonly string[], b: readonly string[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const c = compareNames(a[i]!, b[i]!);
    if (c !== 0) return c;
  }
  return a.length - b.length;
}

function missingError(path: string): Error {
  return Object.assign(new Error(`ENOENT: no such file or directory, open '${path}'`), {
    code: 'ENOENT',
  });
}

/**
 * Fixed files in place of some directories (a configuration generation, a candidate):
 * under each of `trees`' roots, only its files exist (root → path relative to it, with
 * '/' separators → content); any other path is read from the file system. `limen diff`
 * evaluates a configuration that is not on disk with it.
 */
export class SnapshotSource implements ScriptSource {
  readonly #roots: readonly string[];
  /** Absolute path → content, for every file of every tree. */
  readonly #files = new Map<string, Uint8Array>();

  constructor(trees: ReadonlyMap<string, ReadonlyMap<string, Uint8Array>>) {
    this.#roots = [...trees.keys()];
    for (const [root, files] of trees)
      for (const [rel, content] of files) this.#files.set(join(root, rel), content);
  }

  #covered(path: string): boolean {
    return this.#roots.some((r) => path === r || path.startsWith(r.endsWith('/') ? r : `${r}/`));
  }

  async scan(root: string, signal?: AbortSignal): Promise<ScriptTree> {
    if (!this.#covered(root)) return scanScriptTree(root, signal);
    if (this.#files.has(root)) return { files: [root], dirs: [], missing: false, isFile: true };
    const prefix = root.endsWith('/') ? root : `${root}/`;
    const found: string[][] = [];
    for (const path of this.#files.keys()) {
      if (!path.startsWith(prefix)) continue;
      const parts = path.slice(prefix.length).split('/');
      if (parts.some((p) => p.startsWith('.')) || !path.endsWith(SCRIPT_EXTENSION)) continue;
      found.push(parts);
    }
    found.sort(compareComponents);
    return {
      files: found.map((parts) => prefix + parts.join('/')),
      dirs: [],
      missing: found.length === 0,
      isFile: false,
    };
  }

  async read(path: string, maxBytes: number): Promise<string> {
    if (!this.#covered(path)) return readScriptText(path, maxBytes);
    const content = this.#files.get(path);
    if (content === undefined) throw missingError(path);
    if (content.length > maxBytes) throw new ScriptTooLargeError(content.length, maxBytes);
    return Buffer.from(content.buffer, content.byteOffset, content.length).toString('utf8');
  }
}

export function isMissing(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** The scripts under each path, in argument order; a missing path is a ScriptPathError. */
export async function listScriptFiles(paths: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const p of paths) {
    const tree = await scanScriptTree(p);
    if (tree.missing) throw new ScriptPathError(p, 'no such file or directory');
    out.push(...tree.files);
  }
  return out;
}

/** One file read and checked. */
export interface CheckedFile {
  readonly path: string;
  readonly script: Script | undefined;
  readonly problems: readonly ScriptProblem[];
}

/** Reads and checks one file; an unreadable file is one problem (line 0). */
export async function checkScriptFile(path: string, names: Iterable<string>): Promise<CheckedFile> {
  let text: string;
  try {
    text = await readScriptText(path);
  } catch (e) {
    return { path, script: undefined, problems: [readProblem(path, e)] };
  }
  const r: CompileResult = compileScript(text, { source: path, names });
  return { path, script: r.script, problems: r.problems };
}

export function readProblem(path: string, e: unknown): ScriptProblem {
  if (e instanceof ScriptTooLargeError) return { pos: filePosition(path), message: e.message };
  const code = (e as { code?: unknown } | null)?.code;
  const why = typeof code === 'string' ? code : e instanceof Error ? e.message : String(e);
  return { pos: filePosition(path), message: `cannot read the file (${why})` };
}

/** Reads and checks every script under the paths (a missing path is a ScriptPathError). */
export async function checkScriptFiles(
  paths: readonly string[],
  names: Iterable<string>,
): Promise<CheckedFile[]> {
  const list = [...names];
  const files = await listScriptFiles(paths);
  return Promise.all(files.map((f) => checkScriptFile(f, list)));
}

/**
 * Runs checked scripts once, each in its own child facet of `parent`, in order (no
 * watching: see ConfigWatcher for that). Call it only when no file had problems.
 */
export function runScripts(
  parent: Facet,
  scripts: readonly Script[],
  bindings: ScriptBindings,
  options: RunOptions = {},
): RunResult[] {
  return scripts.map((s) => runScript(parent, s, bindings, options));
}
