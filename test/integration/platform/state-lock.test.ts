// The state lock itself: exclusive between two open files (even in one process),
// naming its holder's pid, free again once released or once its holder is killed
// with SIGKILL (the kernel drops it), and a clear error when flock(1) is missing.

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { acquireStateLock } from '../../../src/platform/state-lock.ts';
import { FlockError, StateLockHeldError } from '../../../src/platform/errors.ts';
import { until } from '../../support/until.ts';

const repo = resolve(import.meta.dirname, '../../..');

describe('state lock', () => {
  const dir = mkdtempSync(join(tmpdir(), 'limen-lock-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('is exclusive, names its holder, and is free once released', () => {
    const path = join(dir, 'a.lock');
    const first = acquireStateLock(path);
    assert.equal(readFileSync(path, 'utf8'), `${process.pid}\n`);
    assert.throws(
      () => acquireStateLock(path),
      (e: unknown) =>
        e instanceof StateLockHeldError &&
        e.code === 'LIMEN_STATE_LOCKED' &&
        e.holder === process.pid &&
        e.message.includes(`(pid ${process.pid})`),
    );
    first.release();
    first.release(); // idempotent
    acquireStateLock(path).release();
  });

  it('is dropped by the kernel when its holder is killed with SIGKILL', async () => {
    const path = join(dir, 'b.lock');
    const holder = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        '-e',
        `const { acquireStateLock } = await import(${JSON.stringify(join(repo, 'src/platform/state-lock.ts'))}); acquireStateLock(${JSON.stringify(path)}); console.log('locked'); setInterval(() => {}, 1000);`,
      ],
      { cwd: repo, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const exited = new Promise((r) => holder.once('exit', r));
    try {
      let out = '';
      holder.stdout.setEncoding('utf8').on('data', (c: string) => void (out += c));
      await until(() => out.includes('locked'), { timeoutMs: 20_000, describe: () => out });
      assert.throws(
        () => acquireStateLock(path),
        (e: unknown) => e instanceof StateLockHeldError && e.holder === holder.pid,
      );
      holder.kill('SIGKILL');
      await until(exited);
      acquireStateLock(path).release();
    } finally {
      holder.kill('SIGKILL');
    }
  });

  it('says so when flock(1) is missing', () => {
    assert.throws(
      () => acquireStateLock(join(dir, 'c.lock'), join(dir, 'no-such-flock')),
      (e: unknown) =>
        e instanceof FlockError && /not installed/.test(e.message) && e.code === 'LIMEN_FLOCK',
    );
  });
});
