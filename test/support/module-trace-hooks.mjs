// Loader hooks for module-trace.mjs (they run on the loader's own thread).
import { appendFileSync } from 'node:fs';

const file = process.env.LIMEN_MODULE_TRACE;

export async function load(url, context, nextLoad) {
  if (file) appendFileSync(file, `${url}\n`);
  return nextLoad(url, context);
}
