// L2TP over the DHCP WAN (issue 14, its test 4), run INSIDE limen's VM (this
// machine's kernel has no L2TP): test/vm/l2tp.test.ts boots it and runs this file
// there. The lab as usual (the WAN by DHCP), plus xl2tpd as the LNS in `world`
// (198.51.100.10) with CHAP; limen in rtr dials it with `<configure-interface
// "l2tp0" <l2tp {…}>>` over wan0. Real peers only.

import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Lab } from '../../src/lab/lab.ts';
import { inVm } from '../../src/lab/vm-lab.ts';
import { until } from '../support/until.ts';
import {
  WORLD_NAME,
  cli,
  defaultRoutes,
  fetchUntil,
  query,
  routerLogTail,
  status,
  withLab,
  writeSiteFile,
} from '../lab/harness.ts';

const skip = inVm() ? false : 'runs inside limen’s VM (test/vm/l2tp.test.ts)';
const LNS = '198.51.100.10';
const SECRET = 'l2tp-5e1c7a90b2d4';

/** xl2tpd as the LNS in `world`: CHAP, 10.70.0.1 on its side, 10.70.0.10… for callers. */
function startLns(lab: Lab): void {
  const dir = join(lab.dir, 'world', 'lns');
  mkdirSync(dir, { recursive: true });
  // The guest's /etc is a tmpfs overlay: the host's file is never touched.
  writeFileSync('/etc/ppp/chap-secrets', `"l2tp-user" * "${SECRET}" *\n`, { mode: 0o600 });
  writeFileSync(
    join(dir, 'options'),
    ['ms-dns 10.70.0.1', 'require-chap', 'nodefaultroute', 'lcp-echo-interval 1', ''].join('\n'),
  );
  writeFileSync(
    join(dir, 'xl2tpd.conf'),
    [
      '[global]',
      `listen-addr = ${LNS}`,
      '[lns default]',
      'ip range = 10.70.0.10-10.70.0.20',
      'local ip = 10.70.0.1',
      'require chap = yes',
      'refuse pap = yes',
      'require authentication = yes',
      'name = lns',
      `pppoptfile = ${join(dir, 'options')}`,
      'length bit = yes',
      '',
    ].join('\n'),
  );
  lab.startProcess('world/xl2tpd', 'world', [
    'xl2tpd',
    '-D',
    '-c',
    join(dir, 'xl2tpd.conf'),
    '-s',
    '/dev/null',
    '-p',
    join(dir, 'pid'),
    '-C',
    join(dir, 'control'),
  ]);
}

describe('L2TP over the DHCP WAN', { skip, timeout: 900_000 }, () => {
  const getLab = withLab({ upTimeoutMs: 240_000 });
  let lab: Lab;
  before(() => {
    lab = getLab();
    for (const m of ['l2tp_ppp', 'l2tp_netlink']) lab.exec('rtr', ['modprobe', m]);
    startLns(lab);
    writeFileSync('/tmp/l2tp.secret', SECRET, { mode: 0o600 });
    writeSiteFile(
      lab,
      'core/l2tp.pr',
      `<configure-interface "l2tp0" <l2tp {server: "${LNS}" via: "wan0" user: "l2tp-user" password-file: "/tmp/l2tp.secret"}>>\n` +
        '<firewall-zone wan ["l2tp0"]>\n',
    );
  });

  it('dials the LNS over wan0: l2tp0 takes the default route, the route to the LNS stays on wan0', async () => {
    await until(async () => (await query(lab, '<ppp-session "l2tp0" _>')).length > 0, {
      timeoutMs: 180_000,
      describe: () => `<ppp-session "l2tp0" _>${routerLogTail(lab)}`,
    });
    await until(() => defaultRoutes(lab)[0]?.startsWith('default dev l2tp0'), {
      timeoutMs: 60_000,
      describe: () => `the default route via l2tp0 first: ${defaultRoutes(lab).join('; ')}`,
    });
    assert.ok(
      defaultRoutes(lab).some((r) => r.includes('dev wan0')),
      'the DHCP default route stays, below',
    );
    const toLns = lab.exec('rtr', ['ip', 'route', 'get', LNS]).stdout;
    assert.match(toLns, / via 100\.64\.0\.1 dev wan0 /, toLns);
    // The kernel's data path carries the session (pppol2tp).
    assert.match(lab.exec('rtr', ['ip', 'l2tp', 'show', 'tunnel']).stdout, /Tunnel \d+/);
    // Traffic through the tunnel: the LNS's side, from the router and from the LAN (NAT).
    await until(() => lab.exec('rtr', ['ping', '-c1', '-W2', '10.70.0.1']).status === 0, {
      timeoutMs: 30_000,
      describe: () => 'rtr pinging 10.70.0.1 through l2tp0',
    });
    await until(() => lab.exec('lan1', ['ping', '-c1', '-W2', '10.70.0.1']).status === 0, {
      timeoutMs: 30_000,
      describe: () => 'lan1 pinging 10.70.0.1 through limen and l2tp0',
    });
    await fetchUntil(lab, 'lan1', `http://${WORLD_NAME}/`, { timeoutMs: 60_000 });
  });

  it('ifdown ends the session and the default route falls back to wan0; ifup dials again', async () => {
    const down = await cli(lab, 'ifdown', 'l2tp0', '--timeout', '60');
    assert.equal(down.code, 0, down.err + down.out);
    await until(() => !defaultRoutes(lab).some((r) => r.includes('l2tp0')), {
      timeoutMs: 60_000,
      describe: () => `no default route via l2tp0: ${defaultRoutes(lab).join('; ')}`,
    });
    assert.equal((await query(lab, '<ppp-session "l2tp0" _>')).length, 0);
    const up = await cli(lab, 'ifup', 'l2tp0', '--timeout', '180');
    assert.equal(up.code, 0, up.err + up.out + routerLogTail(lab));
    await until(() => defaultRoutes(lab)[0]?.startsWith('default dev l2tp0'), {
      timeoutMs: 60_000,
      describe: () => `the default route via l2tp0 again: ${defaultRoutes(lab).join('; ')}`,
    });
  });

  it('a wrong password: ifup answers with the authentication failure, and xl2tpd is stopped', async () => {
    const down = await cli(lab, 'ifdown', 'l2tp0', '--timeout', '60');
    assert.equal(down.code, 0, down.err + down.out);
    writeFileSync('/tmp/l2tp.secret', 'not-the-secret', { mode: 0o600 });
    const up = await cli(lab, 'ifup', 'l2tp0', '--timeout', '180');
    assert.notEqual(up.code, 0, up.out);
    assert.match(up.err + up.out, /l2tp: authentication failed \(CHAP\)/, routerLogTail(lab));
    writeFileSync('/tmp/l2tp.secret', SECRET, { mode: 0o600 });
    const again = await cli(lab, 'ifup', 'l2tp0', '--timeout', '180');
    assert.equal(again.code, 0, again.err + again.out + routerLogTail(lab));
  });

  it('the secret is in no command line, log or status', async () => {
    for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
      let cmdline = '';
      try {
        cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      } catch {
        continue;
      }
      assert.ok(!cmdline.includes(SECRET), `process ${pid}: ${cmdline.replace(/\0/g, ' ')}`);
    }
    assert.ok(!readFileSync(lab.routerLog, 'utf8').includes(SECRET), 'the daemon log');
    assert.ok(!JSON.stringify(await status(lab)).includes(SECRET), 'limen status --json');
    assert.ok(!(await cli(lab, 'query', '?x')).out.includes(SECRET), 'limen query ?x');
  });
});
