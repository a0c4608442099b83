// What hostile control clients cost the daemon (issue 11, points 3 and 5), measured on
// `limen daemon` in a process of its own (from the sources, with the V8 flag bin/limen.js
// gives it, no --expose-gc: what a real daemon gives back), one fresh daemon per case.
// Figures are RSS from /proc (VmRSS now, VmHWM the peak since the daemon started).
//
// 1. The values: 7,000 assertions <grown <s <s ... z>>> nested up to 7,000 levels
//    (made by a script that stops by itself), then `query <grown ?x>`. Baseline in the
//    same daemon: a query of one shallow value. The issue: 4.3 GB, then death.
// 2. 10,000 values of 1 KB asserted (10 files) while one client watches and reads, then
//    the same while 200 more watch and never read (over the connection limit: the rest
//    are refused), then 100. Peak, and RSS 1, 5 and 10 s after the clients go. The issue:
//    2.1 GB with 200, still 1.6-2.0 GB after they left.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ControlClient,
  decodeQueryAnswer,
  decodeWatchEvent,
  socketPathFor,
} from '../src/control/index.ts';
import { parse } from '../src/preserves/index.ts';

const repo = resolve(import.meta.dirname, '..');
const MiB = 1024 * 1024;
const mb = (bytes: number): string => `${(bytes / MiB).toFixed(0)} MB`;

/** RSS now and the peak since the process started; NaN once it has died. */
function memory(pid: number): { rss: number; peak: number } {
  let status = '';
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    // gone
  }
  const kb = (name: string): number => {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status);
    return m === null ? NaN : Number(m[1]) * 1024;
  };
  return { rss: kb('VmRSS'), peak: kb('VmHWM') };
}

/** The highest RSS seen while `work` runs, sampled every 50 ms (a daemon that dies leaves
 *  no VmHWM to read), or its VmHWM if it lives. */
async function sampledPeak<T>(pid: number, work: Promise<T>): Promise<{ result: T; peak: number }> {
  let peak = 0;
  const sample = (): void => {
    const m = memory(pid);
    for (const x of [m.rss, m.peak]) if (!Number.isNaN(x)) peak = Math.max(peak, x);
  };
  const timer = setInterval(sample, 50);
  try {
    const result = await work;
    sample();
    return { result, peak };
  } finally {
    clearInterval(timer);
  }
}

/** Polls (bounded) until the condition holds; a benchmark that cannot proceed fails. */
async function waitUntil(what: string, cond: () => boolean | Promise<boolean>, ms = 120_000) {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await sleep(20);
  }
}

class Daemon {
  readonly dir = mkdtempSync(join(tmpdir(), 'limen-bench-control-'));
  readonly site = join(this.dir, 'site');
  readonly socket = socketPathFor(join(this.dir, 'root'));
  child!: ChildProcess;
  exitCode: number | null | undefined;

  constructor(files: { [name: string]: string }) {
    mkdirSync(join(this.site, 'services'), { recursive: true });
    for (const [name, text] of Object.entries(files)) {
      writeFileSync(join(this.site, 'services', name), text);
    }
  }

  async start(): Promise<void> {
    this.child = spawn(
      process.execPath,
      [
        '--max-semi-space-size=2',
        '--import',
        'tsx',
        join(repo, 'test/support/limen-cli.ts'),
        'daemon',
        '--root',
        join(this.dir, 'root'),
        '--config',
        this.site,
        '--no-network',
      ],
      { cwd: repo, stdio: ['ignore', 'ignore', 'ignore'] },
    );
    this.child.once('exit', (code, signal) => (this.exitCode = code ?? (signal ? -1 : null)));
    await waitUntil('the daemon to answer', async () => {
      try {
        const c = await ControlClient.connect(this.socket);
        c.close();
        return true;
      } catch {
        return false;
      }
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Writes a site file whole (by rename), as an editor or a deployment would. */
  write(name: string, text: string): void {
    const tmp = join(this.site, 'services', `.${name}.tmp`);
    writeFileSync(tmp, text);
    renameSync(tmp, join(this.site, 'services', name));
  }

  async stop(): Promise<void> {
    if (this.exitCode === undefined) {
      const gone = new Promise((r) => this.child.once('exit', r));
      this.child.kill('SIGTERM');
      await Promise.race([gone, sleep(20_000)]);
      if (this.exitCode === undefined) this.child.kill('SIGKILL');
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

async function query(socket: string, pattern: string): Promise<string> {
  let c: ControlClient | undefined;
  try {
    c = await ControlClient.connect(socket);
    await c.query('config', parse(pattern));
    return 'answered';
  } catch (e) {
    return `${(e as { reason?: string }).reason ?? 'error'}: ${(e as Error).message.slice(0, 90)}...`;
  } finally {
    c?.close();
  }
}

async function deepQuery(): Promise<void> {
  const levels = 7000;
  const grow = Array.from({ length: levels }, (_, i) => `<next ${i} ${i + 1}>`);
  grow.push(
    '?? <grow ?n ?i> [',
    '  <grown $n>',
    '  ? <next $i ?j> ! <grow <s $n> $j>',
    `  $i =~ ${levels} <grow-done>`,
    ']',
    '! <grow z 0>',
  );
  const d = new Daemon({ 'grow.pr': grow.join('\n') + '\n' });
  try {
    await d.start();
    await waitUntil(
      'the values to be built',
      async () => {
        const c = await ControlClient.connect(d.socket);
        try {
          return (
            decodeQueryAnswer(await c.query('config', parse('<grow-done>'))).matches.length > 0
          );
        } finally {
          c.close();
        }
      },
      600_000,
    );
    const idle = memory(d.pid);
    let t = performance.now();
    const small = await query(d.socket, '<grown z>');
    const smallMs = performance.now() - t;
    const afterSmall = memory(d.pid);
    t = performance.now();
    const { result: hostile, peak } = await sampledPeak(d.pid, query(d.socket, '<grown ?x>'));
    const hostileMs = performance.now() - t;
    const alive = d.exitCode === undefined && (await query(d.socket, '<grow-done>')) === 'answered';
    console.log(`1. query over ${levels} nested values (the issue: 4.3 GB, then the daemon died)`);
    console.log(`   daemon RSS holding the values: ${mb(idle.rss)}`);
    console.log(
      `   baseline query <grown z>: ${small} in ${smallMs.toFixed(0)} ms, peak ${mb(afterSmall.peak)}`,
    );
    console.log(
      `   query <grown ?x>: ${hostile} in ${hostileMs.toFixed(0)} ms, peak ${mb(peak)} ` +
        `(+${mb(peak - afterSmall.peak)} over the baseline's)`,
    );
    console.log(`   daemon still answering: ${alive ? 'yes' : 'NO'}`);
  } finally {
    await d.stop();
  }
}

/** A client that watches `<big ?n _>` and never reads once synced (or is turned away). */
function nonReader(path: string): Promise<{ socket: Socket; refused: boolean }> {
  return new Promise((done) => {
    const socket = connect(path);
    let buf = '';
    socket.setEncoding('utf8');
    socket.on('error', () => undefined);
    socket.on('data', (s: string) => {
      buf += s;
      if (buf.includes('too-many-connections')) done({ socket, refused: true });
      else if (buf.includes('<synced>')) {
        socket.pause();
        done({ socket, refused: false });
      }
    });
    socket.on('close', () => done({ socket, refused: true }));
    socket.write('<request 1 watch {pattern: <big ?n _>}>\n');
  });
}

async function slowClients(nonReaders: number): Promise<string> {
  const d = new Daemon({});
  try {
    await d.start();
    const before = memory(d.pid);
    const reader = await ControlClient.connect(d.socket);
    let added = 0;
    const ac = new AbortController();
    const watch = reader.watch('config', parse('<big ?n _>'), {
      signal: ac.signal,
      onEvent: (v) => void (decodeWatchEvent(v)?.type === 'added' && added++),
    });
    const clients = await Promise.all(
      Array.from({ length: nonReaders }, () => nonReader(d.socket)),
    );
    const refused = clients.filter((c) => c.refused).length;
    const filler = 'z'.repeat(1000);
    for (let f = 0; f < 10; f++) {
      const lines: string[] = [];
      for (let i = f * 1000; i < (f + 1) * 1000; i++) lines.push(`<big ${i} "${filler}">`);
      d.write(`big-${f}.pr`, lines.join('\n') + '\n');
      await waitUntil(`file ${f} read by the reading client`, () => added >= (f + 1) * 1000);
    }
    const peak = memory(d.pid).peak;
    if (Number.isNaN(peak)) return `${nonReaders} non-reading: THE DAEMON DIED`;
    for (const c of clients) c.socket.destroy();
    ac.abort();
    await watch.catch(() => undefined);
    reader.close();
    const after: string[] = [];
    let last = 0;
    for (const s of [1, 5, 10]) {
      await sleep((s - last) * 1000);
      last = s;
      after.push(`${mb(memory(d.pid).rss)} at ${s} s`);
    }
    return (
      `${String(nonReaders).padStart(3)} non-reading (${refused} refused): RSS ${mb(before.rss)} before, ` +
      `peak ${mb(peak)}; after they left ${after.join(', ')}` +
      (d.exitCode === undefined ? '' : ' -- THE DAEMON DIED')
    );
  } finally {
    await d.stop();
  }
}

await deepQuery();
console.log(
  '2. 10,000 values of 1 KB asserted while watch clients never read (the issue, with 200:',
);
console.log('   2.1 GB, 1.6-2.0 GB after they left); one client reads every event in each case');
for (const n of [0, 200, 100]) console.log(`   ${await slowClients(n)}`);
