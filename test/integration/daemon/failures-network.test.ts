// Every network driver's failures, provoked for real, in `limen status` (text
// and --json) and in the daemon log: limen runs in a namespace of its own
// (rtr) with a veth wan0 to an isp namespace, where dnsmasq hands out leases
// whose router is 127.0.0.1 (a <dhcp-error>), and a veth lan0. Its site
// configuration is broken in every way at once: a static configuration with a
// misspelt option (<interface-failed>), resolv.conf under a regular file
// (<resolver-error>), a sysctl key that does not exist (<sysctl-error>), an
// interface in two firewall zones (<firewall-error>) and NAT to a zone nobody
// defined (<firewall-warning>), a LAN DHCP spec with an unknown key
// (<lan-dhcp-error>), an address and a route that cannot be
// (<ip-address-state … failed …>, <ip-route-state … failed …>); and a vxlan
// link the kernel refuses to bring up while another socket holds its UDP port
// (<link-error>). Each is listed by `limen status` and logged when it appears
// (warn for the warning, error for the rest); once each is put right, "KIND
// fixed" is logged at info, once per kind and subject, and status is clean.
// Every namespace and process is removed at the end, whatever happens.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { main } from '../../../src/cli/main.ts';
import { captureIo } from '../../support/cli-io.ts';
import { until } from '../../support/until.ts';
import { describeProcs, killMarked, newMarker, processesWithEnv } from '../../support/processes.ts';
import { prerequisites } from '../../support/prerequisites.ts';

const repo = resolve(import.meta.dirname, '../../..');
const MARK = 'LIMEN_TEST_MARK';
const id = randomBytes(3).toString('hex');
const isp = `lt-fisp-${id}`;
const rtr = `lt-frtr-${id}`;

function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8' });
}

interface LogLine {
  level: string;
  msg: string;
  subject?: string;
  message?: string;
  [k: string]: unknown;
}

interface StatusFailure {
  kind: string;
  subject: string;
  message: string;
  text: string;
  level: string;
}

describe(
  "network drivers' failures in status and the log",
  { skip: prerequisites({ netns: true }) },
  () => {
    let dir: string;
    let site: string;
    let resolvConf: string;
    let dnsmasq: ChildProcess | undefined;
    let holder: ChildProcess | undefined;
    let daemon: ChildProcess | undefined;
    const marker = newMarker();
    const lines: LogLine[] = [];
    let raw = '';

    const cli = async (...args: string[]) => {
      const io = captureIo();
      const code = await main([...args, '--root', join(dir, 'root')], io);
      return { code, out: io.stdout(), err: io.stderr() };
    };
    const failures = async (): Promise<StatusFailure[]> => {
      const r = await cli('status', '--json');
      assert.equal(r.code, 0, r.err);
      return (JSON.parse(r.out) as { failures: StatusFailure[] }).failures;
    };
    const logText = () => raw.split('\n').slice(-80).join('\n');
    const waitLog = (what: string, pred: (l: LogLine) => boolean) =>
      until(() => lines.find(pred), {
        timeoutMs: 20_000,
        intervalMs: 20,
        describe: () => `${what}; log:\n${logText()}`,
      });
    const siteFile = (name: string, text: string) =>
      writeFileSync(join(site, 'core', name), text + '\n');

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'limen-failures-net-'));
      site = join(dir, 'site');
      mkdirSync(join(site, 'core'), { recursive: true });
      ip('netns', 'add', isp);
      ip('netns', 'add', rtr);
      ip('link', 'add', 'wan0', 'netns', rtr, 'type', 'veth', 'peer', 'name', 'isp0', 'netns', isp);
      ip('-n', rtr, 'link', 'add', 'lan0', 'type', 'veth', 'peer', 'name', 'lan0p');
      ip('-n', isp, 'addr', 'add', '100.64.0.1/24', 'dev', 'isp0');
      ip('-n', isp, 'link', 'set', 'isp0', 'up');
      // A server that gets the router wrong: udhcpc passes it on, limen's DHCP driver refuses it.
      dnsmasq = spawn(
        'ip',
        [
          ...['netns', 'exec', isp, 'dnsmasq', '--no-daemon', '--conf-file=/dev/null', '--port=0'],
          ...['--interface=isp0', '--bind-interfaces', '--pid-file='],
          ...['--dhcp-range=100.64.0.10,100.64.0.20,255.255.255.0,2m', '--dhcp-option=3,127.0.0.1'],
          `--dhcp-leasefile=${join(dir, 'isp.leases')}`,
        ],
        { stdio: 'ignore', env: { ...process.env, [MARK]: marker } },
      );
      // Holds vxlan's UDP port in rtr, so that the kernel refuses to bring vx0 up (EADDRINUSE).
      holder = spawn(
        'ip',
        [
          ...['netns', 'exec', rtr, process.execPath, '-e'],
          `const d = require('node:dgram');
           const a = d.createSocket('udp4');
           a.bind(4789, () => {
             const b = d.createSocket({ type: 'udp6', ipv6Only: true });
             b.bind(4789, () => console.log('bound'));
           });`,
        ],
        { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, [MARK]: marker } },
      );
      await until(new Promise<void>((r) => holder!.stdout!.once('data', () => r())), {
        timeoutMs: 10_000,
        describe: () => 'the UDP port holder to bind',
      });
      // resolv.conf's directory is a regular file: every write fails (ENOTDIR).
      writeFileSync(join(dir, 'notadir'), '');
      resolvConf = join(dir, 'notadir', 'resolv.conf');

      siteFile(
        'net.pr',
        [
          '<configure-interface "lan0" <static "10.0.0.1/24" {gatway: "10.0.0.254"}>>',
          '<configure-interface "wan0" <dhcp>>',
        ].join('\n'),
      );
      siteFile('dns.pr', '<dns-server "192.0.2.53" <test>>');
      siteFile('sysctl.pr', '<sysctl "net.ipv4.no_such_key" "1">');
      siteFile(
        'firewall.pr',
        '<firewall-zone lan ["lan0"]>\n<firewall-zone wan ["lan0"]>\n<masquerade lan wna>',
      );
      siteFile('lan.pr', '<lan-dhcp "lan0" {range: ["10.0.0.100" "10.0.0.200"] leese: 600}>');
      siteFile(
        'addr.pr',
        '<ip-address "lan0" "10.0.0.300/24">\n<ip-route ipv4 "10.9.0.0/33" {dev: "lan0"}>',
      );

      daemon = spawn(
        'ip',
        [
          ...['netns', 'exec', rtr, process.execPath, '--import', 'tsx'],
          join(repo, 'test/support/limen-cli.ts'),
          ...['daemon', '--root', join(dir, 'root'), '--config', site],
          ...['--resolv-conf', resolvConf, '--log-format', 'json'],
        ],
        { cwd: repo, env: { ...process.env, [MARK]: marker }, stdio: ['ignore', 'ignore', 'pipe'] },
      );
      let buf = '';
      daemon.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
        raw += chunk;
        buf += chunk;
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          try {
            lines.push(JSON.parse(line) as LogLine);
          } catch {
            lines.push({ level: 'raw', msg: line });
          }
        }
      });
      await waitLog('the daemon to start', (l) => l.msg === 'limen daemon started');
      ip('-n', rtr, 'link', 'add', 'vx0', 'type', 'vxlan', 'id', '5', 'dstport', '4789');
    });

    after(async () => {
      if (daemon && daemon.exitCode === null && daemon.signalCode === null) {
        const d = daemon;
        const exited = new Promise((r) => d.once('exit', r));
        d.kill('SIGTERM');
        await exited;
      }
      holder?.kill('SIGKILL');
      dnsmasq?.kill('SIGTERM');
      killMarked(MARK, marker);
      for (const ns of [rtr, isp]) {
        try {
          ip('netns', 'del', ns);
        } catch {
          // already gone
        }
      }
      rmSync(dir, { recursive: true, force: true });
    });

    // kind → subject, as status and the log name them.
    const expected: readonly (readonly [string, string, 'warn' | 'error'])[] = [
      ['dhcp-error', 'wan0', 'error'],
      ['firewall-error', '', 'error'],
      ['firewall-warning', '', 'warn'],
      ['interface-failed', 'lan0', 'error'],
      ['ip-address-state failed', 'lan0 10.0.0.300/24', 'error'],
      ['ip-route-state failed', 'ipv4 10.9.0.0/33 0', 'error'],
      ['lan-dhcp-error', 'lan0', 'error'],
      ['link-error', 'vx0', 'error'],
      ['resolver-error', '', 'error'], // subject: resolv.conf's path, set below
      ['sysctl-error', 'net.ipv4.no_such_key', 'error'],
    ];
    const subjectOf = (kind: string, subject: string) =>
      kind === 'resolver-error' ? resolvConf : subject;
    const key = (kind: string, subject: string) => `${kind} | ${subject}`;

    it('lists every failure in status and logs each when it appears', async () => {
      let seen: StatusFailure[] = [];
      const want = expected.map(([k, s]) => key(k, subjectOf(k, s)));
      await until(
        async () => {
          seen = await failures();
          const have = new Set(seen.map((f) => key(f.kind, f.subject)));
          return want.every((w) => have.has(w));
        },
        {
          timeoutMs: 30_000,
          intervalMs: 100,
          describe: () =>
            `every kind in status; seen:\n${seen.map((f) => `${f.kind} ${f.text}`).join('\n')}\n${logText()}`,
        },
      );
      const one = (kind: string) => seen.find((f) => f.kind === kind)!;
      assert.match(one('dhcp-error').message, /router: "127\.0\.0\.1" is a loopback address/);
      assert.match(one('firewall-error').text, /interface lan0 is in two zones/);
      assert.match(one('firewall-warning').text, /zone wna is not defined/);
      assert.equal(one('firewall-warning').level, 'warn');
      assert.match(one('interface-failed').text, /^lan0: static: unknown option 'gatway'/);
      assert.match(one('lan-dhcp-error').message, /unknown key 'leese'/);
      assert.match(one('link-error').message, /Address already in use/);
      assert.match(one('resolver-error').message, /ENOTDIR|not a directory/);
      assert.match(one('sysctl-error').message, /no such kernel parameter/);

      const text = (await cli('status')).out;
      for (const [kind, subject] of expected) {
        const s = subjectOf(kind, subject);
        const line = s === '' ? `${kind} ` : `${kind} ${s}: `;
        assert.ok(text.includes(line), `'${line}' in:\n${text}`);
      }
      for (const [kind, subject, level] of expected) {
        const s = subjectOf(kind, subject);
        const l = await waitLog(`${kind} logged`, (x) => x.msg === kind && (x.subject ?? '') === s);
        assert.equal(l.level, level, `${kind}: ${JSON.stringify(l)}`);
      }
    });

    it('logs "fixed" once per kind and subject when each is put right, and status is clean', async () => {
      siteFile(
        'net.pr',
        '<configure-interface "lan0" <static "10.0.0.1/24" {gateway: "10.0.0.254"}>>',
      );
      unlinkSync(join(dir, 'notadir'));
      mkdirSync(join(dir, 'notadir'));
      siteFile('dns.pr', '<dns-server "192.0.2.54" <test>>');
      unlinkSync(join(site, 'core', 'sysctl.pr'));
      siteFile(
        'firewall.pr',
        '<firewall-zone lan ["lan0"]>\n<firewall-zone wan ["wan0"]>\n<masquerade lan wan>',
      );
      unlinkSync(join(site, 'core', 'lan.pr'));
      unlinkSync(join(site, 'core', 'addr.pr'));
      // The port is free again and the link is gone: the error about it no longer holds.
      holder!.kill('SIGKILL');
      ip('-n', rtr, 'link', 'del', 'vx0');

      for (const [kind, subject] of expected) {
        const s = subjectOf(kind, subject);
        const l = await waitLog(
          `${kind} fixed`,
          (x) => x.msg === `${kind} fixed` && (x.subject ?? '') === s,
        );
        assert.equal(l.level, 'info');
      }
      let seen: StatusFailure[] = [];
      await until(async () => (seen = await failures()).length === 0, {
        timeoutMs: 20_000,
        intervalMs: 100,
        describe: () => `no failure; seen: ${JSON.stringify(seen)}`,
      });
      assert.match((await cli('status')).out, /^failures +none$/m);
      assert.match(execFileSync('cat', [resolvConf], { encoding: 'utf8' }), /192\.0\.2\.54/);
      for (const [kind, subject] of expected) {
        const s = subjectOf(kind, subject);
        const n = lines.filter((x) => x.msg === `${kind} fixed` && (x.subject ?? '') === s).length;
        assert.equal(n, 1, `"${kind} fixed" ${n} times:\n${logText()}`);
      }
    });

    it('stops without logging anything as fixed, and leaves no process behind', async () => {
      // A failure present when the daemon stops: its owner going away is no fix.
      siteFile('sysctl.pr', '<sysctl "net.ipv4.no_such_key" "1">');
      await until(() => lines.filter((x) => x.msg === 'sysctl-error').length === 2 || undefined, {
        timeoutMs: 20_000,
        describe: () => `sysctl-error again; log:\n${logText()}`,
      });
      const d = daemon!;
      const exited = new Promise<number | null>((r) => d.once('exit', (code) => r(code)));
      const before = lines.length;
      d.kill('SIGTERM');
      assert.equal(await exited, 0, logText());
      const late = lines.slice(before).filter((l) => l.msg.endsWith(' fixed'));
      assert.deepEqual(late, []);
      dnsmasq!.kill('SIGTERM');
      await until(() => processesWithEnv(MARK, marker).length === 0, {
        describe: () => describeProcs(processesWithEnv(MARK, marker)),
      });
    });
  },
);
