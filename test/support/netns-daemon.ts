// The real daemon (`limen daemon`, from the sources through tsx) in a network
// namespace, with a private --root and a site configuration, as the
// integration tests of the network layer run it; the CLI is asked in process
// (`main`, on that root's socket), as a person would. Every process it starts
// carries a marker (test/support/processes.ts), so that what a failed test
// leaves is found and killed.

import { spawn, type ChildProcess } from 'node:child_process';
import { resolve, join } from 'node:path';
import { main } from '../../src/cli/main.ts';
import { captureIo } from './cli-io.ts';
import { killMarked, newMarker, type ProcInfo } from './processes.ts';
import { until } from './until.ts';

const repo = resolve(import.meta.dirname, '../..');
export const MARK = 'LIMEN_TEST_MARK';

export interface CliResult {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

export class NetnsDaemon {
  readonly ns: string;
  readonly root: string;
  readonly site: string;
  readonly marker = newMarker();
  /** Everything the daemon wrote on stderr (JSON log lines), across restarts. */
  log = '';
  #child: ChildProcess | undefined;

  constructor(ns: string, dir: string) {
    this.ns = ns;
    this.root = join(dir, 'root');
    this.site = join(dir, 'site');
  }

  /** The daemon's pid (`ip netns exec` execs node, so it keeps the pid). */
  get pid(): number | undefined {
    return this.#child?.exitCode === null ? this.#child.pid : undefined;
  }

  /** Starts the daemon and waits until it answers `limen status`. */
  async start(): Promise<void> {
    const child = spawn(
      'ip',
      [
        'netns',
        'exec',
        this.ns,
        process.execPath,
        '--import',
        'tsx',
        join(repo, 'test/support/limen-cli.ts'),
        'daemon',
        '--root',
        this.root,
        '--config',
        this.site,
        '--log-format',
        'json',
      ],
      {
        cwd: repo,
        env: { ...process.env, [MARK]: this.marker },
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    child.stderr.setEncoding('utf8').on('data', (c: string) => void (this.log += c));
    this.#child = child;
    await until(async () => (await this.cli('status')).code === 0 || child.exitCode !== null, {
      timeoutMs: 30_000,
      describe: () => `the daemon to answer limen status; its log:\n${this.logTail()}`,
    });
    if (child.exitCode !== null) throw new Error(`the daemon exited:\n${this.logTail()}`);
  }

  /** SIGTERM, and the exit code. */
  async stop(): Promise<number | null> {
    const child = this.#child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) {
      return child?.exitCode ?? null;
    }
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    child.kill('SIGTERM');
    return until(exited, { timeoutMs: 30_000, describe: () => `the daemon to exit` });
  }

  /** Stops the daemon if it runs, and kills whatever carries the marker; returns that. */
  async dispose(): Promise<ProcInfo[]> {
    await this.stop().catch(() => undefined);
    return killMarked(MARK, this.marker);
  }

  /** `limen ARGS… --root ROOT`, in process. */
  async cli(...args: string[]): Promise<CliResult> {
    const io = captureIo();
    const code = await main([...args, '--root', this.root], io);
    return { code, out: io.stdout(), err: io.stderr() };
  }

  /** The daemon's log lines, parsed (lines that are not JSON are skipped). */
  logLines(): { [key: string]: unknown }[] {
    const out: { [key: string]: unknown }[] = [];
    for (const line of this.log.split('\n')) {
      try {
        out.push(JSON.parse(line) as { [key: string]: unknown });
      } catch {
        // a partial line, or not JSON
      }
    }
    return out;
  }

  logTail(lines = 40): string {
    return this.log.split('\n').slice(-lines).join('\n');
  }

  /** `limen query PATTERN --dataspace D`: the matching values, one per line. */
  async query(pattern: string, dataspace: 'config' | 'machine' = 'config'): Promise<string[]> {
    const r = await this.cli('query', pattern, '--dataspace', dataspace);
    if (r.code !== 0) throw new Error(`limen query ${pattern}: exit ${r.code}: ${r.err}`);
    return r.out.split('\n').filter((l) => l !== '');
  }

  /** The pids of a service, from `limen services --json` (`<daemon <udhcpc "wan0">>`). */
  async servicePids(service: string): Promise<number[]> {
    const r = await this.cli('services', '--json');
    if (r.code !== 0) throw new Error(`limen services: exit ${r.code}: ${r.err}`);
    const rows = JSON.parse(r.out) as { service: unknown; pids?: number[] }[];
    const row = rows.find((x) => preservesText(x.service) === service);
    return row?.pids ?? [];
  }

  /** `limen watch PATTERN… --dataspace D --root ROOT`, running until stop(). */
  watch(dataspace: 'config' | 'machine', ...patterns: string[]): Watch {
    const abort = new AbortController();
    const io = { ...captureIo(), signal: abort.signal };
    const done = main(['watch', ...patterns, '--dataspace', dataspace, '--root', this.root], io);
    return {
      lines: () =>
        io
          .stdout()
          .split('\n')
          .filter((l) => l !== ''),
      async stop() {
        abort.abort();
        await done;
      },
    };
  }
}

export interface Watch {
  /** What `limen watch` printed so far: `+ VALUE`, `- VALUE`, `! VALUE`. */
  lines(): string[];
  stop(): Promise<void>;
}

/** Preserves text of a value as `--json` writes it (`{"@rec": […]}`, `{"@sym": …}`). */
export function preservesText(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return `[${v.map(preservesText).join(' ')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as { [k: string]: unknown };
    if (typeof o['@sym'] === 'string') return o['@sym'];
    if (Array.isArray(o['@rec']))
      return `<${(o['@rec'] as unknown[]).map(preservesText).join(' ')}>`;
  }
  return JSON.stringify(v);
}
