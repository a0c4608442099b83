// Every path the daemon uses, derived from one place. `--root DIR` moves all of
// them under DIR (the lab and the tests never touch the real system); the
// defaults are the FHS locations from DESIGN.md section 10.

import { join, resolve } from 'node:path';
import { packageRoot } from '../platform/package-root.ts';
import { socketPathFor } from '../control/index.ts';
import { dict, record, type Value } from '../preserves/index.ts';

export interface DaemonPaths {
  /** /run/limen: volatile state. */
  readonly runDir: string;
  /** /var/lib/limen: persistent state. */
  readonly stateDir: string;
  /** /etc/limen: the site configuration root. */
  readonly etcDir: string;
  /** /run/limen/etc: generated site configuration, layered like etcDir. */
  readonly runEtcDir: string;
  readonly outputsDir: string;
  readonly socket: string;
  /** RUN/web/control.sock: the web endpoint, when --web-group is given. */
  readonly webSocket: string;
  /** STATE/web-password: the web dashboard's password (a salted scrypt hash). */
  readonly webPasswordFile: string;
  readonly userSettingsDir: string;
  readonly generationsDir: string;
  /** The package's shipped config tree (config/boot, config/core, config/services). */
  readonly shippedConfigDir: string;
  /** Site configuration roots, each with core/ and services/ subdirectories. */
  readonly siteConfigDirs: readonly string[];
  /** The package's libexec directory (the udhcpc script). */
  readonly libexecDir: string;
  /** The resolv.conf limen writes (under --root unless given). */
  readonly resolvConf: string;
}

export interface PathOptions {
  readonly root?: string | undefined;
  readonly socket?: string | undefined;
  readonly configDirs?: readonly string[] | undefined;
  readonly shippedConfigDir?: string | undefined;
  readonly resolvConf?: string | undefined;
}

export { packageRoot } from '../platform/package-root.ts';

/**
 * The site configuration that generations hold and a rollback or trial writes back
 * (docs/safe-change.md): the site roots but /run/limen/etc, written at run time.
 */
export function generationRootsOf(paths: DaemonPaths): string[] {
  return paths.siteConfigDirs.filter((d) => d !== paths.runEtcDir);
}

export function resolvePaths(opts: PathOptions = {}): DaemonPaths {
  const root = opts.root === undefined ? '/' : resolve(opts.root);
  const runDir = join(root, 'run/limen');
  const stateDir = join(root, 'var/lib/limen');
  const etcDir = join(root, 'etc/limen');
  const runEtcDir = join(runDir, 'etc');
  return {
    runDir,
    stateDir,
    etcDir,
    runEtcDir,
    outputsDir: join(runDir, 'outputs'),
    socket: opts.socket !== undefined ? resolve(opts.socket) : socketPathFor(root),
    webSocket: join(runDir, 'web/control.sock'),
    webPasswordFile: join(stateDir, 'web-password'),
    userSettingsDir: join(stateDir, 'user-settings'),
    generationsDir: join(stateDir, 'generations'),
    shippedConfigDir: opts.shippedConfigDir ?? join(packageRoot(), 'config'),
    libexecDir: join(packageRoot(), 'libexec'),
    resolvConf:
      opts.resolvConf !== undefined ? resolve(opts.resolvConf) : join(root, 'etc/resolv.conf'),
    siteConfigDirs:
      opts.configDirs !== undefined && opts.configDirs.length > 0
        ? opts.configDirs.map((d) => resolve(d))
        : [etcDir, runEtcDir],
  };
}

/** `<limen-paths {shipped libexec state run socket node web-server}>`: what the boot layer reads (config/boot). */
export function limenPathsRecord(paths: DaemonPaths): Value {
  return record(
    'limen-paths',
    dict({
      shipped: paths.shippedConfigDir,
      libexec: paths.libexecDir,
      state: paths.stateDir,
      run: paths.runDir,
      socket: paths.socket,
      // The web dashboard's server (config/services/web.pr): Node and its script.
      node: process.execPath,
      'web-server': join(packageRoot(), 'dist', 'web', 'server.js'),
    }),
  );
}
