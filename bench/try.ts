// How long a small change takes to be in force, three ways, in the same run
// against one daemon (issue 12; docs/safe-change.md): edited by hand (the file
// rewritten, until the daemon answers with the new value: the baseline), tried
// with `limen try --auto-confirm` (until confirmed: the checks' settling second
// and passing second are most of it), and a trial whose required service fails
// (from `try` until the previous generation's service is up again, i.e. rolled
// back and running), and one whose probe fails (until the previous files are
// applied again); and, beside them, how long `limen try --dry-run` takes to print
// the same change's plan (two configurations evaluated). The daemon runs in-process with --no-network and a
// `sleep` service, so the figures are limen's own, not a network's.
//
//   npx tsx bench/try.ts [--rounds N]

import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startDaemon } from '../src/daemon/daemon.ts';
import { main } from '../src/cli/main.ts';
import { captureIo } from '../test/support/cli-io.ts';
import { formatTable, ms, summarize } from './support/lab-timing.ts';

const { values: opts } = parseArgs({ options: { rounds: { type: 'string' } } });
const ROUNDS = opts.rounds === undefined ? 5 : Number(opts.rounds);
if (!Number.isInteger(ROUNDS) || ROUNDS < 1 || ROUNDS > 50) {
  console.error(`--rounds ${opts.rounds}: give a whole number from 1 to 50`);
  process.exit(2);
}

const dir = mkdtempSync(join(tmpdir(), 'limen-bench-try-'));
const site = join(dir, 'site');
const root = join(dir, 'root');
const web = (argv: string) =>
  `<daemon web {argv: ${JSON.stringify(argv)}}>\n<require-service <daemon web>>\n`;

async function cli(...args: string[]): Promise<{ code: number; text: string }> {
  const io = captureIo();
  const code = await main([...args, '--root', root], io);
  return { code, text: io.stdout() + io.stderr() };
}

async function waitFor(pred: () => Promise<boolean>, what: string): Promise<void> {
  const until = Date.now() + 60_000;
  while (!(await pred())) {
    if (Date.now() > until) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function run(): Promise<void> {
  const broken = createServer((_req, res) => {
    res.statusCode = 503;
    res.end();
  });
  const port = await new Promise<number>((r) =>
    broken.listen(0, '127.0.0.1', () => r((broken.address() as { port: number }).port)),
  );
  const brokenUrl = `http://127.0.0.1:${port}/`;
  mkdirSync(join(site, 'services'), { recursive: true });
  writeFileSync(join(site, 'services/web.pr'), web('sleep 1000'));
  writeFileSync(join(site, 'services/value.pr'), '<bench-value 0>\n');
  const daemon = await startDaemon({
    root,
    configDirs: [site],
    network: false,
    write: () => undefined,
  });
  const value = async (n: number) =>
    (await cli('query', `<bench-value ${n}>`)).text.includes(`${n}`);
  const webUp = async () => /<daemon web> +ready/.test((await cli('services')).text);
  try {
    await waitFor(webUp, 'web up');
    const edit: number[] = [];
    const tried: number[] = [];
    const rolledBack: number[] = [];
    const probeRolledBack: number[] = [];
    const planned: number[] = [];
    let n = 0;
    for (let r = 0; r < ROUNDS; r++) {
      // By hand.
      n++;
      let t = performance.now();
      writeFileSync(join(site, 'services/value.pr'), `<bench-value ${n}>\n`);
      await waitFor(() => value(n), `edit ${n}`);
      edit.push(performance.now() - t);
      await daemon.generations.idle();

      // limen try --auto-confirm, the same kind of change, and its plan first.
      n++;
      const cand = join(dir, `cand-${n}`);
      cpSync(site, cand, { recursive: true });
      writeFileSync(join(cand, 'services/value.pr'), `<bench-value ${n}>\n`);
      t = performance.now();
      const plan = await cli('try', cand, '--dry-run');
      if (plan.code !== 0 || !plan.text.includes(`+ <bench-value ${n}>`))
        throw new Error(`dry run failed: ${plan.text}`);
      planned.push(performance.now() - t);
      t = performance.now();
      const ok = await cli('try', cand, '--auto-confirm', '--timeout', '60');
      if (ok.code !== 0) throw new Error(`try failed: ${ok.text}`);
      tried.push(performance.now() - t);

      // A trial whose required service fails: until the old service runs again.
      const bad = join(dir, `bad-${n}`);
      cpSync(site, bad, { recursive: true });
      writeFileSync(join(bad, 'services/web.pr'), web('exit 3'));
      t = performance.now();
      const failed = await cli('try', bad, '--timeout', '60');
      if (failed.code === 0) throw new Error('a failing trial was confirmed');
      await waitFor(webUp, 'web up again');
      rolledBack.push(performance.now() - t);

      // A trial whose probe fails (an HTTP server on loopback answering 503): until
      // the previous generation's files are back in place and applied.
      const probe = join(dir, `probe-${n}`);
      cpSync(site, probe, { recursive: true });
      writeFileSync(join(probe, 'services/probe.pr'), `<probe web <http "${brokenUrl}">>\n`);
      writeFileSync(join(probe, 'services/value.pr'), `<bench-value ${n + 1000}>\n`);
      t = performance.now();
      const probeFailed = await cli('try', probe, '--auto-confirm', '--timeout', '60');
      if (probeFailed.code === 0) throw new Error('a trial with a failing probe was confirmed');
      await waitFor(async () => !(await value(n + 1000)), 'the old value back');
      probeRolledBack.push(performance.now() - t);
    }
    const e = summarize(edit);
    const rows = [
      ['hand edit, until the daemon has the value (baseline)', e, 1],
      ['limen try --dry-run, until the plan is printed', summarize(planned), 0],
      ['limen try --auto-confirm, until confirmed', summarize(tried), 0],
      ['failing service, until rolled back and the old service up', summarize(rolledBack), 0],
      ['failing probe, until rolled back and applied', summarize(probeRolledBack), 0],
    ] as const;
    console.log(
      formatTable(
        ['change', 'p50 ms', 'max ms', 'x edit'],
        rows.map(([label, s]) => [label, ms(s.p50), ms(s.max), (s.p50 / e.p50).toFixed(1)]),
      ),
    );
    console.log(
      `${ROUNDS} round(s). A trial waits a settling second and a passing second before it is confirmed; ` +
        'the failing service is a crash loop given up (backoff 250+500+1000+2000 ms) before it rolls back; ' +
        'a failing probe rolls back once it has failed for 2 s after the settling second.',
    );
  } finally {
    await daemon.shutdown('bench over');
    broken.closeAllConnections();
    broken.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await run();
