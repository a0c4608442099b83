// Reads a directory tree's files into memory: every regular file that is not a
// dot-file or inside a dot-directory (editors' swap files, atomic writes'
// temporaries), keyed by its path relative to the root with '/' separators, in
// name order. What a configuration generation holds, and what `limen try` sends.

import { open, readFile, readdir, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';

/** Thrown when the files under a root add up to more than the limit; `path` is the file that passed it. */
export class FileTreeTooLargeError extends Error {
  override name = 'FileTreeTooLargeError';
  readonly path: string;
  constructor(message: string, path: string) {
    super(message);
    this.path = path;
  }
}

/** How much more is read at once when a file has grown since its stat. */
const GROWTH_CHUNK = 64 * 1024;

/**
 * The file's content, or undefined when it holds more than `room` bytes: its size
 * is checked before anything is read, and a file that grows meanwhile is read no
 * further than `room` + 1 bytes.
 */
export async function readWithin(path: string, room: number): Promise<Buffer | undefined> {
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    if (size > room) return undefined;
    const chunks: Buffer[] = [];
    let total = 0;
    // One byte more than its size: a file that grew since shows it.
    let want = size + 1;
    while (total <= room) {
      const buf = Buffer.allocUnsafe(Math.min(want, room + 1 - total));
      const { bytesRead } = await fh.read(buf, 0, buf.length, total);
      if (bytesRead === 0) break;
      chunks.push(buf.subarray(0, bytesRead));
      total += bytesRead;
      want = GROWTH_CHUNK;
    }
    return total > room ? undefined : Buffer.concat(chunks, total);
  } finally {
    await fh.close();
  }
}

/**
 * The files under `root` (regular files, no dot-file or dot-directory), as paths
 * relative to it with '/' separators, in name order; a missing root has none.
 */
export async function listFileTree(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT' && dir === root) return;
      throw e;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      if (e.name.startsWith('.')) continue;
      const path = join(dir, e.name);
      if (e.isDirectory()) await walk(path);
      else if (e.isFile()) out.push(relative(root, path).split(sep).join('/'));
    }
  };
  await walk(root);
  return out;
}

/**
 * Adds the files under `root` to `into`; `budget.bytes` counts what was read, and
 * passing `maxBytes` is a FileTreeTooLargeError, raised from each file's size
 * before it is read (a stray file of gigabytes costs no memory). A missing root
 * has no files.
 */
export async function readFileTree(
  root: string,
  into: Map<string, Uint8Array>,
  budget: { bytes: number },
  maxBytes = Infinity,
): Promise<void> {
  for (const rel of await listFileTree(root)) {
    const path = join(root, ...rel.split('/'));
    const content =
      maxBytes === Infinity
        ? await readFile(path)
        : await readWithin(path, maxBytes - budget.bytes);
    if (content === undefined)
      throw new FileTreeTooLargeError(
        `the files under ${root} are larger than ${maxBytes} bytes (${path} takes them past it)`,
        path,
      );
    budget.bytes += content.length;
    into.set(rel, new Uint8Array(content));
  }
}

/** True if `path` is a directory (false when it is anything else or missing). */
export async function isDirectory(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isDirectory(),
    () => false,
  );
}
