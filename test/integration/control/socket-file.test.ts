// Binding the control socket: of several binders of one path at once, exactly
// one gets it, whether the path is free or holds a stale socket (a rename into
// place used to let each replace the last, leaving several daemons each sure the
// socket was theirs); a connection that arrives before the server is ready is
// held and handed over, not lost. The web endpoint's group socket: 0660 in a 0750
// directory of root and the group, whatever the umask and whatever was there.

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  chmodSync,
  chownSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  bindSocketFile,
  listenOnSocketFile,
  prepareGroupDirectory,
} from '../../../src/control/socket-file.ts';
import { ControlSocketInUseError, SocketPathError } from '../../../src/control/errors.ts';
import { skipUnmet } from '../../support/prerequisites.ts';
import { until } from '../../support/until.ts';

const BINDERS = 8;

function close(s: Server): Promise<void> {
  return new Promise((r) => (s.listening ? s.close(() => r()) : r()));
}

describe('socket file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'limen-sockfile-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const stale of [false, true]) {
    it(`goes to exactly one of ${BINDERS} binders at once${stale ? ', over a stale socket' : ''}`, async () => {
      const path = join(dir, stale ? 'stale.sock' : 'free.sock');
      if (stale) {
        // A socket nobody listens on any more, as a daemon killed with SIGKILL leaves it:
        // closing the server unlinks only the name it was bound under (in the private
        // directory, already gone), so the file at `path` stays.
        const old = createServer();
        await bindSocketFile(old, path);
        await close(old);
        assert.ok(readdirSync(dir).includes('stale.sock'));
      }
      const servers = Array.from({ length: BINDERS }, () =>
        createServer((s) => {
          s.on('error', () => {}); // the binders' liveness probes hang up at once
          s.end('mine\n');
        }),
      );
      const results = await Promise.allSettled(servers.map((s) => bindSocketFile(s, path)));
      try {
        const won = results.filter((r) => r.status === 'fulfilled');
        assert.equal(won.length, 1, JSON.stringify(results.map((r) => r.status)));
        for (const r of results) {
          if (r.status === 'rejected')
            assert.ok(r.reason instanceof ControlSocketInUseError, String(r.reason));
        }
        // The one that won answers, and nothing is left of the private directories.
        const answer = await new Promise<string>((resolve, reject) => {
          const c = connect(path);
          c.setEncoding('utf8').once('data', (d: string) => resolve(d));
          c.once('error', reject);
        });
        assert.equal(answer, 'mine\n');
        assert.deepEqual(
          readdirSync(dir).filter((n) => n.startsWith('.')),
          [],
        );
      } finally {
        await Promise.all(servers.map(close));
      }
    });
  }

  it('holds a connection that arrives before the server is ready, and hands it over', async () => {
    const path = join(dir, 'early.sock');
    const listening = await listenOnSocketFile(path);
    const client = connect(path);
    let got = '';
    client.setEncoding('utf8').on('data', (d: string) => void (got += d));
    await new Promise((r) => client.once('connect', r));
    client.write('early\n');
    const seen: Socket[] = [];
    listening.accept((s) => {
      seen.push(s);
      s.setEncoding('utf8').once('data', (d: string) => s.end(`echo ${d}`));
    });
    await until(() => got === 'echo early\n', { describe: () => `got ${JSON.stringify(got)}` });
    assert.equal(seen.length, 1);
    await listening.close();
    assert.equal(readdirSync(dir).includes('early.sock'), false, 'close() removes the socket');
  });

  it('makes a group socket 0660 in a 0750 directory of root and the group, under umask 000', async (t) => {
    if (skipUnmet(t, { root: 'to chown to another group' })) return;
    const gid = 65534;
    const web = join(dir, 'web');
    // What was there: a directory anyone may write, of another group.
    mkdirSync(web);
    chmodSync(web, 0o777);
    chownSync(web, 0, 12345);
    const old = process.umask(0);
    const server = createServer();
    try {
      await prepareGroupDirectory(web, gid);
      await bindSocketFile(server, join(web, 'control.sock'), { gid });
    } finally {
      process.umask(old);
    }
    try {
      const d = statSync(web);
      assert.deepEqual([d.mode & 0o777, d.uid, d.gid], [0o750, 0, gid]);
      const s = statSync(join(web, 'control.sock'));
      assert.deepEqual([s.isSocket(), s.mode & 0o777, s.uid, s.gid], [true, 0o660, 0, gid]);
      assert.deepEqual(readdirSync(web), ['control.sock']);
    } finally {
      await close(server);
    }
  });

  it("refuses a group directory that is a symbolic link, a file or another user's", async (t) => {
    if (skipUnmet(t, { root: 'to chown to another user' })) return;
    const target = join(dir, 'elsewhere');
    mkdirSync(target);
    symlinkSync(target, join(dir, 'link'));
    await assert.rejects(prepareGroupDirectory(join(dir, 'link'), 65534), SocketPathError);
    assert.equal(statSync(target).gid, 0, 'the link was not followed');
    const file = join(dir, 'file');
    writeFileSync(file, '');
    await assert.rejects(prepareGroupDirectory(file, 65534), /is not a directory/);
    const theirs = join(dir, 'theirs');
    mkdirSync(theirs);
    chownSync(theirs, 65534, 65534);
    await assert.rejects(prepareGroupDirectory(theirs, 65534), /owned by uid 65534/);
  });
});
