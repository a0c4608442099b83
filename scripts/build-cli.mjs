#!/usr/bin/env node
// The second half of `npm run build` (after tsc): bundles the CLI's entry
// (src/cli/main.ts) with esbuild into dist/cli/main.js, over tsc's file of the
// same name, with one chunk per command module under dist/cli/chunks/. A command
// that talks to the daemon then loads three or four files instead of ~45
// modules, and nothing of the daemon (issue 11, point 17; bench/cli.ts).
//
// The daemon, the lab, `check` and `eval` are left out of the bundle: main.ts
// imports them lazily as ./commands/NAME.ts, which stays an import of tsc's
// dist/cli/commands/NAME.js. They find their files through import.meta.url
// (config/, libexec/, the netlink helper), which needs tsc's one-file-per-module
// layout, and they are slow to start anyway (a daemon, a lab).

import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Commands main.ts loads from tsc's output rather than from the bundle. */
export const UNBUNDLED = ['daemon', 'lab', 'check', 'eval'];

/** Bundles src/cli/main.ts into OUTDIR/main.js and OUTDIR/chunks/ (default dist/cli). */
export async function bundleCli(outdir = join(root, 'dist', 'cli')) {
  const { build } = await import('esbuild');
  rmSync(join(outdir, 'chunks'), { recursive: true, force: true });
  const unbundled = new RegExp(`^\\./commands/(${UNBUNDLED.join('|')})\\.ts$`);
  return build({
    absWorkingDir: root,
    entryPoints: { main: 'src/cli/main.ts' },
    outdir,
    chunkNames: 'chunks/[name]-[hash]',
    entryNames: '[name]',
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    sourcemap: true,
    logLevel: 'warning',
    metafile: true,
    plugins: [
      {
        name: 'unbundled-commands',
        setup(b) {
          b.onResolve({ filter: unbundled }, (a) => ({
            path: a.path.replace(/\.ts$/, '.js'),
            external: true,
          }));
        },
      },
    ],
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await bundleCli();
