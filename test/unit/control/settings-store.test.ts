import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, stat, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  InvalidSettingError,
  SettingsDirectory,
  checkSetting,
  readSettingText,
  settingFileName,
  settingText,
  userSettingsDir,
} from '../../../src/control/index.ts';
import { Dataspace, attenuate, compileCaveat } from '../../../src/dataspace/index.ts';
import {
  Bytes,
  Double,
  Embedded,
  PSet,
  canonicalBytes,
  compare,
  dict,
  is,
  parse,
  record,
  sym,
  type Value,
} from '../../../src/preserves/index.ts';
import { bindingsOf, loadScript, runScript } from '../../../src/script/index.ts';
import { checkedEngine } from '../../support/engine-log.ts';

const samples: Value[] = [
  record('hostname', 'router'),
  record('require-service', record('daemon', sym('sshd'))),
  dict({ lan: '192.168.8.1/24', dns: [sym('quad9')] }),
  'just a string',
  42,
  new Double(1.5),
  sym('maintenance'),
  [1, 2, record('x')],
  new PSet([1, 2]),
  new Bytes(new Uint8Array([1, 2, 3])),
  true,
  record('note', 'line one\nline "two"'),
];

/** Runs a settings file as the daemon's config watcher would, and returns what it asserted. */
async function assertedBy(text: string): Promise<Value[]> {
  const engine = checkedEngine().engine;
  const config = new Dataspace(engine, 'config');
  const script = loadScript(text, { source: 'setting.pr', names: ['config'] });
  engine.turn(() => void runScript(engine.root, script, bindingsOf({ config: config.ref })));
  await engine.sync();
  return [...config.values()];
}

describe('settings files', () => {
  it('are named by the SHA-1 of the canonical binary form', () => {
    for (const v of samples) {
      const expected = createHash('sha1').update(canonicalBytes(v)).digest('hex') + '.pr';
      assert.equal(settingFileName(v), expected);
    }
    // Annotations and dictionary order do not change the name.
    assert.equal(
      settingFileName(parse('@"note" {b: 2 a: 1}', { annotations: true })),
      settingFileName(parse('{a: 1 b: 2}')),
    );
  });

  it('write a record or dictionary as is, anything else as += VALUE', () => {
    assert.equal(settingText(record('hostname', 'r1')), '<hostname "r1">\n');
    assert.equal(settingText(dict({ a: 1 })), '{a: 1}\n');
    assert.equal(settingText('x'), '+= "x"\n');
    assert.equal(settingText([1, 2]), '+= [1 2]\n');
  });

  it('read back to the same value', () => {
    for (const v of samples) assert.ok(is(readSettingText(settingText(v), 'f.pr'), v));
    assert.throws(() => readSettingText('<a> <b>', 'f.pr'), InvalidSettingError);
    assert.throws(() => readSettingText('"bare string"', 'f.pr'), InvalidSettingError);
  });

  it('are scripts that assert exactly the setting', async () => {
    for (const v of samples) {
      const got = await assertedBy(settingText(v));
      assert.equal(got.length, 1, settingText(v));
      assert.ok(is(got[0]!, v), settingText(v));
    }
  });

  it('become <user-setting X> through the boot layer rewrite', async () => {
    const engine = checkedEngine().engine;
    const config = new Dataspace(engine, 'config');
    const rewrite = compileCaveat(parse('<rewrite ?x <user-setting $x>>'));
    const ref = attenuate(config.ref, [rewrite]);
    const script = loadScript(settingText('plain'), { source: 's.pr', names: ['config'] });
    engine.turn(() => void runScript(engine.root, script, bindingsOf({ config: ref })));
    await engine.sync();
    const got = [...config.values()];
    assert.equal(got.length, 1);
    assert.ok(is(got[0]!, record('user-setting', 'plain')));
  });

  it('refuse what a script would read differently, listing every reason', () => {
    assert.deepEqual(checkSetting(record('hostname', 'r1')), []);
    const problems = checkSetting(
      record('x', sym('_'), sym('?y'), sym('$z'), record('*', 1), new Embedded(1)),
    );
    assert.equal(problems.length, 5, problems.join('\n'));
    assert.match(problems[0]!, /symbol _ is pattern syntax/);
    assert.match(problems[1]!, /symbol \?y is pattern syntax/);
    assert.match(problems[2]!, /symbol \$z is a variable/);
    assert.match(problems[3]!, /labelled \* is an attenuation/);
    assert.match(problems[4]!, /embedded value/);
  });

  it('live under var/lib/limen/user-settings', () => {
    assert.equal(userSettingsDir(), '/var/lib/limen/user-settings');
    assert.equal(userSettingsDir('/tmp/r'), '/tmp/r/var/lib/limen/user-settings');
  });
});

describe('SettingsDirectory', () => {
  let root: string;
  let dir: string;
  let store: SettingsDirectory;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'limen-settings-'));
    dir = join(root, 'var/lib/limen/user-settings');
    store = new SettingsDirectory(dir);
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('lists nothing before the directory exists', async () => {
    assert.deepEqual(await store.list(), { settings: [], problems: [] });
  });

  it('sets atomically: one file named by digest, mode 0600, no temporary left', async () => {
    const v = record('hostname', 'router');
    const r = await store.set(v);
    assert.deepEqual(r, { file: settingFileName(v), changed: true });
    const names = await readdir(dir);
    assert.deepEqual(names, [settingFileName(v)]);
    const path = join(dir, r.file);
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.equal((await stat(dir)).mode & 0o777, 0o700);
    assert.ok(is(parse(await readFile(path, 'utf8')), v));
    assert.deepEqual(await store.set(v), { file: r.file, changed: false });
  });

  it('lists every setting sorted, reporting corrupt files without failing', async () => {
    await store.set('zzz');
    await store.set(dict({ a: 1 }));
    await writeFile(join(dir, 'broken.pr'), '<unclosed');
    await writeFile(join(dir, 'two.pr'), '<a> <b>');
    await writeFile(join(dir, 'misnamed.pr'), '<misnamed>');
    await writeFile(join(dir, '.hidden.pr'), 'garbage <');
    await writeFile(join(dir, 'README'), 'not a setting');
    const r = await store.list();
    const values = r.settings.map((s) => s.value);
    const sorted = [...values].sort(compare);
    assert.deepEqual(values, sorted);
    assert.ok(values.some((v) => is(v, record('hostname', 'router'))));
    assert.ok(values.some((v) => is(v, 'zzz')));
    assert.ok(values.some((v) => is(v, dict({ a: 1 }))));
    assert.ok(values.some((v) => is(v, record('misnamed'))));
    assert.deepEqual(
      r.problems.map((p) => p.file),
      ['broken.pr', 'misnamed.pr', 'two.pr'],
    );
    assert.match(r.problems[0]!.message, /broken\.pr:1:\d+/);
    assert.match(r.problems[1]!.message, /digest names [0-9a-f]{40}\.pr/);
  });

  it('unsets by value, and says when there was nothing to unset', async () => {
    const v = record('hostname', 'router');
    assert.deepEqual(await store.unset(v), { file: settingFileName(v), removed: true });
    assert.deepEqual(await store.unset(v), { file: settingFileName(v), removed: false });
    assert.ok(!(await readdir(dir)).includes(settingFileName(v)));
  });

  it('refuses an invalid setting before touching the disk', async () => {
    const before = await readdir(dir);
    await assert.rejects(store.set(record('x', sym('?y'))), InvalidSettingError);
    assert.deepEqual(await readdir(dir), before);
  });

  it('honours an aborted signal', async () => {
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(store.set('x', { signal: ac.signal }), { name: 'AbortError' });
    await assert.rejects(store.list({ signal: ac.signal }), { name: 'AbortError' });
  });

  it('reports an unwritable directory as a SettingsIoError', async () => {
    const blocked = join(root, 'blocked');
    await mkdir(root, { recursive: true });
    await writeFile(blocked, 'a file where a directory should be');
    const bad = new SettingsDirectory(join(blocked, 'user-settings'));
    await assert.rejects(bad.set('x'), { code: 'LIMEN_SETTINGS_IO' });
  });
});
