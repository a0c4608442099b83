// L2TP over the DHCP WAN (src/net/l2tp.ts; issue 14, its test 4) in limen's VM,
// this machine's kernel having no L2TP: test/guest/l2tp-lab.test.ts run inside the
// guest by the project's own test runner (xl2tpd as the LNS in the lab's world,
// limen dialling it over wan0).

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { runInVm, vmUnavailable } from '../../src/lab/vm.ts';

const skip = vmUnavailable() ?? false;

describe('L2TP in the VM', { skip, timeout: 1_800_000 }, () => {
  it('runs test/guest/l2tp-lab.test.ts inside the guest: all pass', async () => {
    const r = await runInVm({
      timeoutMs: 900_000,
      memoryMiB: 2048,
      script: `cd ${JSON.stringify(process.cwd())} && node scripts/run-tests.mjs test/guest/l2tp-lab.test.ts`,
    });
    assert.equal(r.status, 0, `${r.output.slice(-6000)}\n${r.console.slice(-1500)}`);
    assert.match(r.output, /^test\/guest +4 +4 +0 +0 +0$/m, r.output.slice(-3000));
  });
});
