// The web endpoint with the real daemon (`limen daemon --web-group 65534`, under umask
// 077): its socket and directory are root and the group's only; a client of the
// group's uid queries, watches and restarts but is refused send, settings writes,
// maintenance and setting the password (each refusal logged); its password checks
// are rate-limited; another uid cannot connect, and the root socket still refuses
// the web uid; its `stop` undoes a `start` made on the root socket. The password is
// set with the CLI (stdin, then --random).

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmod, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { ControlClient } from '../../../src/control/client.ts';
import { record, sym } from '../../../src/preserves/index.ts';
import { DaemonProcess } from '../../support/daemon-process.ts';
import { skipUnmet } from '../../support/prerequisites.ts';
import { until } from '../../support/until.ts';

const repo = resolve(import.meta.dirname, '../../..');
const WEB_UID = 65534;
const OTHER_UID = 65533;

/** Runs `node ARGS` (as `uid` when given); resolves with its output once it exits. */
async function node(
  args: readonly string[],
  options: { uid?: number; stdin?: string } = {},
): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawn(process.execPath, args, {
    cwd: repo,
    env: { ...process.env, HOME: '/tmp' },
    ...(options.uid === undefined ? {} : { uid: options.uid, gid: options.uid }),
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (err += b.toString()));
  child.stdin.end(options.stdin ?? '');
  const code = await until(new Promise<number | null>((r) => child.on('close', (c) => r(c))), {
    timeoutMs: 60_000,
    describe: () => `node ${args.join(' ')}: ${out}${err}`,
  });
  return { code, out, err };
}

/** What connecting to `path` as `uid` gives: 'connected' or the error's code. */
async function probe(path: string, uid: number): Promise<string> {
  const script = `require('net').connect(${JSON.stringify(path)})
    .on('connect', () => { console.log('connected'); process.exit(0); })
    .on('error', (e) => { console.log(e.code); process.exit(0); });`;
  return (await node(['-e', script], { uid })).out.trim();
}

/** The web client's session: each request's outcome ('ok', an answer, or the error's reason). */
function sessionScript(socket: string, passwords: { right: string; old: string }): string {
  const src = (p: string) => JSON.stringify(join(repo, 'src', p));
  return `
const { ControlClient } = await import(${src('control/client.ts')});
const { parse, sym } = await import(${src('preserves/index.ts')});
const { decodeWatchEvent } = await import(${src('control/protocol.ts')});
const out = {};
const run = async (name, f) => {
  try { const v = await f(); out[name] = v === undefined ? 'ok' : v; }
  catch (e) { out[name] = e.reason ?? String(e); }
};
const c = await ControlClient.connect(${JSON.stringify(socket)});
const valid = async (password) =>
  (await c.call('check-password', { password })).get(sym('valid'));
await run('status', async () => { await c.status(); });
await run('services', async () => { await c.services(); });
await run('query', async () => { await c.query('config', parse('<service-state _ _>')); });
await run('watch', async () => {
  const ac = new AbortController();
  let synced = false;
  await c.watch('config', parse('<service-state _ _>'), {
    signal: ac.signal,
    onEvent: (v) => { if (decodeWatchEvent(v)?.type === 'synced') { synced = true; ac.abort(); } },
  }).catch((e) => { if (!synced) throw e; });
  return synced ? 'synced' : 'no synced event';
});
await run('restart', async () => { await c.restart(parse('<daemon nothing>')); });
await run('stop-of-root-start', async () =>
  (await c.stop(parse('<daemon web-test>'))).get(sym('wasRequired')));
await run('send', () => c.send('config', parse('<restart-service <daemon nothing>>')));
await run('settings-set', () => c.settingsSet(parse('<hostname "web">')));
await run('settings-unset', () => c.settingsUnset(parse('<hostname "web">')));
await run('maintenance', () => c.maintenance(true));
await run('web-password-set', () => c.call('web-password-set', { random: true }));
await run('no-such-command', () => c.call('exec', { command: 'id' }));
await run('check-too-long', () => valid('x'.repeat(1025)));
await run('check-right', () => valid(${JSON.stringify(passwords.right)}));
await run('check-old', () => valid(${JSON.stringify(passwords.old)}));
for (let i = 0; i < 4; i++) await run('check-wrong-' + i, () => valid('wrong guess ' + i));
await run('check-right-after', () => valid(${JSON.stringify(passwords.right)}));
await run('status-after', async () => { await c.status(); });
c.close();
console.log(JSON.stringify(out));
`;
}

describe('the web endpoint', () => {
  let dir: string;
  let root: string;
  let d: DaemonProcess | undefined;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'limen-web-'));
    // Nobody may pass through the test's directory; what is inside is the daemon's to guard.
    await chmod(dir, 0o755);
    root = join(dir, 'root');
  });
  after(async () => {
    await d?.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  it(
    "serves the group's uid the listed commands only, and nobody else",
    { timeout: 180_000 },
    async (t) => {
      if (skipUnmet(t, { root: 'to run clients as other uids and chown the socket' })) return;
      d = new DaemonProcess(['--root', root, '--no-network', '--web-group', String(WEB_UID)], {
        umask: '077',
      });
      await d.started();
      const web = join(root, 'run/limen/web/control.sock');
      const rootSocket = join(root, 'run/limen/control.sock');
      await d.waitFor('the web endpoint', (l) => l.socket === web && l.endpoint === 'web');

      const dirStat = await stat(dirname(web));
      assert.deepEqual(
        [dirStat.mode & 0o777, dirStat.uid, dirStat.gid],
        [0o750, 0, WEB_UID],
        'the web directory',
      );
      const sockStat = await stat(web);
      assert.ok(sockStat.isSocket());
      assert.deepEqual([sockStat.mode & 0o777, sockStat.uid, sockStat.gid], [0o660, 0, WEB_UID]);

      // The password, set with the CLI from stdin, then replaced by a random one.
      const cli = ['--import', 'tsx', join(repo, 'test/support/limen-cli.ts')];
      const old = 'correct horse battery';
      const first = await node([...cli, 'web-password', 'set', '--root', root], {
        stdin: `${old}\n`,
      });
      assert.equal(first.code, 0, first.err);
      const second = await node([...cli, 'web-password', 'set', '--random', '--root', root]);
      assert.equal(second.code, 0, second.err);
      const right = /: (\S+)\n$/.exec(second.out)?.[1];
      assert.ok(right !== undefined && right.length >= 20, second.out);
      const file = await stat(join(root, 'var/lib/limen/web-password'));
      assert.deepEqual([file.mode & 0o777, file.uid], [0o600, 0]);

      // A service required with root's socket, for the web client to stop.
      const rootClient = await ControlClient.connect(rootSocket);
      try {
        await rootClient.start(record('daemon', sym('web-test')));
      } finally {
        rootClient.close();
      }
      const session = await node(
        ['--import', 'tsx', '--input-type=module', '-e', sessionScript(web, { right, old })],
        { uid: WEB_UID },
      );
      assert.equal(session.code, 0, session.err);
      const got = JSON.parse(session.out) as Record<string, unknown>;
      assert.deepEqual(got, {
        status: 'ok',
        services: 'ok',
        query: 'ok',
        watch: 'synced',
        restart: 'ok',
        'stop-of-root-start': true,
        send: 'forbidden',
        'settings-set': 'forbidden',
        'settings-unset': 'forbidden',
        maintenance: 'forbidden',
        'web-password-set': 'forbidden',
        'no-such-command': 'forbidden',
        'check-too-long': 'bad-request',
        'check-right': true,
        'check-old': false,
        'check-wrong-0': false,
        'check-wrong-1': false,
        'check-wrong-2': false,
        'check-wrong-3': false,
        'check-right-after': 'rate-limited',
        'status-after': 'ok',
      });

      // Refusals and failures are logged, never a password.
      assert.ok(
        d.find((l) => /^control \(web\): refused send: /.test(l.msg)),
        d.logText(),
      );
      assert.equal(
        d.count((l) => l.msg === 'control (web): a password check failed'),
        5,
      );
      assert.ok(d.find((l) => /a password check refused: this connection made 5/.test(l.msg)));
      for (const secret of [right, old, 'wrong guess']) assert.ok(!d.logText().includes(secret));

      // Another uid cannot reach the web socket; the web uid cannot reach root's.
      assert.equal(await probe(web, OTHER_UID), 'EACCES');
      assert.equal(await probe(web, WEB_UID), 'connected');
      assert.equal(await probe(rootSocket, WEB_UID), 'EACCES');

      await d.stop();
      await assert.rejects(stat(web), { code: 'ENOENT' });
    },
  );

  it('is not served without --web-group, and an unknown group stops the start', async () => {
    const other = join(dir, 'plain');
    const plain = new DaemonProcess(['--root', other, '--no-network']);
    try {
      await plain.started();
      await assert.rejects(stat(join(other, 'run/limen/web')), { code: 'ENOENT' });
      assert.ok(!plain.find((l) => l.endpoint === 'web'));
    } finally {
      await plain.stop();
      await plain.dispose();
    }
    const bad = new DaemonProcess([
      '--root',
      other,
      '--no-network',
      '--web-group',
      'no-such-group',
    ]);
    try {
      assert.equal((await bad.exit()).code, 1);
      assert.match(bad.logText(), /--web-group no-such-group: no such group in \/etc\/group/);
    } finally {
      await bad.dispose();
    }
  });
});
