import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  ArgReader,
  ErrorReason,
  LineReader,
  MAX_MESSAGE_DEPTH,
  MessageTooLargeError,
  ProtocolError,
  QUERY_MATCH_LEVELS,
  decodeClientMessage,
  decodeQueryAnswer,
  decodeServerMessage,
  decodeServiceDetail,
  decodeServiceInfo,
  decodeSettingsAnswer,
  decodeWatchEvent,
  encodeClientMessage,
  encodeQueryAnswer,
  encodeQueryMatch,
  encodeServerMessage,
  encodeServiceDetail,
  encodeServiceInfo,
  encodeSettingsAnswer,
  encodeWatchEvent,
  socketPathFor,
  type ServerMessage,
} from '../../../src/control/index.ts';
import { Dataspace, Engine, embed } from '../../../src/dataspace/index.ts';
import {
  Dict,
  dict,
  is,
  parse,
  record,
  stringify,
  sym,
  type Value,
} from '../../../src/preserves/index.ts';

function lines(maxBytes: number, chunks: (string | Buffer)[]): (string | undefined)[] {
  const out: (string | undefined)[] = [];
  const r = new LineReader(maxBytes, (l) => out.push(l));
  for (const c of chunks) r.push(typeof c === 'string' ? Buffer.from(c) : c);
  return out;
}

describe('LineReader', () => {
  it('splits lines across and within chunks, dropping a CR before LF', () => {
    assert.deepEqual(lines(100, ['<a', ' 1>\n<b>\r\n<c', '>', '\n']), ['<a 1>', '<b>', '<c>']);
  });

  it('keeps an unfinished line until its newline arrives', () => {
    assert.deepEqual(lines(100, ['<a>\n<b']), ['<a>']);
  });

  it('decodes UTF-8 split between chunks, and reports invalid UTF-8 as undefined', () => {
    const e = Buffer.from('"é"\n');
    assert.deepEqual(lines(100, [e.subarray(0, 2), e.subarray(2)]), ['"é"']);
    assert.deepEqual(lines(100, [Buffer.from([0xff, 0x0a]), '<ok>\n']), [undefined, '<ok>']);
  });

  it('refuses a line over the limit, whether or not its newline has come', () => {
    const r1 = new LineReader(8, () => undefined);
    assert.equal(r1.push(Buffer.from('123456789\n')), false);
    assert.equal(r1.overflowed, true);
    const got: (string | undefined)[] = [];
    const r2 = new LineReader(8, (l) => got.push(l));
    assert.equal(r2.push(Buffer.from('12345678\n1234')), true);
    assert.equal(r2.push(Buffer.from('56789')), false);
    assert.equal(r2.push(Buffer.from('\n<more>\n')), false);
    assert.deepEqual(got, ['12345678']);
  });
});

describe('client messages', () => {
  it('decodes a request and a cancellation', () => {
    const m = decodeClientMessage('<request 7 query {pattern: <a ?x> dataspace: machine}>');
    assert.equal(m.type, 'request');
    assert.ok(m.type === 'request');
    assert.equal(m.id, 7);
    assert.equal(m.command, 'query');
    assert.ok(is(m.args, parse('{pattern: <a ?x> dataspace: machine}')));
    assert.deepEqual(decodeClientMessage('<cancel "w1">'), { type: 'cancel', id: 'w1' });
  });

  it('round-trips through encodeClientMessage', () => {
    const args = dict({ value: record('hostname', 'r1\nx') });
    const line = encodeClientMessage({ type: 'request', id: 3, command: 'settings-set', args });
    assert.ok(!line.includes('\n'));
    const back = decodeClientMessage(line);
    assert.ok(back.type === 'request' && is(back.args, args));
  });

  it('reports a syntax error without an id', () => {
    assert.throws(
      () => decodeClientMessage('<request 1 status {}'),
      (e: unknown) =>
        e instanceof ProtocolError && e.reason === ErrorReason.Syntax && e.id === undefined,
    );
  });

  it('reports every problem of a malformed request, with its id', () => {
    assert.throws(
      () => decodeClientMessage('<request 4 "status" [1]>'),
      (e: unknown) =>
        e instanceof ProtocolError &&
        e.reason === ErrorReason.BadRequest &&
        e.id === 4 &&
        /command must be a symbol/.test(e.message) &&
        /arguments must be a dictionary/.test(e.message),
    );
    assert.throws(
      () => decodeClientMessage('<request #t status {}>'),
      (e: unknown) =>
        e instanceof ProtocolError && /id must be an integer or a string/.test(e.message),
    );
    assert.throws(
      () => decodeClientMessage('[1 2 3]'),
      (e: unknown) => e instanceof ProtocolError && /expected <request ID/.test(e.message),
    );
  });
});

describe('server messages', () => {
  const samples: ServerMessage[] = [
    { type: 'hello', version: 1 },
    { type: 'ok', id: 1, value: dict({ a: 1 }) },
    { type: 'error', id: 'x', reason: 'not-found', message: 'no "such"\nthing' },
    { type: 'error', id: undefined, reason: 'syntax', message: 'bad' },
    { type: 'event', id: 2, value: record('added', 1, new Dict()) },
    { type: 'end', id: 2 },
  ];

  it('encode on one line and decode back', () => {
    for (const m of samples) {
      const line = encodeServerMessage(m);
      assert.ok(!line.includes('\n'), line);
      const back = decodeServerMessage(line);
      assert.equal(back.type, m.type);
      assert.equal(encodeServerMessage(back), line);
    }
    assert.equal(encodeServerMessage(samples[3]!), '<error #f syntax "bad">');
  });

  it('writes live references as a description, not as a reference', () => {
    const ds = new Dataspace(new Engine(), 'config');
    const line = encodeServerMessage({ type: 'ok', id: 1, value: [embed(ds.ref)] });
    assert.equal(line, '<ok 1 [#:<dataspace config>]>');
  });

  it('rejects what the server never sends', () => {
    for (const bad of ['<ok>', '<event 1>', '<error 1 "x" "y">', '<hello 1>', '<error #t x "y">']) {
      assert.throws(() => decodeServerMessage(bad), ProtocolError, bad);
    }
  });
});

describe('server message limits', () => {
  /** `<s <s ... z>>`, n levels deep. */
  const nested = (n: number): Value => {
    let v: Value = sym('z');
    for (let i = 0; i < n; i++) v = record('s', v);
    return v;
  };

  it('counts the envelope: the deepest answer sent is the deepest a client reads', () => {
    // `<ok 1 V>` puts one level around V.
    const line = encodeServerMessage({ type: 'ok', id: 1, value: nested(MAX_MESSAGE_DEPTH - 1) });
    assert.equal(decodeServerMessage(line).type, 'ok');
    assert.throws(
      () => encodeServerMessage({ type: 'ok', id: 1, value: nested(MAX_MESSAGE_DEPTH) }),
      (e) => e instanceof MessageTooLargeError && e.limit === 'depth' && e.max === 512,
    );
  });

  it('counts bytes, not characters', () => {
    const limits = { maxBytes: 100, maxDepth: MAX_MESSAGE_DEPTH };
    // `<ok 1 "…">` is 9 characters around the string; 'é' is 2 bytes in UTF-8.
    assert.equal(
      Buffer.byteLength(encodeServerMessage({ type: 'ok', id: 1, value: 'é'.repeat(45) }, limits)),
      99,
    );
    assert.throws(() => encodeServerMessage({ type: 'ok', id: 1, value: 'é'.repeat(46) }, limits), {
      code: 'LIMEN_CONTROL_TOO_LARGE',
      limit: 'bytes',
      max: 100,
    });
    assert.equal(
      encodeServerMessage({ type: 'ok', id: 1, value: 'e'.repeat(91) }, limits).length,
      100,
    );
  });

  it('knows how deep the query answer puts a match', () => {
    // The server checks each match alone within maxDepth - QUERY_MATCH_LEVELS: that must
    // agree with the whole answer, `<ok ID {matches: [{value: V ...}]}>`.
    const answer = (value: Value) =>
      encodeServerMessage({
        type: 'ok',
        id: 1,
        value: encodeQueryAnswer({ names: [], matches: [{ value, captures: [] }] }),
      });
    const alone = (value: Value) =>
      stringify(encodeQueryMatch({ value, captures: [] }), {
        maxDepth: MAX_MESSAGE_DEPTH - QUERY_MATCH_LEVELS,
      });
    const fits = nested(MAX_MESSAGE_DEPTH - QUERY_MATCH_LEVELS - 1);
    assert.ok(answer(fits).length > 0 && alone(fits).length > 0);
    const over = record('s', fits);
    assert.throws(() => answer(over), { limit: 'depth' });
    assert.throws(() => alone(over), { limit: 'depth' });
  });
});

describe('ArgReader', () => {
  it('collects every problem, unknown arguments included', () => {
    const a = new ArgReader(
      9,
      parse('{service: 1, lines: -1, follow: 2, dataspace: nope, extra: 0}') as Dict,
    );
    a.value('service', true);
    a.count('lines', 10);
    a.boolean('follow', false);
    a.dataspace();
    a.string('interface', true);
    assert.throws(
      () => a.done(),
      (e: unknown) => {
        assert.ok(e instanceof ProtocolError);
        assert.equal(e.id, 9);
        const parts = e.message.split('; ');
        assert.deepEqual(parts, [
          'argument lines must be a non-negative integer, got -1',
          'argument follow must be #t or #f, got 2',
          'argument dataspace must be one of config, machine, log, got nope',
          'missing argument interface (a string)',
          'unknown argument extra',
        ]);
        return true;
      },
    );
  });

  it('passes when the arguments are right', () => {
    const a = new ArgReader(1, parse('{pattern: <a>, dataspace: log}') as Dict);
    assert.ok(is(a.value('pattern', true), record('a')));
    assert.equal(a.dataspace(), 'log');
    a.done();
  });
});

describe('answers', () => {
  it('service info and detail round-trip', () => {
    const info = {
      service: record('daemon', sym('sshd')),
      state: 'ready',
      pids: [1, 2],
      restarts: 3,
      since: Date.UTC(2024, 0, 2, 3, 4, 5),
      lastExit: 'exited with code 1',
      failure: 'crash loop: 5 failures within 60 s (last: exited with code 1)',
    };
    assert.deepEqual(decodeServiceInfo(encodeServiceInfo(info)), info);
    const detail = {
      ...info,
      outputsDir: '/run/limen/outputs/x',
      processes: [
        {
          spec: 'sshd -D',
          state: 'ready',
          pid: 1,
          restarts: 0,
          lastExit: undefined,
          problems: [],
          failure: undefined,
          where: '/sys/fs/cgroup/limen-0123456789ab/daemon-sshd-0123456789/p1',
        },
      ],
      outputs: [[sym('port'), 22] as const],
    };
    const back = decodeServiceDetail(encodeServiceDetail(detail));
    assert.equal(back.outputsDir, detail.outputsDir);
    assert.deepEqual(back.processes, detail.processes);
    assert.ok(is(back.outputs![0]![0], sym('port')));
  });

  it('watch events, query answers and settings answers round-trip', () => {
    const ev = { type: 'added', value: record('a', 1), captures: [['x', 1]] } as const;
    assert.deepEqual(decodeWatchEvent(encodeWatchEvent(ev)), ev);
    assert.deepEqual(decodeWatchEvent(encodeWatchEvent({ type: 'synced' })), { type: 'synced' });
    assert.equal(decodeWatchEvent(record('other')), undefined);
    const q = {
      names: ['b', 'a'],
      matches: [
        {
          value: record('p', 1, 2),
          captures: [
            ['b', 2],
            ['a', 1],
          ] as [string, Value][],
        },
      ],
    };
    assert.deepEqual(decodeQueryAnswer(encodeQueryAnswer(q)), q);
    const s = {
      settings: [{ value: record('hostname', 'r1'), file: 'x.pr' }],
      problems: [{ file: 'y.pr', message: 'bad' }],
    };
    assert.deepEqual(decodeSettingsAnswer(encodeSettingsAnswer(s)), s);
  });

  it('puts the socket under --root', () => {
    assert.equal(socketPathFor(), '/run/limen/control.sock');
    assert.equal(socketPathFor('/tmp/r/'), '/tmp/r/run/limen/control.sock');
  });
});
