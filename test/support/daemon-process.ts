// `limen daemon` in a process of its own, for tests that need real signals
// (SIGKILL), another umask or another user: it runs the CLI from the sources
// (test/support/limen-cli.ts) with --log-format json, and keeps every line it
// writes to stderr (the JSON log, or the one-line error of a refused start).

import { spawn, type ChildProcess } from 'node:child_process';
import { join, resolve } from 'node:path';
import { removeSubtreeOf } from './cgroups.ts';
import { until } from './until.ts';

const repo = resolve(import.meta.dirname, '../..');

export interface DaemonProcessOptions {
  readonly env?: NodeJS.ProcessEnv;
  /** Run under this umask (octal text, e.g. '000'), through sh. */
  readonly umask?: string;
  readonly uid?: number;
  readonly gid?: number;
  /** Prepended to the command, e.g. ['unshare', '--net'] for a private network namespace. */
  readonly prefix?: readonly string[];
}

export interface LogLine {
  readonly level: string;
  readonly msg: string;
  readonly [k: string]: unknown;
}

export class DaemonProcess {
  readonly child: ChildProcess;
  /** Every line written to stderr, as written. */
  readonly stderr: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  /** The --root it was given, if any: names the cgroup subtree a killed one leaves. */
  readonly root: string | undefined;

  constructor(args: readonly string[], options: DaemonProcessOptions = {}) {
    const r = args.indexOf('--root');
    this.root = r >= 0 ? args[r + 1] : undefined;
    const node = [
      process.execPath,
      '--import',
      'tsx',
      join(repo, 'test/support/limen-cli.ts'),
      'daemon',
      '--log-format',
      'json',
      ...args,
    ];
    const argv =
      options.umask === undefined
        ? [...(options.prefix ?? []), ...node]
        : [
            ...(options.prefix ?? []),
            'sh',
            '-c',
            `umask ${options.umask} && exec "$@"`,
            'sh',
            ...node,
          ];
    this.child = spawn(argv[0]!, argv.slice(1), {
      cwd: repo,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'ignore', 'pipe'],
      ...(options.uid === undefined ? {} : { uid: options.uid }),
      ...(options.gid === undefined ? {} : { gid: options.gid }),
    });
    let buf = '';
    this.child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      buf += chunk;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        this.stderr.push(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
    });
    this.exited = new Promise((r) =>
      this.child.once('exit', (code, signal) => {
        if (buf !== '') this.stderr.push(buf);
        r({ code, signal });
      }),
    );
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The JSON log lines (anything else, such as a start-up error, is left out). */
  get log(): LogLine[] {
    const out: LogLine[] = [];
    for (const l of this.stderr) {
      try {
        out.push(JSON.parse(l) as LogLine);
      } catch {
        // not a log line
      }
    }
    return out;
  }

  waitFor(what: string, pred: (l: LogLine) => boolean, timeoutMs = 20_000): Promise<LogLine> {
    return until(
      () => {
        const found = this.log.find(pred);
        if (found === undefined && !this.running)
          throw new Error(`the daemon exited: ${this.stderr.join('\n')}`);
        return found;
      },
      { timeoutMs, describe: () => `${what}; stderr so far:\n${this.stderr.join('\n')}` },
    );
  }

  /** Resolves once the daemon has logged that it started. */
  started(timeoutMs?: number): Promise<LogLine> {
    return this.waitFor('the daemon to start', (l) => l.msg === 'limen daemon started', timeoutMs);
  }

  /** Resolves with the exit, or fails with what it wrote. */
  exit(timeoutMs = 20_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    return until(this.exited, {
      timeoutMs,
      describe: () => `the daemon to exit; stderr:\n${this.stderr.join('\n')}`,
    });
  }

  /** The JSON log lines (alias of `log`). */
  get lines(): LogLine[] {
    return this.log;
  }

  find(pred: (l: LogLine) => boolean): LogLine | undefined {
    return this.log.find(pred);
  }

  count(pred: (l: LogLine) => boolean): number {
    return this.log.filter(pred).length;
  }

  /** Everything written to stderr, for failure messages. */
  logText(): string {
    return this.stderr.join('\n');
  }

  /** `<service-state S STATE>` appeared. */
  state(service: string, state: string) {
    return (l: LogLine) => l.msg === 'service state' && l.service === service && l.state === state;
  }

  /** A supervisor event about the service (mirrored from $log). */
  event(service: string, msg: RegExp) {
    return (l: LogLine) => l.service === service && typeof l.msg === 'string' && msg.test(l.msg);
  }

  /** A line the service printed. */
  output(service: string, line: RegExp) {
    return (l: LogLine) =>
      l.msg === 'output' &&
      l.service === service &&
      typeof l.line === 'string' &&
      line.test(l.line);
  }

  /** The exit code once it exits (null after a signal). */
  async exitCode(): Promise<number | null> {
    return (await this.exited).code;
  }

  /** SIGKILL (if it still runs) and wait for the exit. */
  async kill(): Promise<void> {
    if (this.running) this.child.kill('SIGKILL');
    await this.exited;
  }

  /**
   * For a test's cleanup: SIGKILL, then stop what it left and remove its cgroup subtree,
   * as the next daemon on its root would (none will: the test ends).
   */
  async dispose(): Promise<void> {
    await this.kill();
    if (this.root !== undefined) await removeSubtreeOf(this.root);
  }

  /** SIGTERM (a clean stop) or any other signal; resolves on exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM') {
    if (this.running) this.child.kill(signal);
    return this.exit();
  }
}
