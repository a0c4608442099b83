// Dataspace engine cost against the number of observers that do NOT match.
// For 0, 1,000 and 100,000 non-matching observers (plus 10 that match), in one
// run, it measures: assert+retract pairs per second of a value the 10 observers
// see (20 notifications per pair, delivered in turns), pairs per second of a
// value that no observer matches (an <address "eth0" ...>: at 100,000 its label
// has 8,000+ observers, for other interfaces), and the latency from assert to the
// first matched notification. It prints the ratio of per-event cost at 100,000
// to that at 0. Aims (issue): ratio <= 1.5, >= 500,000 pairs/s at 100,000.
// Each assert and retract is a turn of its own (made outside any turn).
//
// Non-matching observers are realistic and varied: half watch <interface "ethN" ...>
// (same shapes as the matching ones, other constants); half watch other labels
// and shapes (addresses, routes, leases, service states, ...). Every asserted
// value is freshly built, so hashing and allocation are part of the cost.

import { performance } from 'node:perf_hooks';
import { record, type Value } from '../src/preserves/index.ts';
import {
  Dataspace,
  Engine,
  P,
  type Facet,
  type Logger,
  type Pattern,
} from '../src/dataspace/index.ts';

// The engine logs (and survives) failures; the benchmark must not.
const failures: string[] = [];
const failLoudly: Logger = {
  error: (message) => failures.push(message),
  warn: (message) => failures.push(message),
};
function checkFailures(): void {
  if (failures.length > 0) throw new Error(`benchmark broken: ${failures.join('; ')}`);
}

const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});

function nonMatching(i: number): Pattern {
  if (i % 2 === 0) {
    // Same label and shapes as the matching observers, other interface names.
    const name = `eth${1000 + (i >> 1)}`;
    switch ((i >> 1) % 3) {
      case 0:
        return P.rec('interface', name, P.bind('admin'), P.bind('oper'));
      case 1:
        return P.rec('interface', name, P._, 'up');
      default:
        return P.rec('interface', name, P._, P._, P.rec('stats', P.bind('n')));
    }
  }
  const k = i >> 1;
  const ifname = `eth${1 + (k % 4095)}`; // never eth0, which the benchmark asserts
  switch (k % 6) {
    case 0:
      return P.rec('address', ifname, P.bind('addr'));
    case 1:
      return P.rec('route', P.bind('dst'), P.rec('via', ifname, P._));
    case 2:
      return P.rec('lease', ifname, P.dict({ ip: P.bind('ip'), router: P._ }));
    case 3:
      return P.rec('service-state', P.rec('daemon', `svc${k}`), P.bind('state'));
    case 4:
      return P.rec(`metric-${k % 500}`, P.bind('v'), P.seq(P._, k));
    default:
      return P.rec('configure-interface', ifname, P.rec('static', P.bind('cidr')));
  }
}

const matching: Pattern[] = [
  P.rec('interface', P.bind('name'), P.bind('admin'), P.bind('oper')),
  P.rec('interface', 'eth0', P.bind('admin'), P._),
  P.rec('interface', 'eth0', P._, 'up'),
  P.rec('interface', P._, P._, P.bind('oper')),
  P.rec('interface', P.bind('name')),
  P.capture('all', P.rec('interface', 'eth0', P._)),
  P.rec('interface', 'eth0'),
  P.rec('interface', P.bind('name'), 'up'),
  P.rec('interface', 'eth0', P._, P._, P.rec('stats', P.bind('n'))),
  P.rec('interface', P._, 'up', 'up', P.bind('stats')),
];

const matchedValue = (i: number): Value =>
  record('interface', 'eth0', 'up', 'up', record('stats', i));
// <address ...> has 8,000+ observers at 100,000 (other interfaces), none for eth0.
const unmatchedValue = (i: number): Value => record('address', 'eth0', '10.0.0.1/24', i);

interface Row {
  observers: number;
  setupMs: number;
  matchedPairsPerSec: number;
  unmatchedPairsPerSec: number;
  latencyMedianUs: number;
  latencyP99Us: number;
  classes: number;
}

async function pairs(
  engine: Engine,
  facet: Facet,
  ds: Dataspace,
  make: (i: number) => Value,
  n: number,
): Promise<number> {
  gc();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const h = facet.assert(ds.ref, make(i));
    facet.retract(h);
    if ((i & 1023) === 1023) await engine.sync();
  }
  await engine.sync();
  checkFailures();
  return n / ((performance.now() - t0) / 1000);
}

async function run(observers: number, seconds: number): Promise<Row> {
  const engine = new Engine({ logger: failLoudly });
  const ds = new Dataspace(engine, 'machine');
  const watchers = engine.root.spawn(() => {});
  const t0 = performance.now();
  for (let i = 0; i < observers; i++) {
    watchers.observe(ds.ref, nonMatching(i), {
      onAdd: () => {
        throw new Error('a non-matching observer was notified');
      },
    });
  }
  let notified = 0;
  let firstAt = 0;
  for (const p of matching) {
    watchers.observe(ds.ref, p, {
      onAdd: () => {
        if (notified++ === 0) firstAt = performance.now();
      },
      onRemove: () => notified++,
    });
  }
  await engine.sync();
  const setupMs = performance.now() - t0;
  const facet = engine.root.spawn(() => {});

  // Size the runs from a short trial so that each measurement takes about `seconds`.
  const trial = await pairs(engine, facet, ds, matchedValue, 20_000);
  const nMatched = Math.max(20_000, Math.round(trial * seconds));
  notified = 0;
  const matchedPairsPerSec = await pairs(engine, facet, ds, matchedValue, nMatched);
  if (notified !== nMatched * 2 * matching.length)
    throw new Error(`expected ${nMatched * 20} notifications, got ${notified}`);
  const trial2 = await pairs(engine, facet, ds, unmatchedValue, 20_000);
  const unmatchedPairsPerSec = await pairs(
    engine,
    facet,
    ds,
    unmatchedValue,
    Math.max(20_000, Math.round(trial2 * seconds)),
  );

  // Latency: assert, then time until the first matching observer is called.
  const samples: number[] = [];
  gc();
  for (let i = 0; i < 5000; i++) {
    notified = 0;
    const start = performance.now();
    const h = facet.assert(ds.ref, matchedValue(i));
    await engine.sync();
    samples.push((firstAt - start) * 1000);
    facet.retract(h);
    await engine.sync();
  }
  samples.sort((a, b) => a - b);
  const row: Row = {
    observers,
    setupMs,
    matchedPairsPerSec,
    unmatchedPairsPerSec,
    latencyMedianUs: samples[samples.length >> 1]!,
    latencyP99Us: samples[Math.floor(samples.length * 0.99)]!,
    classes: ds.indexStats().classes,
  };
  checkFailures();
  engine.root.stop();
  await engine.sync();
  return row;
}

const fmt = (n: number, digits = 0) =>
  n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

// Warm the JIT on the smallest configuration, then measure all three in one run.
await run(1000, 0.3);
const rows: Row[] = [];
for (const n of [0, 1_000, 100_000]) rows.push(await run(n, 1));

const header = [
  'non-matching observers',
  'setup ms',
  'index classes',
  'matched pairs/s',
  'notifications/s',
  'unmatched pairs/s',
  'latency p50 µs',
  'latency p99 µs',
];
const table = rows.map((r) => [
  fmt(r.observers),
  fmt(r.setupMs),
  fmt(r.classes),
  fmt(r.matchedPairsPerSec),
  fmt(r.matchedPairsPerSec * 2 * matching.length),
  fmt(r.unmatchedPairsPerSec),
  fmt(r.latencyMedianUs, 1),
  fmt(r.latencyP99Us, 1),
]);
const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i]!.length)));
const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i]!)).join('  ');
console.log('Dataspace: cost per event against non-matching observers (+10 matching)');
console.log('(a matched pair notifies 10 observers twice; an unmatched pair notifies none)\n');
console.log(line(header));
console.log(widths.map((w) => '-'.repeat(w)).join('  '));
for (const r of table) console.log(line(r));

const base = rows[0]!;
const big = rows[rows.length - 1]!;
console.log('\nper-event cost at 100,000 observers relative to 0 (aim <= 1.5):');
console.log(`  matched pair     ${fmt(base.matchedPairsPerSec / big.matchedPairsPerSec, 2)}`);
console.log(`  unmatched pair   ${fmt(base.unmatchedPairsPerSec / big.unmatchedPairsPerSec, 2)}`);
console.log(`  latency (p50)    ${fmt(big.latencyMedianUs / base.latencyMedianUs, 2)}`);
console.log(
  `\npairs/s at 100,000 observers (aim >= 500,000): matched ${fmt(big.matchedPairsPerSec)}, unmatched ${fmt(big.unmatchedPairsPerSec)}`,
);
