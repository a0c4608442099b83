// Configuration generations (issue 12, first part; docs/safe-change.md) against the
// real daemon in a private --root (no network layer): the configuration it starts
// with is generation 1, every hand edit that settles is the next one (an edit that
// changes nothing is none), `limen rollback` puts an earlier one's files back and
// the daemon applies them, and `limen generations` lists them all. The store itself:
// a generation's file is never written again, pruning spares the current and the last
// confirmed, a damaged state file is set aside and rebuilt, a restart on unchanged
// files records nothing. A snapshot is refused past 32 MiB from the files' sizes,
// before they are read: a stray file of gigabytes in a site root costs no memory.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Daemon } from '../../../src/daemon/daemon.ts';
import { SiteDaemon } from '../../support/site-daemon.ts';
import { GenerationStore, MAX_SNAPSHOT_BYTES, snapshot } from '../../../src/safety/index.ts';
import { restoreFiles } from '../../../src/safety/generations.ts';
import { FileTreeTooLargeError, readFileTree } from '../../../src/platform/file-tree.ts';
import { until } from '../../support/until.ts';

interface Listed {
  number: number;
  message: string;
  who: string;
  outcome: string;
  current: boolean;
  'last-confirmed': boolean;
  parent?: number;
  checksum: string;
}

describe('configuration generations', () => {
  let t: SiteDaemon;
  let site: string;
  let root: string;
  let daemon: Daemon | undefined;

  const start = async () => {
    daemon = await t.start();
  };
  const cli = (...args: string[]) => t.cli(...args);
  const listed = async (): Promise<Listed[]> => {
    const r = await cli('generations', '--json');
    assert.equal(r.code, 0, r.err);
    return JSON.parse(r.out) as Listed[];
  };
  const greeting = async () => (await cli('query', '<greeting ?g>', '--json')).out;
  const siteFile = (name: string, text: string) =>
    writeFileSync(join(site, 'services', name), text);

  before(async () => {
    // Editors' swap files and other dot-files are not configuration.
    t = new SiteDaemon('limen-generations-', {
      'services/hello.pr': '<greeting "one">\n',
      'services/.hello.pr.swp': 'junk',
    });
    ({ site, root } = t);
    await start();
  });

  after(async () => {
    await t?.close();
  });

  it('records the configuration it starts with as generation 1, confirmed and current', async () => {
    const gens = await listed();
    assert.equal(gens.length, 1);
    assert.deepEqual(
      { ...gens[0], checksum: undefined, time: undefined },
      {
        number: 1,
        message: 'the configuration at first start',
        who: 'daemon start',
        outcome: 'confirmed',
        current: true,
        'last-confirmed': true,
        checksum: undefined,
        time: undefined,
      },
    );
    assert.equal(gens[0]!.checksum, (await snapshot([site])).checksum);
    const table = await cli('generations');
    assert.equal(table.code, 0);
    assert.match(
      table.out,
      /^ {4}GEN +TIME +OUTCOME +MESSAGE\n\*c +1 +\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ +confirmed +the configuration at first start\n$/,
    );
    const store = await GenerationStore.open(join(root, 'var/lib/limen/generations'));
    const g = await store.read(1);
    assert.deepEqual([...g.files.get(site)!.keys()], ['services/hello.pr']);
    assert.equal(statSync(join(root, 'var/lib/limen/generations')).mode & 0o777, 0o700);
  });

  it('records a hand edit once it settles, and nothing for a write that changes nothing', async () => {
    const genDir = join(root, 'var/lib/limen/generations');
    const first = statSync(join(genDir, '000001.gen'));
    siteFile('hello.pr', '<greeting "two">\n');
    await until(async () => (await listed()).length === 2, {
      timeoutMs: 10_000,
      describe: () => 'a second generation',
    });
    await until(async () => (await greeting()).includes('two'));
    const gens = await listed();
    assert.deepEqual(
      gens.map((g) => [g.number, g.message, g.outcome, g.current, g['last-confirmed'], g.parent]),
      [
        [1, 'the configuration at first start', 'confirmed', false, false, undefined],
        [2, 'hand edit', 'confirmed', true, true, 1],
      ],
    );
    // The same content written again, and a dot-file changed: no new generation.
    siteFile('hello.pr', '<greeting "two">\n');
    siteFile('.hello.pr.swp', 'more junk');
    await daemon!.generations.idle();
    assert.equal((await listed()).length, 2);
    // Generation 1's file was never written again.
    const now = statSync(join(genDir, '000001.gen'));
    assert.deepEqual([now.ino, now.mtimeMs], [first.ino, first.mtimeMs]);
  });

  it('rolls back to the last confirmed generation before the current, and the daemon applies it', async () => {
    const r = await cli('rollback');
    assert.equal(r.code, 0, r.err);
    assert.equal(
      r.out,
      'rolled back from generation 2 to generation 1 (1 file(s) written, 0 removed)\n',
    );
    assert.equal(readFileSync(join(site, 'services/hello.pr'), 'utf8'), '<greeting "one">\n');
    await until(async () => (await greeting()).includes('one'), {
      describe: () => 'the daemon applies the rolled-back file',
    });
    await daemon!.generations.idle();
    const gens = await listed();
    assert.deepEqual(
      gens.map((g) => [g.number, g.outcome, g.current, g['last-confirmed']]),
      [
        [1, 'confirmed', true, true],
        [2, 'rolled back: limen rollback', false, false],
      ],
      'the files written back are generation 1 again, not a new one',
    );
    // A file added since is removed by a rollback to a generation without it.
    siteFile('extra.pr', '<extra>\n');
    await until(async () => (await listed()).length === 3, { timeoutMs: 10_000 });
    const back = await cli('rollback', '1');
    assert.equal(back.code, 0, back.err);
    assert.match(back.out, /0 file\(s\) written, 1 removed/);
    assert.deepEqual(readdirSync(join(site, 'services')).sort(), ['.hello.pr.swp', 'hello.pr']);
  });

  it('refuses a rollback with nowhere to go, or to a generation that does not exist', async () => {
    // 2 and 3 were rolled back: 1 is the only confirmed generation, and it is current.
    const nowhere = await cli('rollback');
    assert.equal(nowhere.code, 1);
    assert.equal(
      nowhere.err,
      'limen rollback: generation 1 is the only confirmed generation: there is nothing to go back to\n',
    );
    const none = await cli('rollback', '99');
    assert.equal(none.code, 1);
    assert.equal(none.err, 'limen rollback: there is no generation 99\n');
    const bad = await cli('rollback', 'two');
    assert.equal(bad.code, 2);
    assert.match(bad.err, /GEN must be a generation number/);
  });

  it('records nothing on a restart with the same files, and what changed while it was stopped', async () => {
    const before = (await listed()).length;
    await daemon!.shutdown('restart');
    await start();
    assert.equal((await listed()).length, before);
    await daemon!.shutdown('restart');
    siteFile('hello.pr', '<greeting "three">\n');
    await start();
    const gens = await listed();
    assert.equal(gens.length, before + 1);
    assert.deepEqual(
      [gens.at(-1)!.message, gens.at(-1)!.who, gens.at(-1)!.current],
      ['changed while limen was not running', 'daemon start', true],
    );
  });

  it('sets a damaged state file aside and rebuilds it from the generations', async () => {
    await daemon!.shutdown('restart');
    const state = join(root, 'var/lib/limen/generations/state.pr');
    writeFileSync(state, '{current: ');
    await start();
    const gens = await listed();
    assert.equal(gens.filter((g) => g.current).length, 1);
    assert.equal(gens.at(-1)!.current, true);
    assert.equal(readFileSync(`${state}.damaged`, 'utf8'), '{current: ');
  });
});

describe('the generation store', () => {
  it('prunes the oldest beyond its count, never the current or the last confirmed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'limen-generation-store-'));
    try {
      const site = join(dir, 'site');
      mkdirSync(site);
      const store = await GenerationStore.open(join(dir, 'gens'), { keep: 3 });
      writeFileSync(join(site, 'a.pr'), '<a 0>');
      await store.record(await snapshot([site]), { message: 'kept', who: 'test' });
      for (let i = 1; i <= 5; i++) {
        writeFileSync(join(site, 'a.pr'), `<a ${i}>`);
        await store.record(await snapshot([site]), {
          message: `trial ${i}`,
          who: 'test',
          outcome: { kind: 'trial' },
        });
      }
      // 1 is the last confirmed: kept although it is the oldest.
      assert.deepEqual(
        (await store.list()).map((g) => [g.number, g.current, g.lastConfirmed]),
        [
          [1, false, true],
          [5, false, false],
          [6, true, false],
        ],
      );
      const reopened = await GenerationStore.open(join(dir, 'gens'), { keep: 3 });
      assert.deepEqual([reopened.current, reopened.lastConfirmed], [6, 1]);
      assert.deepEqual(readdirSync(join(dir, 'gens')).sort(), [
        '000001.gen',
        '000005.gen',
        '000006.gen',
        'state.pr',
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("a snapshot's size", () => {
  const MiB = 1024 * 1024;
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'limen-snapshot-size-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  // 512 MiB: what readFile would read whole; 3 GiB: past what it can read at all.
  for (const size of [512 * MiB, 3 * 1024 * MiB]) {
    it(`is refused from a ${size / MiB} MiB file's size, without reading it`, async (t) => {
      const site = join(dir, `sparse-${size / MiB}`);
      mkdirSync(join(site, 'core'), { recursive: true });
      writeFileSync(join(site, 'core/a.pr'), '<a>');
      const big = join(site, 'core/big.pr');
      writeFileSync(big, '');
      truncateSync(big, size); // sparse: no disk
      const rssBefore = process.memoryUsage().rss;
      const peakBefore = process.resourceUsage().maxRSS * 1024;
      const refused = await snapshot([site]).then(
        () => undefined,
        (e: unknown) => e,
      );
      const rss = process.memoryUsage().rss - rssBefore;
      const peak = process.resourceUsage().maxRSS * 1024 - peakBefore;
      t.diagnostic(`RSS ${(rss / MiB).toFixed(1)} MiB, peak RSS ${(peak / MiB).toFixed(1)} MiB`);
      assert.ok(rss < 64 * MiB, `RSS grew by ${rss} bytes`);
      assert.ok(peak < 64 * MiB, `peak RSS grew by ${peak} bytes`);
      assert.ok(refused instanceof Error, 'refused');
      assert.equal(refused.name, 'GenerationError');
      assert.equal(
        refused.message,
        `the site configuration is larger than 32 MiB (${big} takes it past the limit); it is not recorded as a generation`,
      );
    });
  }

  it('still holds files up to the limit, counted across files and roots', async () => {
    const one = join(dir, 'one');
    const two = join(dir, 'two');
    mkdirSync(one);
    mkdirSync(two);
    const content = Buffer.alloc(MAX_SNAPSHOT_BYTES / 2 - 2, 7);
    writeFileSync(join(one, 'half.pr'), content);
    writeFileSync(join(two, 'a.pr'), 'ab');
    writeFileSync(join(two, 'b.pr'), content);
    const snap = await snapshot([one, two]);
    assert.deepEqual(Buffer.from(snap.files.get(one)!.get('half.pr')!), content);
    assert.deepEqual(Buffer.from(snap.files.get(two)!.get('a.pr')!).toString(), 'ab');
    assert.deepEqual(Buffer.from(snap.files.get(two)!.get('b.pr')!), content);
    // Three bytes more, and the limit is passed at b.pr.
    writeFileSync(join(two, 'a.pr'), 'abcde');
    await assert.rejects(snapshot([one, two]), /\/two\/b\.pr takes it past the limit/);
  });

  it('is not read to restore a generation: a stray 3 GiB file is removed, a 3 GiB one rewritten', async (t) => {
    const site = join(dir, 'restore');
    mkdirSync(join(site, 'core'), { recursive: true });
    writeFileSync(join(site, 'core/a.pr'), '<a>');
    const snap = await snapshot([site]);
    const stray = join(site, 'core/stray.pr');
    writeFileSync(stray, '');
    truncateSync(stray, 3 * 1024 * MiB);
    truncateSync(join(site, 'core/a.pr'), 3 * 1024 * MiB);
    const rssBefore = process.memoryUsage().rss;
    const r = await restoreFiles(snap);
    const rss = process.memoryUsage().rss - rssBefore;
    t.diagnostic(`RSS ${(rss / MiB).toFixed(1)} MiB`);
    assert.ok(rss < 64 * MiB, `RSS grew by ${rss} bytes`);
    assert.deepEqual(r, { written: 1, removed: 1 });
    assert.deepEqual(readdirSync(join(site, 'core')), ['a.pr']);
    assert.equal(readFileSync(join(site, 'core/a.pr'), 'utf8'), '<a>');
  });

  it('is checked file by file with a small limit: the file that passes it is named', async () => {
    const site = join(dir, 'small');
    mkdirSync(site);
    writeFileSync(join(site, 'a.pr'), '123456');
    writeFileSync(join(site, 'b.pr'), '123456');
    const files = new Map<string, Uint8Array>();
    const budget = { bytes: 0 };
    await readFileTree(site, files, budget, 12);
    assert.equal(budget.bytes, 12);
    assert.deepEqual([...files.keys()], ['a.pr', 'b.pr']);
    await assert.rejects(
      readFileTree(site, new Map(), { bytes: 0 }, 11),
      (e: unknown) =>
        e instanceof FileTreeTooLargeError &&
        e.path === join(site, 'b.pr') &&
        e.message ===
          `the files under ${site} are larger than 11 bytes (${join(site, 'b.pr')} takes them past it)`,
    );
  });
});
