#!/usr/bin/env node
// Runs every benchmark in bench/ (or those named on the command line) in turn,
// each in its own process, and prints their figures. Benchmarks never fail on
// a time; they fail only if they crash.

import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const wanted = process.argv.slice(2);
const benches = readdirSync(join(root, 'bench'))
  .filter((f) => f.endsWith('.ts') && !f.startsWith('_'))
  .filter((f) => wanted.length === 0 || wanted.some((w) => f.startsWith(w)))
  .sort();

let failed = 0;
for (const b of benches) {
  process.stdout.write(`\n=== bench/${b}\n`);
  const r = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', join('bench', b)], {
    cwd: root,
    stdio: 'inherit',
  });
  if (r.status !== 0) failed++;
}
process.exit(failed === 0 ? 0 : 1);
