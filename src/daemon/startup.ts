// What the daemon does before anything runs, in this order, so that a refused
// start has started nothing: check what the user gave (--config roots, the socket
// path's length); take the state directory's exclusive lock (one daemon per
// root); make every directory limen owns with its documented mode, whatever the
// umask and whatever mode an older version left; remove the temporaries a killed
// write left (a rollback's in the site roots too); bind the control socket (one
// daemon per socket). Only then do the drivers and services start.

import { chmod, mkdir, readdir, realpath, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { LimenError } from '../base/errors.ts';
import { isDirectory } from '../platform/file-tree.ts';
import { removeStaleTemporaries } from '../platform/atomic-file.ts';
import { acquireStateLock, type StateLock } from '../platform/state-lock.ts';
import {
  checkSocketPath,
  isLegacySettingsTemporary,
  listenOnSocketFile,
  type ListeningSocket,
} from '../control/index.ts';
import { generationRootsOf, type DaemonPaths } from './paths.ts';
import { SiteConfigMissingError, StartupIoError } from './errors.ts';

/**
 * The mode of each directory limen owns (docs/running.md). The run directory and
 * outputs are searchable by all: services running as other users write their outputs
 * there, dnsmasq reads RUN/lan/IF and chronyd keeps RUN/chrony. Settings and
 * generations are root's alone.
 */
export const DIRECTORY_MODES = {
  run: 0o755,
  outputs: 0o755,
  state: 0o755,
  userSettings: 0o700,
  generations: 0o700,
} as const;

export interface Started {
  readonly lock: StateLock;
  /** The control socket, bound and holding early connections until the server takes it. */
  readonly listening: ListeningSocket;
  /** The resolv.conf to write: the configured path, or the file its symlink names. */
  readonly resolvConf: string;
  /** The stale temporaries removed (paths). */
  readonly removed: readonly string[];
}

function errno(e: unknown): string {
  return (e as NodeJS.ErrnoException | null)?.code ?? String(e);
}

/** A one-line StartupIoError for a failed step on `path`, with a hint for a non-root user. */
function ioError(what: string, e: unknown): StartupIoError {
  const code = errno(e);
  const hint =
    (code === 'EACCES' || code === 'EPERM') && process.getuid?.() !== 0
      ? ' (limen daemon runs as root; as another user, give it --root DIR)'
      : '';
  return new StartupIoError(`${what}: ${code}${hint}`, { cause: e });
}

/**
 * mkdir -p, then the mode, whatever the umask (mkdir's mode passes through it) or an
 * older version's mode. Ancestors it creates (ROOT/run under a fresh --root) get 0755,
 * as /run and /var/lib have: others must traverse them to reach the outputs.
 */
async function ownDirectory(dir: string, mode: number): Promise<void> {
  let first: string | undefined;
  try {
    first = await mkdir(dir, { recursive: true, mode });
  } catch (e) {
    throw ioError(`cannot create ${dir}`, e);
  }
  try {
    if (first !== undefined) {
      for (let d = dirname(dir); d.length >= first.length; d = dirname(d)) await chmod(d, 0o755);
    }
    await chmod(dir, mode);
  } catch (e) {
    throw ioError(`cannot set the mode of ${dir}`, e);
  }
}

/**
 * resolv.conf's directory is created when missing (etc/ under a fresh --root), readable
 * by all (every program reads resolv.conf); an existing one (/etc) is not limen's, and
 * its mode is left alone. When it cannot be made (a file in the way), the daemon starts
 * all the same: the resolver's failure to write says so in status, where it is fixed.
 */
async function makeResolvConfDirectory(dir: string): Promise<void> {
  try {
    const first = await mkdir(dir, { recursive: true, mode: 0o755 });
    if (first === undefined) return;
    for (let d = dir; d.length >= first.length; d = dirname(d)) await chmod(d, 0o755);
  } catch {
    // Reported by the resolver (see above).
  }
}

/** The --config roots must exist: a mistyped one would otherwise load nothing, silently. */
async function checkSiteRoots(roots: readonly string[]): Promise<void> {
  for (const root of roots) {
    let isDir: boolean;
    try {
      isDir = (await stat(root)).isDirectory();
    } catch (e) {
      if (errno(e) !== 'ENOENT') throw ioError(`cannot read --config ${root}`, e);
      throw new SiteConfigMissingError(`--config ${root}: no such directory`);
    }
    if (!isDir) throw new SiteConfigMissingError(`--config ${root}: not a directory`);
  }
}

/** resolv.conf is often a symlink (to systemd-resolved's, say): write its target, keep the link. */
async function realResolvConf(path: string): Promise<string> {
  try {
    return await realpath(path);
  } catch {
    return path;
  }
}

/** Names older versions gave their temporaries, by the file they were for. */
const LEGACY_RUN = (name: string) => name === 'firewall.nft.tmp';
const LEGACY_LAN = (name: string) => name === 'resolv.conf.tmp' || name === 'dnsmasq.conf.tmp';
const legacyResolver = (file: string) => (name: string) =>
  name.startsWith(`.${file}.`) && /^\.[0-9a-f]{8}\.tmp$/.test(name.slice(file.length + 1));

/** Every directory the daemon writes atomically: what a killed write left there goes. */
async function removeTemporaries(
  paths: DaemonPaths,
  resolvConf: string | undefined,
): Promise<string[]> {
  const removed: string[] = [];
  const clean = async (
    dir: string,
    options: Parameters<typeof removeStaleTemporaries>[1] = {},
  ): Promise<void> => {
    try {
      for (const n of await removeStaleTemporaries(dir, options)) removed.push(join(dir, n));
    } catch (e) {
      throw ioError(`cannot clean ${dir}`, e);
    }
  };
  await clean(paths.userSettingsDir, { legacy: isLegacySettingsTemporary });
  await clean(paths.generationsDir);
  await clean(paths.stateDir);
  await clean(paths.runDir, { legacy: LEGACY_RUN });
  const lan = join(paths.runDir, 'lan');
  const ifaces = await readdir(lan, { withFileTypes: true }).catch(() => []);
  for (const d of ifaces)
    if (d.isDirectory()) await clean(join(lan, d.name), { legacy: LEGACY_LAN });
  // A rollback or trial writes the site roots' files atomically: its temporaries,
  // in every directory of the tree that a snapshot reads (dot-directories are not).
  const cleanTree = async (dir: string): Promise<void> => {
    await clean(dir);
    const entries = await readdir(dir, { withFileTypes: true }).catch((e: unknown) => {
      if (errno(e) === 'ENOENT') return [];
      throw ioError(`cannot clean ${dir}`, e);
    });
    for (const d of entries)
      if (d.isDirectory() && !d.name.startsWith('.')) await cleanTree(join(dir, d.name));
  };
  for (const root of generationRootsOf(paths)) await cleanTree(root);
  // A directory others write to too (/etc): only resolv.conf's own temporaries.
  if (resolvConf !== undefined) {
    const file = basename(resolvConf);
    const dir = dirname(resolvConf);
    // Not a directory (yet): nothing of ours in it, and the resolver reports it.
    if (await isDirectory(dir)) await clean(dir, { of: file, legacy: legacyResolver(file) });
  }
  return removed;
}

export interface StartOptions {
  /** The --config roots the user named (the default ones may be missing). */
  readonly explicitSiteRoots: readonly string[];
  /** False: no network driver runs, so resolv.conf is left alone. */
  readonly network: boolean;
}

/** Runs every step before the daemon starts anything (see the top of this file). */
export async function prepareStart(paths: DaemonPaths, options: StartOptions): Promise<Started> {
  const { explicitSiteRoots, network } = options;
  await checkSiteRoots(explicitSiteRoots);
  checkSocketPath(paths.socket);
  await ownDirectory(paths.stateDir, DIRECTORY_MODES.state);
  const lock = acquireStateLock(join(paths.stateDir, 'lock'));
  try {
    await ownDirectory(paths.runDir, DIRECTORY_MODES.run);
    await ownDirectory(paths.outputsDir, DIRECTORY_MODES.outputs);
    await ownDirectory(paths.userSettingsDir, DIRECTORY_MODES.userSettings);
    await ownDirectory(paths.generationsDir, DIRECTORY_MODES.generations);
    if (network) await makeResolvConfDirectory(dirname(paths.resolvConf));
    const resolvConf = await realResolvConf(paths.resolvConf);
    const removed = await removeTemporaries(paths, network ? resolvConf : undefined);
    const listening = await listenOnSocketFile(paths.socket).catch((e: unknown) => {
      throw e instanceof LimenError ? e : ioError(`cannot bind ${paths.socket}`, e);
    });
    return { lock, listening, resolvConf, removed };
  } catch (e) {
    lock.release();
    throw e;
  }
}
