// Resolves a service's `user` and `group` to numeric ids from /etc/passwd and
// /etc/group (no NSS, no dependencies: routers have flat files). A user given by
// name brings its primary group; a numeric id is taken as is when the files
// do not know it, but then a group must be given explicitly.

import { readFile } from 'node:fs/promises';
import { NotPermittedError, UnknownGroupError, UnknownUserError } from './errors.ts';

export interface PasswdEntry {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly home: string;
}

export interface GroupEntry {
  readonly name: string;
  readonly gid: number;
}

export interface Credentials {
  readonly uid: number;
  readonly gid: number;
}

export interface UserDbPaths {
  readonly passwd?: string;
  readonly group?: string;
}

function isId(s: string): boolean {
  return /^[0-9]+$/.test(s);
}

/** Parses passwd(5) text; malformed lines are skipped. */
export function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const f = line.split(':');
    if (f.length < 7 || !isId(f[2]!) || !isId(f[3]!)) continue;
    out.push({ name: f[0]!, uid: Number(f[2]), gid: Number(f[3]), home: f[5]! });
  }
  return out;
}

/** Parses group(5) text; malformed lines are skipped. */
export function parseGroup(text: string): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const f = line.split(':');
    if (f.length < 3 || !isId(f[2]!)) continue;
    out.push({ name: f[0]!, gid: Number(f[2]) });
  }
  return out;
}

async function readOrEmpty(path: string, signal: AbortSignal | undefined): Promise<string> {
  try {
    return await readFile(path, { encoding: 'utf8', ...(signal ? { signal } : {}) });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw e;
  }
}

function toId(x: string | number): number | null {
  if (typeof x === 'number') return Number.isInteger(x) && x >= 0 ? x : null;
  return isId(x) ? Number(x) : null;
}

/**
 * Resolves user and group against the given databases (already parsed).
 * Throws UnknownUserError / UnknownGroupError with what to do.
 */
export function resolveCredentialsFrom(
  user: string | number | undefined,
  group: string | number | undefined,
  passwd: readonly PasswdEntry[],
  groups: readonly GroupEntry[],
  current: Credentials,
): Credentials {
  let uid = current.uid;
  let gid: number | null = null;
  if (user !== undefined) {
    const id = toId(user);
    const entry =
      id !== null ? passwd.find((p) => p.uid === id) : passwd.find((p) => p.name === user);
    if (entry) {
      uid = entry.uid;
      gid = entry.gid;
    } else if (id !== null) {
      uid = id;
      if (group === undefined) {
        throw new UnknownUserError(
          `uid ${id} has no entry in /etc/passwd, so it has no primary group: give 'group' too`,
        );
      }
    } else {
      throw new UnknownUserError(`unknown user '${String(user)}' (not in /etc/passwd)`);
    }
  }
  if (group !== undefined) {
    const id = toId(group);
    if (id !== null) gid = id;
    else {
      const entry = groups.find((g) => g.name === group);
      if (!entry) throw new UnknownGroupError(`unknown group '${group}' (not in /etc/group)`);
      gid = entry.gid;
    }
  }
  return { uid, gid: gid ?? current.gid };
}

/**
 * Resolves the credentials a child should run with, or undefined to keep
 * limen's own. Only root may switch to other ids (NotPermittedError otherwise).
 */
export async function resolveCredentials(
  user: string | number | undefined,
  group: string | number | undefined,
  options: { paths?: UserDbPaths; signal?: AbortSignal } = {},
): Promise<Credentials | undefined> {
  if (user === undefined && group === undefined) return undefined;
  const [passwdText, groupText] = await Promise.all([
    readOrEmpty(options.paths?.passwd ?? '/etc/passwd', options.signal),
    readOrEmpty(options.paths?.group ?? '/etc/group', options.signal),
  ]);
  const current = { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
  const creds = resolveCredentialsFrom(
    user,
    group,
    parsePasswd(passwdText),
    parseGroup(groupText),
    current,
  );
  if (current.uid !== 0 && (creds.uid !== current.uid || creds.gid !== current.gid)) {
    throw new NotPermittedError(
      `cannot run as uid ${creds.uid} gid ${creds.gid}: limen runs as uid ${current.uid}, ` +
        `and only root may switch user or group (run limen as root, or drop 'user'/'group')`,
    );
  }
  return creds;
}
