// PPPoE (src/net/pppoe.ts; issue 14, its tests 1, 2, 3 and 7) in limen's VM, this
// machine's kernel having no PPP. Three boots:
//  - the demo as a user runs it, `limen lab demo --wan pppoe --once` from the host's
//    CLI (which boots the VM): the same timeline as the DHCP demo, ending with a LAN
//    client fetching http://world.test/ through limen over PPPoE, over IPv4 and over
//    IPv6 (a /56 delegated by DHCPv6 over ppp-wan0);
//  - `limen lab up --vm`: the same in the VM, live until Ctrl-C, which removes the
//    lab and powers the VM off;
//  - test/guest/pppoe-lab.test.ts run inside the guest by the project's own test
//    runner: cold start, IPv6 over the session (and its end and redial), the ISP
//    ending the session, a wrong password, and the secret kept out of sight.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { until } from '../support/until.ts';
import { runInVm, vmUnavailable } from '../../src/lab/vm.ts';

const skip = vmUnavailable() ?? false;

describe('PPPoE in the VM', { skip, timeout: 1_200_000 }, () => {
  it('npm run demo -- --wan pppoe --once: the timeline over PPPoE, ending with lan1 fetching world.test over IPv4 and IPv6', () => {
    const r = spawnSync(
      process.execPath,
      ['bin/limen.js', 'lab', 'demo', '--wan', 'pppoe', '--once', '--name', 'vmdemo'],
      { encoding: 'utf8', timeout: 900_000 },
    );
    const out = `${r.stdout}\n${r.stderr}`;
    assert.equal(r.status, 0, out);
    assert.match(r.stdout, /running it in the VM/);
    for (const step of [
      /WAN link up +wan0: up, carrier/,
      /PPPoE session up +ppp-wan0: 100\.64\.0\.10 peer 100\.64\.0\.1 \(CHAP\)/,
      /WAN address configured +100\.64\.0\.10\/32 in the kernel/,
      /default route +<default-route ipv4> asserted/,
      /firewall applied/,
      /LAN DHCP server ready/,
      /LAN client bound/,
      /LAN client fetched http:\/\/world\.test\/ +"Hello from world\.test/,
      /IPv6 prefix delegated +2001:db8:8000::\/56 by DHCPv6/,
      /LAN IPv6 prefix announced +2001:db8:8000:1::\/64 on lan0/,
      /LAN client fetched http:\/\/world\.test\/ over IPv6 +from 2001:db8:8000:1:/,
      /removed 6 namespaces; the lab is gone/,
    ])
      assert.match(r.stdout, step, out);
  });

  it('limen lab up --vm: the lab over PPPoE in the VM, live until Ctrl-C, which removes it', async () => {
    const child = spawn(process.execPath, ['bin/limen.js', 'lab', 'up', '--vm', '--name', 'vmup'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => void (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => void (out += d));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    try {
      await until(
        () => /LAN client fetched http:\/\/world\.test\//.test(out) && /Live view/.test(out),
        {
          timeoutMs: 600_000,
          intervalMs: 500,
          describe: () => `the timeline up to the fetch, then the live view:\n${out}`,
        },
      );
      assert.match(out, /PPPoE session up +ppp-wan0/);
      child.kill('SIGINT');
      assert.equal(await exited, 130, out);
      assert.match(out, /removed 6 namespaces; the lab is gone/, out);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('runs test/guest/pppoe-lab.test.ts inside the guest: all pass', async () => {
    const r = await runInVm({
      timeoutMs: 900_000,
      memoryMiB: 2048,
      script: `cd ${JSON.stringify(process.cwd())} && node scripts/run-tests.mjs test/guest/pppoe-lab.test.ts`,
    });
    assert.equal(r.status, 0, `${r.output.slice(-6000)}\n${r.console.slice(-1500)}`);
    assert.match(r.output, /^test\/guest +(\d+) +\1 +0 +0 +0$/m, r.output.slice(-3000));
    assert.match(r.output, /^test\/guest +5 /m, r.output.slice(-3000));
  });
});
