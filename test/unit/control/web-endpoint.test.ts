// The web endpoint's policy: which commands it runs (every command of the table is
// decided one way or the other), and the password check's rate limits.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  COMMANDS,
  ControlRequestError,
  WEB_COMMANDS,
  WEB_POLICY,
  WebPasswords,
  readStoredPassword,
  verifyPassword,
  writeStoredPassword,
} from '../../../src/control/index.ts';

/** What the web endpoint must never run: each would let its user act as root. */
const ROOT_ONLY = ['send', 'settings-set', 'settings-unset', 'maintenance', 'web-password-set'];

const FAST = { N: 1024, r: 8, p: 1 };

interface Line {
  level: string;
  msg: string;
  fields: unknown;
}

function recordingLogger(lines: Line[]) {
  return {
    error: (msg: string, fields?: unknown) => lines.push({ level: 'error', msg, fields }),
    warn: (msg: string, fields?: unknown) => lines.push({ level: 'warn', msg, fields }),
    info: (msg: string, fields?: unknown) => lines.push({ level: 'info', msg, fields }),
  };
}

function reason(r: string) {
  return (e: unknown) => e instanceof ControlRequestError && e.reason === r;
}

describe('the web endpoint policy', () => {
  it('runs the queries, watches, services, interfaces, trials and the password check', () => {
    for (const c of [
      'status',
      'services',
      'service',
      'logs',
      'query',
      'watch',
      'generations',
      'start',
      'stop',
      'restart',
      'ifup',
      'ifdown',
      'try',
      'confirm',
      'rollback',
      'check-password',
    ])
      assert.ok(WEB_POLICY.allows(c), c);
  });

  it('refuses send, settings writes, maintenance, setting the password, and any unknown name', () => {
    for (const c of [...ROOT_ONLY, 'exec', 'assert', 'STATUS', '', 'status ']) {
      assert.equal(WEB_POLICY.allows(c), false, c);
    }
  });

  it('has decided every command of the table (a new one is refused until listed)', () => {
    for (const c of COMMANDS) {
      assert.ok(
        WEB_COMMANDS.has(c) !== ROOT_ONLY.includes(c),
        `${c}: list it in WEB_COMMANDS or in this test's ROOT_ONLY`,
      );
    }
  });
});

describe('web password checks', () => {
  let dir: string;
  let file: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'limen-webep-'));
    file = join(dir, 'web-password');
    await writeStoredPassword(file, 'correct horse', FAST);
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('answers true for the password, false for another, and logs failures without the password', async () => {
    const lines: Line[] = [];
    const w = new WebPasswords({ file, logger: recordingLogger(lines) });
    const client = {};
    assert.equal(await w.check('correct horse', client, 'web'), true);
    assert.equal(await w.check('wrong guess 1', client, 'web'), false);
    assert.equal(lines.length, 1);
    assert.match(lines[0]!.msg, /a password check failed/);
    assert.ok(!JSON.stringify(lines).includes('wrong guess'));
  });

  it('refuses every check on a connection after its failures, not on another', async () => {
    const lines: Line[] = [];
    const w = new WebPasswords({ file, logger: recordingLogger(lines), failuresPerConnection: 3 });
    const a = {};
    for (let i = 0; i < 3; i++) assert.equal(await w.check(`wrong ${i}`, a, 'web'), false);
    await assert.rejects(w.check('correct horse', a, 'web'), reason('rate-limited'));
    assert.equal(await w.check('correct horse', {}, 'web'), true);
    assert.ok(lines.some((l) => /a password check refused: this connection made 3/.test(l.msg)));
  });

  it('counts checks sent at once against the limits before they finish', async () => {
    const w = new WebPasswords({ file, logger: recordingLogger([]), failuresPerConnection: 3 });
    const a = {};
    const outcomes = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        w.check(`wrong ${i}`, a, 'web').then(
          (v) => String(v),
          (e: unknown) => (e instanceof ControlRequestError ? e.reason : String(e)),
        ),
      ),
    );
    assert.deepEqual(outcomes, [
      ...Array<string>(3).fill('false'),
      ...Array<string>(7).fill('rate-limited'),
    ]);
    const b = new WebPasswords({ file, logger: recordingLogger([]), failuresPerWindow: 2 });
    const many = await Promise.allSettled([1, 2, 3].map(() => b.check('correct horse', {}, 'web')));
    assert.deepEqual(
      many.map((r) => r.status),
      ['fulfilled', 'fulfilled', 'rejected'],
    );
  });

  it('refuses every check of everybody past the failures of a minute, until the minute has passed', async () => {
    let now = 1_000_000;
    const w = new WebPasswords({
      file,
      logger: recordingLogger([]),
      failuresPerWindow: 4,
      now: () => now,
    });
    for (let i = 0; i < 4; i++) assert.equal(await w.check('wrong', {}, 'web'), false);
    await assert.rejects(w.check('correct horse', {}, 'web'), reason('rate-limited'));
    now += 59_000;
    await assert.rejects(w.check('correct horse', {}, 'web'), reason('rate-limited'));
    now += 1_000;
    assert.equal(await w.check('correct horse', {}, 'web'), true);
  });

  it('says when no password is set, and when the stored one is unusable (logged)', async () => {
    const lines: Line[] = [];
    const none = new WebPasswords({ file: join(dir, 'none'), logger: recordingLogger(lines) });
    await assert.rejects(none.check('correct horse', {}, 'web'), reason('unsupported'));
    const bad = join(dir, 'bad');
    await writeFile(bad, '{N: 3}', { mode: 0o600 });
    const broken = new WebPasswords({ file: bad, logger: recordingLogger(lines) });
    await assert.rejects(broken.check('correct horse', {}, 'web'), reason('failed'));
    assert.ok(lines.some((l) => l.level === 'error' && /bad: salt/.test(l.msg)));
  });

  it('sets a given password, or a random one it returns; refuses an unfit one', async () => {
    const path = join(dir, 'set');
    const w = new WebPasswords({ file: path, logger: recordingLogger([]) });
    assert.deepEqual(await w.set('another horse'), { file: path });
    assert.equal(await verifyPassword('another horse', readStoredPassword(path)!), true);
    const r = await w.set(undefined);
    assert.equal(typeof r.password, 'string');
    assert.equal(await verifyPassword(r.password!, readStoredPassword(path)!), true);
    assert.equal(await verifyPassword('another horse', readStoredPassword(path)!), false);
    await assert.rejects(w.set('short'), reason('bad-request'));
  });
});
