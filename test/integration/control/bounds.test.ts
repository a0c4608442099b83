// What one request, one client and all clients together may cost the control server,
// on a real socket (an in-process engine, fake services): answers and events bounded
// in bytes and nesting while they are written, a query bounded in matches, unsent
// output bounded per connection and in total (the laggard is dropped), requests per
// connection and connections bounded (an idle one makes room; a busy flood is refused
// with one line). Each limit fails only the request or the client that passed it.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  ControlClient,
  ControlClosedError,
  ControlRequestError,
  DEFAULT_MAX_QUERY_MATCHES,
  MAX_MESSAGE_DEPTH,
  decodeQueryAnswer,
  decodeWatchEvent,
  encodeServerMessage,
  encodeWatchEvent,
} from '../../../src/control/index.ts';
import { main } from '../../../src/cli/main.ts';
import { parse, record, sym, type Value } from '../../../src/preserves/index.ts';
import { captureIo } from '../../support/cli-io.ts';
import { until } from '../../support/until.ts';
import { RawClient, daemon, startHarness, type Harness } from '../../unit/control/harness.ts';

/** `<s <s ... z>>`, n levels deep (built bottom-up: no recursion). */
function nested(n: number, leaf: Value = sym('z')): Value {
  let v = leaf;
  for (let i = 0; i < n; i++) v = record('s', v);
  return v;
}

/** The request's ControlRequestError (fails if it succeeds, or is not answered in 20 s). */
async function rejection(p: Promise<unknown>): Promise<ControlRequestError> {
  const outcome: Error | undefined = await until(
    p.then(
      () => undefined,
      (e: unknown) => (e instanceof Error ? e : new Error(String(e))),
    ),
    { timeoutMs: 20_000, describe: () => 'an answer to the request' },
  );
  if (outcome === undefined) assert.fail('the request succeeded');
  if (outcome instanceof ControlRequestError) return outcome;
  throw outcome;
}

describe('answers and events within bounds', () => {
  let h: Harness;
  let client: ControlClient;
  let status: Value = 'small';
  before(async () => {
    // The default limits: 4 MiB and 512 levels per message, 20,000 matches per query.
    h = await startHarness({ status: () => status });
    client = await ControlClient.connect(h.socketPath);
  });
  after(async () => {
    client?.close();
    await h?.close();
  });

  it('query: more matches than the limit fail that request alone, saying the limit', async () => {
    const n = DEFAULT_MAX_QUERY_MATCHES + 1;
    h.engine.turn(() => {
      for (let i = 0; i < n; i++) h.engine.root.assert(h.config.ref, record('item', i));
    });
    await h.config.sync();
    const e = await rejection(client.query('config', parse('<item ?n>')));
    assert.equal(e.reason, 'too-large');
    assert.match(
      e.message,
      /^more than 20000 assertions match, and a query answers at most 20000; narrow the pattern/,
    );
    // A narrower pattern is answered, on the same connection.
    const a = decodeQueryAnswer(await client.query('config', parse('<item 7>')));
    assert.equal(a.matches.length, 1);
  });

  it('query: the issue’s 5,000 nested assertions fail with the depth limit; one at the edge is sent', async () => {
    // `<grown <s <s ... z>>>` for every depth up to 5,000, sharing structure as the script
    // of the issue builds them: small in memory, about 37 MB of text.
    h.engine.turn(() => {
      let v: Value = sym('z');
      for (let i = 0; i < 5000; i++) {
        h.engine.root.assert(h.config.ref, record('grown', v));
        v = record('s', v);
      }
    });
    await h.config.sync();
    const e = await rejection(client.query('config', parse('<grown ?x>')));
    assert.equal(e.reason, 'too-large');
    assert.match(
      e.message,
      /^a matching assertion is nested too deeply to be sent \(an answer nests at most 512 levels, Preserves' own limit, 4 of them around each value\): <grown <s <s /,
    );
    assert.match(e.message, /narrow the pattern/);
    assert.ok(e.message.length < 400, e.message);
    // `<ok 1 {matches: [{value: <edge V> ...}]}>`: V may nest 512 - 5 levels.
    const edge = record('edge', nested(MAX_MESSAGE_DEPTH - 5));
    const over = record('edge-over', nested(MAX_MESSAGE_DEPTH - 4));
    h.engine.turn(() => {
      h.engine.root.assert(h.config.ref, edge);
      h.engine.root.assert(h.config.ref, over);
    });
    await h.config.sync();
    const ok = decodeQueryAnswer(await client.query('config', parse('<edge _>')));
    assert.equal(ok.matches.length, 1);
    assert.equal(
      (await rejection(client.query('config', parse('<edge-over _>')))).reason,
      'too-large',
    );
  });

  it('query: an answer over the byte limit stops being written at the limit', async () => {
    // 40 records, each holding the one below twice: 2^40 leaves of text (terabytes) from
    // 40 objects in memory. Writing it whole would never finish.
    let v: Value = 'leaf';
    for (let i = 0; i < 40; i++) v = record('d', v, v);
    h.engine.turn(() => void h.engine.root.assert(h.config.ref, record('dbl', v)));
    await h.config.sync();
    const e = await rejection(client.query('config', parse('<dbl ?x>')));
    assert.equal(e.reason, 'too-large');
    assert.match(
      e.message,
      /^the answer would be larger than 4 MiB, the limit for one answer \(the first 0 of the 1 matches already take 0 bytes\); narrow the pattern/,
    );
    // Many values that fit one by one but not together: the message says how far it got.
    h.engine.turn(() => {
      for (let i = 0; i < 5000; i++)
        h.engine.root.assert(h.config.ref, record('mid', i, 'x'.repeat(1000)));
    });
    await h.config.sync();
    const many = await rejection(client.query('config', parse('<mid ?n _>')));
    assert.match(many.message, /the first 4\d{3} of the 5000 matches already take 41\d{5} bytes/);
  });

  it('watch: an event over a limit stops that watch with the reason; the connection goes on', async () => {
    const events: Value[] = [];
    const watch = client.watch('machine', parse('<w ?x>'), { onEvent: (v) => events.push(v) });
    await until(() => events.some((v) => decodeWatchEvent(v)?.type === 'synced'));
    h.engine.turn(() => void h.engine.root.assert(h.machine.ref, record('w', 'small')));
    await until(() => events.length === 2);
    h.engine.turn(
      () => void h.engine.root.assert(h.machine.ref, record('w', 'y'.repeat(4 * 1024 * 1024))),
    );
    const e = await rejection(watch);
    assert.equal(e.reason, 'too-large');
    assert.match(
      e.message,
      /^an event \(<added <w "yyy+\.\.\.\) would be larger than 4 MiB, the limit for one message, so the watch stopped; narrow the pattern so that it leaves such values out$/,
    );
    assert.ok(
      h.logged.some((l) => l.level === 'warn' && /watch: an event is too large/.test(l.message)),
    );
    // A message sent through the socket nests no deeper in the event than in the request,
    // but one a script sends may: `<event 1 <message <m V> {x: V}>>` puts 3 levels around V.
    const messages = client.watch('machine', parse('<m ?x>'), { onEvent: () => undefined });
    await client.send('machine', record('m', 'sync'));
    h.engine.turn(() =>
      h.engine.root.send(h.machine.ref, record('m', nested(MAX_MESSAGE_DEPTH - 2))),
    );
    const deep = await rejection(messages);
    assert.match(
      deep.message,
      /^an event \(<message <m <s <s .*\) would nest deeper than 512 levels, the limit for one message \(Preserves' own\), so the watch stopped; /,
    );
    assert.equal(await client.send('machine', record('m', 1)), true);
  });

  it('watch: clients of one pattern get the text written once, as it would be for each', async () => {
    const a = await RawClient.connect(h.socketPath);
    const b = await RawClient.connect(h.socketPath);
    try {
      a.send('<request 7 watch {pattern: <shared ?x ?y> dataspace: machine}>');
      b.send('<request "b" watch {pattern: <shared ?x ?y> dataspace: machine}>');
      await a.waitFor(/^<event 7 <synced>>/);
      await b.waitFor(/^<event "b" <synced>>/);
      const v = record('shared', 'é\n', [1, sym('two')]);
      h.engine.turn(() => void h.engine.root.assert(h.machine.ref, v));
      const event = encodeWatchEvent({
        type: 'added',
        value: v,
        captures: [
          ['x', 'é\n'],
          ['y', [1, sym('two')]],
        ],
      });
      assert.equal(
        await a.waitFor(/^<event 7 <added/),
        encodeServerMessage({ type: 'event', id: 7, value: event }),
      );
      assert.equal(
        await b.waitFor(/^<event "b" <added/),
        encodeServerMessage({ type: 'event', id: 'b', value: event }),
      );
    } finally {
      a.close();
      b.close();
    }
  });

  it('logs and status: an answer over the limit fails alone, and says how to ask for less', async () => {
    const log = h.services.add({
      service: daemon('chatty'),
      state: 'ready',
      pids: [],
      restarts: 0,
      since: undefined,
      lastExit: undefined,
      outputsDir: undefined,
      processes: [],
      outputs: [],
    });
    for (let i = 0; i < 45_000; i++) log.append(`line ${i} ${'.'.repeat(100)}`);
    const e = await rejection(client.logs(daemon('chatty')));
    assert.equal(e.reason, 'too-large');
    assert.match(
      e.message,
      /^the answer would be larger than 4 MiB, the limit for one message; ask for fewer lines \(limen logs --lines N\)$/,
    );
    assert.equal(((await client.logs(daemon('chatty'), 10)) as Value[]).length, 10);
    status = 'z'.repeat(4 * 1024 * 1024);
    assert.equal((await rejection(client.status())).reason, 'too-large');
    status = 'small';
    assert.equal(await client.status(), 'small');
  });
});

describe('slow clients', () => {
  let h: Harness;
  const perClient = 256 * 1024;
  const total = 1024 * 1024;
  before(async () => {
    h = await startHarness({
      maxOutputBytes: perClient,
      maxTotalOutputBytes: total,
      maxMessageBytes: 64 * 1024,
      dropGraceMs: 60_000,
    });
  });
  after(async () => {
    await h?.close();
  });

  it('all together never hold more than the budget: the one with the most unsent is dropped', async () => {
    const n = 20;
    const slow = await Promise.all(
      Array.from({ length: n }, () => RawClient.connect(h.socketPath)),
    );
    const fast = await RawClient.connect(h.socketPath);
    try {
      for (const c of [...slow, fast]) c.send('<request 1 watch {pattern: <big ?n _>}>');
      for (const c of [...slow, fast]) await c.waitFor(/^<event 1 <synced>>/);
      for (const c of slow) c.socket.pause();
      const filler = 'z'.repeat(1000);
      const batches = 40;
      const perBatch = 50;
      let peak = 0;
      const added = (): number => fast.lines.filter((l) => l.startsWith('<event 1 <added')).length;
      for (let b = 0; b < batches; b++) {
        h.engine.turn(() => {
          for (let i = 0; i < perBatch; i++) {
            h.engine.root.assert(h.config.ref, record('big', b * perBatch + i, filler));
            // Within one turn too: never more than the budget plus the message just queued.
            peak = Math.max(peak, h.server.unsentBytes);
          }
        });
        await until(() => added() === (b + 1) * perBatch, {
          describe: () => `batch ${b}: the fast client has ${added()} events`,
        });
      }
      assert.ok(peak <= total + 2048, `peak unsent ${peak}`);
      assert.ok(
        peak > total / 2,
        `the budget was never approached (peak ${peak}): the test proves nothing`,
      );
      const budgetDrops = h.logged.filter((l) =>
        /all clients together passed 1 MiB/.test(l.message),
      );
      assert.ok(budgetDrops.length > 0, 'no client was dropped for the total budget');
      // Every slow client is eventually dropped; the fast one has every event.
      for (const c of slow) c.socket.resume();
      await until(() => slow.every((c) => c.closed), { timeoutMs: 20_000 });
      for (const c of slow) {
        assert.match(
          c.lines.at(-1)!,
          /^<error #f lagged "(limen's unsent output to all clients passed 1 MiB and this connection had the most|you did not read fast enough)/,
        );
        // Whole lines only: what was discarded never cut one.
        for (const l of c.lines)
          assert.match(l, /^<(limen-control 1|event 1 .*>|error #f lagged ".*")>?$/);
      }
      assert.equal(added(), batches * perBatch);
      await until(() => h.server.connectionCount === 1);
      await until(() => h.server.unsentBytes === 0);
    } finally {
      for (const c of [...slow, fast]) c.close();
    }
  });

  it('a message larger than the per-connection cap still reaches a client that reads', async () => {
    const h2 = await startHarness({ maxOutputBytes: 16 * 1024 });
    const c = await ControlClient.connect(h2.socketPath);
    try {
      h2.engine.turn(() => {
        for (let i = 0; i < 300; i++)
          h2.engine.root.assert(h2.config.ref, record('big', i, 'z'.repeat(1000)));
      });
      await h2.config.sync();
      // 300 KB in one answer, over the 16 KiB per-connection cap: the cap bounds what
      // waits before a message is queued, not one message (that is maxMessageBytes).
      const answer = decodeQueryAnswer(await c.query('config', parse('<big ?n _>')));
      assert.equal(answer.matches.length, 300);
    } finally {
      c.close();
      await h2.close();
    }
  });

  it('requests running on one connection are bounded', async () => {
    const h2 = await startHarness({ maxOpenRequests: 3 });
    const c = await RawClient.connect(h2.socketPath);
    try {
      for (let i = 1; i <= 3; i++) c.send(`<request ${i} watch {pattern: <w ${i}>}>`);
      for (let i = 1; i <= 3; i++) await c.waitFor(new RegExp(`^<event ${i} <synced>>`));
      c.send('<request 4 watch {pattern: _}>');
      assert.match(
        await c.waitFor(/^<error 4 /),
        /^<error 4 too-many-requests "this connection has 3 requests running, its limit; cancel some, or wait for their answers">$/,
      );
      c.send('<cancel 2>');
      await c.waitFor(/^<end 2>/);
      c.send('<request 5 status {}>');
      await c.waitFor(/^<ok 5 /);
    } finally {
      c.close();
      await h2.close();
    }
  });
});

describe('the connection limit', () => {
  let h: Harness;
  const max = 5;
  before(async () => {
    h = await startHarness({ maxConnections: max });
  });
  after(async () => {
    await h?.close();
  });

  it('closes the idlest connection to make room, so idle ones cannot lock root out', async () => {
    const idle: RawClient[] = [];
    try {
      for (let i = 0; i < max; i++) {
        const c = await RawClient.connect(h.socketPath);
        await c.waitFor(/^<limen-control 1>/);
        idle.push(c);
      }
      // The first one spoke last of all, so the second is now the idlest.
      idle[0]!.send('<request 1 status {}>');
      await idle[0]!.waitFor(/^<ok 1 /);
      const io = captureIo();
      assert.equal(await main(['status', '--socket', h.socketPath, '--json'], io), 0, io.stderr());
      await until(() => idle[1]!.closed);
      assert.deepEqual(idle[1]!.lines, [
        '<limen-control 1>',
        '<error #f too-many-connections "limen reached its limit of 5 connections and closed this idle one to make room">',
      ]);
      assert.ok(!idle[0]!.closed && !idle[2]!.closed);
    } finally {
      for (const c of idle) c.close();
    }
    await until(() => h.server.connectionCount === 0);
  });

  it('turns a connection away with one line when every connection has a request running', async () => {
    const busy: RawClient[] = [];
    try {
      for (let i = 0; i < max; i++) {
        const c = await RawClient.connect(h.socketPath);
        c.send('<request 1 watch {pattern: <x>}>');
        await c.waitFor(/^<event 1 <synced>>/);
        busy.push(c);
      }
      const flood = await Promise.all(
        Array.from({ length: 20 }, () => RawClient.connect(h.socketPath)),
      );
      await until(() => flood.every((c) => c.closed));
      for (const c of flood) {
        assert.deepEqual(c.lines, [
          '<error #f too-many-connections "limen has 5 connections open (its limit), each with a request running; close some (watch or logs -f clients, say) and try again">',
        ]);
      }
      // The client library and the CLI say why.
      await assert.rejects(ControlClient.connect(h.socketPath), (e) => {
        assert.ok(e instanceof ControlClosedError);
        assert.match(
          e.message,
          /refused the connection \(too-many-connections: limen has 5 connections open/,
        );
        return true;
      });
      const io = captureIo();
      assert.equal(await main(['status', '--socket', h.socketPath], io), 3);
      assert.match(io.stderr(), /too-many-connections/);
      // Those already in are still answered.
      busy[0]!.send('<request 2 status {}>');
      await busy[0]!.waitFor(/^<ok 2 /);
      assert.ok(h.logged.some((l) => /refusing a connection: 5 are open/.test(l.message)));
    } finally {
      for (const c of busy) c.close();
    }
    await until(() => h.server.connectionCount === 0);
  });
});
