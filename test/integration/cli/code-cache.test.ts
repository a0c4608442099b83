// bin/code-cache.js keeps V8's compiled code for the CLI's bundles between runs
// (issue 11, point 17: a command that talks to the daemon pays for compiling its
// bundle on every run otherwise; bench/cli.ts has the figures). Loading a cache
// runs its code, so what is proved here is mostly what it refuses: a cache that
// group or others could have written, one that another user would write, one
// from a bundle since rebuilt, one V8 cannot use. Each case runs the real shim
// over bundles built into a private copy of the layout (bin/, dist/cli/), and
// checks the command's answer as well as the cache files.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type SpawnSyncOptions } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { prerequisites } from '../../support/prerequisites.ts';

const root = resolve(import.meta.dirname, '..', '..', '..');
const NOBODY = 65534;

describe('the CLI keeps V8 code caches for its bundles, and trusts only its own', () => {
  let dir: string;
  let shim: string;
  let dist: string;
  let cacheDir: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'limen-code-cache-'));
    chmodSync(dir, 0o755);
    mkdirSync(join(dir, 'bin'));
    for (const f of ['limen.js', 'code-cache.js', 'package.json'])
      copyFileSync(join(root, 'bin', f), join(dir, 'bin', f));
    shim = join(dir, 'bin', 'limen.js');
    dist = join(dir, 'dist', 'cli');
    cacheDir = join(dist, 'code-cache');
    const { bundleCli } = (await import(join(root, 'scripts', 'build-cli.mjs'))) as {
      bundleCli: (outdir: string) => Promise<unknown>;
    };
    await bundleCli(dist);
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  /** `limen preserves convert` (a bundled command that needs no daemon) on `<a 1>`. */
  function convert(nodeArgs: string[] = [], options: SpawnSyncOptions = {}) {
    const r = spawnSync(process.execPath, [...nodeArgs, shim, 'preserves', 'convert'], {
      input: '<a 1> [2 "three"]\n',
      encoding: 'utf8',
      timeout: 30_000,
      ...options,
    });
    assert.equal(r.status, 0, String(r.stderr));
    assert.equal(r.stdout, '<a 1>\n[2 "three"]\n');
    return r;
  }

  /** The cache files, by bundle: name → {ino, mtime, mode}. */
  function caches(): Map<string, { file: string; ino: number; mtimeMs: number; mode: number }> {
    const out = new Map<string, { file: string; ino: number; mtimeMs: number; mode: number }>();
    if (!existsSync(cacheDir)) return out;
    for (const name of readdirSync(cacheDir)) {
      const s = statSync(join(cacheDir, name));
      const bundle = name.replace(/\.cjs-.*$/, '.cjs');
      assert.ok(!out.has(bundle), `one cache per bundle: ${readdirSync(cacheDir).join(', ')}`);
      out.set(bundle, {
        file: join(cacheDir, name),
        ino: s.ino,
        mtimeMs: s.mtimeMs,
        mode: s.mode & 0o777,
      });
    }
    return out;
  }

  it('writes a cache for each bundle a command ran, and uses it as it is the next time', () => {
    rmSync(cacheDir, { recursive: true, force: true });
    convert();
    const first = caches();
    // main.cjs import()s the commands left out of the bundles, which a cached vm.Script
    // cannot: it compiles as usual.
    assert.deepEqual([...first.keys()], ['preserves.cjs']);
    assert.equal(statSync(cacheDir).mode & 0o777, 0o755);
    for (const c of first.values()) assert.equal(c.mode, 0o644);
    assert.match(first.get('preserves.cjs')!.file, new RegExp(`-${process.version}$`));
    convert();
    // Accepted by V8, so not written again: the same files.
    assert.deepEqual(caches(), first);
  });

  it('leaves the commands that main.cjs import()s working, run after run', () => {
    // The real bin/ and dist/ (built by npm run bootstrap): eval is tsc's ES module.
    const file = join(dir, 'e.pr');
    writeFileSync(file, '<hello "world">\n');
    for (let i = 0; i < 2; i++) {
      const r = spawnSync(process.execPath, [join(root, 'bin', 'limen.js'), 'eval', file], {
        encoding: 'utf8',
        timeout: 30_000,
      });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, '<hello "world">\n');
      assert.equal(r.stderr, '');
    }
  });

  it('survives a cache V8 cannot use, and replaces it', () => {
    convert();
    const { file } = caches().get('preserves.cjs')!;
    writeFileSync(file, 'not a code cache at all'.repeat(100));
    convert();
    const now = caches().get('preserves.cjs')!;
    assert.ok(statSync(now.file).size !== 'not a code cache at all'.length * 100);
    const again = caches().get('preserves.cjs')!;
    convert();
    assert.deepEqual(caches().get('preserves.cjs'), again, 'the new one is used');
  });

  it('does not read a cache that group or others can write, nor one in such a directory', () => {
    convert();
    const good = caches().get('preserves.cjs')!;
    chmodSync(good.file, 0o666);
    convert();
    // A valid cache would have been used as it is: it was ignored, and a new one made.
    const replaced = caches().get('preserves.cjs')!;
    assert.notEqual(replaced.ino, good.ino);
    assert.equal(replaced.mode, 0o644);

    chmodSync(cacheDir, 0o777);
    try {
      convert();
      assert.notEqual(caches().get('preserves.cjs')!.ino, replaced.ino, 'ignored, then rewritten');
    } finally {
      chmodSync(cacheDir, 0o755);
    }
  });

  it('never meets the cache of a bundle since rebuilt', () => {
    convert();
    const old = caches().get('preserves.cjs')!;
    const bundle = join(dist, 'commands', 'preserves.cjs');
    const later = new Date(statSync(bundle).mtimeMs + 5000);
    utimesSync(bundle, later, later);
    convert();
    const names = readdirSync(cacheDir).filter((n) => n.startsWith('preserves.cjs-'));
    assert.equal(names.length, 2, names.join(', '));
    const stamp = `-${Math.trunc(statSync(bundle).mtimeMs)}-`;
    assert.ok(
      names.some((n) => join(cacheDir, n) !== old.file && n.includes(stamp)),
      `${names.join(', ')}: one with ${stamp}`,
    );
    rmSync(old.file);
  });

  it("compiles as usual under V8 flags (the daemon's), and writes nothing", () => {
    rmSync(cacheDir, { recursive: true, force: true });
    convert(['--max-semi-space-size=2']);
    assert.equal(existsSync(cacheDir), false);
  });

  it(
    'lets another user run the CLI, and writes nothing for them to plant',
    { skip: prerequisites({ root: 'runs the CLI as nobody' }) },
    () => {
      rmSync(cacheDir, { recursive: true, force: true });
      convert([], { uid: NOBODY, gid: NOBODY });
      assert.equal(existsSync(cacheDir), false);
      // Nor does another user's cache get used by root: it is not root's.
      convert();
      const own = caches().get('preserves.cjs')!;
      spawnSync('chown', [`${NOBODY}:${NOBODY}`, own.file]);
      assert.equal(statSync(own.file).uid, NOBODY);
      convert();
      const after = caches().get('preserves.cjs')!;
      assert.equal(statSync(after.file).uid, 0, "ignored, and replaced by root's own");
    },
  );
});

describe('the CLI exits as soon as a command returns, and loses no output', () => {
  it('writes all of a large output to a reader that is slow to start reading', async () => {
    // 2 MB of output into a 64 KiB pipe, not read for a while: write(2) waits for the
    // reader (or, on a non-blocking pipe, the rest goes through process.stdout, and the
    // shim lets Node finish writing it), and the command exits only once it is all out.
    const big =
      `["${'x'.repeat(1000)}" ${Array.from({ length: 2000 }, (_, i) => i).join(' ')}]\n`.repeat(
        1000,
      );
    const child = spawn(process.execPath, [join(root, 'bin', 'limen.js'), 'preserves', 'convert'], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    child.stdin.end(big);
    child.stdout.pause();
    const resume = setTimeout(() => child.stdout.resume(), 300);
    let out = 0;
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.length));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((r) => child.on('close', (c) => r(c)));
    clearTimeout(resume);
    assert.equal(code, 0, err);
    assert.equal(out, big.length);
  });
});
