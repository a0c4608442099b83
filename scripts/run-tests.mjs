#!/usr/bin/env node
// Runs the test suites with node:test through tsx. Unit tests of the pure
// layers run in one process (test/unit/index.ts imports them all); every
// integration and lab test file runs in a process of its own.
//   node scripts/run-tests.mjs            all suites
//   node scripts/run-tests.mjs --unit     unit tests only

import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join, dirname, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

function testFiles(dir) {
  if (!existsSync(dir)) return [];
  const out = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...testFiles(p));
    else if (e.name.endsWith('.test.ts')) out.push(relative(root, p));
  }
  return out.sort();
}

const unitOnly = process.argv.includes('--unit');
const files = ['test/unit/index.ts'];
if (!unitOnly)
  files.push(...testFiles(join(root, 'test/integration')), ...testFiles(join(root, 'test/lab')));

const r = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-concurrency=1', ...files],
  { cwd: root, stdio: 'inherit' },
);
process.exit(r.status ?? 1);
