// `node --import ./test/support/module-trace.mjs …` appends the URL of every
// module the ESM loader loads to the file named by $LIMEN_MODULE_TRACE, one per
// line: how a test sees what a command really loads (test/integration/cli/).
import { register } from 'node:module';

register('./module-trace-hooks.mjs', import.meta.url);
