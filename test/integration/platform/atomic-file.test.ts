// The one atomic write: content replaced whole, mode whatever the umask, no
// temporary left on failure, and a killed writer's leftover recognised and removed.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  isLimenTemporary,
  removeStaleTemporaries,
  writeFileAtomic,
  writeFileAtomicIfChanged,
} from '../../../src/platform/atomic-file.ts';

describe('atomic file', () => {
  let dir: string;
  before(() => (dir = mkdtempSync(join(tmpdir(), 'limen-atomic-'))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('replaces the content and sets the mode whatever the umask', async () => {
    const path = join(dir, 'a.conf');
    writeFileSync(path, 'old\n');
    const umask = process.umask(0o000);
    try {
      await writeFileAtomic(path, 'new\n', { mode: 0o600 });
    } finally {
      process.umask(umask);
    }
    assert.equal(readFileSync(path, 'utf8'), 'new\n');
    assert.equal(statSync(path).mode & 0o777, 0o600);
    await writeFileAtomic(path, 'newer\n');
    assert.equal(statSync(path).mode & 0o777, 0o644);
    assert.deepEqual(readdirSync(dir).filter(isLimenTemporary), []);
  });

  it('writes only what changed', async () => {
    const path = join(dir, 'b.conf');
    assert.equal(await writeFileAtomicIfChanged(path, 'x'), true);
    const ino = statSync(path).ino;
    assert.equal(await writeFileAtomicIfChanged(path, 'x'), false);
    assert.equal(statSync(path).ino, ino);
  });

  it('leaves no temporary when the write fails', async () => {
    await assert.rejects(writeFileAtomic(join(dir, 'no-such-dir', 'c'), 'x'), { code: 'ENOENT' });
    const aborted = AbortSignal.abort();
    await assert.rejects(writeFileAtomic(join(dir, 'd'), 'x', { signal: aborted }));
    assert.deepEqual(readdirSync(dir).filter(isLimenTemporary), []);
  });

  it('removes only its own stale temporaries', async () => {
    const stale = '.settings.pr.limen-0123456789ab.tmp';
    writeFileSync(join(dir, stale), 'half');
    writeFileSync(join(dir, '.other.tmp'), 'not ours');
    writeFileSync(join(dir, 'keep.pr'), 'kept');
    assert.deepEqual(await removeStaleTemporaries(dir), [stale]);
    assert.ok(readdirSync(dir).includes('.other.tmp'));
    assert.ok(readdirSync(dir).includes('keep.pr'));
    assert.deepEqual(await removeStaleTemporaries(join(dir, 'missing')), []);
  });
});
