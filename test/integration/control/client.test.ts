// The control client against fake daemons that misbehave (wrong version, no
// greeting, dropping the connection), and the CLI run as another user.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  ControlClient,
  ControlClosedError,
  ControlConnectError,
  ControlVersionError,
  ProtocolError,
} from '../../../src/control/client.ts';
import { until } from '../../support/until.ts';
import { startHarness } from '../../unit/control/harness.ts';
import { skipUnmet } from '../../support/prerequisites.ts';

const repo = join(dirname(fileURLToPath(import.meta.url)), '../../..');

describe('control client', () => {
  let dir: string;
  const servers: Server[] = [];
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'limen-client-'));
  });
  after(async () => {
    for (const s of servers) await new Promise((r) => s.close(r));
    await rm(dir, { recursive: true, force: true });
  });

  /** A fake daemon: `onConnect` scripts what it says. */
  async function fake(name: string, onConnect: (s: Socket) => void): Promise<string> {
    const path = join(dir, name);
    const srv = createServer((s) => {
      s.on('error', () => undefined);
      onConnect(s);
    });
    servers.push(srv);
    await new Promise<void>((r) => srv.listen(path, r));
    return path;
  }

  it('says how to start the daemon when nothing listens', async () => {
    const path = join(dir, 'missing.sock');
    await assert.rejects(ControlClient.connect(path), (e: unknown) => {
      assert.ok(e instanceof ControlConnectError);
      assert.equal(e.errno, 'ENOENT');
      assert.equal(
        e.message,
        `cannot reach limen at ${path} (ENOENT): is the daemon running? start it with \`limen daemon\` or \`systemctl start limen\``,
      );
      return true;
    });
  });

  it('refuses a daemon that speaks another protocol version', async () => {
    const path = await fake('v2.sock', (s) => s.write('<limen-control 2>\n'));
    await assert.rejects(ControlClient.connect(path), ControlVersionError);
  });

  it('refuses something that does not greet like limen', async () => {
    const http = await fake('http.sock', (s) => s.write('HTTP/1.1 400 Bad Request\r\n'));
    await assert.rejects(ControlClient.connect(http), ProtocolError);
    const mute = await fake('mute.sock', () => undefined);
    await assert.rejects(ControlClient.connect(mute, { greetingTimeoutMs: 50 }), {
      errno: 'ETIMEDOUT',
    });
  });

  it('rejects open requests with the reason when the daemon drops the connection', async () => {
    const path = await fake('drop.sock', (s) => {
      s.write('<limen-control 1>\n');
      s.once('data', () => s.end('<error #f lagged "you did not read fast enough">\n'));
    });
    const c = await ControlClient.connect(path);
    await assert.rejects(c.status(), (e: unknown) => {
      assert.ok(e instanceof ControlClosedError);
      assert.equal(e.message, 'limen closed the connection (lagged: you did not read fast enough)');
      return true;
    });
    assert.ok(c.isClosed);
    await assert.rejects(c.status(), ControlClosedError);
  });

  it('handles answers in any order and events before the answer', async () => {
    const path = await fake('order.sock', (s) => {
      s.write('<limen-control 1>\n');
      let buf = '';
      s.on('data', (b: Buffer) => {
        buf += b.toString();
        if (buf.split('\n').length < 3) return;
        // Both requests are in: answer the second first, with an event for the first.
        s.write('<ok 2 "second">\n<event 1 <progress "half">>\n<ok 1 "first">\n');
      });
    });
    const c = await ControlClient.connect(path);
    try {
      const events: unknown[] = [];
      const first = c.request('ifup', { interface: 'eth0' }, { onEvent: (v) => events.push(v) });
      const second = c.status();
      assert.equal(await second, 'second');
      assert.equal(await first, 'first');
      assert.equal(events.length, 1);
    } finally {
      c.close();
    }
  });

  it('an aborted signal cancels before anything is sent', async () => {
    const h = await startHarness();
    try {
      const c = await ControlClient.connect(h.socketPath);
      const ac = new AbortController();
      ac.abort();
      await assert.rejects(
        c.status().then(() => c.request('status', {}, { signal: ac.signal })),
        {
          name: 'AbortError',
        },
      );
      c.close();
    } finally {
      await h.close();
    }
  });
});

describe('the CLI as another user', () => {
  it('says the socket is root-only (exit 3)', async (t) => {
    if (skipUnmet(t, { root: 'to run the CLI as nobody' })) return;
    const h = await startHarness();
    try {
      for (let d = dirname(h.socketPath); d.startsWith(h.dir); d = dirname(d)) {
        await chmod(d, 0o755);
      }
      const script =
        `const { main } = await import(${JSON.stringify(join(repo, 'src/cli/main.ts'))});` +
        `process.exitCode = await main(['status', '--socket', ${JSON.stringify(h.socketPath)}]);`;
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', '--input-type=module', '-e', script],
        {
          cwd: repo,
          uid: 65534,
          gid: 65534,
          env: { ...process.env, HOME: '/tmp' },
        },
      );
      let err = '';
      child.stderr.on('data', (b: Buffer) => (err += b.toString()));
      const code = await until(new Promise<number | null>((r) => child.on('close', (c) => r(c))), {
        timeoutMs: 30_000,
        describe: () => err,
      });
      assert.equal(
        err,
        `limen status: permission denied on ${h.socketPath}: the control socket is root-only; run as root (e.g. with sudo)\n`,
      );
      assert.equal(code, 3);
    } finally {
      await h.close();
    }
  });
});
