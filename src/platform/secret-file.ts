// Opens a file that holds a secret (a WireGuard private or preshared key) so that a
// program can read it through a descriptor: the secret never passes through limen,
// a command line or a log. The file must be a regular file (not a symbolic link, a
// FIFO or a device), owned by root (or `owner`), and readable by its owner alone
// (mode 0600 or stricter). The checks are made on the opened descriptor (fstat), so
// the file cannot be swapped between the check and the read.

import { closeSync, constants, fstatSync, openSync } from 'node:fs';

export type SecretFile = { readonly fd: number } | { readonly problem: string };

function openProblem(e: unknown): string {
  const code = (e as { code?: unknown }).code;
  if (code === 'ELOOP') return 'is a symbolic link (name the file itself)';
  if (code === 'ENOENT') return 'does not exist';
  if (code === 'EACCES' || code === 'EPERM') return 'cannot be read (permission denied)';
  if (code === 'ENOTDIR') return 'is not a file (a part of its path is not a directory)';
  return `cannot be opened (${typeof code === 'string' ? code : String(e)})`;
}

/** What is wrong with the file behind `fd`, or undefined. */
function statProblem(fd: number, owner: number): string | undefined {
  const st = fstatSync(fd);
  if (!st.isFile()) return 'is not a regular file';
  if (st.uid !== owner)
    return `is owned by uid ${st.uid}, not by ${owner === 0 ? 'root' : `uid ${owner}`}`;
  const mode = st.mode & 0o777;
  if ((mode & 0o077) !== 0)
    return `can be read or written by others (mode ${mode.toString(8).padStart(4, '0')}): chmod 600 it`;
  return undefined;
}

/**
 * Opens PATH for reading as a secret: the descriptor (the caller closes it) or what
 * is wrong, in words that follow the path ("is a symbolic link …").
 */
export function openSecretFile(path: string, owner = 0): SecretFile {
  let fd: number;
  try {
    // O_NONBLOCK: opening a FIFO must not hang the daemon (it is refused just below).
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    return { problem: openProblem(e) };
  }
  let problem: string | undefined;
  try {
    problem = statProblem(fd, owner);
  } catch (e) {
    problem = `cannot be examined (${e instanceof Error ? e.message : String(e)})`;
  }
  if (problem === undefined) return { fd };
  closeSync(fd);
  return { problem };
}
