// --web-group: a gid or a name of the group file; root's group and unknown names are refused.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebGroupError } from '../../../src/daemon/errors.ts';
import { resolveWebGroup } from '../../../src/daemon/web-group.ts';

describe('resolveWebGroup', () => {
  let dir: string;
  let groups: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'limen-group-'));
    groups = join(dir, 'group');
    await writeFile(groups, 'root:x:0:\nlimen-web:x:998:www-data\nwheel:x:0:\n');
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('takes a gid, or a name of the group file', async () => {
    assert.equal(await resolveWebGroup('65534', groups), 65534);
    assert.equal(await resolveWebGroup('limen-web', groups), 998);
  });

  it("refuses root's group, an unknown name, and says what to do", async () => {
    await assert.rejects(resolveWebGroup('0', groups), WebGroupError);
    await assert.rejects(resolveWebGroup('wheel', groups), /gid 0/);
    await assert.rejects(resolveWebGroup('limen-www', groups), /groupadd --system limen-www/);
    await assert.rejects(resolveWebGroup('x', join(dir, 'none')), /cannot read .*give a gid/);
  });
});
