// Reads a directory tree's files into memory: every regular file that is not a
// dot-file or inside a dot-directory (editors' swap files, atomic writes'
// temporaries), keyed by its path relative to the root with '/' separators, in
// name order. What a configuration generation holds, and what `limen try` sends.

import { readFile, readdir, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';

/** Thrown when the files under a root add up to more than the limit. */
export class FileTreeTooLargeError extends Error {
  override name = 'FileTreeTooLargeError';
}

/**
 * Adds the files under `root` to `into`; `budget.bytes` counts what was read, and
 * passing `maxBytes` is a FileTreeTooLargeError. A missing root has no files.
 */
export async function readFileTree(
  root: string,
  into: Map<string, Uint8Array>,
  budget: { bytes: number },
  maxBytes = Infinity,
): Promise<void> {
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
      else if (e.isFile()) {
        const content = await readFile(path);
        budget.bytes += content.length;
        if (budget.bytes > maxBytes)
          throw new FileTreeTooLargeError(
            `the files under ${root} are larger than ${maxBytes} bytes`,
          );
        into.set(relative(root, path).split(sep).join('/'), new Uint8Array(content));
      }
    }
  };
  await walk(root);
}

/** True if `path` is a directory (false when it is anything else or missing). */
export async function isDirectory(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isDirectory(),
    () => false,
  );
}
