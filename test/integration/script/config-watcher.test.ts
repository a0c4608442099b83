import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, open, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Dict, parse, record, stringify, sym, type Value } from '../../../src/preserves/index.ts';
import { Dataspace, Engine, P, embed, type Logger } from '../../../src/dataspace/index.ts';
import {
  ConfigWatcher,
  bindingsOf,
  presentable,
  startConfigWatcherService,
  type ConfigWatcherOptions,
} from '../../../src/script/index.ts';
import { until } from '../../support/until.ts';

const show = (v: Value): string => stringify(presentable(v));

interface Harness {
  readonly root: string;
  readonly dir: string;
  readonly engine: Engine;
  readonly config: Dataspace;
  readonly machine: Dataspace;
  /** Every add and remove seen in $config, in order ("+<a>", "-<a>"). */
  readonly events: string[];
  readonly errors: string[];
  /** Writes a file atomically (temporary file, then rename), as editors and tools do. */
  put(name: string, text: string): Promise<void>;
  /** Waits until every value is asserted in $config (or machine). */
  has(texts: readonly string[], ds?: Dataspace): Promise<unknown>;
  /** Waits until none of the values is asserted. */
  lacks(texts: readonly string[], ds?: Dataspace): Promise<unknown>;
  /** The `<config-error ...>` assertions, shown. */
  configErrors(): string[];
  start(options?: Partial<ConfigWatcherOptions>): Promise<ConfigWatcher>;
}

async function harness(t: TestContext): Promise<Harness> {
  const root = await mkdtemp(join(tmpdir(), 'limen-config-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  const dir = join(root, 'etc');
  await mkdir(dir);
  const errors: string[] = [];
  const logger: Logger = { error: (m) => errors.push(m), warn: (m) => errors.push(m) };
  const engine = new Engine({ logger });
  t.after(() => engine.root.stop());
  const config = new Dataspace(engine, 'config');
  const machine = new Dataspace(engine, 'machine');
  const events: string[] = [];
  engine.root.observe(config.ref, P._, {
    onAdd: (v) => events.push('+' + show(v)),
    onRemove: (v) => events.push('-' + show(v)),
  });
  let tmpCount = 0;
  const wait = (ds: Dataspace, texts: readonly string[], present: boolean) =>
    until(() => texts.every((x) => ds.has(parse(x)) === present), {
      describe: () =>
        `${present ? 'presence' : 'absence'} of ${texts.join(' ')} in ${ds.name}; it holds: ${[...ds.values()].map(show).join(' ')}; errors: ${errors.join(' | ')}`,
    });
  return {
    root,
    dir,
    engine,
    config,
    machine,
    events,
    errors,
    async put(name, text) {
      const tmp = join(root, `.tmp-${tmpCount++}`);
      await writeFile(tmp, text);
      await rename(tmp, join(dir, name));
    },
    has: (texts, ds = config) => wait(ds, texts, true),
    lacks: (texts, ds = config) => wait(ds, texts, false),
    configErrors: () =>
      [...config.values()]
        .map(show)
        .filter((s) => s.startsWith('<config-error '))
        .sort(),
    async start(options = {}) {
      const w = new ConfigWatcher(engine.root, {
        path: dir,
        env: bindingsOf({ config: config.ref, machine: machine.ref }),
        ...options,
      });
      t.after(() => w.stop());
      const ready = record('service-state', w.serviceName, sym('ready'));
      await until(() => config.has(ready), { describe: () => 'the watcher to be ready' });
      return w;
    },
  };
}

describe('ConfigWatcher', () => {
  it('loads every script in name order, recursively, skipping dot-files, then says ready', async (t) => {
    const h = await harness(t);
    await mkdir(join(h.dir, '20-sub'));
    await mkdir(join(h.dir, '.git'));
    await writeFile(join(h.dir, '10-a.pr'), '<a>');
    await writeFile(join(h.dir, '20-sub', 'b.pr'), '$machine <b>');
    await writeFile(join(h.dir, '30-c.pr'), '<c>');
    await writeFile(join(h.dir, '.hidden.pr'), '<hidden>');
    await writeFile(join(h.dir, '.git', 'x.pr'), '<in-dot-dir>');
    await writeFile(join(h.dir, 'notes.txt'), '<not-a-script>');
    const w = await h.start();
    assert.ok(h.config.has(parse('<a>')) && h.config.has(parse('<c>')));
    assert.ok(h.machine.has(parse('<b>')));
    assert.ok(!h.config.has(parse('<hidden>')) && !h.config.has(parse('<in-dot-dir>')));
    assert.ok(!h.config.has(parse('<not-a-script>')));
    assert.deepEqual(
      w.facet.children.map((f) => f.origin),
      [join(h.dir, '10-a.pr'), join(h.dir, '20-sub', 'b.pr'), join(h.dir, '30-c.pr')],
    );
    const name = show(w.serviceName);
    assert.match(
      name,
      /^<config-watcher ".*\/etc" \{config: #:<dataspace config> machine: #:<dataspace machine>\}>$/,
    );
    assert.ok(h.events.includes(`+<service-state ${name} ready>`));
  });

  it('reacts to a new, changed and deleted file', async (t) => {
    const h = await harness(t);
    await h.start();
    await h.put('a.pr', '<a 1>');
    await h.has(['<a 1>']);
    await h.put('a.pr', '<a 2>');
    await h.has(['<a 2>']);
    await h.lacks(['<a 1>']);
    await unlink(join(h.dir, 'a.pr'));
    await h.lacks(['<a 2>']);
    assert.deepEqual(h.errors, []);
  });

  it('starts the new version before stopping the old: unchanged assertions never flap', async (t) => {
    const h = await harness(t);
    await h.put('a.pr', '<stable> $machine <m> <changing 1>');
    await h.start();
    h.events.length = 0;
    await h.put('a.pr', '<stable> $machine <m> <changing 2>');
    await h.has(['<changing 2>']);
    await h.lacks(['<changing 1>']);
    await h.engine.sync();
    assert.deepEqual(h.events, ['+<changing 2>', '-<changing 1>']);
  });

  it('keeps the last good version of a broken file and publishes its errors until fixed', async (t) => {
    const h = await harness(t);
    const file = join(h.dir, 'a.pr');
    await h.put('a.pr', '<good 1>');
    await h.start();
    await h.put('a.pr', '<good 2>\n<broken');
    await until(() => h.configErrors().length === 1, { describe: () => h.configErrors().join() });
    assert.deepEqual(h.configErrors(), [
      `<config-error "${file}" {column: 8 line: 2 message: "expected '>' to close the record opened at 2:1, found end of input"}>`,
    ]);
    assert.ok(h.config.has(parse('<good 1>')), 'the last good version still runs');
    assert.ok(!h.config.has(parse('<good 2>')));

    // Two check errors: one assertion each (the syntax error's goes).
    await h.put('a.pr', 'let? ?x = 1\n<b $nope>\n<good 3>');
    await until(() => h.configErrors().length === 2 && !h.configErrors()[0]!.includes("'>'"), {
      describe: () => h.configErrors().join('\n'),
    });
    assert.deepEqual(h.configErrors(), [
      `<config-error "${file}" {column: 1 line: 1 message: "unknown instruction 'let?' (did you mean 'let'?)"}>`,
      `<config-error "${file}" {column: 4 line: 2 message: "unbound variable $nope (bind it with let ?nope = ..., or capture it with ?nope in an enclosing pattern)"}>`,
    ]);
    assert.ok(h.config.has(parse('<good 1>')));

    await h.put('a.pr', '<good 4>');
    await h.has(['<good 4>']);
    await h.lacks(['<good 1>']);
    await until(() => h.configErrors().length === 0, { describe: () => h.configErrors().join() });
  });

  it('treats a file whose top level fails at run time as broken', async (t) => {
    const h = await harness(t);
    const file = join(h.dir, 'a.pr');
    await h.put('a.pr', '<v 1>');
    await h.start();
    await h.put('a.pr', '<v 2>\nlet [?x] = 5');
    await until(() => h.configErrors().length === 1, { describe: () => h.configErrors().join() });
    assert.deepEqual(h.configErrors(), [
      `<config-error "${file}" {column: 1 line: 2 message: "let: 5 does not match the pattern"}>`,
    ]);
    assert.ok(h.config.has(parse('<v 1>')));
    assert.ok(!h.config.has(parse('<v 2>')));
  });

  it('retracts a removed file’s assertions and errors', async (t) => {
    const h = await harness(t);
    await h.put('a.pr', '<kept-while-broken>');
    await h.start();
    await h.put('a.pr', '<oops');
    await until(() => h.configErrors().length === 1, { describe: () => h.configErrors().join() });
    await unlink(join(h.dir, 'a.pr'));
    await h.lacks(['<kept-while-broken>']);
    await until(() => h.configErrors().length === 0, { describe: () => h.configErrors().join() });
  });

  it('follows a rename without flapping what the file asserts', async (t) => {
    const h = await harness(t);
    await h.put('a.pr', '<renamed>');
    const w = await h.start();
    h.events.length = 0;
    await rename(join(h.dir, 'a.pr'), join(h.dir, 'b.pr'));
    await until(() => w.facet.children.some((f) => f.origin === join(h.dir, 'b.pr')), {
      describe: () => w.facet.children.map((f) => f.origin).join(),
    });
    await until(() => !w.facet.children.some((f) => f.origin === join(h.dir, 'a.pr')));
    await h.engine.sync();
    assert.ok(h.config.has(parse('<renamed>')));
    assert.deepEqual(h.events, []);
  });

  it('watches new subdirectories', async (t) => {
    const h = await harness(t);
    await h.start();
    await mkdir(join(h.dir, 'sub', 'deeper'), { recursive: true });
    await writeFile(join(h.dir, 'sub', 'deeper', 'x.pr'), '<deep 1>');
    await h.has(['<deep 1>']);
    await writeFile(join(h.dir, 'sub', 'deeper', 'x.pr'), '<deep 2>');
    await h.has(['<deep 2>']);
    await rm(join(h.dir, 'sub'), { recursive: true });
    await h.lacks(['<deep 2>']);
  });

  it('loses nothing when a file changes many times in a row', async (t) => {
    const h = await harness(t);
    await h.start();
    for (let i = 0; i < 20; i++) await writeFile(join(h.dir, 'a.pr'), `<n ${i}>`);
    await h.has(['<n 19>']);
    await h.engine.sync();
    assert.deepEqual(
      [...h.config.values()].map(show).filter((s) => s.startsWith('<n ')),
      ['<n 19>'],
    );
  });

  it('watches a single file, replaced by rename', async (t) => {
    const h = await harness(t);
    const file = join(h.dir, 'only.pr');
    await writeFile(file, '<only 1>');
    await writeFile(join(h.dir, 'other.pr'), '<other>');
    await h.start({ path: file });
    assert.ok(h.config.has(parse('<only 1>')));
    assert.ok(!h.config.has(parse('<other>')));
    await h.put('only.pr', '<only 2>');
    await h.has(['<only 2>']);
    await h.lacks(['<only 1>']);
  });

  it('starts on a missing directory and loads it when it appears', async (t) => {
    const h = await harness(t);
    const later = join(h.root, 'later');
    await h.start({ path: later });
    await mkdir(later);
    await writeFile(join(later, 'x.pr'), '<appeared>');
    await h.has(['<appeared>']);
  });

  it('rescans on demand (as on SIGHUP)', async (t) => {
    const h = await harness(t);
    // Events would only be acted on after an hour: the rescan must do it.
    const w = await h.start({ debounceMs: 3_600_000 });
    await writeFile(join(h.dir, 'a.pr'), '<by-rescan>');
    await w.rescan();
    await h.engine.sync();
    assert.ok(h.config.has(parse('<by-rescan>')));
  });

  it('stops every script, and watching, when stopped', async (t) => {
    const h = await harness(t);
    await h.put('a.pr', '<a>');
    const w = await h.start();
    w.stop();
    await h.engine.sync();
    assert.equal(h.config.size, 0);
    await h.put('b.pr', '<b>');
    await w.rescan();
    await h.engine.sync();
    assert.equal(h.config.size, 0);
  });
});

/** Rewrites `path` in place (truncate, then 64 KiB chunks `gapMs` apart), as a slow writer does. */
async function writeInPlace(path: string, text: string, gapMs: number): Promise<void> {
  const data = Buffer.from(text);
  const fh = await open(path, 'w'); // O_TRUNC: the file is empty from here on
  try {
    for (let at = 0; at < data.length; at += 64 * 1024) {
      await fh.write(data, at, Math.min(64 * 1024, data.length - at), at);
      await new Promise((r) => setTimeout(r, gapMs)); // the writer's pace, not a wait for state
    }
  } finally {
    await fh.close();
  }
}

/** A script of about `kib` KiB: fillers, then what must never go away, last. */
function bigScript(kib: number, version: number): string {
  const lines: string[] = [];
  for (let i = 0, size = 0; size < kib * 1024; i++) {
    const line = `<filler ${i} "${'x'.repeat(48)}">`;
    lines.push(line);
    size += line.length + 1;
  }
  return `${lines.join('\n')}\n<keep>\n<version ${version}>\n`;
}

describe('ConfigWatcher: bounds and settling', () => {
  it('refuses a file over the size limit unread, keeping its last good version', async (t) => {
    const h = await harness(t);
    await h.put('a.pr', '<v 1>');
    await h.start({ maxFileBytes: 1000 });
    await h.put('a.pr', `<v 2> # ${'x'.repeat(2000)}`);
    const path = join(h.dir, 'a.pr');
    await until(() => h.configErrors().length === 1, { describe: () => h.configErrors().join() });
    assert.deepEqual(h.configErrors(), [
      `<config-error ${JSON.stringify(path)} {column: 0 line: 0 message: "the file is 2008 bytes, over the limit of 1000 bytes for a script: split it, or keep bulk data in a file that a service reads"}>`,
    ]);
    assert.ok(h.config.has(parse('<v 1>')));
    await h.put('a.pr', '<v 3>');
    await h.has(['<v 3>']);
    await until(() => h.configErrors().length === 0, { describe: () => h.configErrors().join() });
  });

  it('refuses, by name order, the files that bring a tree over its total', async (t) => {
    const h = await harness(t);
    await h.put('a.pr', `<a> # ${'x'.repeat(50)}`);
    await h.put('b.pr', `<b> # ${'x'.repeat(50)}`);
    await h.put('c.pr', '<c>');
    await h.start({ maxTotalBytes: 100 });
    assert.ok(h.config.has(parse('<a>')));
    assert.ok(!h.config.has(parse('<b>')));
    assert.match(
      h.configErrors().join(),
      /b\.pr" \{column: 0 line: 0 message: "not loaded: with it the scripts under .* total 115 bytes, over the limit of 100 bytes"\}>/,
    );
    assert.equal(h.configErrors().length, 2); // c.pr too: 119 bytes
    await h.put('a.pr', '<a>');
    await h.has(['<b>', '<c>']);
    await until(() => h.configErrors().length === 0, { describe: () => h.configErrors().join() });
  });

  it('applies a file rewritten in place in chunks only once it is whole, and reports nothing meanwhile', async (t) => {
    const h = await harness(t);
    const path = join(h.dir, 'big.pr');
    await writeFile(path, bigScript(300, 0));
    await h.start();
    assert.ok(h.config.has(parse('<keep>')));
    h.events.length = 0;
    for (let version = 1; version <= 3; version++) {
      await writeInPlace(path, bigScript(300, version), 20);
      await h.has([`<version ${version}>`]);
    }
    await h.engine.sync();
    // Nothing but the version ever changed: no half file applied, no error reported.
    assert.deepEqual(
      h.events.filter((e) => !e.includes('<version ')),
      [],
    );
    assert.deepEqual(h.errors, []);
  });

  it('reports a file left ending in the middle of a value, once it has stopped changing', async (t) => {
    const h = await harness(t);
    const path = join(h.dir, 'a.pr');
    await writeFile(path, '<v 1>\n');
    await h.start({ incompleteMs: 300 });
    await writeInPlace(path, '<v 2>\n<w "unfinished', 0);
    await until(() => h.configErrors().length === 1, { describe: () => h.configErrors().join() });
    assert.match(
      h.configErrors()[0]!,
      /\{column: 15 line: 2 message: "unterminated string opened at 2:4"\}/,
    );
    assert.ok(h.config.has(parse('<v 1>')) && !h.config.has(parse('<v 2>')));
  });

  it('shows a budget failure as a config error until the file changes, or a rescan runs it again', async (t) => {
    const h = await harness(t);
    await h.put('loop.pr', '<here>\n?? <ping> ! <ping>');
    const w = await h.start();
    const path = join(h.dir, 'loop.pr');
    const error = `<config-error ${JSON.stringify(path)} {column: 1 line: 2 message: "stopped: a chain of more than 100000 turns, each caused by the one before, did not end (a message or assertion loop?)"}>`;
    h.engine.turn(() => h.engine.root.send(h.config.ref, record('ping')));
    await until(() => h.configErrors().length === 1, { describe: () => h.configErrors().join() });
    assert.deepEqual(h.configErrors(), [error]);
    assert.ok(!h.config.has(parse('<here>')));
    // SIGHUP: the same file runs again, and its error goes.
    await w.rescan();
    await h.has(['<here>']);
    assert.deepEqual(h.configErrors(), []);
    h.engine.turn(() => h.engine.root.send(h.config.ref, record('ping')));
    await until(() => h.configErrors().length === 1, { describe: () => h.configErrors().join() });
    await h.put('loop.pr', '<fixed>');
    await h.has(['<fixed>']);
    assert.deepEqual(h.configErrors(), []);
  });
});

describe('startConfigWatcherService', () => {
  it('runs a watcher while <run-service <config-watcher PATH ENV>> is asserted', async (t) => {
    const h = await harness(t);
    await writeFile(join(h.dir, 'a.pr'), '<from-service> $machine <m>');
    const driver = startConfigWatcherService(h.engine.root, h.config.ref, undefined, {
      debounceMs: 3_600_000,
    });
    const service = record(
      'config-watcher',
      h.dir,
      new Dict([
        [sym('config'), embed(h.config.ref)],
        [sym('machine'), embed(h.machine.ref)],
      ]),
    );
    const handle = h.engine.root.assert(h.config.ref, record('run-service', service));
    await until(() => h.config.has(record('service-state', service, sym('ready'))), {
      describe: () => [...h.config.values()].map(show).join(' '),
    });
    assert.ok(h.config.has(parse('<from-service>')));
    assert.ok(h.machine.has(parse('<m>')));
    assert.equal(driver.watchers().length, 1);
    // File events wait an hour here: only the driver's rescan (SIGHUP) applies the change.
    await writeFile(join(h.dir, 'b.pr'), '<after-rescan>');
    await driver.rescan();
    await h.engine.sync();
    assert.ok(h.config.has(parse('<after-rescan>')));
    h.engine.root.retract(handle);
    await h.lacks(['<from-service>']);
    assert.equal(h.machine.size, 0);
    assert.equal(driver.watchers().length, 0);
  });

  it('fails a bad request alone, and logs why', async (t) => {
    const h = await harness(t);
    await writeFile(join(h.dir, 'a.pr'), '<ok>');
    startConfigWatcherService(h.engine.root, h.config.ref);
    h.engine.root.assert(h.config.ref, parse('<run-service <config-watcher 42 {}>>'));
    h.engine.root.assert(
      h.config.ref,
      record('run-service', record('config-watcher', h.dir, parse('{other: 1}'))),
    );
    h.engine.root.assert(
      h.config.ref,
      record(
        'run-service',
        record('config-watcher', h.dir, new Dict([[sym('config'), embed(h.config.ref)]])),
      ),
    );
    await h.has(['<ok>']);
    await until(() => h.errors.length === 2, { describe: () => h.errors.join('\n') });
    assert.match(h.errors.join('\n'), /needs a string PATH/);
    assert.match(h.errors.join('\n'), /must bind config to a dataspace ref/);
  });
});
