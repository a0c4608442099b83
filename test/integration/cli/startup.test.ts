// What a CLI command loads (issue 11, point 17): a command that talks to the
// daemon loads main, its own command module and the control client, never the
// daemon, the lab, the supervisor or the network drivers; `--version` loads no
// command at all. Checked on the sources (through tsx) and on the bundle that
// `npm run build` ships (scripts/build-cli.mjs, built here into a temporary
// directory): there, a command loads only the bundle's files, and little of
// them. The timings are bench/cli.ts's job; this proves the mechanism.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(import.meta.dirname, '..', '..', '..');
const trace = join(root, 'test', 'support', 'module-trace.mjs');
const nowhere = '/nonexistent/limen-startup-test.sock';

/** The commands that talk to the daemon, as run here (no daemon: exit 3). */
const CONTROL: readonly (readonly string[])[] = [
  ['status'],
  ['services'],
  ['service', 'hello'],
  ['query', '<service-state ?s ?x>'],
  ['watch', '<service-state ?s ?x>'],
  ['logs', 'hello'],
  ['send', '<ping>'],
  ['start', 'hello'],
  ['restart', 'hello'],
  ['ifup', 'wan0'],
  ['ifdown', 'wan0'],
  ['settings', 'list'],
];

interface Loaded {
  readonly code: number | null;
  readonly stderr: string;
  /** Absolute paths of the files loaded (file: URLs only). */
  readonly files: string[];
}

function loaded(dir: string, argv: readonly string[]): Loaded {
  const out = join(dir, `trace-${Math.random().toString(36).slice(2)}`);
  writeFileSync(out, '');
  const r = spawnSync(process.execPath, ['--import', trace, ...argv], {
    cwd: root,
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, LIMEN_MODULE_TRACE: out, LIMEN_SOCKET: nowhere },
  });
  const files = [
    ...new Set(
      readFileSync(out, 'utf8')
        .split('\n')
        .filter((u) => u.startsWith('file:'))
        .map((u) => fileURLToPath(u)),
    ),
  ];
  return { code: r.status, stderr: r.stderr, files };
}

const HEAVY = ['daemon', 'lab', 'supervisor', 'net', 'safety'].map((l) => `/src/${l}/`);

describe('what a CLI command loads', { timeout: 300_000 }, () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'limen-cli-startup-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  describe('from the sources', () => {
    const cli = ['--import', 'tsx', join(root, 'test', 'support', 'limen-cli.ts')];

    it('--version loads no command module and no control client', () => {
      const r = loaded(dir, [...cli, '--version']);
      assert.equal(r.code, 0, r.stderr);
      const mine = r.files.filter((f) => f.startsWith(join(root, 'src')));
      assert.deepEqual(
        mine.filter((f) => f.includes('/src/cli/commands/') || f.includes('/src/control/')),
        [],
      );
      assert.deepEqual(
        mine.filter((f) => HEAVY.some((h) => f.includes(h))),
        [],
      );
    });

    for (const argv of CONTROL) {
      it(`limen ${argv.join(' ')} loads its command and the client, nothing of the daemon`, () => {
        const r = loaded(dir, [...cli, ...argv]);
        assert.equal(r.code, 3, `exit 3 (no daemon) expected: ${r.stderr}`);
        assert.match(r.stderr, /cannot reach limen/);
        const mine = r.files.filter((f) => f.startsWith(join(root, 'src')));
        assert.ok(
          mine.some((f) => f.endsWith('/src/control/client.ts')),
          'the control client',
        );
        assert.deepEqual(
          mine.filter((f) => HEAVY.some((h) => f.includes(h))),
          [],
          'modules of the daemon, the lab, the supervisor or the drivers',
        );
        const commandModules = mine.filter((f) => f.includes('/src/cli/commands/'));
        assert.equal(commandModules.length, 1, `one command module: ${commandModules.join(', ')}`);
      });
    }
  });

  describe('from the bundles that npm run build ships', () => {
    let out: string;
    let shim: string;
    before(async () => {
      out = join(dir, 'bundle');
      const { bundleCli } = (await import(join(root, 'scripts', 'build-cli.mjs'))) as {
        bundleCli: (outdir: string) => Promise<unknown>;
      };
      await bundleCli(out);
      // What bin/limen.js does with dist/cli/main.cjs.
      shim = join(out, 'limen.cjs');
      writeFileSync(
        shim,
        "require('./main.cjs').main(process.argv.slice(2)).then((c) => { process.exitCode = c; });\n",
      );
    });

    it('--version reads main.cjs alone', () => {
      const r = loaded(dir, [shim, '--version']);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(r.files.sort(), [shim, join(out, 'main.cjs')].sort());
    });

    for (const argv of CONTROL) {
      it(`limen ${argv.join(' ')} reads main.cjs and its command's bundle, under 256 KiB`, () => {
        const r = loaded(dir, [shim, ...argv]);
        assert.equal(r.code, 3, `exit 3 (no daemon) expected: ${r.stderr}`);
        const others = r.files.filter((f) => f !== shim && f !== join(out, 'main.cjs'));
        assert.equal(others.length, 1, `one command bundle: ${others.join(', ')}`);
        assert.match(others[0]!, new RegExp(`^${out}/commands/[a-z-]+\\.cjs$`));
        const bytes = r.files.reduce((n, f) => n + statSync(f).size, 0);
        assert.ok(bytes < 256 * 1024, `${bytes} bytes loaded: ${r.files.join(', ')}`);
      });
    }
  });

  it('bin/limen.js gives the daemon its V8 flag, and no other command', () => {
    const bin = join(root, 'bin', 'limen.js');
    assert.equal(readFileSync(bin, 'utf8').split('\n')[0], '#!/bin/sh');
    // sh runs the file first; a `node` first on PATH that prints what it was given
    // shows what sh execs (the real node is never started here).
    const fake = join(dir, 'fake-node');
    mkdirSync(fake, { recursive: true });
    writeFileSync(join(fake, 'node'), '#!/bin/sh\nprintf "%s\\n" "$@"\n', { mode: 0o755 });
    const argvOf = (...args: string[]) => {
      const r = spawnSync(bin, args, {
        encoding: 'utf8',
        timeout: 10_000,
        env: { ...process.env, PATH: `${fake}:${process.env['PATH'] ?? ''}` },
      });
      assert.equal(r.status, 0, r.stderr);
      return r.stdout.split('\n');
    };
    assert.deepEqual(argvOf('daemon', '--root', '/x').slice(0, 4), [
      '--max-semi-space-size=2',
      bin,
      'daemon',
      '--root',
    ]);
    assert.deepEqual(argvOf('status').slice(0, 2), [bin, 'status']);
  });
});
