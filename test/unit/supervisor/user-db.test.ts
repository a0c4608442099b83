import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  parseGroup,
  parsePasswd,
  resolveCredentialsFrom,
} from '../../../src/supervisor/user-db.ts';
import { UnknownGroupError, UnknownUserError } from '../../../src/supervisor/errors.ts';

const passwd = parsePasswd(
  [
    'root:x:0:0:root:/root:/bin/sh',
    '# a comment',
    'dnsmasq:x:101:65534:dnsmasq:/var/lib/misc:/usr/sbin/nologin',
    'broken line',
    'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin',
    '',
  ].join('\n'),
);
const groups = parseGroup(
  ['root:x:0:', 'netdev:x:108:alice', 'nogroup:x:65534:', 'bad'].join('\n'),
);
const me = { uid: 0, gid: 0 };

describe('user database', () => {
  it('parses passwd and group, skipping malformed lines', () => {
    assert.deepEqual(
      passwd.map((p) => [p.name, p.uid, p.gid]),
      [
        ['root', 0, 0],
        ['dnsmasq', 101, 65534],
        ['nobody', 65534, 65534],
      ],
    );
    assert.deepEqual(
      groups.map((g) => [g.name, g.gid]),
      [
        ['root', 0],
        ['netdev', 108],
        ['nogroup', 65534],
      ],
    );
  });

  it('gives a named user its primary group', () => {
    assert.deepEqual(resolveCredentialsFrom('dnsmasq', undefined, passwd, groups, me), {
      uid: 101,
      gid: 65534,
    });
  });

  it('takes a uid given as a number or a numeric string', () => {
    assert.deepEqual(resolveCredentialsFrom(65534, undefined, passwd, groups, me), {
      uid: 65534,
      gid: 65534,
    });
    assert.deepEqual(resolveCredentialsFrom('101', undefined, passwd, groups, me), {
      uid: 101,
      gid: 65534,
    });
  });

  it('lets a group override the primary one, by name or id', () => {
    assert.deepEqual(resolveCredentialsFrom('dnsmasq', 'netdev', passwd, groups, me), {
      uid: 101,
      gid: 108,
    });
    assert.deepEqual(resolveCredentialsFrom(undefined, 108, passwd, groups, { uid: 5, gid: 6 }), {
      uid: 5,
      gid: 108,
    });
  });

  it('accepts an unknown uid only with an explicit group', () => {
    assert.deepEqual(resolveCredentialsFrom(4242, 'nogroup', passwd, groups, me), {
      uid: 4242,
      gid: 65534,
    });
    assert.throws(
      () => resolveCredentialsFrom(4242, undefined, passwd, groups, me),
      (e: unknown) => e instanceof UnknownUserError && /give 'group'/.test(e.message),
    );
  });

  it('says which name it does not know', () => {
    assert.throws(
      () => resolveCredentialsFrom('mallory', undefined, passwd, groups, me),
      (e: unknown) => e instanceof UnknownUserError && /unknown user 'mallory'/.test(e.message),
    );
    assert.throws(
      () => resolveCredentialsFrom('dnsmasq', 'wheel', passwd, groups, me),
      (e: unknown) =>
        e instanceof UnknownGroupError &&
        e.code === 'LIMEN_PROCESS_UNKNOWN_GROUP' &&
        /unknown group 'wheel'/.test(e.message),
    );
  });
});
