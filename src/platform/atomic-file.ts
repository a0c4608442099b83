// Atomic replacement of a file, the one way limen writes persistent state: a
// temporary file in the same directory (named so that a crash's leftover is
// recognisable), fsync, rename over the target, fsync of the directory. A reader
// sees the old content or the new, never a mix; after a power cut, one of them.
// A temporary left by a SIGKILL is removed by removeStaleTemporaries() at start.

import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fchmodSync,
  fsyncSync,
  openSync,
  renameSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { open, readFile, readdir, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** `.NAME.limen-HEX.tmp`: what writeFileAtomic names its temporaries. */
const TEMPORARY = /^\..+\.limen-[0-9a-f]{12}\.tmp$/;

export function isLimenTemporary(name: string): boolean {
  return TEMPORARY.test(name);
}

export interface AtomicWriteOptions {
  /** The file's mode, applied whatever the umask (default 0o644). */
  readonly mode?: number;
  readonly signal?: AbortSignal;
}

function temporaryFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.limen-${randomBytes(6).toString('hex')}.tmp`);
}

/** Opens the directory and fsyncs it, so that a rename or unlink in it is durable. */
export async function syncDirectory(dir: string): Promise<void> {
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

/** Replaces `path` with `content` atomically and durably. */
export async function writeFileAtomic(
  path: string,
  content: string | Uint8Array,
  options: AtomicWriteOptions = {},
): Promise<void> {
  const mode = options.mode ?? 0o644;
  const dir = dirname(path);
  const tmp = temporaryFor(path);
  let renamed = false;
  try {
    // Created with mode 0600 (never wider than the target, whatever the umask),
    // then set to the target's mode before anyone can see it under its name.
    const fh = await open(tmp, 'wx', 0o600);
    try {
      await fh.writeFile(content);
      if (mode !== 0o600) await fh.chmod(mode);
      await fh.sync();
    } finally {
      await fh.close();
    }
    options.signal?.throwIfAborted();
    await rename(tmp, path);
    renamed = true;
  } finally {
    if (!renamed) await unlink(tmp).catch(() => undefined);
  }
  await syncDirectory(dir);
}

/**
 * writeFileAtomic for code that cannot await (the lab's record, saved from exit
 * handlers): the same temporary name, modes, fsyncs and rename.
 */
export function writeFileAtomicSync(
  path: string,
  content: string | Uint8Array,
  options: { readonly mode?: number } = {},
): void {
  const mode = options.mode ?? 0o644;
  const tmp = temporaryFor(path);
  let renamed = false;
  try {
    const fd = openSync(tmp, 'wx', 0o600);
    try {
      writeFileSync(fd, content);
      if (mode !== 0o600) fchmodSync(fd, mode);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
    renamed = true;
  } finally {
    if (!renamed) {
      try {
        unlinkSync(tmp);
      } catch {
        // never created, or already gone
      }
    }
  }
  const d = openSync(dirname(path), 'r');
  try {
    fsyncSync(d);
  } finally {
    closeSync(d);
  }
}

/** Like writeFileAtomic, unless the file already holds exactly that; returns whether it wrote. */
export async function writeFileAtomicIfChanged(
  path: string,
  content: string,
  options: AtomicWriteOptions = {},
): Promise<boolean> {
  try {
    if ((await readFile(path, { encoding: 'utf8', signal: options.signal })) === content)
      return false;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  options.signal?.throwIfAborted();
  await writeFileAtomic(path, content, options);
  return true;
}

export interface StaleTemporaryOptions {
  /** Only the temporaries of this file name (in a directory others write to, like /etc). */
  readonly of?: string;
  /** Also names that older versions of limen gave their temporaries. */
  readonly legacy?: (name: string) => boolean;
}

/**
 * Removes the temporaries that writeFileAtomic left in `dir` when its process was
 * killed mid-write. Only call it where no other live writer uses the directory
 * (the daemon holds its state lock). Returns the names removed.
 */
export async function removeStaleTemporaries(
  dir: string,
  options: StaleTemporaryOptions = {},
): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const removed: string[] = [];
  for (const name of names) {
    const ours =
      isLimenTemporary(name) &&
      (options.of === undefined || name.startsWith(`.${options.of}.limen-`));
    if (!ours && options.legacy?.(name) !== true) continue;
    await unlink(join(dir, name)).catch(() => undefined);
    removed.push(name);
  }
  if (removed.length > 0) await syncDirectory(dir);
  return removed;
}
