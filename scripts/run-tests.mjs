#!/usr/bin/env node
// Runs the test suites with node:test through tsx. Unit tests of the pure
// layers run in one process (test/unit/index.ts imports them all); every
// integration and lab test file runs in a process of its own.
//   node scripts/run-tests.mjs            all suites
//   node scripts/run-tests.mjs --unit     unit tests only
//   node scripts/run-tests.mjs PATH…      these test files, or the *.test.ts under these folders
// At the end it prints how many tests ran, passed, failed and were skipped in
// each folder (test/unit, test/integration/AREA, test/lab…), and every skipped
// test with its reason. In CI (CI=true) a skipped test fails the run: there
// every prerequisite must be present (test/support/prerequisites.ts).
// Everything the run starts inherits LIMEN_TEST_RUN=limen-test-run-HEX, by
// which the leak check (test/lab/zz-leak.test.ts, last) finds what was left.

import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const ci = ((v) => v !== undefined && v !== '' && v !== '0' && v !== 'false')(process.env.CI);

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

const args = process.argv.slice(2);
const paths = args.filter((a) => !a.startsWith('--'));
const files = [];
if (paths.length > 0) {
  for (const p of paths.map((a) => resolve(a))) {
    if (!existsSync(p)) {
      process.stderr.write(`run-tests: no such file or folder: ${p}\n`);
      process.exit(2);
    }
    files.push(...(statSync(p).isDirectory() ? testFiles(p) : [relative(root, p)]));
  }
} else {
  files.push('test/unit/index.ts');
  if (!args.includes('--unit'))
    files.push(
      ...testFiles(join(root, 'test/integration')),
      // The VM group boots qemu (CPU-bound): alone, like every file (--test-concurrency=1).
      ...testFiles(join(root, 'test/vm')),
      ...testFiles(join(root, 'test/lab')),
    );
}

// node's own choice of reporter (spec on a terminal, TAP otherwise), plus the counts.
const tmp = mkdtempSync(join(tmpdir(), 'limen-test-counts-'));
const countsFile = join(tmp, 'counts.json');
const r = spawnSync(
  process.execPath,
  [
    '--import',
    'tsx',
    '--test',
    '--test-concurrency=1',
    `--test-reporter=${process.stdout.isTTY ? 'spec' : 'tap'}`,
    '--test-reporter-destination=stdout',
    `--test-reporter=${join(root, 'scripts', 'test-counts-reporter.mjs')}`,
    `--test-reporter-destination=${countsFile}`,
    ...files,
  ],
  {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, LIMEN_TEST_RUN: `limen-test-run-${randomBytes(6).toString('hex')}` },
  },
);
let report;
try {
  report = JSON.parse(readFileSync(countsFile, 'utf8'));
} catch (e) {
  process.stdout.write(`\nrun-tests: no test counts (${e.message})\n`);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}

/** test/unit, test/lab, test/integration/AREA: the folder a test file is counted in. */
function folderOf(file) {
  const dirs = relative(root, file).split(sep).slice(0, -1);
  return dirs.slice(0, dirs[1] === 'integration' ? 3 : 2).join('/') || '.';
}

let skippedInCi = false;
if (report !== undefined) {
  const byFolder = new Map();
  for (const [file, c] of Object.entries(report.files)) {
    const folder = folderOf(file);
    const t = byFolder.get(folder) ?? { passed: 0, failed: 0, skipped: 0, todo: 0 };
    for (const k of Object.keys(t)) t[k] += c[k];
    byFolder.set(folder, t);
  }
  const total = { passed: 0, failed: 0, skipped: 0, todo: 0 };
  for (const t of byFolder.values()) for (const k of Object.keys(total)) total[k] += t[k];
  const rows = [...byFolder.entries()].sort(([a], [b]) => a.localeCompare(b));
  rows.push(['total', total]);
  const width = Math.max(...rows.map(([f]) => f.length));
  const cols = ['ran', 'passed', 'failed', 'skipped', 'todo'];
  const line = (first, cells) =>
    `${first.padEnd(width)}  ${cells.map((c, i) => String(c).padStart(cols[i].length)).join('  ')}`;
  const out = ['', 'Tests by folder:', line('', cols)];
  for (const [folder, t] of rows) {
    if (folder === 'total') out.push('-'.repeat(line('', cols).length));
    out.push(line(folder, [t.passed + t.failed, t.passed, t.failed, t.skipped, t.todo]));
  }
  if (report.skipped.length > 0) {
    out.push('', `Skipped (${report.skipped.length}):`);
    for (const s of report.skipped)
      out.push(`  ${relative(root, s.file)}: ${s.name}${s.reason === '' ? '' : ` (${s.reason})`}`);
  }
  if (report.failed.length > 0) {
    out.push('', `Failed (${report.failed.length}):`);
    for (const f of report.failed) {
      const name = f.name === f.file ? '(the file itself: it failed to load or crashed)' : f.name;
      out.push(`  ${relative(root, f.file)}: ${name}`);
    }
  }
  if (ci && report.skipped.length > 0) {
    skippedInCi = true;
    out.push(
      '',
      `CI=true: ${report.skipped.length} skipped; in CI every prerequisite must be present, ` +
        'so a skip fails the run (npm run bootstrap as root installs them).',
    );
  }
  process.stdout.write(`${out.join('\n')}\n`);
}
process.exit(skippedInCi || report === undefined ? 1 : (r.status ?? 1));
