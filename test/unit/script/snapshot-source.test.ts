// SnapshotSource (src/script/files.ts): fixed files in place of a directory, listed in
// the order scanScriptTree visits a real tree, and the file system everywhere else.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SnapshotSource, scanScriptTree } from '../../../src/script/files.ts';

const bytes = (s: string) => new TextEncoder().encode(s);

describe('SnapshotSource', () => {
  const names = [
    'b.pr',
    'a/z.pr',
    'a.pr',
    'a/b/c.pr',
    '.hidden.pr',
    'd/.x/y.pr',
    'notes.txt',
    'c.pr',
  ];

  it('lists the scripts under a root in the order a scan of the same files on disk does', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'limen-snapshot-'));
    try {
      for (const n of names) {
        mkdirSync(join(dir, n, '..'), { recursive: true });
        writeFileSync(join(dir, n), '');
      }
      const source = new SnapshotSource(
        new Map([[dir, new Map(names.map((n) => [n, bytes('')]))]]),
      );
      assert.deepEqual((await source.scan(dir)).files, (await scanScriptTree(dir)).files);
      assert.deepEqual((await source.scan(join(dir, 'a'))).files, [
        join(dir, 'a/b/c.pr'),
        join(dir, 'a/z.pr'),
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads its own files, refuses one over the limit, and says ENOENT for others under its roots', async () => {
    const source = new SnapshotSource(
      new Map([['/nowhere/site', new Map([['core/a.pr', bytes('<a>')]])]]),
    );
    assert.equal(await source.read('/nowhere/site/core/a.pr', 100), '<a>');
    await assert.rejects(source.read('/nowhere/site/core/a.pr', 2), /over the limit/);
    await assert.rejects(source.read('/nowhere/site/core/b.pr', 100), { code: 'ENOENT' });
    assert.equal((await source.scan('/nowhere/site/services')).missing, true);
    assert.equal((await source.scan('/nowhere/site/core/a.pr')).isFile, true);
  });

  it('reads the file system outside its roots', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'limen-snapshot-'));
    try {
      writeFileSync(join(dir, 'x.pr'), '<x>');
      const source = new SnapshotSource(new Map([['/nowhere/site', new Map()]]));
      assert.deepEqual((await source.scan(dir)).files, [join(dir, 'x.pr')]);
      assert.equal(await source.read(join(dir, 'x.pr'), 100), '<x>');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
