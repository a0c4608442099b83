// Puts a listening Unix socket at a path with mode 0600, so that no other user can
// connect to it at any moment, whatever the umask. The socket is bound inside a
// fresh directory of mode 0700 made beside the target (only root can traverse it,
// so nobody else can reach the socket while its mode is still the umask's),
// chmod'ed 0600 there, then hard-linked into place and the private directory
// removed. link(2), unlike rename(2), never replaces what is there, and the look
// at what is there (a stale socket, nobody listening, is replaced; a live one or
// a non-socket is refused) is made under an flock of the directory: of several
// daemons binding the same path at once, exactly one gets it. The web endpoint's
// socket is made the same way with mode 0660 and its group (chown'ed in the private
// directory too), in a directory of root and that group, mode 0750
// (prepareGroupDirectory).

import { chmod, chown, link, lstat, mkdir, mkdtemp, rm, stat, unlink } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { withDirectoryLock } from '../platform/flock.ts';
import { ControlSocketInUseError, SocketPathError } from './errors.ts';

export const SOCKET_MODE = 0o600;
/** The web endpoint's socket and directory: the owner's and the group's (socket-file's own group). */
export const GROUP_SOCKET_MODE = 0o660;
export const GROUP_DIR_MODE = 0o750;
const PRIVATE_DIR_MODE = 0o700;
/** sun_path holds 108 bytes with its terminating NUL; a longer path is silently cut by Node. */
export const MAX_SOCKET_PATH_BYTES = 107;
/** What the private directory adds to the socket's directory: `/.XXXXXX/s`. */
const PRIVATE_SUFFIX_BYTES = '/.XXXXXX/s'.length;
/** Connections accepted before a server takes the socket over (all root's: mode 0600). */
const MAX_EARLY_CONNECTIONS = 64;

/**
 * Throws SocketPathError unless `path` fits in sun_path, and so does the name it is
 * first bound under in its private directory.
 */
export function checkSocketPath(path: string): void {
  const bytes = Buffer.byteLength(path);
  const dirBytes = Buffer.byteLength(dirname(path));
  if (bytes > MAX_SOCKET_PATH_BYTES || dirBytes + PRIVATE_SUFFIX_BYTES > MAX_SOCKET_PATH_BYTES) {
    throw new SocketPathError(
      `${path}: too long for a Unix socket (${bytes} bytes; the limit is ${MAX_SOCKET_PATH_BYTES}, and ${MAX_SOCKET_PATH_BYTES - PRIVATE_SUFFIX_BYTES} for its directory): choose a shorter --socket or --root`,
    );
  }
}

/** True when something accepts connections at path. */
function isLive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

function listen(server: Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error): void => {
      server.off('listening', onListening);
      reject(e);
    };
    const onListening = (): void => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(path);
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) resolve();
    else server.close(() => resolve());
  });
}

function inUse(path: string): ControlSocketInUseError {
  return new ControlSocketInUseError(
    `${path} is in use: another limen daemon is listening there (stop it, or use --socket)`,
  );
}

function notASocket(path: string): ControlSocketInUseError {
  return new ControlSocketInUseError(
    `${path} exists and is not a socket; remove it or choose another path with --socket`,
  );
}

export interface BoundSocket {
  readonly path: string;
  /** Removes the socket file if it is still the one we bound (not a successor's). */
  unlink(): Promise<void>;
}

/**
 * Links the bound socket `tmp` at `path`, replacing only a stale socket. Binders of
 * limen hold the directory's lock while they look and replace, so that two of them
 * cannot both find the same stale socket and each put theirs in its place.
 */
function place(tmp: string, path: string): Promise<void> {
  return withDirectoryLock(dirname(path), async () => {
    const seen = await lstat(path).catch(() => undefined);
    if (seen !== undefined) {
      if (!seen.isSocket()) throw notASocket(path);
      if (await isLive(path)) throw inUse(path);
      await unlink(path);
    }
    // link(2) never replaces what is there, whoever put it there meanwhile.
    await link(tmp, path).catch((e: unknown) => {
      throw (e as NodeJS.ErrnoException).code === 'EEXIST' ? inUse(path) : e;
    });
  });
}

/** Who may connect to a socket besides its owner (root). */
export interface SocketAccess {
  /** The socket's group, allowed to connect (mode 0660); absent: the owner alone (0600). */
  readonly gid?: number | undefined;
}

/**
 * Makes `dir` a directory of this process's uid and group `gid`, mode 0750, whatever
 * the umask and whatever was there: a symbolic link or a non-directory is refused
 * (SocketPathError), a directory of another owner too; a wider mode or another group
 * is corrected. Only the owner and the group can then reach what is inside.
 */
export async function prepareGroupDirectory(dir: string, gid: number): Promise<void> {
  // 0700 at first, whatever the umask (it only removes bits): the group gets in once
  // the directory is known to be ours.
  await mkdir(dirname(dir), { recursive: true, mode: 0o755 });
  await mkdir(dir, { mode: 0o700 }).catch((e: unknown) => {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  });
  const st = await lstat(dir);
  if (!st.isDirectory())
    throw new SocketPathError(`${dir} exists and is not a directory (remove it)`);
  const uid = process.getuid?.() ?? 0;
  if (st.uid !== uid)
    throw new SocketPathError(`${dir} is owned by uid ${st.uid}, not by ${uid} (remove it)`);
  await chown(dir, uid, gid);
  await chmod(dir, GROUP_DIR_MODE);
}

/**
 * Makes `server` listen on `path` with mode 0600 (0660 and group `access.gid` when
 * given); the parent directory is created (0755).
 */
export async function bindSocketFile(
  server: Server,
  path: string,
  access: SocketAccess = {},
): Promise<BoundSocket> {
  checkSocketPath(path);
  const dir = dirname(path);
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const existing = await lstat(path).catch(() => undefined);
  if (existing !== undefined) {
    if (!existing.isSocket()) throw notASocket(path);
    if (await isLive(path)) throw inUse(path);
  }
  const priv = await mkdtemp(join(dir, '.'));
  try {
    // mkdtemp makes it 0700 less the umask; say it explicitly, whatever the umask.
    await chmod(priv, PRIVATE_DIR_MODE);
    const tmp = join(priv, 's');
    await listen(server, tmp);
    try {
      // Inside the private directory, nobody else can reach it while mode and group change.
      if (access.gid === undefined) await chmod(tmp, SOCKET_MODE);
      else {
        await chown(tmp, process.getuid?.() ?? 0, access.gid);
        await chmod(tmp, GROUP_SOCKET_MODE);
      }
      await place(tmp, path);
    } catch (e) {
      await closeServer(server);
      throw e;
    }
  } finally {
    await rm(priv, { recursive: true, force: true });
  }
  const ino = (await stat(path)).ino;
  return {
    path,
    async unlink() {
      // Under the directory's lock: a successor replacing our socket is not undone.
      await withDirectoryLock(dirname(path), async () => {
        const now = await stat(path).catch(() => undefined);
        if (now !== undefined && now.ino === ino) await unlink(path).catch(() => undefined);
      }).catch(() => undefined);
    },
  };
}

/** A socket bound before its server exists: the daemon binds it before anything starts. */
export interface ListeningSocket extends BoundSocket {
  readonly server: Server;
  /** Hands every connection to `onConnection`, those that arrived meanwhile first. */
  accept(onConnection: (socket: Socket) => void): void;
  /** Stops listening and removes the socket (when no server took it over). */
  close(): Promise<void>;
}

/**
 * Binds `path` (as bindSocketFile) with a server that holds early connections
 * (bounded) until accept() names who answers them.
 */
export async function listenOnSocketFile(path: string): Promise<ListeningSocket> {
  const early: Socket[] = [];
  const hold = (socket: Socket): void => {
    if (early.length >= MAX_EARLY_CONNECTIONS) socket.destroy();
    else early.push(socket);
  };
  const server = createServer(hold);
  const bound = await bindSocketFile(server, path);
  return {
    path,
    server,
    unlink: () => bound.unlink(),
    accept(onConnection) {
      server.off('connection', hold);
      server.on('connection', onConnection);
      for (const s of early.splice(0)) if (!s.destroyed) onConnection(s);
    },
    async close() {
      for (const s of early.splice(0)) s.destroy();
      await closeServer(server);
      await bound.unlink();
    },
  };
}
