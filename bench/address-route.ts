// From `<ip-route …>` asserted in $config to the route in the kernel, through
// the address/route reconciler, in a network namespace of its own; baseline:
// the same route installed by one bare RTM_NEWROUTE request in the same run
// (bench/fixtures/route-latency.ts alternates the two). Prints p50/p90/p99/max
// of each, and limen's p50 minus the baseline's. Not a test: it never fails on
// a time; it fails only if it cannot measure. Needs root (skipped otherwise).
//
//   sudo npx tsx bench/address-route.ts [--rounds N]

import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { packageRoot } from '../src/lab/lab.ts';

const { values: opts } = parseArgs({ options: { rounds: { type: 'string', default: '200' } } });
const rounds = Number(opts.rounds);

if (process.getuid?.() !== 0) {
  console.log(
    'bench/address-route.ts skipped: it needs root (a network namespace); run it with sudo',
  );
  process.exit(0);
}

// lt-: the prefix of every namespace the tests and benchmarks make (the leak check finds them).
const ns = `lt-bench-${randomBytes(3).toString('hex')}`;
const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] });
const cleanup = () => void spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
process.on('SIGINT', () => {
  cleanup();
  process.exit(130);
});

function summary(values: number[]) {
  const s = [...values].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
  return { p50: q(0.5), p90: q(0.9), p99: q(0.99), max: s[s.length - 1]! };
}

try {
  ip('netns', 'add', ns);
  ip('-n', ns, 'link', 'set', 'lo', 'up');
  ip('-n', ns, 'link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1');
  ip('-n', ns, 'link', 'set', 'v0', 'up');
  ip('-n', ns, 'link', 'set', 'v1', 'up');
  ip('-n', ns, 'addr', 'add', '198.51.100.1/24', 'dev', 'v0');
  const r = spawnSync(
    'ip',
    [
      'netns',
      'exec',
      ns,
      process.execPath,
      '--import',
      'tsx',
      join(packageRoot(), 'bench', 'fixtures', 'route-latency.ts'),
      String(rounds),
      'v0',
      '198.51.100.2',
    ],
    { cwd: packageRoot(), encoding: 'utf8', timeout: 300_000 },
  );
  if (r.status !== 0) throw new Error(`route-latency.ts: exit ${r.status}: ${r.stderr}`);
  const got = JSON.parse(r.stdout.trim().split('\n').pop()!) as { limen: number[]; bare: number[] };
  const fmt = (x: number) => x.toFixed(2).padStart(7);
  console.log(`route: assertion -> kernel, ${rounds} rounds (ms)      p50     p90     p99     max`);
  for (const [label, values] of [
    ['limen: <ip-route …> asserted -> route in kernel', got.limen],
    ['baseline: one bare RTM_NEWROUTE -> route in kernel', got.bare],
  ] as const) {
    const s = summary(values);
    console.log(`${label.padEnd(52)}${fmt(s.p50)} ${fmt(s.p90)} ${fmt(s.p99)} ${fmt(s.max)}`);
  }
  const over = summary(got.limen).p50 - summary(got.bare).p50;
  console.log(`limen's own cost at p50: ${over.toFixed(2)} ms over the bare request`);
} catch (e) {
  console.error(`bench/address-route.ts: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
} finally {
  cleanup();
}
