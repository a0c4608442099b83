// The control server on a real socket in a temp directory, with an in-process
// engine and fake services/interfaces: every request, robustness against bad,
// huge and slow clients, many watchers, the socket's mode and owner check.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmod, readdir, stat, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import {
  ControlClient,
  ControlSocketInUseError,
  decodeLogEntry,
  decodeQueryAnswer,
  decodeServiceDetail,
  decodeSettingsAnswer,
  decodeWatchEvent,
  settingFileName,
  startControlServer,
  type WatchEvent,
} from '../../../src/control/index.ts';
import { compilePattern, type Handle } from '../../../src/dataspace/index.ts';
import { Dict, dict, is, parse, record, sym, type Value } from '../../../src/preserves/index.ts';
import { until } from '../../support/until.ts';
import { RawClient, daemon, startHarness, type Harness } from '../../unit/control/harness.ts';
import { skipUnmet } from '../../support/prerequisites.ts';

function events(list: Value[]): WatchEvent[] {
  return list.map((v) => decodeWatchEvent(v)!);
}

function hasEvent(list: Value[], type: WatchEvent['type'], value?: Value): boolean {
  return events(list).some(
    (e) => e.type === type && (value === undefined || (e.type !== 'synced' && is(e.value, value))),
  );
}

describe('control server', () => {
  let h: Harness;
  let client: ControlClient;
  before(async () => {
    h = await startHarness({ interfaceTimeoutMs: 5000 });
    client = await ControlClient.connect(h.socketPath);
  });
  after(async () => {
    client?.close();
    await h?.close();
  });

  describe('the socket', () => {
    it('has mode 0600 and no temporary name is left beside it', async () => {
      const s = await stat(h.socketPath);
      assert.ok(s.isSocket());
      assert.equal(s.mode & 0o777, 0o600);
      assert.deepEqual(await readdir(dirname(h.socketPath)), ['control.sock']);
    });

    it('greets with the protocol version', async () => {
      const raw = await RawClient.connect(h.socketPath);
      try {
        assert.equal(await raw.waitFor(/^<limen-control/), '<limen-control 1>');
      } finally {
        raw.close();
      }
    });

    it('refuses a client of another uid (the kernel says EACCES)', async (t) => {
      if (skipUnmet(t, { root: 'to run a client as nobody' })) return;
      // Let nobody reach the directory, so that only the socket's own mode stands in the way.
      for (let d = dirname(h.socketPath); d.startsWith(h.dir); d = dirname(d))
        await chmod(d, 0o755);
      const script = `require('net').connect(${JSON.stringify(h.socketPath)})
        .on('connect', () => { console.log('connected'); process.exit(0); })
        .on('error', (e) => { console.log(e.code); process.exit(0); });`;
      const child = spawn(process.execPath, ['-e', script], { uid: 65534, gid: 65534 });
      let out = '';
      child.stdout.on('data', (b: Buffer) => (out += b.toString()));
      await until(new Promise((r) => child.on('close', r)));
      assert.equal(out.trim(), 'EACCES');
    });

    it('refuses to start on a socket another server listens on, or on a non-socket', async () => {
      await assert.rejects(
        startControlServer({
          socketPath: h.socketPath,
          facet: h.engine.root,
          dataspaces: { config: h.config.ref, machine: h.machine.ref, log: h.log.ref },
          services: h.services,
          settings: h.settings,
          status: () => true,
          logger: { error() {}, warn() {} },
        }),
        ControlSocketInUseError,
      );
      await assert.rejects(
        startControlServer({
          socketPath: join(h.dir, 'run/limen'),
          facet: h.engine.root,
          dataspaces: { config: h.config.ref, machine: h.machine.ref, log: h.log.ref },
          services: h.services,
          settings: h.settings,
          status: () => true,
          logger: { error() {}, warn() {} },
        }),
        /not a socket/,
      );
      // The running server is untouched.
      assert.ok(is(await client.status(), await client.status()));
    });

    it('replaces a stale socket, and removes its socket on close', async () => {
      // A daemon killed outright leaves its socket file behind, with nobody listening.
      const path = join(h.dir, 'stale.sock');
      const script = `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`;
      const child = spawn(process.execPath, ['-e', script]);
      await until(new Promise((r) => child.on('close', r)));
      assert.ok((await stat(path)).isSocket());
      await assert.rejects(ControlClient.connect(path), { errno: 'ECONNREFUSED' });
      const srv = await startControlServer({
        socketPath: path,
        facet: h.engine.root,
        dataspaces: { config: h.config.ref, machine: h.machine.ref, log: h.log.ref },
        services: h.services,
        settings: h.settings,
        status: () => 'second',
        logger: { error() {}, warn() {} },
      });
      try {
        const c = await ControlClient.connect(path);
        assert.equal(await c.status(), 'second');
        c.close();
      } finally {
        await srv.close();
      }
      await assert.rejects(stat(path), { code: 'ENOENT' });
    });
  });

  describe('requests', () => {
    it('status', async () => {
      const s = await client.status();
      assert.ok(s instanceof Dict);
      assert.equal(s.get(sym('version')), '0.1.0');
    });

    it('services and service', async () => {
      h.services.add({
        service: daemon('sshd'),
        state: 'ready',
        pids: [42],
        restarts: 1,
        since: Date.UTC(2024, 0, 1),
        lastExit: 'exited with code 1',
        processes: [{ spec: 'sshd -D', state: 'ready', pid: 42, restarts: 1, problems: [] }],
      });
      h.services.add({
        service: daemon('aaa'),
        state: 'failed',
        pids: [],
        restarts: 5,
        processes: [],
      });
      const list = await client.services();
      assert.ok(Array.isArray(list));
      assert.deepEqual(
        (list as Value[]).map((d) => (d as Dict).get(sym('service'))),
        [daemon('aaa'), daemon('sshd')],
      );
      const out = h.engine.root.assert(
        h.config.ref,
        record('output', daemon('sshd'), sym('port'), 22),
      );
      try {
        const d = decodeServiceDetail(await client.service(daemon('sshd')));
        assert.equal(d.state, 'ready');
        assert.equal(d.since, Date.UTC(2024, 0, 1));
        assert.equal(d.processes[0]!.pid, 42);
        assert.equal(d.outputs!.length, 1);
        assert.ok(is(d.outputs![0]![0], sym('port')));
        assert.equal(d.outputs![0]![1], 22);
      } finally {
        out.dispose();
      }
      await assert.rejects(client.service(daemon('nope')), {
        reason: 'not-found',
        message: 'unknown service <daemon nope>',
      });
    });

    it('logs, with a tail size', async () => {
      const log = h.services.add({
        service: daemon('talker'),
        state: 'ready',
        pids: [],
        restarts: 0,
        processes: [],
      });
      log.append('one');
      log.append('two', 'stderr');
      log.append('three');
      const all = (await client.logs(daemon('talker'))) as Value[];
      assert.deepEqual(
        all.map((e) => decodeLogEntry(e).line),
        ['one', 'two', 'three'],
      );
      const last = (await client.logs(daemon('talker'), 2)) as Value[];
      assert.deepEqual(
        last.map((e) => decodeLogEntry(e)),
        [
          { time: log.lines[1]!.time, stream: 'stderr', line: 'two' },
          { time: log.lines[2]!.time, stream: 'stdout', line: 'three' },
        ],
      );
      await assert.rejects(client.logs(daemon('silent')), { reason: 'not-found' });
    });

    it('logs follow: the tail, then new lines, until cancelled (and the listener goes)', async () => {
      const log = h.services.add({
        service: daemon('follow'),
        state: 'ready',
        pids: [],
        restarts: 0,
        processes: [],
      });
      log.append('before 1');
      log.append('before 2');
      const got: string[] = [];
      const ac = new AbortController();
      const done = client.followLogs(daemon('follow'), {
        lines: 1,
        signal: ac.signal,
        onEntry: (v) => got.push(decodeLogEntry(v).line),
      });
      await until(() => got.length === 1 && log.followers === 1);
      log.append('after 1');
      log.append('after 2');
      await until(() => got.length === 3, { describe: () => JSON.stringify(got) });
      assert.deepEqual(got, ['before 2', 'after 1', 'after 2']);
      ac.abort();
      await assert.rejects(done, { name: 'AbortError' });
      await until(() => log.followers === 0);
    });

    it('query: a snapshot of matching assertions, with captures in order', async () => {
      const hs: Handle[] = [];
      h.engine.turn(() => {
        hs.push(h.engine.root.assert(h.machine.ref, record('interface', 'eth1', 3, sym('up'))));
        hs.push(h.engine.root.assert(h.machine.ref, record('interface', 'eth0', 2, sym('down'))));
        hs.push(h.engine.root.assert(h.config.ref, record('interface', 'cfg', 9, sym('up'))));
      });
      try {
        const a = decodeQueryAnswer(
          await client.query('machine', parse('<interface ?name _ ?state>')),
        );
        assert.deepEqual(a.names, ['name', 'state']);
        assert.deepEqual(
          a.matches.map((m) => m.captures.map(([k]) => k)),
          [
            ['name', 'state'],
            ['name', 'state'],
          ],
        );
        assert.ok(is(a.matches[0]!.value, record('interface', 'eth0', 2, sym('down'))));
        assert.ok(is(a.matches[0]!.captures[1]![1], sym('down')));
        assert.equal(a.matches[1]!.captures[0]![1], 'eth1');
        const none = decodeQueryAnswer(await client.query('log', parse('<interface _>')));
        assert.deepEqual(none.matches, []);
      } finally {
        for (const x of hs) x.dispose();
      }
      await assert.rejects(client.query('config', parse('<a ?x ?x>')), {
        reason: 'bad-request',
        message: /bad pattern: \?x is captured twice/,
      });
    });

    it('watch: + for present and new assertions, - when they go, ! for messages', async () => {
      const first = h.engine.root.assert(h.config.ref, record('probe', 1));
      const got: Value[] = [];
      const ac = new AbortController();
      const done = client.watch('config', parse('<probe ?n>'), {
        signal: ac.signal,
        onEvent: (v) => got.push(v),
      });
      await until(() => hasEvent(got, 'synced'));
      assert.deepEqual(events(got), [
        { type: 'added', value: record('probe', 1), captures: [['n', 1]] },
        { type: 'synced' },
      ]);
      const second = h.engine.root.assert(h.config.ref, record('probe', 2));
      await until(() => hasEvent(got, 'added', record('probe', 2)));
      first.dispose();
      await until(() => hasEvent(got, 'removed', record('probe', 1)));
      await client.send('config', record('probe', 'msg'));
      await until(() => hasEvent(got, 'message', record('probe', 'msg')));
      ac.abort();
      await assert.rejects(done, { name: 'AbortError' });
      second.dispose();
    });

    it('send: a message into the named dataspace', async () => {
      const seen: Value[] = [];
      h.engine.turn(() =>
        h.engine.root.observe(h.log.ref, compilePattern(parse('<note _>')), {
          onMessage: (v) => void seen.push(v),
        }),
      );
      assert.equal(await client.send('log', record('note', 'hi')), true);
      await until(() => seen.length === 1);
      assert.ok(is(seen[0]!, record('note', 'hi')));
    });

    it('start, stop and restart a service', async () => {
      const s = daemon('web');
      const req = record('require-service', s);
      const started = await client.start(s);
      assert.equal((started as Dict).get(sym('already')), false);
      assert.ok(h.config.has(req));
      assert.equal(((await client.start(s)) as Dict).get(sym('already')), true);
      assert.equal(h.config.count(req), 1);

      const restarts: Value[] = [];
      h.engine.turn(() =>
        h.engine.root.observe(
          h.config.ref,
          { type: 'discard', pos: undefined },
          {
            onMessage: (v) => void restarts.push(v),
          },
        ),
      );
      await client.restart(s);
      await until(() => restarts.some((v) => is(v, record('restart-service', s))));

      const stopped = (await client.stop(s)) as Dict;
      assert.equal(stopped.get(sym('wasRequired')), true);
      assert.ok(!h.config.has(req));
      const again = (await client.stop(s)) as Dict;
      assert.equal(again.get(sym('wasRequired')), false);
    });

    it('stop fails with still-required when the configuration requires the service', async () => {
      const s = daemon('core');
      const cfg = h.engine.root.assert(h.config.ref, record('require-service', s));
      try {
        await client.start(s);
        assert.equal(h.config.count(record('require-service', s)), 2);
        await assert.rejects(client.stop(s), {
          reason: 'still-required',
          message: /still required by the configuration/,
        });
        assert.equal(h.config.count(record('require-service', s)), 1);
      } finally {
        cfg.dispose();
      }
    });

    it('ifup streams progress and answers when the interface is up', async () => {
      const progress: Value[] = [];
      const answer = (await client.ifup('ok0', { onProgress: (v) => progress.push(v) })) as Dict;
      assert.equal(answer.get(sym('interface')), 'ok0');
      assert.ok(is(answer.get(sym('detail'))!, dict({ address: '192.0.2.10/24' })));
      assert.deepEqual(progress.length, 2);
      assert.ok(is(progress[0]!, record('progress', 'link is up')));
    });

    it('ifup fails with the reason; ifdown too', async () => {
      const progress: Value[] = [];
      await assert.rejects(client.ifup('bad0', { onProgress: (v) => progress.push(v) }), {
        reason: 'failed',
        message: 'bad0: no carrier',
      });
      assert.ok(is(progress[0]!, record('progress', 'waiting for carrier')));
      await assert.rejects(client.ifdown('bad1'), { reason: 'failed' });
      assert.ok(h.interfaces.calls.includes('down bad1'));
    });

    it('ifup times out, and the controller sees its signal abort', async () => {
      const before = h.interfaces.aborted;
      await assert.rejects(client.ifup('slow0', { timeoutMs: 50 }), {
        reason: 'timeout',
        message: 'slow0 did not come up within 50 ms',
      });
      await until(() => h.interfaces.aborted === before + 1);
    });

    it('cancelling ifup aborts the work', async () => {
      const before = h.interfaces.aborted;
      const ac = new AbortController();
      const p = client.ifup('slow1', { signal: ac.signal, onProgress: () => ac.abort() });
      await assert.rejects(p, { name: 'AbortError' });
      await until(() => h.interfaces.aborted === before + 1);
      assert.equal(await client.status().then(() => 'alive'), 'alive');
    });

    it('a throwing controller is an internal error, logged, and the connection goes on', async () => {
      await assert.rejects(client.ifup('throw0'), {
        reason: 'internal',
        message: /driver exploded/,
      });
      assert.ok(
        h.logged.some((l) => l.level === 'error' && /ifup failed: driver exploded/.test(l.message)),
      );
      await client.status();
    });

    it('refuses a bad interface name, listing every problem', async () => {
      await assert.rejects(client.request('ifup', { interface: 'a/b', timeout: -1 }), {
        reason: 'bad-request',
        message:
          "argument timeout must be a non-negative integer, got -1; 'a/b' is not an interface name: it has a character other than letters, digits, '_', '.', '@', '+' and '-'",
      });
    });

    it('settings set, list and unset, with the files on disk', async () => {
      const v = record('hostname', 'router');
      const set = (await client.settingsSet(v)) as Dict;
      assert.equal(set.get(sym('file')), settingFileName(v));
      assert.equal(set.get(sym('changed')), true);
      const text = await readFile(join(h.settingsDir, settingFileName(v)), 'utf8');
      assert.ok(is(parse(text), v));
      assert.equal(((await client.settingsSet(v)) as Dict).get(sym('changed')), false);
      await client.settingsSet('plain');
      const list = decodeSettingsAnswer(await client.settingsList());
      assert.equal(list.settings.length, 2);
      assert.ok(list.settings.some((s) => is(s.value, v)));
      assert.deepEqual(list.problems, []);
      assert.deepEqual(
        (await readdir(h.settingsDir)).sort(),
        [settingFileName(v), settingFileName('plain')].sort(),
      );
      await client.settingsUnset(v);
      await assert.rejects(client.settingsUnset(v), { reason: 'not-found' });
      await assert.rejects(client.settingsSet(record('x', sym('$y'))), {
        reason: 'invalid-setting',
        message: /symbol \$y is a variable/,
      });
      await client.settingsUnset('plain');
      assert.deepEqual(await readdir(h.settingsDir), []);
    });

    it('unknown commands and duplicate ids are errors; the connection goes on', async () => {
      await assert.rejects(client.request('frob' as never, {}), { reason: 'unknown-command' });
      const raw = await RawClient.connect(h.socketPath);
      try {
        raw.send('<request 1 watch {pattern: <x>}>');
        await raw.waitFor(/^<event 1 <synced>>/);
        raw.send('<request 1 status {}>');
        await raw.waitFor(/^<error 1 duplicate-id "request 1 is still open">$/);
        raw.send('<cancel 1>');
        await raw.waitFor(/^<end 1>$/);
        raw.send('<cancel 1>'); // already finished: ignored
        raw.send('<request 1 status {}>');
        await raw.waitFor(/^<ok 1 \{/);
      } finally {
        raw.close();
      }
    });
  });

  describe('robustness', () => {
    it('answers a malformed line with an error and keeps the connection usable', async () => {
      const raw = await RawClient.connect(h.socketPath);
      try {
        raw.send('<request 1 status {}');
        raw.send('[not a request]');
        raw.send('<request 2 status [1]>');
        raw.send('<request 3 status {}>');
        await raw.waitFor(/^<ok 3 /);
        assert.deepEqual(raw.lines.slice(0, 4), [
          '<limen-control 1>',
          `<error #f syntax "not Preserves text: expected '>' to close the record opened at 1:1, found end of input (column 21)">`,
          '<error #f bad-request "expected <request ID COMMAND {ARGS}> or <cancel ID>, got [not a request]">',
          '<error 2 bad-request "the arguments must be a dictionary, as in {}">',
        ]);
        assert.equal(raw.closed, false);
      } finally {
        raw.close();
      }
    });

    it('closes only the connection that sends a line over 1 MiB', async () => {
      const big = await RawClient.connect(h.socketPath);
      const other = await RawClient.connect(h.socketPath);
      try {
        await big.waitFor(/^<limen-control/);
        big.socket.write('<request 1 send {message: "' + 'x'.repeat(1024 * 1024 + 10));
        await until(() => big.closed, { describe: () => JSON.stringify(big.lines) });
        assert.match(
          big.lines.at(-1)!,
          /^<error #f line-too-long "a line was longer than 1048576 bytes/,
        );
        other.send('<request 1 status {}>');
        await other.waitFor(/^<ok 1 /);
        assert.ok(h.logged.some((l) => /over 1048576 bytes/.test(l.message)));
      } finally {
        big.close();
        other.close();
      }
    });

    it('accepts a line just under the limit', async () => {
      const raw = await RawClient.connect(h.socketPath);
      try {
        const payload = 'y'.repeat(1024 * 1024 - 100);
        raw.send(`<request 1 send {message: "${payload}"}>`);
        await raw.waitFor(/^<ok 1 #t>$/);
      } finally {
        raw.close();
      }
    });
  });
});

describe('a client that stops reading', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ maxOutputBytes: 256 * 1024, dropGraceMs: 10_000 });
  });
  after(async () => {
    await h?.close();
  });

  it('is dropped (told it lagged) without holding up the others', async () => {
    const slow = await RawClient.connect(h.socketPath);
    const fast = await RawClient.connect(h.socketPath);
    try {
      slow.send('<request 1 watch {pattern: <big ?n _>}>');
      fast.send('<request 1 watch {pattern: <big ?n _>}>');
      await slow.waitFor(/^<event 1 <synced>>/);
      await fast.waitFor(/^<event 1 <synced>>/);
      slow.socket.pause();
      // Batches of ~50 KB, each read by the fast client before the next: it keeps up, the
      // paused one falls behind by the kernel's socket buffer, then past the 256 KiB bound.
      const filler = 'z'.repeat(1024);
      const batches = 60;
      const perBatch = 50;
      const count = batches * perBatch;
      const added = (): number => fast.lines.filter((l) => l.startsWith('<event 1 <added')).length;
      for (let b = 0; b < batches; b++) {
        h.engine.turn(() => {
          for (let i = 0; i < perBatch; i++) {
            h.engine.root.assert(h.config.ref, record('big', b * perBatch + i, filler));
          }
        });
        await until(() => added() === (b + 1) * perBatch, {
          describe: () => `batch ${b}: the fast client has ${added()} events`,
        });
      }
      await until(() =>
        h.logged.some((l) => l.level === 'warn' && /does not read its output/.test(l.message)),
      );
      // The daemon still answers anyone else.
      fast.send('<request 2 status {}>');
      await fast.waitFor(/^<ok 2 /);
      // Once the slow client reads again, it finds out why it was dropped, then EOF.
      slow.socket.resume();
      await until(() => slow.closed, { timeoutMs: 10_000 });
      assert.match(slow.lines.at(-1)!, /^<error #f lagged "you did not read fast enough/);
      assert.ok(slow.lines.length < count);
      await until(() => h.server.connectionCount === 1);
    } finally {
      slow.close();
      fast.close();
    }
  });
});

describe('200 concurrent watchers', () => {
  let h: Harness;
  before(async () => {
    // Over the default limit of 128 connections: a daemon may be given more.
    h = await startHarness({ maxConnections: 200 });
  });
  after(async () => {
    await h?.close();
  });

  it('each get every + - and ! event', async () => {
    const n = 200;
    const ac = new AbortController();
    const clients = await Promise.all(
      Array.from({ length: n }, () => ControlClient.connect(h.socketPath)),
    );
    const seen = clients.map(() => [] as Value[]);
    const watches = clients.map((c, i) =>
      c.watch('machine', parse('<link ?name ?state>'), {
        signal: ac.signal,
        onEvent: (v) => seen[i]!.push(v),
      }),
    );
    try {
      await until(() => seen.every((s) => hasEvent(s, 'synced')), { timeoutMs: 20_000 });
      assert.equal(h.server.connectionCount, n);
      const link = record('link', 'eth0', sym('up'));
      const handle = h.engine.root.assert(h.machine.ref, link);
      await until(() => seen.every((s) => hasEvent(s, 'added', link)), { timeoutMs: 20_000 });
      handle.dispose();
      await until(() => seen.every((s) => hasEvent(s, 'removed', link)), { timeoutMs: 20_000 });
      const msg = record('link', 'eth0', sym('flap'));
      await clients[0]!.send('machine', msg);
      await until(() => seen.every((s) => hasEvent(s, 'message', msg)), { timeoutMs: 20_000 });
      for (const s of seen) {
        assert.deepEqual(
          events(s).map((e) => e.type),
          ['synced', 'added', 'removed', 'message'],
        );
      }
    } finally {
      ac.abort();
      await Promise.allSettled(watches);
      for (const c of clients) c.close();
    }
    await until(() => h.server.connectionCount === 0);
  });
});

describe('close', () => {
  it('ends open streams, retracts what start asserted, and removes the socket', async () => {
    const h = await startHarness();
    try {
      const c = await ControlClient.connect(h.socketPath);
      await c.start(daemon('x'));
      assert.ok(h.config.has(record('require-service', daemon('x'))));
      const watch = assert.rejects(c.watch('config', parse('_'), { onEvent: () => undefined }), {
        code: 'LIMEN_CONTROL_CLOSED',
        message: 'limen closed the connection (shutting-down: limen is shutting down)',
      });
      await h.server.close();
      await watch;
      assert.ok(!h.config.has(record('require-service', daemon('x'))));
      await assert.rejects(stat(h.socketPath), { code: 'ENOENT' });
      await assert.rejects(ControlClient.connect(h.socketPath), {
        code: 'LIMEN_CONTROL_CONNECT',
        errno: 'ENOENT',
      });
    } finally {
      await h.close();
    }
  });

  it('reports unsupported for ifup when there is no interface controller', async () => {
    const h = await startHarness({ interfaces: undefined });
    const c = await ControlClient.connect(h.socketPath);
    try {
      await assert.rejects(c.ifup('eth0'), { reason: 'unsupported' });
    } finally {
      c.close();
      await h.close();
    }
  });

  it('reports unsupported for every generations command when the daemon keeps none', async () => {
    const h = await startHarness();
    const c = await ControlClient.connect(h.socketPath);
    try {
      await assert.rejects(c.generations(), { reason: 'unsupported' });
      await assert.rejects(c.rollback(), { reason: 'unsupported' });
      await assert.rejects(c.confirm('0'.repeat(32)), { reason: 'unsupported' });
      await assert.rejects(c.diff(undefined, undefined), { reason: 'unsupported' });
    } finally {
      c.close();
      await h.close();
    }
  });
});
