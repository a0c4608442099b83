// A trial that breaks the WAN (issue 12, its test 1; docs/safe-change.md): the
// candidate replaces the DHCP WAN with a wrong static address and carries a probe
// of the world's web server. `limen try --auto-confirm` applies it, the probe
// fails from the router, and the trial is rolled back before its timeout with the
// probe named as the reason; the DHCP WAN comes back, and a LAN client fetches
// http://world.test/ through the router again. (The probe names the world by its
// address: the router's own lookups would go to whatever resolver the host's
// /etc/resolv.conf names.)

import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Lab } from '../../src/lab/lab.ts';
import { WORLD_ADDRESS } from '../../src/lab/lab.ts';
import { main } from '../../src/cli/main.ts';
import { captureIo } from '../support/cli-io.ts';
import { fetchUntil, labSkip, routerLogTail, withLab } from './harness.ts';

describe('a trial that breaks the WAN', { skip: labSkip(), timeout: 300_000 }, () => {
  const getLab = withLab();
  let lab: Lab;

  before(async () => {
    lab = getLab();
    await fetchUntil(lab, 'lan1', 'http://world.test/');
  });

  it('is rolled back by its failing probe before the timeout, and the LAN reaches the world again', async () => {
    const cand = join(lab.dir, 'candidate');
    rmSync(cand, { recursive: true, force: true });
    cpSync(lab.siteDir, cand, { recursive: true });
    writeFileSync(
      join(cand, 'core/wan.pr'),
      '<configure-interface "wan0" <static "100.64.99.2/24" {gateway: "100.64.99.1"}>>\n',
    );
    writeFileSync(join(cand, 'core/probes.pr'), `<probe web <http "http://${WORLD_ADDRESS}/">>\n`);
    const before = readFileSync(join(lab.siteDir, 'core/wan.pr'), 'utf8');
    const io = captureIo();
    const started = Date.now();
    const code = await main(
      ['try', cand, '--auto-confirm', '--timeout', '120', '--socket', lab.socket],
      io,
    );
    const took = Date.now() - started;
    assert.equal(code, 1, io.stdout() + io.stderr() + routerLogTail(lab));
    assert.match(io.stdout(), /rolled back: probe web failed: /, io.stdout());
    assert.ok(took < 120_000, `rolled back by the probe, not the timeout (${took} ms)`);
    assert.equal(readFileSync(join(lab.siteDir, 'core/wan.pr'), 'utf8'), before);
    // The DHCP WAN is back, and the LAN with it.
    await fetchUntil(lab, 'lan1', 'http://world.test/', { timeoutMs: 90_000 });
    const gens = captureIo();
    await main(['generations', '--json', '--socket', lab.socket], gens);
    const list = JSON.parse(gens.stdout()) as { outcome: string; current: boolean }[];
    assert.match(list.at(-1)!.outcome, /^rolled back: probe web failed: /);
    assert.equal(list.filter((g) => g.current).length, 1);
  });
});
