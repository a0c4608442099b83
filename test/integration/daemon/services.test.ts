// The opt-in services of config/services, end to end with real programs: limen
// runs in a namespace of its own (svc) with a static WAN, wan0 100.64.0.2/24
// via 100.64.0.1; the peer namespace (ntp) is the other end of wan0 and runs a
// real NTP server, chronyd serving its local clock (`local stratum 8`, `-x`).
// Debian's busybox has no ntpd applet, so config/services/ntp.pr runs chronyd
// as the client too, and busybox's server could not be used either.
//
// The WAN link is not there when the daemon starts, so neither <default-route
// ipv4> nor <milestone network> holds: sshd's key is made but sshd waits, and
// ntpd waits. When the link comes, sshd answers from the peer with an OpenSSH
// banner and the state directory's key (never the host's /etc/ssh keys), and
// ntpd synchronises with the server (its own log, and the server's client
// list). Taking the gateway out of the site file stops ntpd; putting it back
// starts a new one. Both chronyds run with -x (the site says `set-clock: #f`):
// the namespaces share the host's clock, which a test must not steer.
//
// Every namespace, process and file is removed at the end, whatever happens,
// and /run/sshd too when the test made it.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  rmdirSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { main } from '../../../src/cli/main.ts';
import { captureIo } from '../../support/cli-io.ts';
import { until } from '../../support/until.ts';
import { describeProcs, killMarked, newMarker, processesWithEnv } from '../../support/processes.ts';
import { run, skipReason } from '../net/harness-lan-netns.ts';

const repo = resolve(import.meta.dirname, '../../..');
const MARK = 'LIMEN_TEST_MARK';
const id = randomBytes(3).toString('hex');
const peer = `lt-ntp-${id}`;
const rtr = `lt-svc-${id}`;
const SSHD = '/usr/sbin/sshd';
const CHRONYD = '/usr/sbin/chronyd';

const WAN_WITH_GATEWAY =
  '<configure-interface "wan0" <static "100.64.0.2/24" {gateway: "100.64.0.1"}>>\n';
const WAN_WITHOUT_GATEWAY = '<configure-interface "wan0" <static "100.64.0.2/24">>\n';

// Connects to HOST PORT, prints the first line the server sends, and exits;
// gives up after five seconds.
const BANNER_CLIENT = `
const [host, port] = process.argv.slice(1);
const s = require('node:net').connect(Number(port), host);
s.setTimeout(5000, () => { s.destroy(); process.exit(2); });
let got = '';
s.on('data', (d) => {
  got += d;
  if (got.includes('\\n')) { process.stdout.write(got.split('\\n')[0]); s.destroy(); }
});
s.on('error', (e) => { process.stderr.write(String(e)); process.exit(1); });
`;

function inPeer(argv: readonly string[], timeoutMs = 10_000) {
  const r = spawnSync('ip', ['netns', 'exec', peer, ...argv], {
    encoding: 'utf8',
    timeout: timeoutMs,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Names, sizes and times of /etc/ssh's files: the host's keys must stay as they are. */
function etcSshSnapshot(): string {
  if (!existsSync('/etc/ssh')) return 'no /etc/ssh';
  return readdirSync('/etc/ssh')
    .sort()
    .map((n) => {
      const s = statSync(join('/etc/ssh', n));
      return `${n} ${s.size} ${s.mtimeMs} ${s.ctimeMs}`;
    })
    .join('\n');
}

/** The key blobs (second field) of the host's /etc/ssh/*.pub files. */
function hostKeyBlobs(): string[] {
  if (!existsSync('/etc/ssh')) return [];
  return readdirSync('/etc/ssh')
    .filter((n) => n.endsWith('.pub'))
    .map((n) => readFileSync(join('/etc/ssh', n), 'utf8').split(/\s+/)[1] ?? '')
    .filter((blob) => blob !== '');
}

function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

interface ServiceJson {
  state?: string;
  pids?: number[];
}

describe(
  'opt-in services: NTP client and sshd',
  { skip: skipReason(['ip', CHRONYD, 'chronyc', SSHD, 'ssh-keygen', 'ssh-keyscan']) },
  () => {
    let dir: string;
    let root: string;
    let ntpServer: ChildProcess | undefined;
    let daemon: ChildProcess | undefined;
    let madeRunSshd = false;
    let etcSshBefore = '';
    const marker = newMarker();
    let log = '';

    const serverSocket = () => join(dir, 'ntp-server/chronyd.sock');
    const keyPath = () => join(root, 'var/lib/limen/ssh/ssh_host_ed25519_key');

    const startDaemon = () => {
      log = '';
      daemon = spawn(
        'ip',
        [
          'netns',
          'exec',
          rtr,
          process.execPath,
          '--import',
          'tsx',
          join(repo, 'test/support/limen-cli.ts'),
          'daemon',
          '--root',
          root,
          '--config',
          join(dir, 'site'),
          '--log-format',
          'json',
        ],
        { cwd: repo, env: { ...process.env, [MARK]: marker }, stdio: ['ignore', 'ignore', 'pipe'] },
      );
      daemon.stderr!.setEncoding('utf8').on('data', (c: string) => void (log += c));
    };
    const stopDaemon = async () => {
      const d = daemon!;
      if (d.exitCode !== null || d.signalCode !== null) return d.exitCode;
      const exited = new Promise<number | null>((r) => d.once('exit', (code) => r(code)));
      d.kill('SIGTERM');
      return until(exited, { timeoutMs: 20_000, describe: () => `daemon exit\n${log}` });
    };
    const cli = async (...args: string[]) => {
      const io = captureIo();
      const code = await main([...args, '--root', root], io);
      return { code, out: io.stdout(), err: io.stderr() };
    };
    /** The service's state and pids, or undefined when the daemon does not know it. */
    const service = async (name: string): Promise<ServiceJson | undefined> => {
      const r = await cli('service', name, '--json');
      return r.code === 0 ? (JSON.parse(r.out) as ServiceJson) : undefined;
    };
    const states = async () => (await cli('query', '<service-state ?s ?state>')).out;
    const runningPid = async (name: string) => {
      const s = await service(name);
      const pid = s?.pids?.[0];
      return s?.state !== undefined && ['started', 'ready'].includes(s.state) && pid !== undefined
        ? pid
        : undefined;
    };
    const serviceLog = async (name: string) => (await cli('logs', '-n', '500', name)).out;
    const defaultRoute = async () =>
      (await cli('query', '<default-route ?family>')).out.includes('ipv4');
    const writeWan = (text: string) => writeFileSync(join(dir, 'site/core/wan.pr'), text);

    before(() => {
      dir = mkdtempSync(join(tmpdir(), 'limen-svc-e2e-'));
      // chronyd drops root for _chrony, which must reach RUN/chrony under it.
      chmodSync(dir, 0o755);
      root = join(dir, 'root');
      etcSshBefore = etcSshSnapshot();
      madeRunSshd = !existsSync('/run/sshd');
      run(['ip', 'netns', 'add', peer]);
      run(['ip', 'netns', 'add', rtr]);
      run(['ip', '-n', peer, 'link', 'set', 'lo', 'up']);
      ntpServer = spawn(
        'ip',
        [
          'netns',
          'exec',
          peer,
          CHRONYD,
          '-d',
          '-x',
          'local stratum 8',
          'allow 100.64.0.0/24',
          'cmdport 0',
          `bindcmdaddress ${serverSocket()}`,
          `pidfile ${join(dir, 'ntp-server/chronyd.pid')}`,
        ],
        { stdio: 'ignore', env: { ...process.env, [MARK]: marker } },
      );
      mkdirSync(join(dir, 'site/core'), { recursive: true });
      mkdirSync(join(dir, 'site/services'), { recursive: true });
      writeWan(WAN_WITH_GATEWAY);
      writeFileSync(
        join(dir, 'site/services/opt-in.pr'),
        '<ntp-client {servers: ["100.64.0.1"] set-clock: #f}>\n<ssh-server {port: 2222}>\n',
      );
    });

    after(async () => {
      if (daemon) await stopDaemon().catch(() => undefined);
      ntpServer?.kill('SIGTERM');
      killMarked(MARK, marker);
      for (const ns of [peer, rtr]) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
      rmSync(dir, { recursive: true, force: true });
      if (madeRunSshd) {
        try {
          rmdirSync('/run/sshd');
        } catch {
          /* not made after all, or in use by another sshd now */
        }
      }
    });

    it('without the WAN link: the sshd key is made, but neither sshd nor ntpd runs', async () => {
      startDaemon();
      await until(async () => (await cli('status')).code === 0, {
        timeoutMs: 20_000,
        describe: () => log,
      });
      await until(async () => (await service('sshd-keys'))?.state === 'complete', {
        timeoutMs: 15_000,
        describe: () => `sshd-keys complete; states:\n${log}`,
      });
      const key = keyPath();
      assert.ok(existsSync(key) && existsSync(`${key}.pub`), `no key at ${key}`);
      assert.equal(statSync(key).mode & 0o077, 0, 'the private key is readable by others');
      assert.match(readFileSync(`${key}.pub`, 'utf8'), /^ssh-ed25519 /);
      // The key one-shot ran in the services layer, so the layer is up: only the
      // missing WAN keeps sshd (network) and ntpd (default route) from running.
      const now = await states();
      assert.doesNotMatch(now, /<milestone network>/, now);
      assert.doesNotMatch(now, /<daemon sshd>/, now);
      assert.doesNotMatch(now, /<daemon ntpd>/, now);
      assert.equal(await defaultRoute(), false);
    });

    it('when the WAN link comes, sshd answers with its own key on the WAN address', async () => {
      run([
        'ip',
        'link',
        'add',
        'wan0',
        'netns',
        rtr,
        'type',
        'veth',
        'peer',
        'name',
        'ntp0',
        'netns',
        peer,
      ]);
      run(['ip', '-n', peer, 'addr', 'add', '100.64.0.1/24', 'dev', 'ntp0']);
      run(['ip', '-n', peer, 'link', 'set', 'ntp0', 'up']);
      await until(
        async () =>
          (await cli('query', '<service-state <milestone network> up>')).out.includes('network'),
        {
          timeoutMs: 20_000,
          describe: () => `network milestone up; states:\n${log}`,
        },
      );
      const sshdPid = await until(() => runningPid('sshd'), {
        timeoutMs: 10_000,
        describe: () => 'sshd running',
      });
      assert.ok(isAlive(sshdPid));
      // sshd listens a moment after it starts: poll, each try bounded (5 s).
      const banner = await until(
        () => {
          const r = inPeer([process.execPath, '-e', BANNER_CLIENT, '100.64.0.2', '2222']);
          return r.status === 0 && r.stdout;
        },
        {
          timeoutMs: 15_000,
          intervalMs: 200,
          describe: () => 'an SSH banner from 100.64.0.2:2222',
        },
      );
      assert.match(banner, /^SSH-2\.0-OpenSSH/);

      // The only host key it offers is the state directory's one.
      const scan = inPeer(
        ['ssh-keyscan', '-T', '5', '-p', '2222', '-t', 'rsa,ecdsa,ed25519', '100.64.0.2'],
        20_000,
      );
      const offered = scan.stdout
        .split('\n')
        .filter((l) => l.trim() !== '' && !l.startsWith('#'))
        .map((l) => l.split(/\s+/).slice(1, 3).join(' '));
      const ours = readFileSync(`${keyPath()}.pub`, 'utf8').split(/\s+/).slice(0, 2).join(' ');
      assert.deepEqual(offered, [ours], scan.stderr);
      assert.ok(!hostKeyBlobs().some((blob) => ours.endsWith(` ${blob}`)), 'a key of /etc/ssh');
      assert.equal(etcSshSnapshot(), etcSshBefore, '/etc/ssh changed');
      // sshd refuses to start without it; sshd.pr makes it when nothing had.
      if (madeRunSshd) assert.ok(statSync('/run/sshd').isDirectory());
    });

    it('ntpd runs while the default route holds, and synchronises with the server', async () => {
      await until(defaultRoute, { timeoutMs: 10_000, describe: () => '<default-route ipv4>' });
      const pid = await until(() => runningPid('ntpd'), {
        timeoutMs: 10_000,
        describe: () => `ntpd running\n${log}`,
      });
      assert.ok(isAlive(pid));
      // chronyd names the source it selected only after valid replies from it.
      await until(async () => (await serviceLog('ntpd')).includes('Selected source 100.64.0.1'), {
        timeoutMs: 30_000,
        intervalMs: 200,
        describe: () => `ntpd's log:\n${log}`,
      });
      // And the server saw the client's requests.
      const clients = spawnSync('chronyc', ['-h', serverSocket(), '-c', 'clients'], {
        encoding: 'utf8',
        timeout: 10_000,
      });
      const fromUs = clients.stdout.split('\n').find((l) => l.startsWith('100.64.0.2,'));
      assert.ok(fromUs !== undefined, `the server's clients: ${clients.stdout}${clients.stderr}`);
      assert.ok(Number(fromUs.split(',')[1]) > 0, fromUs);
    });

    it('taking the gateway away stops ntpd; giving it back starts a new one', async () => {
      const first = (await runningPid('ntpd'))!;
      const sshdPid = (await runningPid('sshd'))!;
      writeWan(WAN_WITHOUT_GATEWAY);
      await until(async () => !(await defaultRoute()), {
        timeoutMs: 10_000,
        describe: () => 'the default route to go',
      });
      await until(() => !isAlive(first), {
        timeoutMs: 15_000,
        describe: () => `ntpd ${first} to stop`,
      });
      assert.equal(await runningPid('ntpd'), undefined);

      const syncs = (await serviceLog('ntpd')).split('Selected source').length;
      writeWan(WAN_WITH_GATEWAY);
      const second = await until(() => runningPid('ntpd'), {
        timeoutMs: 15_000,
        describe: () => `a new ntpd\n${log}`,
      });
      assert.notEqual(second, first);
      await until(async () => (await serviceLog('ntpd')).split('Selected source').length > syncs, {
        timeoutMs: 30_000,
        intervalMs: 200,
        describe: () => 'the new ntpd to synchronise',
      });
      // The address stayed, so the network milestone and sshd were left alone.
      assert.equal(await runningPid('sshd'), sshdPid);
    });

    it('stopping the daemon stops sshd and ntpd, and leaves no process behind', async () => {
      const pids = [(await runningPid('sshd'))!, (await runningPid('ntpd'))!];
      assert.equal(await stopDaemon(), 0);
      for (const pid of pids) assert.equal(isAlive(pid), false, `${pid} still runs`);
      const left = processesWithEnv(MARK, marker).filter((p) => p.pid !== ntpServer?.pid);
      assert.equal(left.length, 0, `left behind: ${describeProcs(left)}`);
    });
  },
);
