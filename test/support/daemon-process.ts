// `limen daemon` in a process of its own (from the TypeScript sources, through
// tsx), with its JSON log lines collected so that a test can wait on them instead
// of sleeping. Real signals reach it: SIGTERM for a clean stop, SIGKILL for a crash.

import { spawn, type ChildProcess } from 'node:child_process';
import { resolve, join } from 'node:path';
import { until } from './until.ts';

const repo = resolve(import.meta.dirname, '../..');

export interface LogLine {
  time: string;
  level: string;
  msg: string;
  [k: string]: unknown;
}

export class DaemonProcess {
  readonly child: ChildProcess;
  readonly lines: LogLine[] = [];
  readonly exited: Promise<number | null>;

  constructor(args: readonly string[], env: NodeJS.ProcessEnv) {
    this.child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        join(repo, 'test/support/limen-cli.ts'),
        'daemon',
        '--log-format',
        'json',
        ...args,
      ],
      { cwd: repo, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let buf = '';
    this.child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      buf += chunk;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          this.lines.push(JSON.parse(line) as LogLine);
        } catch {
          this.lines.push({ time: '', level: 'raw', msg: line });
        }
      }
    });
    this.exited = new Promise((r) => this.child.once('exit', (code) => r(code)));
  }

  get pid(): number {
    return this.child.pid!;
  }

  find(pred: (l: LogLine) => boolean): LogLine | undefined {
    return this.lines.find(pred);
  }

  count(pred: (l: LogLine) => boolean): number {
    return this.lines.filter(pred).length;
  }

  async waitFor(what: string, pred: (l: LogLine) => boolean, timeoutMs = 20_000): Promise<LogLine> {
    return until(() => this.find(pred), {
      timeoutMs,
      describe: () => `${what}; log so far:\n${this.log()}`,
    });
  }

  log(): string {
    return this.lines.map((l) => JSON.stringify(l)).join('\n');
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

  /** SIGKILL (if it still runs) and wait for the exit. */
  async kill(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await this.exited;
  }
}
