// The user settings store: /var/lib/limen/user-settings/, one file per setting,
// named by the SHA-1 of the setting's canonical binary form plus `.pr`. Each file
// is a script that asserts exactly its setting: a record or dictionary is written
// as is, any other value as `+= VALUE`. Invariants: writes are atomic
// (writeFileAtomic: a dot-named temporary file, fsync, rename, fsync of the
// directory), so a reader (the config watcher, which skips dot-files) sees the old
// file or the new one, never a part; an unset fsyncs the directory too
// (syncDirectory). The daemon removes a killed write's temporary when it starts.

import { chmod, mkdir, readFile, readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { syncDirectory, writeFileAtomic } from '../platform/atomic-file.ts';
import {
  Dict,
  Embedded,
  PSet,
  PreservesReadError,
  Record,
  Sym,
  compare,
  is,
  parseAll,
  peel,
  sha1,
  stringify,
  strip,
  type Value,
} from '../preserves/index.ts';
import { compileScript } from '../script/index.ts';
import { InvalidSettingError, SettingsIoError } from './errors.ts';
import type { SettingEntry, SettingsAnswer } from './protocol.ts';

export const SETTING_EXTENSION = '.pr';
/** Settings are root's alone: the directory is 0700 and each file 0600, whatever the umask. */
export const SETTINGS_DIR_MODE = 0o700;
export const SETTING_FILE_MODE = 0o600;

/** What versions before writeFileAtomic named their temporaries: `.NAME.pr.PID.HEX.tmp`. */
const LEGACY_TEMPORARY = /^\.[0-9a-f]{40}\.pr\.[0-9]+\.[0-9a-f]{12}\.tmp$/;

/** A temporary that an older limen's `settings set` left when it was killed mid-write. */
export function isLegacySettingsTemporary(name: string): boolean {
  return LEGACY_TEMPORARY.test(name);
}

/** Creates the settings directory, and gives it (new or not) mode 0700 whatever the umask. */
export async function makeSettingsDirectory(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: SETTINGS_DIR_MODE });
  await chmod(dir, SETTINGS_DIR_MODE);
}

/** `/var/lib/limen/user-settings`, or the same path under `root`. */
export function userSettingsDir(root?: string): string {
  return join(root ?? '/', 'var/lib/limen/user-settings');
}

export interface SettingsOptions {
  readonly signal?: AbortSignal | undefined;
}

export interface SetResult {
  /** The file's name (not its path). */
  readonly file: string;
  /** False when the setting was already stored (the file was left alone). */
  readonly changed: boolean;
}

export interface UnsetResult {
  readonly file: string;
  /** False when the setting was not stored. */
  readonly removed: boolean;
}

/** What the control server needs from a settings store. */
export interface SettingsStore {
  /** Every stored setting, sorted; unreadable files are listed as problems. */
  list(options?: SettingsOptions): Promise<SettingsAnswer>;
  /** Stores a setting (InvalidSettingError if it cannot be one). */
  set(value: Value, options?: SettingsOptions): Promise<SetResult>;
  unset(value: Value, options?: SettingsOptions): Promise<UnsetResult>;
}

/** The file name of a setting: the SHA-1 of its canonical form, in hex, plus `.pr`. */
export function settingFileName(value: Value): string {
  return `${sha1(strip(value))}${SETTING_EXTENSION}`;
}

/** Records and dictionaries are instructions that assert themselves; the rest needs `+=`. */
function assertsItself(v: Value): boolean {
  const p = peel(v);
  return p instanceof Record || p instanceof Dict;
}

/** The file's text: a script that asserts exactly `value` (checkSetting must have passed). */
export function settingText(value: Value): string {
  const v = strip(value);
  const text = stringify(v, { indent: true });
  return assertsItself(v) ? `${text}\n` : `+= ${text}\n`;
}

/**
 * Why a value cannot be a setting, every reason (empty when it can). A setting is written
 * as a script, where some symbols and records mean something else, and it must survive a
 * trip to disk, which a live reference cannot.
 */
export function checkSetting(value: Value): string[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  const add = (p: string): void => {
    if (!seen.has(p)) {
      seen.add(p);
      problems.push(p);
    }
  };
  const walk = (x: Value): void => {
    const p = peel(x);
    if (p instanceof Embedded) {
      add('an embedded value (#:...) cannot be stored: it refers to something live');
    } else if (p instanceof Sym) {
      const n = p.name;
      if (n === '_' || n.startsWith('?')) {
        add(
          `the symbol ${stringify(p)} is pattern syntax in a script; a setting cannot contain it`,
        );
      } else if (n.startsWith('$')) {
        add(`the symbol ${stringify(p)} is a variable in a script; a setting cannot contain it`);
      }
    } else if (p instanceof Record) {
      const label = peel(p.label);
      if (label instanceof Sym && label.name === '*') {
        add('a record labelled * is an attenuation in a script; a setting cannot contain it');
      }
      walk(p.label);
      for (const f of p.fields) walk(f);
    } else if (Array.isArray(p)) {
      for (const item of p as readonly Value[]) walk(item);
    } else if (p instanceof PSet) {
      for (const item of p) walk(item);
    } else if (p instanceof Dict) {
      for (const [k, item] of p) {
        walk(k);
        walk(item);
      }
    }
  };
  walk(value);
  if (problems.length === 0) {
    // The file must also be a script the loader accepts; this cannot fail when the walk
    // found nothing, unless the script language grows, which is what this guards.
    const r = compileScript(settingText(value), { source: 'setting', names: ['config'] });
    for (const p of r.problems) add(p.message);
  }
  return problems;
}

/**
 * Reads a settings file's text back to its setting. Throws InvalidSettingError when the
 * text is not one record or dictionary, or `+= VALUE` (PreservesReadError on bad syntax).
 */
export function readSettingText(text: string, source: string): Value {
  const values = parseAll(text, { source });
  if (values.length === 1 && assertsItself(values[0]!)) return strip(values[0]!);
  const first = values[0] === undefined ? undefined : peel(values[0]);
  if (values.length === 2 && first instanceof Sym && first.name === '+=') {
    return strip(values[1]!);
  }
  throw new InvalidSettingError([
    `${source}: expected one record or dictionary, or += VALUE (found ${values.length} values)`,
  ]);
}

function ioError(what: string, e: unknown): SettingsIoError {
  const msg = e instanceof Error ? e.message : String(e);
  return new SettingsIoError(`${what}: ${msg}`, { cause: e });
}

function isNotFound(e: unknown): boolean {
  return (e as NodeJS.ErrnoException | null)?.code === 'ENOENT';
}

/** The settings store on disk. The directory is created (mode 0700) on the first write. */
export class SettingsDirectory implements SettingsStore {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
  }

  async list(options: SettingsOptions = {}): Promise<SettingsAnswer> {
    options.signal?.throwIfAborted();
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (e) {
      if (isNotFound(e)) return { settings: [], problems: [] };
      throw ioError(`cannot list ${this.dir}`, e);
    }
    const settings: SettingEntry[] = [];
    const problems: { file: string; message: string }[] = [];
    for (const file of names.sort()) {
      if (file.startsWith('.') || !file.endsWith(SETTING_EXTENSION)) continue;
      options.signal?.throwIfAborted();
      const path = join(this.dir, file);
      let value: Value;
      try {
        value = readSettingText(await readFile(path, 'utf8'), path);
      } catch (e) {
        if (e instanceof PreservesReadError || e instanceof InvalidSettingError) {
          problems.push({ file, message: e.message });
          continue;
        }
        if (isNotFound(e)) continue; // removed while we listed
        problems.push({ file, message: `cannot read: ${(e as Error).message}` });
        continue;
      }
      const expected = settingFileName(value);
      if (expected !== file) {
        problems.push({
          file,
          message: `named ${file} but its setting's digest names ${expected}; rename it, or unset will not find it`,
        });
      }
      settings.push({ value, file });
    }
    settings.sort((a, b) => compare(a.value, b.value));
    return { settings, problems };
  }

  async set(value: Value, options: SettingsOptions = {}): Promise<SetResult> {
    const problems = checkSetting(value);
    if (problems.length > 0) throw new InvalidSettingError(problems);
    options.signal?.throwIfAborted();
    const v = strip(value);
    const file = settingFileName(v);
    const path = join(this.dir, file);
    const text = settingText(v);
    const current = await readFile(path, 'utf8').catch(() => undefined);
    if (current !== undefined && sameSetting(current, path, v)) return { file, changed: false };
    try {
      await makeSettingsDirectory(this.dir);
    } catch (e) {
      throw ioError(`cannot create ${this.dir}`, e);
    }
    options.signal?.throwIfAborted();
    try {
      await writeFileAtomic(path, text, {
        mode: SETTING_FILE_MODE,
        ...(options.signal ? { signal: options.signal } : {}),
      });
    } catch (e) {
      if (options.signal?.aborted === true) throw e;
      throw ioError(`cannot write ${path}`, e);
    }
    return { file, changed: true };
  }

  async unset(value: Value, options: SettingsOptions = {}): Promise<UnsetResult> {
    options.signal?.throwIfAborted();
    const file = settingFileName(value);
    const path = join(this.dir, file);
    try {
      await unlink(path);
    } catch (e) {
      if (isNotFound(e)) return { file, removed: false };
      throw ioError(`cannot remove ${path}`, e);
    }
    try {
      await syncDirectory(this.dir);
    } catch (e) {
      throw ioError(`cannot sync ${this.dir}`, e);
    }
    return { file, removed: true };
  }
}

function sameSetting(text: string, path: string, v: Value): boolean {
  try {
    return is(readSettingText(text, path), v);
  } catch {
    return false;
  }
}
