// The dashboard's sessions (idle and absolute expiry, the cap and its eviction, the
// CSRF comparison), the login limiter per address, and the options' reading (every
// problem named, defaults).

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  LoginLimiter,
  MAX_SESSIONS,
  SessionStore,
  csrfMatches,
} from '../../../src/web/sessions.ts';
import { WebOptionError, readWebConfig } from '../../../src/web/server-options.ts';
import { parse } from '../../../src/preserves/index.ts';

describe('web sessions', () => {
  it('end after idle seconds without a request, and after max seconds whatever happens', () => {
    let now = 0;
    const store = new SessionStore({ idleS: 60, maxS: 300, now: () => now });
    const { token, session } = store.create('192.168.8.100');
    let ended = 0;
    session.onEnd.push(() => ended++);
    now = 59_000;
    assert.equal(store.find(token), session);
    now = 59_000 + 59_999;
    assert.equal(store.find(token), session, 'used again within idle');
    for (now = 120_000; now < 300_000; now += 50_000) assert.equal(store.find(token), session);
    now = 300_000;
    assert.equal(store.find(token), undefined, 'max reached while in use');
    assert.equal(ended, 1);
    const b = store.create('x');
    now += 60_000;
    assert.equal(store.find(b.token), undefined, 'idle reached');
    assert.equal(store.find(undefined), undefined);
    assert.equal(store.find('x'.repeat(1000)), undefined);
  });

  it(`keeps at most ${MAX_SESSIONS}, ending the least recently used first`, () => {
    let now = 0;
    const store = new SessionStore({ now: () => now });
    const first = store.create('a');
    const second = store.create('b');
    for (let i = 0; i < MAX_SESSIONS - 2; i++) store.create('c');
    now = 1;
    store.find(first.token);
    store.create('d');
    assert.equal(store.size, MAX_SESSIONS);
    assert.equal(store.find(second.token), undefined, 'the least recently used went');
    assert.ok(store.find(first.token));
  });

  it('compares CSRF tokens exactly', () => {
    const { session } = new SessionStore().create('a');
    assert.ok(csrfMatches(session, session.csrf));
    assert.ok(!csrfMatches(session, undefined));
    assert.ok(!csrfMatches(session, ''));
    assert.ok(!csrfMatches(session, session.csrf.slice(1)));
    assert.ok(!csrfMatches(session, `${session.csrf}x`));
  });

  it('refuses an address after 5 failed logins for 15 minutes, others not', () => {
    let now = 0;
    const l = new LoginLimiter({ now: () => now });
    for (let i = 0; i < 4; i++) l.failed('10.0.0.1');
    assert.equal(l.refusal('10.0.0.1'), undefined);
    l.failed('10.0.0.1');
    assert.equal(l.refusal('10.0.0.1'), 900);
    assert.equal(l.refusal('10.0.0.2'), undefined);
    now = 899_000;
    assert.equal(l.refusal('10.0.0.1'), 1);
    now = 900_000;
    assert.equal(l.refusal('10.0.0.1'), undefined);
  });
});

describe('web options', () => {
  it('defaults to the LAN zone on port 80, 443 with TLS', () => {
    assert.deepEqual(readWebConfig(parse('{}')), {
      interfaces: undefined,
      port: 80,
      tls: undefined,
      idleS: 1800,
      maxS: 43200,
    });
    assert.equal(readWebConfig(parse('{tls: self-signed}')).port, 443);
    assert.deepEqual(readWebConfig(parse('{tls: {cert: "/c" key: "/k"} port: 8443}')).tls, {
      cert: '/c',
      key: '/k',
    });
  });

  it('names every problem at once', () => {
    assert.throws(
      () => readWebConfig(parse('{prot: 80 interfaces: ["bad name"] tls: yes session: {idle: 1}}')),
      (e: unknown) =>
        e instanceof WebOptionError &&
        /unknown key prot/.test(e.message) &&
        /interfaces must be/.test(e.message) &&
        /tls must be/.test(e.message) &&
        /session is/.test(e.message),
    );
    assert.throws(() => readWebConfig(parse('{port: 0}')), /port must be/);
    assert.throws(() => readWebConfig(parse('[]')), /must be a dictionary/);
  });
});
