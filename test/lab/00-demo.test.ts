// The demo (`npm run demo -- --once`), as a user runs it: it builds a lab, runs
// limen with examples/home-router, prints every step of the timeline, checks
// that a LAN client fetched http://world.test/ over IPv4 and over IPv6 (from its
// own address in the delegated prefix), tears the lab down and exits 0.

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { main } from '../../src/cli/main.ts';
import { labDown, labNames } from '../../src/lab/lab.ts';
import { demoSteps } from '../../src/lab/demo.ts';
import { captureIo } from '../support/cli-io.ts';
import { labSkip } from './harness.ts';

describe('npm run demo -- --once', { skip: labSkip(), timeout: 300_000 }, () => {
  const name = `t${randomBytes(3).toString('hex')}`;
  after(async () => {
    if (labNames().includes(name)) await labDown(name);
  });

  it('prints every step of the timeline, fetches the page, and leaves no lab behind', async () => {
    const io = captureIo();
    const code = await main(['lab', 'demo', '--once', '--name', name], io);
    assert.equal(code, 0, `${io.stdout()}\n${io.stderr()}`);
    const out = io.stdout();
    for (const step of demoSteps('dhcp')) {
      assert.match(out, new RegExp(`^\\s+≤?\\s*\\d+  ${step.label}`, 'm'), step.label);
    }
    assert.match(out, /LAN client fetched http:\/\/world\.test\/ +"Hello from world\.test/);
    assert.match(
      out,
      /LAN client fetched http:\/\/world\.test\/ over IPv6 +from 2001:db8:8000:1:[0-9a-f:]+ /,
    );
    assert.match(out, /All steps passed/);
    assert.equal(labNames().includes(name), false, 'the demo removed its lab');
  });
});
