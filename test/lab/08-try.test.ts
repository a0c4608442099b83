// Safe change in the lab (issue 12, its tests 1, 2, 3, 5 and 6; docs/safe-change.md),
// on one lab running examples/home-router:
// - `limen diff` with the network drivers: a candidate that only adds a port forward
//   names that one assertion and no service; one that gives the WAN's DHCP client a
//   hostname names udhcpc's restart and its argv; one that replaces the DHCP WAN by a
//   static address names udhcpc's stop and the lease's address going.
// - Maintenance mode: only the recovery bundle runs (udhcpc, dnsmasq, sshd, the web
//   dashboard), ntpd is stopped, and a LAN client still reaches the router's SSH; off
//   brings everything back on the same generation.
// - A good trial whose `limen try` process is killed, confirmed with its token by a
//   second CLI process: kept, and still current after the daemon restarts.
// - The daemon killed with SIGKILL during a trial: started again, it runs the previous
//   generation, and the trial is recorded as rolled back because the daemon restarted.
// - A trial that breaks the WAN: the candidate replaces the DHCP WAN with a wrong
//   static address and carries a probe of the world's web server. `limen try
//   --auto-confirm` applies it, the probe fails from the router, and the trial is
//   rolled back before its timeout with the probe named as the reason; the DHCP WAN
//   comes back, and a LAN client fetches http://world.test/ through the router
//   again. (The probe names the world by its address: the router's own lookups
//   would go to whatever resolver the host's /etc/resolv.conf names.)

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, readFileSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Lab } from '../../src/lab/lab.ts';
import { LAN_ROUTER_ADDRESS, WORLD_ADDRESS, packageRoot } from '../../src/lab/lab.ts';
import { spawn, spawnSync } from 'node:child_process';
import { main } from '../../src/cli/main.ts';
import { captureIo } from '../support/cli-io.ts';
import {
  DHCPCD_WAN,
  DNSMASQ_LAN,
  NTPD,
  UDHCPC_WAN,
  cliOk,
  fetchUntil,
  labSkip,
  query,
  routerLogTail,
  services,
  showServices,
  waitUntilUp,
  wanLeaseAddress,
  withLab,
  writeSiteFile,
} from './harness.ts';
import { until } from '../support/until.ts';

describe('safe change in the lab', { skip: labSkip(), timeout: 400_000 }, () => {
  const getLab = withLab();
  let lab: Lab;

  // sshd makes /run/sshd on the host's file system (config/services/sshd.pr).
  const runSshdExisted = existsSync('/run/sshd');

  before(async () => {
    lab = getLab();
    await fetchUntil(lab, 'lan1', 'http://world.test/');
  });

  after(() => {
    if (!runSshdExisted) {
      try {
        rmdirSync('/run/sshd');
      } catch {
        /* not made after all, or in use by another sshd now */
      }
    }
  });

  /** A copy of the lab's site configuration with `files` changed. */
  const candidate = (name: string, files: { [path: string]: string }) => {
    const c = join(lab.dir, name);
    rmSync(c, { recursive: true, force: true });
    cpSync(lab.siteDir, c, { recursive: true });
    for (const [p, text] of Object.entries(files)) writeFileSync(join(c, p), text);
    return c;
  };
  const diff = (dir: string) => cliOk(lab, 'diff', dir);
  let seen = '';
  /** Until the service rows satisfy `ok` (what was seen is reported on a timeout). */
  const servicesUntil = (ok: (s: Awaited<ReturnType<typeof services>>) => boolean, what: string) =>
    until(
      async () => {
        const s = await services(lab);
        seen = showServices(s);
        return ok(s);
      },
      { timeoutMs: 30_000, describe: () => `${what}: ${seen}${routerLogTail(lab)}` },
    );
  /** The SSH server's greeting, as a LAN client reads it from the router. */
  const sshBanner = async () =>
    (
      await lab.execAsync('lan1', [
        'timeout',
        '5',
        'bash',
        '-c',
        `exec 3<>/dev/tcp/${LAN_ROUTER_ADDRESS}/22; head -c 8 <&3`,
      ])
    ).stdout;

  it('limen diff: a port forward alone is that one assertion; a DHCP hostname restarts udhcpc; a static WAN stops it', async () => {
    const forward = await diff(
      candidate('forward', {
        'core/forward.pr': '<port-forward wan tcp 2222 "192.168.8.10" 22>\n',
      }),
    );
    assert.match(
      forward,
      /\n\$config: 1 appear, 0 disappear\n {2}\+ <port-forward wan tcp 2222 "192\.168\.8\.10" 22>\nservices: none starts, stops or restarts\n$/,
      forward,
    );
    const hostname = await diff(
      candidate('hostname', {
        'core/wan.pr':
          '<configure-interface "wan0" <dhcp {hostname: "gw"}>>\n' +
          '<configure-interface "wan0" <dhcpv6 {prefix-hint: 56}>>\n',
      }),
    );
    assert.match(
      hostname,
      /\n {2}restart +<daemon <udhcpc "wan0">>\n +argv: \[.*\] -> \[.*"-x" "hostname:gw"\]\n/,
      hostname,
    );
    assert.doesNotMatch(hostname, /\n {2}(start|stop) /, hostname);
    const lease = await wanLeaseAddress(lab);
    assert.ok(lease !== undefined, 'the WAN has a lease');
    const wanStatic = await diff(
      candidate('static', {
        'core/wan.pr':
          '<configure-interface "wan0" <static "100.64.99.2/24" {gateway: "100.64.99.1"}>>\n',
      }),
    );
    assert.match(wanStatic, /\n {2}stop +<daemon <udhcpc "wan0">>\n/, wanStatic);
    assert.match(wanStatic, /\n {2}\+ <ip-address "wan0" "100\.64\.99\.2\/24"/, wanStatic);
    assert.ok(wanStatic.includes(`- <ip-address "wan0" "${lease}`), wanStatic);
    // Nothing was applied: the same processes, the same lease.
    assert.equal(await wanLeaseAddress(lab), lease);
  });

  it('maintenance mode: only the recovery bundle runs and SSH from the LAN still works; off brings all back', async () => {
    const generations = async () =>
      (JSON.parse(await cliOk(lab, 'generations', '--json')) as unknown[]).length;
    const recorded = await generations();
    writeSiteFile(lab, 'services/ssh.pr', '<ssh-server {port: 22}>\n');
    // The hand edit is a generation of its own once it settles: the one to come back to.
    await until(async () => (await generations()) > recorded, {
      timeoutMs: 10_000,
      describe: () => 'the hand edit recorded',
    });
    await servicesUntil((s) => s.get('<daemon sshd>')?.state === 'ready', 'sshd ready');
    await until(async () => (await sshBanner()).startsWith('SSH-2.0'), {
      timeoutMs: 15_000,
      describe: () => 'the SSH greeting from lan1',
    });
    const generation = (await cliOk(lab, 'status')).match(/^configuration +(.*)$/m)?.[1];
    const before = await services(lab);
    // The web dashboard (examples/home-router has it) belongs to the bundle too.
    const bundle = [UDHCPC_WAN, DHCPCD_WAN, DNSMASQ_LAN, '<daemon sshd>', '<daemon limen-web>'];
    const pids = bundle.map((s) => before.get(s)?.pids.join(','));
    assert.ok(before.get(NTPD)?.pids.length === 1, showServices(before));

    assert.match(await cliOk(lab, 'maintenance', 'on'), /maintenance mode is on/);
    await servicesUntil((s) => (s.get(NTPD)?.pids.length ?? 0) === 0, 'ntpd stopped');
    const during = await services(lab);
    const running = [...during]
      .filter(([, r]) => r.pids.length > 0)
      .map(([s]) => s)
      .sort();
    assert.deepEqual(running, [...bundle].sort(), showServices(during));
    assert.deepEqual(
      bundle.map((s) => during.get(s)?.pids.join(',')),
      pids,
      'the bundle keeps its processes',
    );
    assert.ok((await sshBanner()).startsWith('SSH-2.0'), 'a LAN client reaches sshd');
    assert.match(await cliOk(lab, 'status'), /^maintenance +ON: limen maintenance on/m);

    assert.match(await cliOk(lab, 'maintenance', 'off'), /maintenance mode is off/);
    await servicesUntil((s) => s.get(NTPD)?.state === 'ready', 'ntpd back');
    const status = await cliOk(lab, 'status');
    assert.doesNotMatch(status, /^maintenance/m);
    assert.equal(status.match(/^configuration +(.*)$/m)?.[1], generation, 'the same configuration');
    await fetchUntil(lab, 'lan1', 'http://world.test/');
  });

  /** `limen try CAND …` as a process of its own, with its output as it comes. */
  const tryProcess = (cand: string, timeoutS: number) => {
    const child = spawn(
      process.execPath,
      [
        join(packageRoot(), 'bin', 'limen.js'),
        'try',
        cand,
        '--timeout',
        String(timeoutS),
        '--socket',
        lab.socket,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    return { child, exited, output: () => out };
  };
  const generationsNow = async () =>
    JSON.parse(await cliOk(lab, 'generations', '--json')) as {
      number: number;
      outcome: string;
      current: boolean;
    }[];
  const greeting = async () => (await query(lab, '<greeting _>')).join(' ');

  it('keeps a trial confirmed from a second CLI after the first was killed, across a daemon restart', async () => {
    const cand = candidate('kept', { 'services/greeting.pr': '<greeting "kept">\n' });
    const t = tryProcess(cand, 120);
    try {
      const token = await until(() => /limen confirm ([0-9a-f]{32})\n/.exec(t.output())?.[1], {
        timeoutMs: 15_000,
        describe: () => `the token: ${t.output()}`,
      });
      await until(() => /try: applied generation \d+/.test(t.output()), {
        timeoutMs: 15_000,
        describe: () => `applied: ${t.output()}`,
      });
      t.child.kill('SIGKILL');
      await t.exited;
      const confirm = spawnSync(
        process.execPath,
        [join(packageRoot(), 'bin', 'limen.js'), 'confirm', token, '--socket', lab.socket],
        { encoding: 'utf8', timeout: 30_000 },
      );
      assert.equal(confirm.status, 0, confirm.stdout + confirm.stderr);
      assert.match(confirm.stdout, /^confirmed generation \d+\n$/);
    } finally {
      t.child.kill('SIGKILL');
      await t.exited;
    }
    const kept = (await generationsNow()).at(-1)!;
    assert.deepEqual([kept.outcome, kept.current], ['confirmed', true]);
    assert.equal(await lab.stopRouter(), true);
    await lab.startRouter();
    await waitUntilUp(lab);
    const after = (await generationsNow()).find((g) => g.current);
    assert.deepEqual([after?.number, after?.outcome], [kept.number, 'confirmed']);
    assert.equal(await greeting(), '<greeting "kept">');
  });

  it('comes back on the previous generation when the daemon is killed with SIGKILL during a trial', async () => {
    const previous = (await generationsNow()).find((g) => g.current)!;
    const cand = candidate('unconfirmed', { 'services/greeting.pr': '<greeting "unconfirmed">\n' });
    const t = tryProcess(cand, 600);
    try {
      await until(() => /try: applied generation \d+/.test(t.output()), {
        timeoutMs: 15_000,
        describe: () => `applied: ${t.output()}`,
      });
      await until(async () => (await greeting()) === '<greeting "unconfirmed">', {
        timeoutMs: 15_000,
        describe: () => 'the trial applied',
      });
      assert.equal(await lab.stopRouter('SIGKILL'), true);
      await t.exited; // its connection went with the daemon
    } finally {
      t.child.kill('SIGKILL');
      await t.exited;
    }
    await lab.startRouter();
    await waitUntilUp(lab);
    const gens = await generationsNow();
    const trial = gens.at(-1)!;
    assert.equal(trial.outcome, 'rolled back: the daemon restarted during the trial');
    assert.equal(gens.find((g) => g.current)?.number, previous.number);
    assert.equal(await greeting(), '<greeting "kept">');
    assert.equal(
      readFileSync(join(lab.siteDir, 'services/greeting.pr'), 'utf8'),
      '<greeting "kept">\n',
    );
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
