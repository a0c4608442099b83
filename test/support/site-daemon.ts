// A daemon in this process, in a private --root, with one site root of its own and no
// network layer: what the safety layer's tests (generations, try, diff) start. The
// CLI runs in-process against it; candidates are copies of the site with changes.

import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, type Daemon } from '../../src/daemon/daemon.ts';
import { main } from '../../src/cli/main.ts';
import { captureIo } from './cli-io.ts';
import { until } from './until.ts';

export interface CliResult {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

/** Files to write (path relative to a root → text), or to remove (undefined). */
export type FileChanges = { readonly [path: string]: string | undefined };

export function writeFiles(root: string, files: FileChanges): void {
  for (const [p, text] of Object.entries(files)) {
    if (text === undefined) rmSync(join(root, p), { force: true });
    else {
      mkdirSync(join(root, p, '..'), { recursive: true });
      writeFileSync(join(root, p), text);
    }
  }
}

export class SiteDaemon {
  /** A temporary directory holding everything below. */
  readonly dir: string;
  /** The site root (`--config`). */
  readonly site: string;
  /** The daemon's --root. */
  readonly root: string;
  daemon: Daemon | undefined;

  /** Makes the directories and writes the site's first files; start() starts the daemon. */
  constructor(prefix: string, files: FileChanges) {
    this.dir = mkdtempSync(join(tmpdir(), prefix));
    this.site = join(this.dir, 'site');
    this.root = join(this.dir, 'root');
    mkdirSync(join(this.site, 'services'), { recursive: true });
    writeFiles(this.site, files);
  }

  async start(): Promise<Daemon> {
    this.daemon = await startDaemon({
      root: this.root,
      configDirs: [this.site],
      network: false,
      logFormat: 'json',
      write: () => undefined,
    });
    return this.daemon;
  }

  /** Waits until `<daemon NAME>` is ready (limen services says so). */
  async ready(name: string): Promise<void> {
    const line = new RegExp(`<daemon ${name}> +ready`);
    await until(async () => line.test((await this.cli('services')).out), {
      timeoutMs: 10_000,
      describe: () => `${name} ready`,
    });
  }

  /** Runs the CLI against this daemon. */
  async cli(...args: string[]): Promise<CliResult> {
    const io = captureIo();
    const code = await main([...args, '--root', this.root], io);
    return { code, out: io.stdout(), err: io.stderr() };
  }

  /** A candidate directory DIR/NAME: the site as it is now, with `files` changed. */
  candidate(name: string, files: FileChanges): string {
    const c = join(this.dir, name);
    rmSync(c, { recursive: true, force: true });
    cpSync(this.site, c, { recursive: true });
    writeFiles(c, files);
    return c;
  }

  /** Stops the daemon (if it runs) and removes everything. */
  async close(): Promise<void> {
    await this.daemon?.shutdown('test over');
    this.daemon = undefined;
    rmSync(this.dir, { recursive: true, force: true });
  }
}
