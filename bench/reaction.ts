// Reaction times of limen as the lab's router (issue 7), each over --rounds
// rounds (default 20) and printed as p50/p95, with a baseline from the same run:
//
//   (a) DHCP: from the lease's `event` output (udhcpc bound) to the address in
//       the kernel, the default route in the kernel, and <default-route ipv4>
//       asserted. Each round releases wan0's lease and renews it (or, with
//       --dhcp-trigger restart or a config without <dhcp-renew>, restarts
//       udhcpc), so every bound is fresh. Baseline: a bare `busybox udhcpc -q`
//       exchange with limen's dnsmasq from lan2.
//   (b) Cold start: SIGTERM, flush wan0/lan0 and set them down (nothing to
//       adopt), start limen, time from its spawn to the control socket and to
//       <service-state <milestone network> up>. Baselines: `bin/limen.js
//       --version` and `node -e 0`.
//   (c) Firewall: a file in the site's core/ with a <port-forward …> written or
//       removed in turn, to <firewall-applied GEN _> with a new GEN and to the
//       transaction committed in the kernel. Baseline: `nft -c -f` and `nft -f`
//       of the same ruleset by hand.
//   (d) Memory (RSS, PSS, USS) of the daemon and its netlink helper.
//
// Clocks: kernel times come from observers independent of limen, in rtr:
// `ip -ts monitor` (ip's wall-clock stamp when it reads each message) and
// `nft monitor` (stamped when its line reaches us; `nft list` then confirms
// the rule, untimed). The bound time is when the rename of `event` reaches our
// own inotify watch: the file's mtime is when the script wrote `.event.tmp`
// (its `mv` is a fork+exec later) and tmpfs takes it from the coarse clock (a
// tick: 4 ms at HZ=250), so it is only printed beside it. Times on $config are
// when a control-socket watch event reaches us.
//
// The lab has a random name and is always torn down (finally, and on SIGINT).
// Benchmarks do not assert times: exit 0 when everything was measured, 1 with a
// message otherwise; not root: skipped (exit 0).
//
//   sudo npx tsx bench/reaction.ts [--rounds N] [--quick] [--only a,b,c,d]
//                                  [--dhcp-trigger renew|restart]

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  existsSync,
  readFileSync,
  readdirSync,
  renameSync,
  statSync,
  unlinkSync,
  watch,
  writeFileSync,
  type FSWatcher,
} from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ControlClient, decodeWatchEvent } from '../src/control/index.ts';
import { type Lab, labDown, labPreflight, labUp, packageRoot } from '../src/lab/lab.ts';
import { isAlive, run, tryRun } from '../src/lab/system.ts';
import { parse, peel, stringify, type Value } from '../src/preserves/index.ts';
import { outputsDirName } from '../src/supervisor/service-names.ts';
import { distinctResident, mib, treeMemory, type ProcessRow } from './support/memory.ts';
import {
  EventLog,
  MeasureError,
  formatTable,
  ipMonitor,
  ms,
  nftMonitor,
  summarize,
  wallNow,
  type KernelEvent,
  type LineMonitor,
  type NftTransaction,
  type Stamped,
} from './support/lab-timing.ts';

const { values: opts } = parseArgs({
  options: {
    rounds: { type: 'string' },
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    'dhcp-trigger': { type: 'string' },
  },
});
const ROUNDS = opts.rounds !== undefined ? Number(opts.rounds) : opts.quick ? 5 : 20;
if (!Number.isInteger(ROUNDS) || ROUNDS < 1 || ROUNDS > 1000) {
  console.error(`--rounds ${opts.rounds}: give a whole number from 1 to 1000`);
  process.exit(2);
}
const ONLY = new Set((opts.only ?? 'a,b,c,d').split(',').map((s) => s.trim()));
const ROUND_TIMEOUT_MS = 15_000;
const WAN = 'wan0';
const UDHCPC = `<daemon <udhcpc "${WAN}">>`;

// ---- Setup ------------------------------------------------------------------------------------

interface WatchRecord extends Stamped {
  readonly key: string;
  readonly type: 'added' | 'removed';
  readonly value: Value;
  readonly captures: ReadonlyMap<string, Value>;
  /** False if it was already asserted when the watch began. */
  readonly live: boolean;
}

const WATCHES = {
  defaultRoute: ['config', '<default-route ipv4>'],
  leaseEvent: ['config', `<output ${UDHCPC} event ?e>`],
  installed: ['config', `<ip-address-state "${WAN}" ?a installed _>`],
  portForward: ['config', '<port-forward wan tcp ?port _ _>'],
  firewall: ['config', '<firewall-applied ?gen _>'],
  network: ['config', '<service-state <milestone network> up>'],
  core: ['config', '<service-state <milestone core> up>'],
  lease: ['config', `<dhcp-lease "${WAN}" _>`],
  carrier: ['machine', `<interface "${WAN}" _ _ up up carrier _>`],
} as const;
type WatchKey = keyof typeof WATCHES;

/** Opens the watches into `log`; resolves once each has sent its <synced>. */
async function startWatches(
  client: ControlClient,
  keys: readonly WatchKey[],
  log: EventLog<WatchRecord>,
  signal: AbortSignal,
): Promise<void> {
  const synced = keys.map((key) => {
    const [ds, pattern] = WATCHES[key];
    return new Promise<void>((resolve, reject) => {
      let live = false;
      client
        .watch(ds, parse(pattern), {
          signal,
          onEvent: (v) => {
            const at = wallNow();
            const e = decodeWatchEvent(v);
            if (e === undefined) return;
            if (e.type === 'synced') {
              live = true;
              resolve();
              return;
            }
            if (e.type === 'message') return;
            log.push({
              at,
              key,
              type: e.type,
              value: e.value,
              captures: new Map(e.captures),
              live,
            });
          },
        })
        .then(
          () => reject(new MeasureError(`the watch ${pattern} ended`)),
          (err: unknown) => reject(err instanceof Error ? err : new Error(String(err))),
        );
    });
  });
  // Later rejections (the stream ending at shutdown) are expected.
  for (const p of synced) p.catch(() => undefined);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new MeasureError('the control watches did not sync in 10 s')),
      10_000,
    );
  });
  try {
    await Promise.race([Promise.all(synced), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const isW =
  (key: WatchKey, type: 'added' | 'removed', test: (r: WatchRecord) => boolean = () => true) =>
  (r: WatchRecord) =>
    r.key === key && r.type === type && test(r);

const capture = (r: WatchRecord, name: string): string => {
  const v = r.captures.get(name);
  if (v === undefined) return '';
  const p = peel(v);
  return typeof p === 'string' ? p : stringify(p);
};

async function connectFast(lab: Lab, signal: AbortSignal, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    signal.throwIfAborted();
    if (!existsSync(lab.socket)) {
      await sleep(2);
      continue;
    }
    try {
      return await ControlClient.connect(lab.socket, { signal, greetingTimeoutMs: 5000 });
    } catch (e) {
      last = e;
      await sleep(2);
    }
  }
  throw new MeasureError(
    `cannot connect to ${lab.socket} in ${timeoutMs} ms: ${last instanceof Error ? last.message : String(last)}`,
  );
}

const sleep = (msec: number) => new Promise((r) => setTimeout(r, msec));

/** Runs argv (bounded: killed after 10 s); how long from spawn to exit, and its status. */
function timedRun(argv: readonly string[]): Promise<{ ms: number; status: number | null }> {
  return new Promise((resolve) => {
    const t0 = wallNow();
    const child = spawn(argv[0]!, argv.slice(1), { stdio: 'ignore' });
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.on('error', () => undefined);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ ms: wallNow() - t0, status });
    });
  });
}

/** Runs a shell script in node's namespace and returns its stdout (bounded; throws on failure). */
async function shIn(lab: Lab, node: 'rtr' | 'lan2', script: string, timeoutMs = 15_000) {
  const r = await lab.execAsync(node, ['sh', '-c', script], timeoutMs);
  if (r.status !== 0)
    throw new MeasureError(`in ${node}: ${script}: exit ${r.status}: ${r.stderr.trim()}`);
  return r.stdout.trim();
}

interface Row {
  readonly label: string;
  readonly values: readonly number[];
  readonly note?: string;
}

function printRows(title: string, rows: readonly Row[], lines: readonly string[]): void {
  console.log(`\n${title}`);
  console.log(
    formatTable(
      ['', 'n', 'p50 ms', 'p95 ms', 'min', 'max', ''],
      rows.map((r) => {
        const s = summarize(r.values);
        return [r.label, String(s.n), ms(s.p50), ms(s.p95), ms(s.min), ms(s.max), r.note ?? ''];
      }),
    ),
  );
  for (const l of lines) console.log(`  ${l}`);
}

const p50 = (xs: readonly number[]) => summarize(xs).p50;

// ---- (a) DHCP bound -> kernel -> <default-route ipv4> ----------------------------------------

interface FileEvent extends Stamped {
  /** The `event` file's text, or undefined if it is gone. */
  readonly text: string | undefined;
  readonly mtime: number;
  /** The `ip` output's mtime (written first by the script). */
  readonly ipMtime: number;
  /** When inotify last reported a write of `ip` (the script's first write), wall clock. */
  readonly ipAt: number;
}

interface Ctx {
  readonly lab: Lab;
  readonly signal: AbortSignal;
  readonly kernel: EventLog<KernelEvent>;
  readonly nft: EventLog<NftTransaction>;
  readonly watches: EventLog<WatchRecord>;
  client: ControlClient | undefined;
}

function dhcpTrigger(): 'renew' | 'restart' {
  const forced = opts['dhcp-trigger'];
  if (forced === 'renew' || forced === 'restart') return forced;
  if (forced !== undefined) throw new MeasureError(`--dhcp-trigger ${forced}: renew or restart`);
  const text = readFileSync(join(packageRoot(), 'config/core/network-dhcp.pr'), 'utf8');
  return text.includes('<dhcp-renew ') && text.includes('<dhcp-release ') ? 'renew' : 'restart';
}

async function measureDhcp(ctx: Ctx): Promise<() => void> {
  const { lab, signal, kernel, watches } = ctx;
  const client = ctx.client!;
  const trigger = dhcpTrigger();
  const dir = join(lab.routerRoot, 'run/limen/outputs', outputsDirName(parse(UDHCPC)));
  if (!existsSync(dir)) throw new MeasureError(`no outputs directory ${dir}`);
  const files = new EventLog<FileEvent>('inotify on the outputs directory');
  const mtimeMs = (f: string) => {
    try {
      return Number(statSync(join(dir, f), { bigint: true }).mtimeNs) / 1e6;
    } catch {
      return NaN;
    }
  };
  let ipAt = NaN;
  const watcher: FSWatcher = watch(dir, { persistent: false }, (_type, name) => {
    const at = wallNow();
    if (name === 'ip') ipAt = at;
    if (name !== 'event') return;
    let text: string | undefined;
    try {
      text = readFileSync(join(dir, 'event'), 'utf8').trim();
    } catch {
      text = undefined;
    }
    files.push({ at, text, mtime: mtimeMs('event'), ipMtime: mtimeMs('ip'), ipAt });
  });
  const leaseEvent = (t: string) => /^bound \d+$/.test(t);

  const out: number[] = [];
  const addr: number[] = [];
  const route: number[] = [];
  const installed: number[] = [];
  const dr: number[] = [];
  const drFromMtime: number[] = [];
  const drFromIp: number[] = [];
  const mtimeLag: number[] = [];
  const script: number[] = [];
  const exchange: number[] = [];
  const timerCost: number[] = [];
  let failure: string | undefined;

  const exchangeOnce = async () => {
    // Two date calls back to back measure what the timing itself costs.
    const r = await shIn(
      lab,
      'lan2',
      'a=$(date +%s%N); b=$(date +%s%N); busybox udhcpc -q -f -n -i eth0 -s /bin/true -t 3 -T 1 >/dev/null 2>&1; rc=$?; c=$(date +%s%N); echo $rc $((b-a)) $((c-b))',
    );
    const [rc, cost, total] = r.split(' ').map(Number);
    if (rc !== 0) throw new MeasureError(`the bare udhcpc in lan2 got no lease (exit ${rc})`);
    return { cost: cost! / 1e6, total: total! / 1e6 };
  };

  try {
    // Warm-up: the first exchange with a new client may wait for dnsmasq's ping check.
    await shIn(
      lab,
      'lan2',
      'busybox udhcpc -q -f -n -i eth0 -s /bin/true -t 5 -T 2 >/dev/null 2>&1 || true',
    );
    for (let i = 0; i < ROUNDS; i++) {
      signal.throwIfAborted();
      const w = (what: string) => `${what}, round ${i + 1}`;
      const m = { f: files.mark(), k: kernel.mark(), w: watches.mark() };
      // Take the lease away.
      if (trigger === 'renew') await client.send('config', parse(`<dhcp-release "${WAN}">`));
      else await client.restart(parse(UDHCPC));
      const gone = await files.waitFor(
        m.f,
        (e) => e.text === undefined,
        w('removal of `event`'),
        ROUND_TIMEOUT_MS,
        signal,
      );
      const kGone = await kernel.waitFor(
        m.k,
        (e) =>
          e.text.startsWith(`Deleted `) &&
          new RegExp(`^Deleted \\d+: ${WAN}\\s+inet `).test(e.text),
        w(`deletion of ${WAN}'s address`),
        ROUND_TIMEOUT_MS,
        signal,
      );
      const wGone = await watches.waitFor(
        m.w,
        isW('defaultRoute', 'removed'),
        w('<default-route ipv4> retracted'),
        ROUND_TIMEOUT_MS,
        signal,
      );
      const after = { f: files.after(gone), k: kernel.after(kGone), w: watches.after(wGone) };
      // A fresh lease.
      if (trigger === 'renew') await client.send('config', parse(`<dhcp-renew "${WAN}">`));
      const bound = await files.waitFor(
        after.f,
        (e) => e.text !== undefined && leaseEvent(e.text),
        w('a new `event` (bound)'),
        ROUND_TIMEOUT_MS,
        signal,
      );
      const kAddr = await kernel.waitFor(
        after.k,
        (e) => new RegExp(`^\\d+: ${WAN}\\s+inet `).test(e.text),
        w(`${WAN}'s address in the kernel`),
        ROUND_TIMEOUT_MS,
        signal,
      );
      const kRoute = await kernel.waitFor(
        after.k,
        (e) => new RegExp(`^default via \\S+ dev ${WAN}\\b`).test(e.text),
        w('the default route in the kernel'),
        ROUND_TIMEOUT_MS,
        signal,
      );
      const wOut = await watches.waitFor(
        after.w,
        isW('leaseEvent', 'added', (r) => capture(r, 'e') === bound.text),
        w(`<output … event "${bound.text}">`),
        ROUND_TIMEOUT_MS,
        signal,
      );
      const wInst = await watches.waitFor(
        after.w,
        isW('installed', 'added'),
        w('<ip-address-state … installed …>'),
        ROUND_TIMEOUT_MS,
        signal,
      );
      const wDr = await watches.waitFor(
        after.w,
        isW('defaultRoute', 'added'),
        w('<default-route ipv4>'),
        ROUND_TIMEOUT_MS,
        signal,
      );
      const t0 = bound.at;
      out.push(wOut.at - t0);
      addr.push(kAddr.stamp - t0);
      route.push(kRoute.stamp - t0);
      installed.push(wInst.at - t0);
      dr.push(wDr.at - t0);
      drFromMtime.push(wDr.at - bound.mtime);
      drFromIp.push(wDr.at - bound.ipAt);
      mtimeLag.push(t0 - bound.mtime);
      script.push(bound.mtime - bound.ipMtime);
      // The baseline, under the same conditions, between rounds.
      const x = await exchangeOnce();
      exchange.push(x.total - x.cost);
      timerCost.push(x.cost);
    }
  } catch (e) {
    if (signal.aborted) throw e;
    failure = e instanceof Error ? e.message : String(e);
  } finally {
    watcher.close();
  }

  return () => {
    const ratio = p50(dr) / p50(exchange);
    printRows(
      `(a) DHCP: bound -> kernel -> <default-route ipv4>; ${trigger === 'renew' ? 'release + renew' : 'restart of udhcpc'} per round; ms after the bound (the \`event\` output's rename, by inotify)`,
      [
        { label: '`event` output asserted in $config (watch)', values: out },
        { label: `${WAN} address in the kernel (ip -ts monitor)`, values: addr },
        { label: 'default route in the kernel (ip -ts monitor)', values: route },
        { label: `<ip-address-state "${WAN}" _ installed _> (watch)`, values: installed },
        { label: '<default-route ipv4> asserted (watch)', values: dr, note: 'aim p50 < 20' },
        { label: '  the same, from the `event` mtime', values: drFromMtime },
        {
          label: "  the same, from the script's first write (`ip`, inotify)",
          values: drFromIp,
          note: 'includes udhcpc-script',
        },
        {
          label: 'baseline: bare udhcpc exchange, lan2 <-> limen dnsmasq',
          values: exchange,
          note: 'start -> exit',
        },
      ],
      [
        `ratio <default-route ipv4> / DHCP exchange (p50s): ${ratio.toFixed(2)}`,
        `the \`event\` mtime precedes its rename's inotify arrival by p50 ${ms(p50(mtimeLag))} ms (max ${ms(summarize(mtimeLag).max)}): it is the write of .event.tmp, renamed by a forked \`mv\`, and tmpfs stamps it with the coarse clock`,
        `udhcpc-script, from writing \`ip\` to writing \`event\` (mtimes): p50 ${ms(p50(script))} ms (not in the figures above)`,
        `the exchange excludes the timer's own cost (one \`date\`: p50 ${ms(p50(timerCost))} ms)`,
        ...(failure !== undefined ? [`NOT MEASURED (after ${dr.length} rounds): ${failure}`] : []),
      ],
    );
    if (failure !== undefined) failures.push(`(a) ${failure}`);
    if (dr.length < ROUNDS && failure === undefined) failures.push('(a) too few rounds');
  };
}

// ---- (c) Firewall edit -> ruleset applied -----------------------------------------------------

async function measureFirewall(ctx: Ctx): Promise<() => void> {
  const { lab, signal, nft, watches } = ctx;
  const core = join(lab.siteDir, 'core');
  const file = join(core, 'zz-bench-port-forward.pr');
  const tmp = join(core, '.zz-bench-port-forward.pr.tmp');
  const rulesetFile = join(lab.routerRoot, 'run/limen/firewall.nft');
  const gens = (): number[] =>
    watches
      .all()
      .flatMap((r) =>
        r.key === 'firewall' && r.type === 'added' ? [Number(capture(r, 'gen'))] : [],
      );
  let lastGen = Math.max(0, ...gens());

  const cfg: number[] = [];
  const kernelCommit: number[] = [];
  const applied: number[] = [];
  const check: number[] = [];
  const apply: number[] = [];
  const limenNft = new Map<number, number>();
  const roundGens: number[] = [];
  let failure: string | undefined;
  let port = 0;
  const hasPort = (text: string, p: number) => new RegExp(`dport ${p}\\b`).test(text);

  try {
    for (let i = 0; i < ROUNDS; i++) {
      signal.throwIfAborted();
      const w = (what: string) => `${what}, round ${i + 1}`;
      const add = i % 2 === 0;
      if (add) port = 20000 + i;
      const m = { n: nft.mark(), w: watches.mark() };
      let t0: number;
      if (add) {
        writeFileSync(
          tmp,
          `# written by bench/reaction.ts\n<port-forward wan tcp ${port} "192.168.8.50" 80>\n`,
        );
        t0 = wallNow();
        renameSync(tmp, file);
      } else {
        t0 = wallNow();
        unlinkSync(file);
      }
      const wCfg = await watches.waitFor(
        m.w,
        isW('portForward', add ? 'added' : 'removed', (r) => capture(r, 'port') === String(port)),
        w(`<port-forward wan tcp ${port} …> ${add ? 'asserted' : 'retracted'}`),
        ROUND_TIMEOUT_MS,
        signal,
      );
      const tx = await nft.waitFor(
        m.n,
        (t) =>
          t.lines.some((l) => l.startsWith('add table inet limen')) &&
          t.lines.some((l) => hasPort(l, port)) === add,
        w(`the kernel's transaction ${add ? 'with' : 'without'} port ${port} (nft monitor)`),
        ROUND_TIMEOUT_MS,
        signal,
      );
      const wApplied = await watches.waitFor(
        m.w,
        isW('firewall', 'added', (r) => Number(capture(r, 'gen')) > lastGen),
        w('a new <firewall-applied GEN _>'),
        ROUND_TIMEOUT_MS,
        signal,
      );
      lastGen = Number(capture(wApplied, 'gen'));
      roundGens.push(lastGen);
      cfg.push(wCfg.at - t0);
      kernelCommit.push(tx.at - t0);
      applied.push(wApplied.at - t0);
      // What `nft list` shows agrees (not timed).
      const listed = await shIn(lab, 'rtr', 'nft list table inet limen');
      if (hasPort(listed, port) !== add)
        throw new MeasureError(
          w(`nft list table inet limen ${add ? 'lacks' : 'still has'} port ${port}`),
        );
      // The baseline: limen's own script (written just after the apply), by hand.
      const deadline = Date.now() + 2000;
      while (hasPort(readFileSync(rulesetFile, 'utf8'), port) !== add) {
        if (Date.now() > deadline) throw new MeasureError(w(`${rulesetFile} was not updated`));
        await sleep(5);
      }
      const mb = nft.mark();
      const r = await shIn(
        lab,
        'rtr',
        `a=$(date +%s%N); b=$(date +%s%N); nft -c -f ${rulesetFile}; c=$(date +%s%N); nft -f ${rulesetFile}; d=$(date +%s%N); echo $((b-a)) $((c-b)) $((d-c))`,
      );
      const [cost, c, f] = r.split(' ').map((x) => Number(x) / 1e6);
      check.push(c! - cost!);
      apply.push(f! - cost!);
      // Let the by-hand transaction reach the monitor before the next round's mark.
      await nft.waitFor(mb, () => true, w('the by-hand transaction'), 5000, signal);
    }
  } catch (e) {
    if (signal.aborted) throw e;
    failure = e instanceof Error ? e.message : String(e);
  } finally {
    rmQuiet(file);
    rmQuiet(tmp);
  }
  // limen logs how long its nft check + apply took, per generation.
  for (const line of readFileSync(lab.routerLog, 'utf8').split('\n')) {
    if (!line.includes('firewall applied')) continue;
    try {
      const j = JSON.parse(line) as { revision?: number; ms?: number };
      if (typeof j.revision === 'number' && typeof j.ms === 'number')
        limenNft.set(j.revision, j.ms);
    } catch {
      // not a JSON line
    }
  }
  const limenOwn = roundGens.flatMap((g) => (limenNft.has(g) ? [limenNft.get(g)!] : []));

  return () => {
    const handSum = check.map((c, i) => c + apply[i]!);
    printRows(
      '(c) Firewall: a <port-forward …> file written or removed in site/core/ (in turn) -> ruleset applied; ms after the rename/unlink',
      [
        { label: '<port-forward …> (re)tracted in $config (watch)', values: cfg },
        { label: 'transaction committed in the kernel (nft monitor)', values: kernelCommit },
        { label: '<firewall-applied GEN _>, new GEN (watch)', values: applied },
        {
          label: "  limen's nft -c + nft -f (its log, whole ms)",
          values: limenOwn,
        },
        { label: 'baseline: nft -c -f of the same ruleset by hand', values: check },
        { label: 'baseline: nft -f of the same ruleset by hand', values: apply },
        { label: 'baseline: the two together', values: handSum },
      ],
      [
        `ratio <firewall-applied> / one nft -f by hand (p50s): ${(p50(applied) / p50(apply)).toFixed(2)}; / nft -c + nft -f: ${(p50(applied) / p50(handSum)).toFixed(2)}`,
        'every round checked with `nft list table inet limen` afterwards (untimed)',
        ...(failure !== undefined
          ? [`NOT MEASURED (after ${applied.length} rounds): ${failure}`]
          : []),
      ],
    );
    if (failure !== undefined) failures.push(`(c) ${failure}`);
  };
}

function rmQuiet(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}

// ---- (d) Memory ---------------------------------------------------------------------------------

interface MemorySample {
  readonly when: string;
  readonly daemon: ProcessRow;
  readonly helper: ProcessRow | undefined;
  readonly together: number;
  readonly others: readonly ProcessRow[];
}

function sampleMemory(lab: Lab, when: string): MemorySample {
  const p = lab.router;
  if (p === undefined) throw new MeasureError('limen is not running in rtr');
  const tree = treeMemory(p.pid);
  const daemon = tree.processes[0]!;
  const helpers = tree.processes.filter((r) => r.comm.startsWith('limen-netlink'));
  if (helpers.length > 1) throw new MeasureError(`${helpers.length} netlink helpers`);
  const helper = helpers[0];
  const others = tree.processes.filter((r) => r !== daemon && r !== helper);
  const together = distinctResident([daemon.pid, ...(helper ? [helper.pid] : [])]);
  return { when, daemon, helper, together, others };
}

/** A bare Node process (same binary and young-generation flag as the daemon), for scale. */
async function bareNodeMemory(): Promise<ProcessRow | undefined> {
  const child = spawn(
    process.execPath,
    ['--max-semi-space-size=2', '-e', 'setInterval(() => {}, 1000)'],
    { stdio: 'ignore' },
  );
  try {
    await sleep(1000);
    if (child.pid === undefined) return undefined;
    return treeMemory(child.pid).processes[0];
  } finally {
    child.kill('SIGKILL');
  }
}

function printMemory(samples: readonly MemorySample[], bare: ProcessRow | undefined): void {
  console.log('\n(d) Memory of limen in rtr with examples/home-router running, MiB');
  const rows: string[][] = [];
  for (const s of samples) {
    const h = s.helper;
    rows.push([
      `${s.when}: daemon (pid ${s.daemon.pid})`,
      mib(s.daemon.rss),
      mib(s.daemon.pss),
      mib(s.daemon.uss),
    ]);
    if (h !== undefined) {
      rows.push([`  netlink helper (pid ${h.pid})`, mib(h.rss), mib(h.pss), mib(h.uss)]);
      rows.push([
        '  daemon + helper',
        mib(s.daemon.rss + h.rss),
        mib(s.daemon.pss + h.pss),
        mib(s.daemon.uss + h.uss),
      ]);
    } else rows.push(['  (no netlink helper: in-process netlink)', '', '', '']);
    rows.push([
      '  the two, distinct pages',
      Number.isNaN(s.together) ? '-' : mib(s.together),
      '',
      '',
    ]);
    const o = s.others;
    if (o.length > 0)
      rows.push([
        `  supervised programs (${[...new Set(o.map((r) => r.comm))].join(', ')})`,
        mib(o.reduce((a, r) => a + r.rss, 0)),
        mib(o.reduce((a, r) => a + r.pss, 0)),
        mib(o.reduce((a, r) => a + r.uss, 0)),
      ]);
  }
  if (bare !== undefined)
    rows.push([
      'baseline: a bare idle node --max-semi-space-size=2',
      mib(bare.rss),
      mib(bare.pss),
      mib(bare.uss),
    ]);
  console.log(formatTable(['', 'RSS', 'PSS', 'USS'], rows));
  const last = samples[samples.length - 1];
  if (last !== undefined) {
    const sum = last.daemon.rss + (last.helper?.rss ?? 0);
    console.log(
      `  aim < 80 MB: daemon alone ${mib(last.daemon.rss)} MiB RSS; with the helper ${mib(sum)} MiB of RSS summed (${(sum / 1e6).toFixed(1)} MB), which counts node's shared pages twice; ${mib(last.together)} MiB (${(last.together / 1e6).toFixed(1)} MB) of distinct pages`,
    );
  }
}

// ---- (b) Cold start -> <milestone network> ------------------------------------------------------

async function measureColdStart(ctx: Ctx): Promise<() => void> {
  const { lab, signal } = ctx;
  ctx.client?.close();
  ctx.client = undefined;
  const socket: number[] = [];
  const answer: number[] = [];
  const core: number[] = [];
  const carrier: number[] = [];
  const lease: number[] = [];
  const network: number[] = [];
  const version: number[] = [];
  const bareNode: number[] = [];
  let early = 0;
  let failure: string | undefined;
  const ip = (...args: string[]) => run(['ip', '-n', lab.ns('rtr'), ...args]);

  try {
    for (let i = 0; i < ROUNDS; i++) {
      signal.throwIfAborted();
      const w = (what: string) => `${what}, round ${i + 1}`;
      await lab.stopRouter('SIGTERM');
      // Nothing for the reconciler to adopt: a cold start of the network.
      for (const dev of [WAN, 'lan0']) {
        ip('addr', 'flush', 'dev', dev);
        tryRun(['ip', '-n', lab.ns('rtr'), 'route', 'flush', 'dev', dev]);
        ip('link', 'set', dev, 'down');
      }
      const left = ip('-4', 'addr', 'show', 'dev', WAN).trim();
      if (left.includes('inet ')) throw new MeasureError(w(`${WAN} still has an address`));
      const p = await lab.startRouter({ wait: false });
      const t0 = p.startedAt;
      const client = await connectFast(lab, signal, 30_000);
      ctx.client = client;
      const tSocket = Date.now();
      await client.status();
      const tAnswer = Date.now();
      const log = new EventLog<WatchRecord>(`watches, cold start ${i + 1}`);
      const watchAbort = new AbortController();
      const stop = () => watchAbort.abort();
      signal.addEventListener('abort', stop, { once: true });
      try {
        await startWatches(
          client,
          ['core', 'carrier', 'lease', 'network'],
          log,
          AbortSignal.any([signal, watchAbort.signal]),
        );
        const at = async (key: WatchKey) => {
          const r = await log.waitFor(0, isW(key, 'added'), w(WATCHES[key][1]), 30_000, signal);
          if (!r.live) early++;
          // Date.now() and wallNow() share the wall clock; startedAt is Date.now().
          return r.at - t0;
        };
        network.push(await at('network'));
        core.push(await at('core'));
        carrier.push(await at('carrier'));
        lease.push(await at('lease'));
      } finally {
        stop();
        signal.removeEventListener('abort', stop);
      }
      socket.push(tSocket - t0);
      answer.push(tAnswer - t0);
      client.close();
      ctx.client = undefined;
      if (!isAlive(p)) throw new MeasureError(w('limen exited'));
      // The baseline: a Node start of the same CLI, and of node itself.
      const v = await timedRun([join(packageRoot(), 'bin', 'limen.js'), '--version']);
      signal.throwIfAborted();
      if (v.status !== 0) throw new MeasureError(`bin/limen.js --version: exit ${v.status}`);
      version.push(v.ms);
      const n = await timedRun([process.execPath, '-e', '0']);
      signal.throwIfAborted();
      if (n.status !== 0) throw new MeasureError(`node -e 0: exit ${n.status}`);
      bareNode.push(n.ms);
    }
  } catch (e) {
    if (signal.aborted) throw e;
    failure = e instanceof Error ? e.message : String(e);
  }

  return () => {
    printRows(
      '(b) Cold start (wan0/lan0 flushed and down): ms after limen was spawned (`ip netns exec … bin/limen.js daemon`)',
      [
        { label: 'control socket accepts', values: socket },
        { label: 'control socket answers status', values: answer },
        { label: '<service-state <milestone core> up> (watch)', values: core },
        { label: `<interface "${WAN}" … up up carrier …> (watch)`, values: carrier },
        { label: `<dhcp-lease "${WAN}" _> (watch)`, values: lease },
        { label: '<service-state <milestone network> up> (watch)', values: network },
        { label: 'baseline: bin/limen.js --version (spawn -> exit)', values: version },
        { label: 'baseline: node -e 0 (spawn -> exit)', values: bareNode },
      ],
      [
        `ratio <milestone network> / limen --version (p50s): ${(p50(network) / p50(version)).toFixed(2)}; network - socket answering: ${ms(p50(network) - p50(answer))} ms (p50s)`,
        ...(early > 0
          ? [
              `${early} of these were already asserted when the watch began: their time is an upper bound`,
            ]
          : []),
        ...(failure !== undefined
          ? [`NOT MEASURED (after ${network.length} rounds): ${failure}`]
          : []),
      ],
    );
    if (failure !== undefined) failures.push(`(b) ${failure}`);
  };
}

// ---- Main -------------------------------------------------------------------------------------

const failures: string[] = [];

function distIsStale(): boolean {
  const built = join(packageRoot(), 'dist', 'cli', 'main.js');
  if (!existsSync(built)) return true;
  const t = statSync(built).mtimeMs;
  const newest = (dir: string): number =>
    Math.max(
      0,
      ...readdirSync(dir, { withFileTypes: true }).map((e) =>
        e.isDirectory() ? newest(join(dir, e.name)) : statSync(join(dir, e.name)).mtimeMs,
      ),
    );
  return newest(join(packageRoot(), 'src')) > t;
}

async function main(signal: AbortSignal): Promise<number> {
  if (process.getuid?.() !== 0) {
    console.log(
      'bench/reaction.ts skipped: the lab needs root (network namespaces); run it with sudo',
    );
    return 0;
  }
  const problem = labPreflight();
  if (problem !== undefined) {
    console.error(`bench/reaction.ts cannot run here:\n${problem}`);
    return 1;
  }
  if (distIsStale())
    console.log('warning: dist/ is older than src/: the router runs dist/ (npm run build)');
  const name = `rx${randomBytes(8).toString('hex').slice(0, 8)}`;
  console.log(
    `Reaction times in the lab "${name}" (limen with examples/home-router in rtr), ${ROUNDS} rounds each; ${cpus().length} CPUs, Linux ${readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim()}, Node ${process.version}`,
  );
  if (ROUNDS < 20) console.log(`note: ${ROUNDS} rounds (fewer than the 20 the issue asks for)`);

  const monitors: LineMonitor[] = [];
  let ctx: Ctx | undefined;
  const reports: (() => void)[] = [];
  const watchAbort = new AbortController();
  try {
    const lab = await labUp({ name, clients: false });
    const rtr = lab.ns('rtr');
    const kernel = new EventLog<KernelEvent>('ip -ts monitor in rtr');
    const nft = new EventLog<NftTransaction>('nft monitor in rtr');
    monitors.push(ipMonitor(rtr, kernel), nftMonitor(rtr, nft));
    // Both observers see a change before we rely on them.
    const mk = kernel.mark();
    const mn = nft.mark();
    const probe = 'limenbenchprobe';
    await retryUntil(
      () => {
        run(['ip', '-n', rtr, 'addr', 'add', '127.0.0.99/32', 'dev', 'lo']);
        run(['ip', '-n', rtr, 'addr', 'del', '127.0.0.99/32', 'dev', 'lo']);
        run(['ip', 'netns', 'exec', rtr, 'nft', 'add', 'table', 'inet', probe]);
        run(['ip', 'netns', 'exec', rtr, 'nft', 'delete', 'table', 'inet', probe]);
        return (
          kernel.find(mk, (e) => e.text.includes('127.0.0.99')) !== undefined &&
          nft.find(mn, (t) => t.lines.some((l) => l.includes(probe))) !== undefined
        );
      },
      5000,
      'report of a probe by ip monitor and nft monitor',
    );

    const watches = new EventLog<WatchRecord>('control watches');
    const client = await connectFast(lab, signal, 30_000);
    ctx = { lab, signal, kernel, nft, watches, client };
    await startWatches(
      client,
      ['defaultRoute', 'leaseEvent', 'installed', 'portForward', 'firewall', 'network'],
      watches,
      AbortSignal.any([signal, watchAbort.signal]),
    );
    // Settled: the network is up, with its default route and a firewall.
    for (const key of ['network', 'defaultRoute', 'firewall'] as const)
      await watches.waitFor(0, isW(key, 'added'), WATCHES[key][1], 30_000, signal);

    const memory: MemorySample[] = [];
    if (ONLY.has('d')) {
      await sleep(2000);
      memory.push(sampleMemory(lab, 'settled, 2 s after up'));
    }
    if (ONLY.has('a')) reports.push(await measureDhcp(ctx));
    if (ONLY.has('c')) reports.push(await measureFirewall(ctx));
    if (ONLY.has('d')) {
      memory.push(sampleMemory(lab, 'after the rounds above'));
      const bare = await bareNodeMemory();
      reports.push(() => printMemory(memory, bare));
    }
    watchAbort.abort();
    if (ONLY.has('b')) reports.push(await measureColdStart(ctx));
    for (const r of reports) r();
    if (signal.aborted) {
      console.error('\ninterrupted: the figures above may be partial');
      return 130;
    }
    if (failures.length > 0) {
      console.error(`\nNot everything was measured:\n  ${failures.join('\n  ')}`);
      return 1;
    }
    return 0;
  } catch (e) {
    for (const r of reports) r();
    if (signal.aborted) {
      console.error('\ninterrupted');
      return 130;
    }
    console.error(`\nbench/reaction.ts FAILED: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  } finally {
    watchAbort.abort();
    ctx?.client?.close();
    for (const m of monitors) await m.stop();
    const r = await labDown(name);
    console.log(`\n(lab ${name} torn down: ${r.namespaces.length} namespaces removed)`);
  }
}

async function retryUntil(fn: () => boolean, timeoutMs: number, what: string) {
  const deadline = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > deadline) throw new MeasureError(`no ${what} within ${timeoutMs} ms`);
    await sleep(50);
  }
}

const abort = new AbortController();
// A wrapper (npx, tsx) may relay the terminal's signal, so one Ctrl-C can arrive twice:
// only a signal a second or more after the first gives up on the teardown.
let firstSignalAt: number | undefined;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (firstSignalAt === undefined) {
      firstSignalAt = Date.now();
      console.error(`\n${sig}: stopping and tearing the lab down…`);
      abort.abort();
    } else if (Date.now() - firstSignalAt > 1000) {
      console.error('interrupted again: exiting; remove the lab with `limen lab down --all`');
      process.exit(130);
    }
  });
}
process.exitCode = await main(abort.signal);
