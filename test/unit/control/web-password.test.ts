// The web password's store: scrypt hash and check, the file's encoding, and what a
// bad stored file (another mode, a link, garbage) gives.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  MAX_PASSWORD_BYTES,
  WebPasswordError,
  decodeStoredPassword,
  encodeStoredPassword,
  hashPassword,
  readStoredPassword,
  verifyPassword,
  writeStoredPassword,
} from '../../../src/control/index.ts';
import { passwordProblem, randomPassword } from '../../../src/control/web-password.ts';

/** Cheap parameters: the tests check the logic, not the cost. */
const FAST = { N: 1024, r: 8, p: 1 };

describe('web password', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'limen-webpw-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('verifies the password hashed, and no other', async () => {
    const stored = await hashPassword('correct horse', FAST);
    assert.equal(await verifyPassword('correct horse', stored), true);
    assert.equal(await verifyPassword('correct horsE', stored), false);
    assert.equal(await verifyPassword('', stored), false);
    assert.equal(await verifyPassword('x'.repeat(MAX_PASSWORD_BYTES + 1), stored), false);
  });

  it('salts: the same password hashes differently twice', async () => {
    const a = await hashPassword('correct horse', FAST);
    const b = await hashPassword('correct horse', FAST);
    assert.notDeepEqual(a.salt, b.salt);
    assert.notDeepEqual(a.hash, b.hash);
  });

  it('round-trips through its text, which holds neither the password nor plain text of it', async () => {
    const stored = await hashPassword('correct horse', FAST);
    const text = encodeStoredPassword(stored);
    assert.ok(!text.includes('correct'));
    const back = decodeStoredPassword(text);
    assert.equal(await verifyPassword('correct horse', back), true);
    assert.deepEqual([back.N, back.r, back.p], [1024, 8, 1]);
  });

  it('refuses unfit passwords', () => {
    assert.match(passwordProblem('short') ?? '', /shorter than 8/);
    assert.match(passwordProblem('x'.repeat(MAX_PASSWORD_BYTES + 1)) ?? '', /longer than 1024/);
    assert.match(passwordProblem('good enough\nsecond') ?? '', /line break/);
    assert.equal(passwordProblem('good enough'), undefined);
    assert.equal(passwordProblem(randomPassword()), undefined);
  });

  it('writes the file with mode 0600 whatever the umask, and reads it back', async () => {
    const path = join(dir, 'web-password');
    const old = process.umask(0);
    try {
      await writeStoredPassword(path, 'correct horse', FAST);
    } finally {
      process.umask(old);
    }
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    const stored = readStoredPassword(path);
    assert.ok(stored !== undefined);
    assert.equal(await verifyPassword('correct horse', stored), true);
    await assert.rejects(writeStoredPassword(path, 'short', FAST), WebPasswordError);
  });

  it('reads no file as no password', () => {
    assert.equal(readStoredPassword(join(dir, 'none')), undefined);
  });

  it('refuses a stored file others can read, a symbolic link, or garbage, saying which', async () => {
    const path = join(dir, 'wide');
    await writeStoredPassword(path, 'correct horse', FAST);
    await chmod(path, 0o644);
    assert.throws(() => readStoredPassword(path), /wide can be read or written by others/);
    const link = join(dir, 'link');
    await chmod(path, 0o600);
    await symlink(path, link);
    assert.throws(() => readStoredPassword(link), /link is a symbolic link/);
    const bad = join(dir, 'bad');
    await writeFile(bad, '{salt: #[AAAA] N: 1000 r: 8}', { mode: 0o600 });
    assert.throws(
      () => readStoredPassword(bad),
      (e: unknown) =>
        e instanceof WebPasswordError &&
        /bad: salt: .*; hash: .*; N: not a power of two.*; p: not a count/.test(e.message),
    );
    await writeFile(bad, 'not preserves {', { mode: 0o600 });
    assert.throws(() => readStoredPassword(bad), /not Preserves text/);
    await writeFile(bad, '[1 2]', { mode: 0o600 });
    assert.throws(() => readStoredPassword(bad), /not a dictionary/);
  });

  it('refuses cost parameters a check could not afford', () => {
    const ok = encodeStoredPassword({
      N: 2 ** 21,
      r: 8,
      p: 1,
      salt: new Uint8Array(16),
      hash: new Uint8Array(32),
    });
    assert.throws(() => decodeStoredPassword(ok), /N: not a power of two up to 1048576/);
  });
});
