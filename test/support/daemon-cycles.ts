// Starts and stops the real daemon (startDaemon, as `limen daemon` does) again
// and again in one process, for tests that race its start: after each start it
// prints `up N` and waits for a line on stdin before it shuts down and starts
// again; `done` once all COUNT cycles are over. No network drivers.
// Usage: node --import tsx test/support/daemon-cycles.ts ROOT SITE COUNT

import { createInterface } from 'node:readline';
import { startDaemon } from '../../src/daemon/daemon.ts';

const [root, site, countText] = process.argv.slice(2) as [string, string, string];
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
for (let i = 0; i < Number(countText); i++) {
  const daemon = await startDaemon({
    root,
    configDirs: [site],
    network: false,
    write: () => {},
  });
  process.stdout.write(`up ${i}\n`);
  if ((await lines.next()).done === true) break;
  await daemon.shutdown('next cycle');
}
process.stdout.write('done\n');
process.stdin.destroy();
