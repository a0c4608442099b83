#!/usr/bin/env node
// The second half of `npm run build` (after tsc): bundles the CLI with esbuild into
// CommonJS files that bin/limen.js requires: dist/cli/main.cjs (dispatch, help,
// --version: a few kilobytes) and one self-contained dist/cli/commands/NAME.cjs per
// command module that talks to the daemon (or converts Preserves), which main.cjs
// requires only when one of its commands runs. `limen status` thus reads two files
// instead of resolving ~45 ES modules, parses only what it runs, and never starts
// Node's ES module loader: it costs little more than `node -e 0` (issue 11, point
// 17; bench/cli.ts).
//
// The daemon, the lab, `check` and `eval` stay out of the bundles: main.ts imports
// them as ./commands/NAME.ts, which stays a dynamic import() of tsc's ES module
// dist/cli/commands/NAME.js. They find their files through import.meta.url
// (config/, libexec/, the netlink helper), which needs tsc's one-file-per-module
// layout, and they are slow to start anyway (a daemon, a lab).

import { readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Command modules main.ts loads from tsc's output rather than from a bundle. */
export const UNBUNDLED = ['daemon', 'lab', 'check', 'eval'];

/** The command modules that get a bundle of their own: every other one. */
export function bundledCommands() {
  return readdirSync(join(root, 'src', 'cli', 'commands'))
    .filter((f) => f.endsWith('.ts'))
    .map((f) => f.slice(0, -3))
    .filter((name) => !UNBUNDLED.includes(name))
    .sort();
}

const common = {
  absWorkingDir: root,
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  sourcemap: true,
  logLevel: 'warning',
  metafile: true,
};

/** Bundles the CLI into OUTDIR/main.cjs and OUTDIR/commands/NAME.cjs (default dist/cli). */
export async function bundleCli(outdir = join(root, 'dist', 'cli')) {
  const { build, stop } = await import('esbuild');
  const bundled = bundledCommands();
  // V8's compiled code for the old bundles (bin/code-cache.js): never used again.
  rmSync(join(outdir, 'code-cache'), { recursive: true, force: true });
  const main = await build({
    ...common,
    entryPoints: ['src/cli/main.ts'],
    outfile: join(outdir, 'main.cjs'),
    plugins: [
      {
        name: 'lazy-commands',
        setup(b) {
          // main.ts's `await import('./commands/NAME.ts')`: a require() of NAME's own
          // bundle (run when the import runs), or tsc's module for the unbundled ones.
          b.onResolve({ filter: /^\.\/commands\/[a-z-]+\.ts$/ }, (a) => {
            const name = a.path.slice('./commands/'.length, -'.ts'.length);
            if (UNBUNDLED.includes(name)) return { path: `./commands/${name}.js`, external: true };
            if (!bundled.includes(name)) return undefined;
            return { path: name, namespace: 'command-bundle' };
          });
          b.onLoad({ filter: /.*/, namespace: 'command-bundle' }, (a) => ({
            contents: `module.exports = require('./commands/${a.path}.cjs');`,
            loader: 'js',
          }));
          b.onResolve({ filter: /^\.\/commands\/[a-z-]+\.cjs$/ }, (a) => ({
            path: a.path,
            external: true,
          }));
        },
      },
    ],
  });
  const commands = await build({
    ...common,
    entryPoints: Object.fromEntries(
      bundled.map((name) => [`commands/${name}`, `src/cli/commands/${name}.ts`]),
    ),
    outdir,
    outExtension: { '.js': '.cjs' },
  });
  // esbuild's service process would otherwise outlive this one for a moment (the leak
  // check at the end of a test run sees it).
  await stop();
  return { main, commands };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await bundleCli();
