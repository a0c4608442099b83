// How long a CLI command takes, as a person or a script runs it (`limen status`
// spawned, to its exit), against `node -e 0` measured in the same run: the
// commands run in turn, round after round, so a busy machine slows them all
// alike. Issue 11, point 17: every command that talks to the daemon should stay
// under 1.3x `node -e 0` (the CLI is bundled by scripts/build-cli.mjs and loads
// only the command it runs).
//
// A daemon runs from dist/ with examples/site under a private --root (no
// network drivers); every command talks to it over its socket. Streams (`watch`,
// `logs -f`) are timed to their first answer (`synced`, the first line), then
// interrupted as a person would (SIGINT). Each row: median and p95 of the wall
// time, its ratio to the baseline's median, and the mean CPU time (user + system,
// from the kernel's accounting of waited-for children), which a busy machine
// disturbs less than the wall clock.
//
//   npx tsx bench/cli.ts [--rounds N] [--quick]

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { formatTable, ms, summarize } from './support/lab-timing.ts';

const { values: opts } = parseArgs({
  options: { rounds: { type: 'string' }, quick: { type: 'boolean', default: false } },
});
const ROUNDS = opts.rounds !== undefined ? Number(opts.rounds) : opts.quick ? 10 : 40;
if (!Number.isInteger(ROUNDS) || ROUNDS < 3 || ROUNDS > 1000) {
  console.error(`--rounds ${opts.rounds}: give a whole number from 3 to 1000`);
  process.exit(2);
}
const AIM = 1.3;
const root = resolve(import.meta.dirname, '..');
const limen = join(root, 'bin', 'limen.js');

interface Case {
  readonly label: string;
  readonly argv: readonly string[];
  /** A stream: timed to the first stdout chunk matching this, then SIGINT. */
  readonly until?: RegExp;
  /** True for the commands that talk to the daemon (the aim applies to them). */
  readonly daemon: boolean;
}

function cases(socket: string): Case[] {
  const s = ['--socket', socket];
  const c = (label: string, args: string[], more: Partial<Case> = {}): Case => ({
    label: `limen ${label}`,
    argv: [limen, ...args, ...s],
    daemon: true,
    ...more,
  });
  return [
    { label: 'node -e 0 (baseline)', argv: ['node', '-e', '0'], daemon: false },
    { label: 'limen --version', argv: [limen, '--version'], daemon: false },
    c('status', ['status']),
    c('services', ['services']),
    c('service hello', ['service', 'hello']),
    c("query '<service-state ?s ?x>'", ['query', '<service-state ?s ?x>']),
    c('logs hello', ['logs', 'hello']),
    c('logs -f hello (first line)', ['logs', '-f', 'hello'], { until: /hello from limen/ }),
    c("watch '<service-state ?s ?x>' (synced)", ['watch', '--json', '<service-state ?s ?x>'], {
      until: /"synced"/,
    }),
    c("send '<bench-ping>'", ['send', '<bench-ping>']),
    c('settings list', ['settings', 'list']),
    c('ifup eth9 (answered: no configuration)', ['ifup', 'eth9']),
    c('restart hello', ['restart', 'hello']),
  ];
}

/** Children's CPU time so far (ms): utime + stime of every child we waited for. */
function childrenCpuMs(): number {
  const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ');
  // After "pid (comm) ": state is field 3, so cutime (16) and cstime (17) are at 13 and 14.
  return ((Number(fields[13]) + Number(fields[14])) * 1000) / clockTicks;
}
const clockTicks = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout) || 100;

interface Sample {
  readonly ms: number;
  readonly cpuMs: number;
  readonly code: number | null;
}

function runOnce(c: Case): Promise<Sample> {
  return new Promise((resolvePromise, reject) => {
    const cpu0 = childrenCpuMs();
    const t0 = performance.now();
    let end: number | undefined;
    const child = spawn(c.argv[0]!, c.argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (c.until !== undefined && end === undefined && c.until.test(out)) {
        end = performance.now();
        child.kill('SIGINT');
      }
    });
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      const stop = end ?? performance.now();
      if (c.until !== undefined && end === undefined) {
        reject(new Error(`${c.label}: no ${String(c.until)} in its output: ${out}${err}`));
        return;
      }
      resolvePromise({ ms: stop - t0, cpuMs: childrenCpuMs() - cpu0, code });
    });
  });
}

function shuffled<T>(xs: readonly T[]): T[] {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

function distIsStale(): boolean {
  const built = join(root, 'dist', 'cli', 'main.js');
  if (!existsSync(built)) return true;
  const newest = (dir: string): number =>
    Math.max(
      0,
      ...readdirSync(dir, { withFileTypes: true }).map((e) =>
        e.isDirectory() ? newest(join(dir, e.name)) : statSync(join(dir, e.name)).mtimeMs,
      ),
    );
  return newest(join(root, 'src')) > statSync(built).mtimeMs;
}

async function waitForDaemon(socket: string, daemonLog: () => string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const r = spawnSync(limen, ['status', '--socket', socket], { stdio: 'ignore' });
    if (r.status === 0) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`the daemon did not answer on ${socket} within 30 s:\n${daemonLog()}`);
}

async function main(): Promise<number> {
  if (distIsStale()) {
    console.log('bench/cli.ts: dist/ is missing or older than src/: run `npm run build` first');
    return 1;
  }
  const dir = mkdtempSync(join(tmpdir(), 'limen-bench-cli-'));
  const socket = join(dir, 'control.sock');
  let log = '';
  const daemon = spawn(
    limen,
    [
      'daemon',
      '--root',
      join(dir, 'root'),
      '--socket',
      socket,
      '--config',
      join(root, 'examples', 'site'),
      '--no-network',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  daemon.stdout.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
  daemon.stderr.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
  const exited = new Promise<void>((r) => daemon.once('exit', () => r()));
  try {
    await waitForDaemon(socket, () => log);
    const list = cases(socket);
    const samples = new Map<Case, Sample[]>(list.map((c) => [c, []]));
    // One warm-up round (page cache, the daemon's first answers), not counted.
    for (const c of list) await runOnce(c);
    // A new order each round: a command's cost must not depend on what ran before it
    // (`restart hello` keeps the daemon busy for a moment).
    for (let round = 0; round < ROUNDS; round++) {
      for (const c of shuffled(list)) samples.get(c)!.push(await runOnce(c));
    }
    const base = summarize(samples.get(list[0]!)!.map((s) => s.ms));
    const mean = (xs: readonly Sample[]) => xs.reduce((a, x) => a + x.cpuMs, 0) / xs.length;
    const baseCpu = mean(samples.get(list[0]!)!);
    const rows: string[][] = [];
    let over = 0;
    for (const c of list) {
      const xs = samples.get(c)!;
      const s = summarize(xs.map((x) => x.ms));
      const cpu = mean(xs);
      const codes = [...new Set(xs.map((x) => x.code))].join(',');
      const ratio = s.p50 / base.p50;
      if (c.daemon && ratio >= AIM) over++;
      rows.push([
        c.label,
        ms(s.p50),
        ms(s.p95),
        ratio.toFixed(2),
        ms(cpu),
        (cpu / baseCpu).toFixed(2),
        codes,
      ]);
    }
    console.log(
      `CLI commands, spawn to exit (streams: to their first answer), ${ROUNDS} rounds, ` +
        `against a daemon with examples/site (--no-network); aim: < ${AIM}x node -e 0`,
    );
    console.log(
      formatTable(
        ['command', 'p50 ms', 'p95 ms', 'x node', 'cpu ms (mean)', 'cpu x node', 'exit'],
        rows,
      ),
    );
    console.log(
      over === 0
        ? `every command that talks to the daemon: < ${AIM}x node -e 0 (median)`
        : `${over} command(s) that talk to the daemon at or above ${AIM}x node -e 0 (median)`,
    );
    return 0;
  } finally {
    daemon.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
    if (daemon.exitCode === null && daemon.signalCode === null) daemon.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

process.exitCode = await main();
