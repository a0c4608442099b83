// `node --import ./test/support/module-trace.mjs …` appends the URL of every
// module the process loads to the file named by $LIMEN_MODULE_TRACE, one per
// line: ES modules as the loader loads them (module-trace-hooks.mjs, on the
// loader's thread), CommonJS modules from require's cache when the process exits.
// How a test sees what a command really reads (test/integration/cli/).
import { appendFileSync } from 'node:fs';
import { createRequire, register } from 'node:module';
import { pathToFileURL } from 'node:url';

register('./module-trace-hooks.mjs', import.meta.url);

const file = process.env.LIMEN_MODULE_TRACE;
const cache = createRequire(import.meta.url).cache;
if (file) {
  process.on('exit', () => {
    const urls = Object.keys(cache).map((p) => pathToFileURL(p).href);
    if (urls.length > 0) appendFileSync(file, urls.map((u) => `${u}\n`).join(''));
  });
}
