// Puts a listening Unix socket at a path with mode 0600, atomically: it is bound
// under a temporary name in the same directory, chmod'ed, then renamed into place,
// so no other user can ever connect to it (the kernel refuses them with EACCES).
// A stale socket (nobody listening) is replaced; a live one or a non-socket is refused.

import { randomBytes } from 'node:crypto';
import { chmod, lstat, mkdir, rename, stat, unlink } from 'node:fs/promises';
import { connect, type Server } from 'node:net';
import { dirname, join } from 'node:path';
import { ControlSocketInUseError } from './errors.ts';

export const SOCKET_MODE = 0o600;

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

export interface BoundSocket {
  readonly path: string;
  /** Removes the socket file if it is still the one we bound (not a successor's). */
  unlink(): Promise<void>;
}

/** Makes `server` listen on `path` with mode 0600; the parent directory is created (0755). */
export async function bindSocketFile(server: Server, path: string): Promise<BoundSocket> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const existing = await lstat(path).catch(() => undefined);
  if (existing !== undefined) {
    if (!existing.isSocket()) {
      throw new ControlSocketInUseError(
        `${path} exists and is not a socket; remove it or choose another path with --socket`,
      );
    }
    if (await isLive(path)) {
      throw new ControlSocketInUseError(
        `${path} is in use: another limen daemon is listening there (stop it, or use --socket)`,
      );
    }
  }
  // Short, so that it fits wherever `path` fits (sun_path holds 107 bytes).
  const tmp = join(dir, `.c${randomBytes(4).toString('hex')}`);
  await listen(server, tmp);
  try {
    await chmod(tmp, SOCKET_MODE);
    await rename(tmp, path);
  } catch (e) {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
  const ino = (await stat(path)).ino;
  return {
    path,
    async unlink() {
      const now = await stat(path).catch(() => undefined);
      if (now !== undefined && now.ino === ino) await unlink(path).catch(() => undefined);
    },
  };
}
