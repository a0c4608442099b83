import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { UntilTimeoutError, isNotYet, until } from '../../support/until.ts';

describe('until (test/support)', () => {
  it('waits while a predicate returns an empty list or string, and returns what it found', async () => {
    const found: string[] = [];
    let polls = 0;
    const got = await until(() => {
      if (++polls === 3) found.push('<interface "wan0">');
      return [...found];
    });
    assert.deepEqual(got, ['<interface "wan0">']);
    assert.equal(polls, 3);
    let text = '';
    setTimeout(() => (text = 'banner'), 20);
    assert.equal(await until(() => text), 'banner');
  });

  it('takes 0 as a value (an exit code), and undefined, null, false, "" and [] as not yet', async () => {
    assert.equal(await until(() => 0), 0);
    for (const v of [undefined, null, false, '', []]) assert.ok(isNotYet(v), String(v));
    for (const v of [0, 'x', [0], {}, true]) assert.ok(!isNotYet(v), JSON.stringify(v));
  });

  it('times out with what was seen', async () => {
    await assert.rejects(
      until(() => [], { timeoutMs: 30, describe: () => 'a match (seen: none)' }),
      (e: unknown) =>
        e instanceof UntilTimeoutError &&
        /timed out after 30 ms waiting for: a match \(seen: none\)/.test(e.message),
    );
  });
});
