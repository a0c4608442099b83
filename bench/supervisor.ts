// Supervisor throughput: start 200 services (a dependency tree of depth 10) that
// each signal readiness by fd, wait until all are ready, then stop them all in
// reverse dependency order. limen (supervisor + service manager, in-process, as
// in the daemon, from dist/ in a child process) against s6-svscan from Debian's s6 package doing the same level
// by level (s6-svc -u / s6-svwait -U, then -d / -D). Prints times, the ratio,
// and limen's RSS with 200 services running. Aims: within 1.5x of s6, < 80 MB RSS.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const SERVICES = 200;
const DEPTH = 10;
const PER_LEVEL = SERVICES / DEPTH;
const RUNS = 3;
const fixture = resolve(import.meta.dirname, 'fixtures/ready-service.sh');

const name = (level: number, i: number) => `s${level}-${i}`;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

interface LimenRun {
  startMs: number;
  stopMs: number;
  rssMb: number;
  baseRssMb: number;
}

/** Runs the limen half from dist/ in a child process (see fixtures/limen-supervisor.mjs),
 *  with the V8 flag bin/limen.js gives the daemon. */
function runLimen(): LimenRun {
  const child = resolve(import.meta.dirname, 'fixtures/limen-supervisor.mjs');
  const r = spawnSync(
    process.execPath,
    ['--expose-gc', '--max-semi-space-size=2', child, String(SERVICES), String(DEPTH), fixture],
    {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
      timeout: 120_000,
    },
  );
  if (r.status !== 0)
    throw new Error(`limen run failed (exit ${r.status ?? r.signal}); run npm run build first`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as LimenRun;
}

function sh(script: string): void {
  const r = spawnSync('/bin/sh', ['-c', script], { stdio: ['ignore', 'ignore', 'inherit'] });
  if (r.status !== 0) throw new Error(`s6 step failed: ${script.slice(0, 80)}...`);
}

async function runS6(): Promise<{ startMs: number; stopMs: number }> {
  const scan = mkdtempSync(join(tmpdir(), 'limen-bench-s6-'));
  const dirs: string[][] = [];
  for (let level = 0; level < DEPTH; level++) {
    dirs.push([]);
    for (let i = 0; i < PER_LEVEL; i++) {
      const d = join(scan, name(level, i));
      mkdirSync(d);
      writeFileSync(join(d, 'run'), `#!/bin/sh\nexec /bin/sh ${fixture}\n`, { mode: 0o755 });
      writeFileSync(join(d, 'notification-fd'), '3\n');
      writeFileSync(join(d, 'down'), '');
      dirs[level]!.push(d);
    }
  }
  const svscan = spawn('s6-svscan', [scan], { stdio: 'ignore', detached: true });
  const exited = new Promise<void>((r) => svscan.once('exit', () => r()));
  try {
    // Wait (bounded) until every s6-supervise is up: not part of the measured time.
    const deadline = Date.now() + 20_000;
    while (!dirs.flat().every((d) => existsSync(join(d, 'supervise', 'status')))) {
      if (Date.now() > deadline) throw new Error('s6-supervise did not start');
      await new Promise((r) => setTimeout(r, 20));
    }
    const t0 = performance.now();
    for (const level of dirs) {
      sh(
        `for d in ${level.join(' ')}; do s6-svc -u "$d"; done; s6-svwait -U -t 60000 ${level.join(' ')}`,
      );
    }
    const startMs = performance.now() - t0;
    const t1 = performance.now();
    for (const level of [...dirs].reverse()) {
      sh(
        `for d in ${level.join(' ')}; do s6-svc -d "$d"; done; s6-svwait -D -t 60000 ${level.join(' ')}`,
      );
    }
    const stopMs = performance.now() - t1;
    return { startMs, stopMs };
  } finally {
    spawnSync('s6-svscanctl', ['-t', scan]);
    const timer = setTimeout(() => {
      try {
        process.kill(-svscan.pid!, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }, 5000);
    await exited;
    clearTimeout(timer);
    rmSync(scan, { recursive: true, force: true });
  }
}

const haveS6 = spawnSync('sh', ['-c', 'command -v s6-svscan']).status === 0;
const limen: LimenRun[] = [];
const s6: { startMs: number; stopMs: number }[] = [];
for (let i = 0; i < RUNS; i++) {
  limen.push(runLimen());
  if (haveS6) s6.push(await runS6());
}
const ls = median(limen.map((r) => r.startMs));
const lt = median(limen.map((r) => r.stopMs));
const rss = Math.max(...limen.map((r) => r.rssMb));
const base = Math.max(...limen.map((r) => r.baseRssMb));
console.log(
  `${SERVICES} services, dependency tree of depth ${DEPTH}, readiness by fd; median of ${RUNS} runs`,
);
console.log(
  `  limen  start->all ready ${ls.toFixed(0).padStart(6)} ms   stop all ${lt.toFixed(0).padStart(6)} ms   total ${(ls + lt).toFixed(0).padStart(6)} ms`,
);
if (haveS6) {
  const ss = median(s6.map((r) => r.startMs));
  const st = median(s6.map((r) => r.stopMs));
  console.log(
    `  s6     start->all ready ${ss.toFixed(0).padStart(6)} ms   stop all ${st.toFixed(0).padStart(6)} ms   total ${(ss + st).toFixed(0).padStart(6)} ms`,
  );
  console.log(
    `  ratio limen/s6: start ${(ls / ss).toFixed(2)}x, stop ${(lt / st).toFixed(2)}x, total ${((ls + lt) / (ss + st)).toFixed(2)}x (aim <= 1.5x)`,
  );
} else {
  console.log('  s6 is not installed (apt-get install s6): no baseline this run');
}
console.log(
  `  limen RSS with ${SERVICES} services running: ${rss.toFixed(1)} MB (aim < 80 MB; ${base.toFixed(1)} MB before any service)`,
);
