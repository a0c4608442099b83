// The VM facility (src/lab/vm.ts; issue 14): one boot of the current Debian kernel
// under qemu, with the host's root shared read-only, runs a script as root and
// brings back its output and exit status; the kernel has what this machine's lacks
// (PPP, PPPoE, L2TP, VLAN, WireGuard, a software watchdog), the host's programs are
// there at their paths (the lab's own test runs unchanged inside), and nothing is
// left behind (no qemu, no run directory).

import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { prepareVmKernel, runInVm, vmUnavailable, type VmKernel } from '../../src/lab/vm.ts';

const skip = vmUnavailable() ?? false;

describe('the VM', { skip, timeout: 600_000 }, () => {
  let kernel: VmKernel;
  before(() => {
    kernel = prepareVmKernel();
  });

  it('boots the current Debian kernel, runs a script with the host programs, and returns its output and status', async () => {
    const runsBefore = readdirSync(tmpdir()).filter((f) => f.startsWith('limen-vm-run-'));
    const r = await runInVm({
      kernel,
      timeoutMs: 300_000,
      script: [
        'uname -r',
        'for m in ppp_generic pppoe l2tp_ppp 8021q wireguard softdog; do modprobe $m && echo "module $m"; done',
        'test -c /dev/ppp && echo "dev ppp"',
        'ip link add dummy0 type dummy && ip link add link dummy0 name dummy0.42 type vlan id 42 && echo "link vlan"',
        'ip link add wg0 type wireguard && echo "link wg0"',
        `node -e 'console.log("node", 6 * 7)'`,
        `test -x ${process.cwd()}/bin/limen.js && echo "checkout here"`,
        'exit 7',
      ].join('\n'),
    });
    assert.equal(r.timedOut, false, r.console.slice(-2000));
    assert.equal(r.status, 7, `status ${String(r.status)}\n${r.output}\n${r.console.slice(-2000)}`);
    const lines = r.output.split('\n');
    assert.equal(lines[0], kernel.release);
    for (const m of ['ppp_generic', 'pppoe', 'l2tp_ppp', '8021q', 'wireguard', 'softdog'])
      assert.ok(lines.includes(`module ${m}`), `${m} did not load:\n${r.output}`);
    for (const l of ['dev ppp', 'link vlan', 'link wg0', 'node 42', 'checkout here'])
      assert.ok(lines.includes(l), `no "${l}" in:\n${r.output}`);
    const runsAfter = readdirSync(tmpdir()).filter((f) => f.startsWith('limen-vm-run-'));
    assert.deepEqual(runsAfter, runsBefore, 'the run directory is removed');
  });

  it("runs the lab's cold-start test unchanged inside the guest", async () => {
    const r = await runInVm({
      kernel,
      timeoutMs: 400_000,
      memoryMiB: 1536,
      script: `cd ${JSON.stringify(process.cwd())} && node scripts/run-tests.mjs test/lab/01-cold-start.test.ts`,
    });
    assert.equal(r.status, 0, `${r.output.slice(-3000)}\n${r.console.slice(-1500)}`);
    assert.match(r.output, /^test\/lab +(\d+) +\1 +0 +0 +0$/m, r.output.slice(-2000));
  });

  it('kills a VM that runs past its time limit, and says so', async () => {
    const r = await runInVm({ kernel, timeoutMs: 20_000, script: 'sleep 600' });
    assert.equal(r.timedOut, true);
    assert.equal(r.status, undefined);
  });
});
