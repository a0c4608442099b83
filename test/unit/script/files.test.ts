import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import {
  ScriptPathError,
  checkScriptFiles,
  listScriptFiles,
  scanScriptTree,
} from '../../../src/script/index.ts';

const fixtures = fileURLToPath(new URL('../../fixtures/scripts/', import.meta.url));
const tree = join(fixtures, 'tree');

describe('script files', () => {
  it('lists *.pr in name order, subdirectories in place, skipping dot-files and dot-dirs', async () => {
    const t = await scanScriptTree(tree);
    assert.deepEqual(
      t.files.map((f) => f.slice(tree.length + 1)),
      ['10-base.pr', '20-services/a.pr', '20-services/b.pr', '30-last.pr'],
    );
    assert.deepEqual(
      t.dirs.map((d) => d.slice(tree.length)),
      ['', '/20-services'],
    );
    assert.equal(t.missing, false);
  });

  it('takes a single file as the only script, whatever its name', async () => {
    const notes = join(tree, 'notes.txt');
    assert.deepEqual(await scanScriptTree(notes), {
      files: [notes],
      dirs: [],
      missing: false,
      isFile: true,
    });
  });

  it('reports a missing path', async () => {
    assert.equal((await scanScriptTree(join(fixtures, 'nope'))).missing, true);
    await assert.rejects(
      listScriptFiles([tree, join(fixtures, 'nope')]),
      (e: unknown) =>
        e instanceof ScriptPathError &&
        e.code === 'LIMEN_SCRIPT_PATH' &&
        /nope: no such file or directory$/.test(e.message),
    );
  });

  it('checks every file, keeping each file its own problems', async () => {
    const checked = await checkScriptFiles(
      [join(fixtures, 'broken')],
      ['config', 'machine', 'log'],
    );
    assert.deepEqual(
      checked.map((c) => [
        c.path.slice(fixtures.length),
        c.problems.length,
        c.script !== undefined,
      ]),
      [
        ['broken/10-ok.pr', 0, true],
        ['broken/20-bad.pr', 3, false],
        ['broken/30-syntax.pr', 1, false],
      ],
    );
  });
});
