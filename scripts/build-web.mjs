#!/usr/bin/env node
// The last step of `npm run build`: bundles the web dashboard's page (src/web/page,
// Preact and dagre) with esbuild into dist/web/static/: app.js (minified, ES2020,
// with app.js.map beside it), app.css and index.html, which the server serves as
// / and /assets/… (docs/web.md). index.html has no inline script or style, so the
// page runs under the server's strict Content-Security-Policy. Prints the gzipped
// size of what a browser downloads.

import { build } from 'esbuild';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const page = join(root, 'src', 'web', 'page');
const out = join(root, 'dist', 'web', 'static');

const indexHtml = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>limen</title>
    <link rel="icon" href="data:," />
    <link rel="stylesheet" href="/assets/app.css" />
    <script type="module" src="/assets/app.js"></script>
  </head>
  <body>
    <div id="app"></div>
  </body>
</html>
`;

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

await build({
  absWorkingDir: root,
  entryPoints: [join(page, 'main.tsx')],
  outfile: join(out, 'app.js'),
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2020',
  minify: true,
  sourcemap: 'linked',
  jsx: 'automatic',
  jsxImportSource: 'preact',
  tsconfig: join(page, 'tsconfig.json'),
  legalComments: 'linked',
  logLevel: 'warning',
});
writeFileSync(join(out, 'app.css'), readFileSync(join(page, 'app.css')));
writeFileSync(join(out, 'index.html'), indexHtml);

let total = 0;
const sizes = ['app.js', 'app.css', 'index.html'].map((name) => {
  const gz = gzipSync(readFileSync(join(out, name)), { level: 9 }).length;
  total += gz;
  return `${name} ${(gz / 1024).toFixed(1)} KB`;
});
console.log(`web page: ${sizes.join(', ')}; ${(total / 1024).toFixed(1)} KB gzipped in all`);
