// The web dashboard's figures (issue 16), against the real daemon and its web server
// on 127.0.0.1, in headless Chromium (test/support/browser.ts):
//
//   (a) what a browser downloads for the page: index.html, app.js, app.css, gzipped
//       (the map is not downloaded);
//   (b) the first page usable: from navigation to the login form's password field
//       visible, in a fresh browser context each time (nothing cached), p50 of --loads;
//   (c) a state change to the page showing it: --rounds restarts of a service over
//       root's control socket; each new PID is timed as it reaches a `limen watch` of
//       `<service-process …>` (the baseline: the same watch the page's stream rides on)
//       and as it appears in the page's services table (a MutationObserver stamps it
//       with Date.now(), the same clock as ours). p50 and p90 of each, and the ratio.
//
// Not root, or no limen-web user, or no chromium: skipped (exit 0). Benchmarks do not
// assert times.
//
//   sudo npx tsx bench/web.ts [--rounds N] [--loads N]

import { spawn, type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import { ControlClient, decodeWatchEvent } from '../src/control/index.ts';
import { Dict, parse, peel, sym } from '../src/preserves/index.ts';
import { browserMissing, launchBrowser } from '../test/support/browser.ts';
import { freePort } from '../test/support/free-port.ts';
import { formatTable, ms, summarize } from './support/lab-timing.ts';

const { values: opts } = parseArgs({
  options: { rounds: { type: 'string', default: '25' }, loads: { type: 'string', default: '10' } },
});
const rounds = Number(opts.rounds);
const loads = Number(opts.loads);
const repo = resolve(import.meta.dirname, '..');
const staticDir = join(repo, 'dist', 'web', 'static');

function idOf(name: string, file: 'passwd' | 'group'): number | undefined {
  const line = readFileSync(`/etc/${file}`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${name}:`));
  return line === undefined ? undefined : Number(line.split(':')[2]);
}

const skip =
  process.getuid?.() !== 0
    ? 'not root'
    : idOf('limen-web', 'passwd') === undefined
      ? 'no user limen-web (node scripts/bootstrap.mjs)'
      : browserMissing();
if (skip !== undefined) {
  console.log(`skipped: ${skip}`);
  process.exit(0);
}

// (a) The download.
const files = readdirSync(staticDir).filter((f) => !f.endsWith('.map') && !f.endsWith('.txt'));
const sizes = files.map((f) => {
  const body = readFileSync(join(staticDir, f));
  return [f, body.length, gzipSync(body, { level: 9 }).length] as const;
});
console.log('(a) what the browser downloads\n');
console.log(
  formatTable(
    ['file', 'bytes', 'gzipped'],
    [
      ...sizes.map(([f, b, g]) => [f, String(b), String(g)]),
      [
        'all',
        String(sizes.reduce((n, s) => n + s[1], 0)),
        String(sizes.reduce((n, s) => n + s[2], 0)),
      ],
    ],
  ),
);

const dir = mkdtempSync(join(tmpdir(), 'limen-bench-web-'));
// The web user must reach the web endpoint's socket under it.
chmodSync(dir, 0o755);
const children: ChildProcess[] = [];
const cleanup = () => {
  for (const c of children) c.kill('SIGTERM');
};
process.on('exit', () => {
  cleanup();
  rmSync(dir, { recursive: true, force: true });
});
process.on('SIGINT', () => process.exit(130));

try {
  const root = join(dir, 'root');
  const site = join(dir, 'site');
  mkdirSync(join(site, 'core'), { recursive: true });
  mkdirSync(join(site, 'services'), { recursive: true });
  writeFileSync(
    join(site, 'services', 'sleeper.pr'),
    '<require-service <daemon sleeper>>\n<daemon sleeper {argv: ["sleep" "100000"] restart: always}>\n',
  );
  const daemon = spawn(
    process.execPath,
    [
      join(repo, 'bin', 'limen.js'),
      'daemon',
      '--root',
      root,
      '--config',
      site,
      '--no-network',
      '--web-group',
      'limen-web',
    ],
    { stdio: 'ignore' },
  );
  children.push(daemon);
  const socket = join(root, 'run/limen/control.sock');
  let client: ControlClient | undefined;
  for (let i = 0; i < 200 && client === undefined; i++) {
    client = await ControlClient.connect(socket).catch(async () => {
      await new Promise((r) => setTimeout(r, 50));
      return undefined;
    });
  }
  if (client === undefined) throw new Error('the daemon did not come up');
  const c = client;
  const answer = peel(await c.call('web-password-set', { random: true }));
  const password = (answer as Dict).get(sym('password')) as string;
  const port = await freePort();
  const server = spawn(
    'setpriv',
    [
      '--reuid=limen-web',
      '--regid=limen-web',
      '--clear-groups',
      process.execPath,
      join(repo, 'dist', 'web', 'server.js'),
      '--socket',
      join(root, 'run/limen/web/control.sock'),
      '--listen',
      '127.0.0.1',
      '--port',
      String(port),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  children.push(server);
  await new Promise<void>((r) =>
    server.stdout.on('data', (b: Buffer) => b.toString().includes('listening') && r()),
  );
  const url = `http://127.0.0.1:${port}/`;
  const browser = await launchBrowser();

  // (b) First page usable, nothing cached.
  const firstPage: number[] = [];
  for (let i = 0; i < loads; i++) {
    const context = await browser.newContext();
    const page = await context.newPage();
    const t0 = Date.now();
    await page.goto(url);
    await page.locator('[data-testid="password"]').waitFor();
    firstPage.push(Date.now() - t0);
    await context.close();
  }

  // (c) A state change: the page against the watch.
  const page = await browser.newPage();
  await page.goto(url);
  await page.locator('[data-testid="password"]').fill(password);
  await page.locator('[data-testid="login"]').click();
  await page.locator('[data-testid="nav-services"]').click();
  const pids =
    '[data-testid="service"][data-service="<daemon sleeper>"] [data-testid="service-pids"]';
  await page.locator(pids).filter({ hasText: /\d/ }).waitFor({ timeout: 30_000 });
  await page.evaluate((selector) => {
    // In the page: stamp each new PID the cell shows with the system clock.
    const g = globalThis as unknown as {
      __seen: [string, number][];
      document: { querySelector(s: string): { textContent: string | null } | null };
      MutationObserver: new (f: () => void) => { observe(n: unknown, o: object): void };
    };
    const cell = g.document.querySelector(selector)!;
    g.__seen = [];
    let last = cell.textContent;
    new g.MutationObserver(() => {
      const now = Date.now();
      const t = (cell.textContent ?? '').trim();
      if (t !== last && /^\d+$/.test(t)) g.__seen.push([t, now]);
      last = t;
    }).observe(cell, { childList: true, characterData: true, subtree: true });
  }, pids);
  const watchSeen = new Map<number, number>();
  const abort = new AbortController();
  void c
    .watch('config', parse('<service-process <daemon sleeper> ?info>'), {
      signal: abort.signal,
      onEvent: (v) => {
        const now = Date.now();
        const e = decodeWatchEvent(v);
        if (e?.type !== 'added') return;
        const info = peel(new Map(e.captures).get('info') ?? false);
        const list = info instanceof Dict ? peel(info.get(sym('pids')) ?? []) : [];
        if (Array.isArray(list) && typeof list[0] === 'number' && !watchSeen.has(list[0]))
          watchSeen.set(list[0], now);
      },
    })
    .catch(() => undefined);
  // The watch's first report (the running PID) before the first restart.
  for (let j = 0; j < 500 && watchSeen.size === 0; j++) await new Promise((r) => setTimeout(r, 10));
  const toWatch: number[] = [];
  const toPage: number[] = [];
  const service = parse('<daemon sleeper>');
  for (let i = 0; i < rounds; i++) {
    const known = new Set(watchSeen.keys());
    const t0 = Date.now();
    await c.restart(service);
    let pid: number | undefined;
    for (let j = 0; j < 400 && pid === undefined; j++) {
      pid = [...watchSeen.keys()].find((p) => !known.has(p));
      if (pid === undefined) await new Promise((r) => setTimeout(r, 10));
    }
    if (pid === undefined) throw new Error(`round ${i}: no new pid reached the watch`);
    // A function, not a string: the page's CSP forbids eval (and playwright's string form uses it).
    const shown = await page
      .waitForFunction(
        (p) =>
          (globalThis as unknown as { __seen: [string, number][] }).__seen.find(
            ([t]) => t === p,
          )?.[1],
        String(pid),
        { timeout: 10_000 },
      )
      .catch(async (e: unknown) => {
        const seen = await page.evaluate(() =>
          JSON.stringify((globalThis as unknown as { __seen: unknown }).__seen),
        );
        const text = await page
          .locator(pids)
          .innerText()
          .catch(() => '?');
        throw new Error(
          `round ${i}: pid ${pid} not shown (cell: ${text}, seen: ${seen}): ${String(e)}`,
        );
      });
    toWatch.push(watchSeen.get(pid)! - t0);
    toPage.push(((await shown.jsonValue()) as number) - t0);
    // Past the restart backoff's window, so that each restart is alike.
    await new Promise((r) => setTimeout(r, 300));
  }
  abort.abort();
  await browser.close();
  c.close();

  const b = summarize(firstPage);
  console.log(
    `\n(b) first page usable (navigation to the login form), ${loads} fresh contexts: p50 ${ms(b.p50)} ms, max ${ms(b.max)} ms`,
  );
  const w = summarize(toWatch);
  const p = summarize(toPage);
  const pct90 = (xs: number[]) =>
    [...xs].sort((x, y) => x - y)[Math.min(xs.length - 1, Math.floor(xs.length * 0.9))]!;
  console.log(`\n(c) restart request → new PID shown, ${rounds} restarts (ms)\n`);
  console.log(
    formatTable(
      ['', 'p50', 'p90', 'max'],
      [
        ['limen watch (baseline)', ms(w.p50), ms(pct90(toWatch)), ms(w.max)],
        ['the page (browser)', ms(p.p50), ms(pct90(toPage)), ms(p.max)],
        ['page − watch', ms(p.p50 - w.p50), '', ''],
      ],
    ),
  );
  console.log(`\nratio page / watch (p50): ×${(p.p50 / w.p50).toFixed(2)}`);
} catch (e) {
  console.error(`bench/web: ${(e as Error).stack ?? String(e)}`);
  process.exitCode = 1;
}
cleanup();
