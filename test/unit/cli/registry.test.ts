// main.ts names every command (its words and summary) so that it can dispatch and
// print the overview without loading them: those names must be the commands' own.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { commands, main } from '../../../src/cli/main.ts';
import { captureIo } from '../../support/cli-io.ts';

describe('the CLI command registry', () => {
  it('names each command with its own words and summary, once', async () => {
    const seen = new Set<string>();
    for (const entry of commands) {
      const cmd = await entry.load();
      assert.deepEqual(cmd.path, entry.path, `the module for '${entry.path.join(' ')}'`);
      assert.equal(cmd.summary, entry.summary, `the summary of '${entry.path.join(' ')}'`);
      const key = entry.path.join(' ');
      assert.ok(!seen.has(key), `'${key}' is listed twice`);
      seen.add(key);
    }
  });

  it('loads the command for its --help, and lists every command in the overview', async () => {
    const help = captureIo();
    assert.equal(await main(['lab', 'exec', '--help'], help), 0);
    assert.match(help.stdout(), /^Usage: limen lab exec /);
    const overview = captureIo();
    assert.equal(await main(['--help'], overview), 0);
    for (const entry of commands) assert.ok(overview.stdout().includes(entry.summary));
  });

  it('maps a usage error of an unbundled command (by its code) to exit 2', async () => {
    const io = captureIo();
    assert.equal(await main(['lab', 'exec', 'nowhere', '--', 'true'], io), 2);
    assert.match(io.stderr(), /no node 'nowhere'/);
  });
});
