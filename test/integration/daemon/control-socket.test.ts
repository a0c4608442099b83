// The control socket is never connectable by another user, at any moment of the
// daemon's start, whatever the umask. The real daemon starts and stops again and
// again under umask 000 while an unprivileged user (uid 65534, `nobody`) tries, in
// a tight bounded loop, to connect to every socket it can find where the socket
// is made. Not one connection may succeed; root's must, after every start. (Before
// the socket was bound inside a private directory, the prober connected during
// the window between bind and chmod, and through such a connection ran commands
// as root.)

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { ControlClient } from '../../../src/control/client.ts';
import { until } from '../../support/until.ts';
import { prerequisites } from '../../support/prerequisites.ts';

const repo = resolve(import.meta.dirname, '../../..');
const NOBODY = 65534;
const CYCLES = 40;
const MAX_PROBE_ROUNDS = 2_000_000;

interface ProbeReport {
  uid: number;
  rounds: number;
  socketsSeen: number;
  connected: string[];
}

describe('control socket', { skip: prerequisites({ root: 'runs a prober as nobody' }) }, () => {
  const children: ChildProcess[] = [];
  let dir: string | undefined;
  after(() => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('is never connectable by another user while the daemon starts under umask 000', async (t) => {
    dir = mkdtempSync(join(tmpdir(), 'limen-socket-'));
    chmodSync(dir, 0o755); // nobody must reach the run directory, as on a real machine
    const site = join(dir, 'site');
    mkdirSync(join(site, 'core'), { recursive: true });
    const root = join(dir, 'root');
    const runDir = join(root, 'run/limen');
    const socket = join(runDir, 'control.sock');
    const stopFile = join(dir, 'stop');

    const prober = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        join(repo, 'test/support/socket-prober.ts'),
        runDir,
        stopFile,
        String(MAX_PROBE_ROUNDS),
      ],
      { cwd: repo, uid: NOBODY, gid: NOBODY, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    children.push(prober);
    let report = '';
    prober.stdout.setEncoding('utf8').on('data', (c: string) => void (report += c));
    const proberExited = new Promise<void>((r) => prober.once('exit', () => r()));

    const daemon = spawn(
      'sh',
      [
        '-c',
        'umask 000 && exec "$@"',
        'sh',
        process.execPath,
        '--import',
        'tsx',
        join(repo, 'test/support/daemon-cycles.ts'),
        root,
        site,
        String(CYCLES),
      ],
      { cwd: repo, stdio: ['pipe', 'pipe', 'inherit'] },
    );
    children.push(daemon);
    const daemonExited = new Promise<number | null>((r) => daemon.once('exit', (code) => r(code)));
    const lines = createInterface({ input: daemon.stdout })[Symbol.asyncIterator]();

    let rootConnections = 0;
    for (let i = 0; i < CYCLES; i++) {
      const line = await until(lines.next(), {
        timeoutMs: 20_000,
        describe: () => `daemon start ${i}`,
      });
      assert.equal(line.value, `up ${i}`);
      // Root gets in, through the socket's final name, with mode 0600.
      const client = await ControlClient.connect(socket);
      await client.status();
      client.close();
      rootConnections++;
      assert.equal(statSync(socket).mode & 0o777, 0o600);
      // The private directory the socket was bound in is gone.
      assert.deepEqual(
        readdirSync(runDir).filter((n) => n.startsWith('.')),
        [],
        'nothing left of the private directory',
      );
      daemon.stdin.write('\n');
    }
    assert.equal(
      (await until(lines.next(), { timeoutMs: 20_000, describe: () => 'done' })).value,
      'done',
    );
    assert.equal(
      await until(daemonExited, {
        timeoutMs: 20_000,
        describe: () => 'the daemon process to exit',
      }),
      0,
    );

    writeFileSync(stopFile, '');
    await until(proberExited, {
      timeoutMs: 60_000,
      describe: () => `the prober to stop (said: ${report})`,
    });
    const probe = JSON.parse(report) as ProbeReport;
    t.diagnostic(`${CYCLES} starts; the prober: ${report.trim()}`);
    assert.equal(probe.uid, NOBODY);
    assert.equal(rootConnections, CYCLES);
    // The prober was really at work: it saw the socket (and tried it) many times.
    assert.ok(probe.socketsSeen > CYCLES, `the prober saw sockets: ${report}`);
    assert.deepEqual(probe.connected, [], `nobody connected to the control socket: ${report}`);
  });
});
