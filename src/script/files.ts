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
