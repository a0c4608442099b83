// "Did you mean …?" (src/base/suggest.ts): one helper for keys (options, spec
// fields), moved here from the daemon spec's own copy with the same assertions.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { editDistance, nearestKey } from '../../../src/base/suggest.ts';

describe('nearestKey', () => {
  it('suggests only close names', () => {
    assert.equal(nearestKey('agrv', ['argv', 'env']), 'argv');
    assert.equal(nearestKey('stoptimeout', ['stopTimeout']), 'stopTimeout');
    assert.equal(nearestKey('zzz', ['argv', 'env']), undefined);
  });

  it('compares without case, and a transposition is one edit', () => {
    assert.equal(nearestKey('Gateway', ['gateway', 'dns', 'search']), 'gateway');
    assert.equal(editDistance('agrv', 'argv'), 1);
  });
});
