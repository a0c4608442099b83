// The resolver: the rendering (order, the nameserver limit, hostile values),
// and the driver against a real file in a temporary directory: written
// atomically, not rewritten when unchanged (same inode and mtime), a burst of
// changes written once, a failure reported as <resolver-error …>.

import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, record, sym, type Value } from '../../../src/preserves/index.ts';
import { Dataspace, P, type Handle } from '../../../src/dataspace/index.ts';
import {
  orderEntries,
  renderResolvConf,
  startResolver,
  type DnsEntry,
  type ResolverOptions,
} from '../../../src/net/resolver.ts';
import { until } from '../../support/until.ts';
import { checkedEngine } from '../../support/engine-log.ts';

const v = (text: string): Value => parse(text);
const entry = (value: string, source: string): DnsEntry => ({ value, source: v(source) });
const nameservers = (text: string) =>
  text
    .split('\n')
    .filter((l) => l.startsWith('nameserver '))
    .map((l) => l.slice('nameserver '.length));

describe('resolv.conf rendering', () => {
  it('orders static first, then by source, then addresses numerically, IPv4 before IPv6', () => {
    const ordered = orderEntries([
      entry('10.0.0.2', '<dhcp "wan1">'),
      entry('2001:db8::1', 'static'),
      entry('9.9.9.9', '<dhcp "wan0">'),
      entry('10.0.0.1', '<dhcp "wan0">'),
      entry('192.168.1.1', 'static'),
    ]);
    assert.deepEqual(
      ordered.map((e) => e.value),
      ['192.168.1.1', '2001:db8::1', '9.9.9.9', '10.0.0.1', '10.0.0.2'],
    );
  });

  it('lists an address given by several sources once, at its first place', () => {
    const text = renderResolvConf(
      [entry('100.64.0.53', '<dhcp "wan0">'), entry('100.64.0.53', 'static')],
      [],
    );
    assert.deepEqual(nameservers(text), ['100.64.0.53']);
  });

  it('writes at most three nameservers and lists the rest as comments', () => {
    const text = renderResolvConf(
      ['1.0.0.1', '1.0.0.2', '1.0.0.3', '1.0.0.4', '1.0.0.5'].map((a) => entry(a, 'static')),
      [],
    );
    assert.deepEqual(nameservers(text), ['1.0.0.1', '1.0.0.2', '1.0.0.3']);
    assert.match(
      text,
      /# The resolver reads at most 3 nameservers; not used:\n# nameserver 1\.0\.0\.4\n# nameserver 1\.0\.0\.5\n/,
    );
    assert.deepEqual(
      nameservers(
        renderResolvConf([entry('1.0.0.1', 'static'), entry('1.0.0.2', 'static')], [], {
          maxNameservers: 1,
        }),
      ),
      ['1.0.0.1'],
    );
  });

  it('writes search domains on one line, static first, lower-cased, without duplicates', () => {
    const text = renderResolvConf(
      [],
      [
        entry('Example.COM', '<dhcp "wan0">'),
        entry('lan', 'static'),
        entry('example.com.', '<dhcp "wan1">'),
        entry('corp.example', '<dhcp "wan0">'),
      ],
    );
    assert.match(text, /^search lan corp\.example example\.com$/m);
  });

  it('never writes a hostile value as a directive: it becomes a sanitized comment', () => {
    const text = renderResolvConf(
      [
        entry('1.1.1.1\nnameserver 6.6.6.6', 'static'),
        entry('8.8.8.8 # x', 'static'),
        entry('not-an-address', 'static'),
        entry('100.64.0.53', 'static'),
      ],
      [entry('evil\nnameserver 6.6.6.6', 'static'), entry('a b', 'static')],
    );
    assert.deepEqual(nameservers(text), ['100.64.0.53']);
    assert.doesNotMatch(text, /^search/m);
    for (const line of text.trimEnd().split('\n'))
      assert.ok(
        line.startsWith('#') || line === 'nameserver 100.64.0.53',
        `unexpected line ${line}`,
      );
    assert.match(text, /# nameserver "1\.1\.1\.1\?nameserver 6\.6\.6\.6"/);
  });

  it('is only the header when there is nothing to say', () => {
    const text = renderResolvConf([], []);
    assert.ok(text.split('\n').every((l) => l === '' || l.startsWith('#')));
    assert.ok(text.endsWith('\n'));
  });
});

describe('the resolver driver', () => {
  async function world(t: TestContext, options: Partial<ResolverOptions> = {}) {
    const dir = await mkdtemp(join(tmpdir(), 'limen-resolver-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const path = options.path ?? join(dir, 'resolv.conf');
    const engine = checkedEngine().engine;
    const config = new Dataspace(engine, 'config');
    const resolver = startResolver(engine.root, {
      config: config.ref,
      path,
      debounceMs: 20,
      ...options,
    });
    t.after(() => engine.turn(() => resolver.stop()));
    const assertText = (text: string): Handle => {
      let h: Handle | undefined;
      engine.turn(() => (h = engine.root.assert(config.ref, v(text))));
      return h!;
    };
    const retract = (h: Handle) => engine.turn(() => engine.root.retract(h));
    return { dir, path, engine, config, resolver, assertText, retract };
  }

  it('writes the file from the assertions, and follows them', async (t) => {
    const w = await world(t);
    const a = w.assertText('<dns-server "100.64.0.53" <dhcp "wan0">>');
    w.assertText('<dns-server "192.168.1.1" static>');
    w.assertText('<dns-search "lan" static>');
    await w.resolver.flush();
    let text = await readFile(w.path, 'utf8');
    assert.deepEqual(nameservers(text), ['192.168.1.1', '100.64.0.53']);
    assert.match(text, /^search lan$/m);
    assert.equal((await stat(w.path)).mode & 0o777, 0o644);

    w.retract(a);
    await w.resolver.flush();
    text = await readFile(w.path, 'utf8');
    assert.deepEqual(nameservers(text), ['192.168.1.1']);
    // No temporary file is left behind.
    assert.deepEqual(await readdir(w.dir), ['resolv.conf']);
  });

  it('does not rewrite unchanged content: the inode and mtime stay', async (t) => {
    const w = await world(t);
    w.assertText('<dns-server "100.64.0.53" <dhcp "wan0">>');
    await w.resolver.flush();
    const before = await stat(w.path);
    const writes = w.resolver.writes;
    // Same rendering: the same address from a second source, and a change undone.
    const dup = w.assertText('<dns-server "100.64.0.53" <dhcp "wan1">>');
    await w.resolver.flush();
    const extra = w.assertText('<dns-server "100.64.0.54" <dhcp "wan0">>');
    w.retract(extra);
    w.retract(dup);
    await w.resolver.flush();
    const after = await stat(w.path);
    assert.equal(w.resolver.writes, writes);
    assert.equal(after.ino, before.ino);
    assert.equal(after.mtimeMs, before.mtimeMs);
  });

  it('leaves a file that already holds the right content alone at start', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'limen-resolver-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const path = join(dir, 'resolv.conf');
    await writeFile(path, renderResolvConf([], []));
    const before = await stat(path);
    const w = await world(t, { path });
    await w.resolver.flush();
    const after = await stat(path);
    assert.equal(w.resolver.writes, 0);
    assert.equal(after.ino, before.ino);
    assert.equal(after.mtimeMs, before.mtimeMs);
  });

  it('writes a burst of changes once', async (t) => {
    const w = await world(t, { debounceMs: 200 });
    await w.resolver.flush(); // the initial (empty) file
    const writes = w.resolver.writes;
    // Twenty changes, each in a turn of its own, faster than the debounce.
    const handles: Handle[] = [];
    for (let i = 1; i <= 20; i++) handles.push(w.assertText(`<dns-server "10.0.0.${i}" static>`));
    for (const h of handles.slice(0, 10)) w.retract(h);
    await w.engine.sync();
    await until(() => w.resolver.writes > writes, { timeoutMs: 5000, describe: () => 'a write' });
    await w.resolver.flush();
    assert.equal(w.resolver.writes, writes + 1);
    assert.deepEqual(nameservers(await readFile(w.path, 'utf8')), [
      '10.0.0.11',
      '10.0.0.12',
      '10.0.0.13',
    ]);
  });

  it('reports a failure to write as <resolver-error PATH MESSAGE>, and retracts it once fixed', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'limen-resolver-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const path = join(dir, 'missing', 'resolv.conf');
    const w = await world(t, { path });
    await w.resolver.flush();
    const errors = () => w.config.query(P.rec('resolver-error', path, P.bind('m')));
    await until(() => errors().length === 1, { describe: () => 'a resolver-error' });
    const message = errors()[0]!.captures.get('m');
    assert.equal(typeof message, 'string');
    assert.match(message as string, /ENOENT/);

    const { mkdir } = await import('node:fs/promises');
    await mkdir(join(dir, 'missing'));
    w.assertText('<dns-server "100.64.0.53" static>');
    await w.resolver.flush();
    await until(() => errors().length === 0, { describe: () => 'the error retracted' });
    assert.deepEqual(nameservers(await readFile(path, 'utf8')), ['100.64.0.53']);
    assert.equal(w.config.has(record('resolver-error', path, sym('x'))), false);
  });
});
