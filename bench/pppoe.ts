// PPPoE: from the link up to limen's `<default-route ipv4>`, beside pppd's own time
// to bring the link up, in the same VM boot (issue 14). This machine's kernel has
// no PPP, so on the host this boots limen's VM and runs itself inside
// (LIMEN_IN_VM=1), streaming its output.
//
// In the guest: the lab over PPPoE (`--wan pppoe`: Debian's pppoe-server with
// CHAP); each round the ISP ends the session (its pppd gets SIGTERM) and pppd
// redials after its holdoff. Per round, from pppd's own output lines (stamped by
// limen's supervisor as it reads them) and from control-socket watches (stamped on
// arrival):
//   pppd:  "PPP session is N" (PPPoE discovery done) → "local  IP address" (LCP,
//          CHAP and IPCP done: the link is up). The baseline.
//   limen: "local  IP address" → `<output <daemon <pppd "wan0">> event …>` (the
//          ip-up hook's outputs reached limen) → `<default-route ipv4>` asserted.
// Benchmarks do not assert times: exit 0 when everything was measured.
//
//   sudo npx tsx bench/pppoe.ts [--rounds N]

import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { ControlClient, decodeWatchEvent } from '../src/control/index.ts';
import { type Lab, labDown, labUp, packageRoot } from '../src/lab/lab.ts';
import { runInVm, vmUnavailable } from '../src/lab/vm.ts';
import { inVm } from '../src/lab/vm-lab.ts';
import { parse } from '../src/preserves/index.ts';
import { formatTable, ms, summarize } from './support/lab-timing.ts';

const { values: opts } = parseArgs({ options: { rounds: { type: 'string' } } });
const ROUNDS = opts.rounds !== undefined ? Number(opts.rounds) : 5;
if (!Number.isInteger(ROUNDS) || ROUNDS < 1 || ROUNDS > 100) {
  console.error(`--rounds ${opts.rounds}: give a whole number from 1 to 100`);
  process.exit(2);
}
const PPPD = '<daemon <pppd "wan0">>';
const ROUND_TIMEOUT_MS = 120_000;

async function onHost(): Promise<number> {
  const why = vmUnavailable();
  if (why !== undefined) {
    console.log(`bench/pppoe: skipped (${why})`);
    return 0;
  }
  console.log('bench/pppoe: booting limen’s VM (this kernel has no PPP); figures are the guest’s');
  const r = await runInVm({
    script: `cd '${packageRoot()}' && node --import tsx bench/pppoe.ts --rounds ${ROUNDS}`,
    timeoutMs: 900_000,
    memoryMiB: 2048,
    onOutput: (t) => process.stdout.write(t),
  });
  if (r.status !== 0) console.error(`bench/pppoe: the guest ended with ${String(r.status)}`);
  return r.status ?? 1;
}

/** Times (ms, wall clock) of the first `<log>` line of pppd matching re after `since`. */
function pppdLineTime(lab: Lab, re: RegExp, since: number): number | undefined {
  const r = spawnSync(
    process.execPath,
    [`${packageRoot()}/bin/limen.js`, 'logs', '-n', '200', '--json', PPPD, '--socket', lab.socket],
    { encoding: 'utf8', timeout: 30_000 },
  );
  for (const l of r.stdout.split('\n')) {
    if (l.trim() === '') continue;
    const e = JSON.parse(l) as { time?: string; line?: string };
    const t = e.time === undefined ? NaN : Date.parse(e.time);
    if (t >= since && re.test(e.line ?? '')) return t;
  }
  return undefined;
}

/**
 * Arrival times (Date.now(), the clock pppd's log lines are stamped with) of every
 * `+ PATTERN` after the watch synced, until the signal aborts.
 */
function additions(client: ControlClient, pattern: string, signal: AbortSignal): number[] {
  const times: number[] = [];
  let synced = false;
  client
    .watch('config', parse(pattern), {
      signal,
      onEvent: (v) => {
        const e = decodeWatchEvent(v);
        if (e?.type === 'synced') synced = true;
        else if (synced && e?.type === 'added') times.push(Date.now());
      },
    })
    .catch(() => undefined); // ended by the signal
  return times;
}

/** Waits (bounded) for a time in `times` after `after`; returns it. */
async function firstAfter(times: number[], after: number, what: string): Promise<number> {
  const deadline = Date.now() + ROUND_TIMEOUT_MS;
  for (;;) {
    const t = times.find((x) => x >= after);
    if (t !== undefined) return t;
    if (Date.now() > deadline) throw new Error(`no ${what} within ${ROUND_TIMEOUT_MS} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function round(lab: Lab, client: ControlClient) {
  const stop = new AbortController();
  try {
    const routes = additions(client, '<default-route ipv4>', stop.signal);
    const events = additions(client, `<output ${PPPD} event _>`, stop.signal);
    const killedAt = Date.now();
    if (lab.killIspSessions() < 1) throw new Error('the ISP had no session to end');
    // The new link: pppd's IPCP, then the hook's outputs, then the route that needs them.
    let ipcp: number | undefined;
    const ipcpDeadline = Date.now() + ROUND_TIMEOUT_MS;
    while ((ipcp = pppdLineTime(lab, /^local {2}IP address /, killedAt)) === undefined) {
      if (Date.now() > ipcpDeadline) throw new Error('pppd never brought the link up again');
      await new Promise((r) => setTimeout(r, 500));
    }
    const eventAt = await firstAfter(events, ipcp, 'hook outputs');
    const routeAt = await firstAfter(routes, eventAt, '<default-route ipv4>');
    const session = pppdLineTime(lab, /^PPP session is \d+/, killedAt);
    if (session === undefined) throw new Error('pppd said nothing of the new session');
    return { pppd: ipcp - session, hook: eventAt - ipcp, route: routeAt - ipcp };
  } finally {
    stop.abort();
  }
}

async function inGuest(): Promise<number> {
  const name = `b${randomBytes(3).toString('hex')}`;
  const lab = await labUp({ name, wan: 'pppoe', onStep: (s) => console.log(`  ${s}`) });
  const client = await ControlClient.connect(lab.socket);
  try {
    await lab.waitLanReachesWorld('lan1', 240_000);
    const rows: { pppd: number; hook: number; route: number }[] = [];
    for (let i = 0; i < ROUNDS; i++) rows.push(await round(lab, client));
    const line = (label: string, xs: number[], base: number[]) => {
      const s = summarize(xs);
      return [label, ms(s.p50), ms(s.p95), (s.p50 / summarize(base).p50).toFixed(3)];
    };
    const pppd = rows.map((r) => r.pppd);
    console.log(`\nPPPoE link up, ${ROUNDS} redials (ms; the guest's clock, under TCG emulation):`);
    console.log(
      formatTable(
        ['from → to', 'p50', 'p95', 'x pppd'],
        [
          line('pppd: PPPoE session → IPCP up (baseline)', pppd, pppd),
          line(
            'limen: IPCP up → hook outputs in $config',
            rows.map((r) => r.hook),
            pppd,
          ),
          line(
            'limen: IPCP up → <default-route ipv4>',
            rows.map((r) => r.route),
            pppd,
          ),
        ],
      ),
    );
    return 0;
  } finally {
    client.close();
    await labDown(name);
  }
}

process.exitCode = await (inVm() ? inGuest() : onHost());
