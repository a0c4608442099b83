// What `npm pack` ships is what an installed limen has to run from: the package is
// packed, installed into a temporary prefix as `npm install --global` installs it,
// and run from there, far from the checkout. The install is offline, from the npm
// cache that scripts/bootstrap.mjs fills (`npm ci`, then `npm cache add` of the
// runtime dependencies): a test never reaches a registry. npm pack ships dist/ as it
// is, so this needs `npm run build` (the bootstrap's second step), as the lab does.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { prerequisites } from '../../support/prerequisites.ts';

const root = resolve(import.meta.dirname, '..', '..', '..');
const version = (
  JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }
).version;

/** npm, quiet about audits, funding and its own updates. */
function npm(args: readonly string[], cwd: string, timeout: number) {
  const r = spawnSync('npm', args, {
    cwd,
    encoding: 'utf8',
    timeout,
    env: {
      ...process.env,
      npm_config_audit: 'false',
      npm_config_fund: 'false',
      npm_config_update_notifier: 'false',
    },
  });
  if (r.error !== undefined) throw new Error(`npm ${args.join(' ')}: ${r.error.message}`);
  return r;
}

/** The npm cache's content directory (`npm config get cache`, then _cacache). */
function npmCache(): string {
  return join(npm(['config', 'get', 'cache'], root, 30_000).stdout.trim(), '_cacache');
}

/** Why the package cannot be packed and installed here, or undefined. */
function unpackable(): string | undefined {
  if (!existsSync(join(root, 'dist', 'cli', 'main.cjs'))) {
    return 'dist/ is not built (npm run build): npm pack ships it as it is';
  }
  const cache = npmCache();
  if (!existsSync(cache)) {
    return `the npm cache (${cache}) was never filled (npm run bootstrap fills it): the package's dependencies are installed from it, offline`;
  }
  return undefined;
}

describe(
  'the package npm pack makes, installed offline into a prefix',
  { skip: prerequisites({ check: unpackable }), timeout: 240_000 },
  () => {
    let dir: string;
    let pkg: string;
    let limen: string;
    /** The paths `npm pack` put in the tarball. */
    let shipped: string[];

    before(
      () => {
        dir = mkdtempSync(join(tmpdir(), 'limen-package-'));
        const packed = npm(['pack', '--json', '--pack-destination', dir], root, 60_000);
        assert.equal(packed.status, 0, `npm pack failed:\n${packed.stderr}`);
        const [{ filename, files }] = JSON.parse(packed.stdout) as [
          { filename: string; files: { path: string }[] },
        ];
        shipped = files.map((f) => f.path);
        const prefix = join(dir, 'prefix');
        const installArgs = ['install', '--offline', '--global', '--prefix', prefix];
        const installed = npm([...installArgs, join(dir, filename)], dir, 120_000);
        if (installed.status !== 0 && installed.stderr.includes('ENOTCACHED')) {
          assert.fail(
            `npm install --offline needs what the npm cache (${npmCache()}) does not hold; ` +
              'scripts/bootstrap.mjs caches what an offline install of limen needs ' +
              `(npm run bootstrap, or npm cache add the package named below):\n${installed.stderr}`,
          );
        }
        assert.equal(
          installed.status,
          0,
          `npm install failed (${installed.signal ?? installed.status}):\n${installed.stderr}`,
        );
        pkg = join(prefix, 'lib', 'node_modules', 'limen');
        limen = join(prefix, 'bin', 'limen');
      },
      { timeout: 200_000 },
    );

    after(() => rmSync(dir, { recursive: true, force: true }));

    /** The installed `limen ARGS…`, run from the temporary directory. */
    function run(...args: string[]) {
      const r = spawnSync(limen, args, { cwd: dir, encoding: 'utf8', timeout: 30_000 });
      if (r.error !== undefined) throw new Error(`${limen} ${args.join(' ')}: ${r.error.message}`);
      return r;
    }

    it("limen --version prints package.json's version", () => {
      const r = run('--version');
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, `${version}\n`);
    });

    it('limen check passes the shipped config and examples/home-router', () => {
      const r = run('check', join(pkg, 'config'), join(pkg, 'examples', 'home-router'));
      assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
      assert.match(r.stdout, /^checked \d+ files: no errors\n$/);
    });

    it('ships what the daemon resolves at run time, and what the docs point to', () => {
      for (const script of ['udhcpc-script', 'lab-dhcp-client']) {
        const path = join(pkg, 'libexec', script);
        assert.doesNotThrow(() => accessSync(path, constants.X_OK), `${path} is executable`);
      }
      for (const file of [
        'config/boot',
        'packaging/systemd/limen.service',
        'scripts/debian-packages.txt',
      ]) {
        assert.ok(existsSync(join(pkg, file)), `${file} is in the installed package`);
      }
    });

    it('ships no V8 code cache or build stamp from the checkout it was packed in', () => {
      const local = shipped.filter(
        (p) => p.startsWith('dist/cli/code-cache/') || p === 'dist/.build-stamp',
      );
      assert.deepEqual(local, []);
    });

    it('loads its netlink binding the way the daemon does', () => {
      const from = join(pkg, 'dist', 'net', 'netlink-proxy.js');
      const r = spawnSync(
        process.execPath,
        ['-e', "require('node:module').createRequire(process.argv[1])('netlink')", from],
        { cwd: dir, encoding: 'utf8', timeout: 30_000 },
      );
      assert.equal(r.status, 0, r.stderr);
    });
  },
);
