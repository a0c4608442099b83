import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import {
  mkdir,
  mkdtemp,
  readdir,
  rename,
  rm,
  stat,
  symlink,
  unlink,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  OutputsDir,
  outputKey,
  type OutputChange,
  type OutputProblem,
  type OutputsDirOptions,
} from '../../../src/supervisor/outputs-dir.ts';
import { until } from '../../support/until.ts';

interface Harness {
  readonly dir: string;
  readonly od: OutputsDir;
  readonly changes: OutputChange[];
  readonly problems: OutputProblem[];
  /** Writes like a careful program: a temporary file, then rename. */
  put(name: string, text: string): Promise<void>;
  /** Waits until the reported outputs are exactly `expected` (key → value). */
  settle(expected: Record<string, string>): Promise<void>;
}

async function harness(t: TestContext, options: OutputsDirOptions = {}): Promise<Harness> {
  const root = await mkdtemp(join(tmpdir(), 'limen-outputs-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  const dir = join(root, 'run', 'outputs', 'svc');
  const od = new OutputsDir(dir, options);
  t.after(() => od.dispose());
  const changes: OutputChange[] = [];
  const problems: OutputProblem[] = [];
  od.onDidChange((c) => changes.push(c));
  od.onDidProblem((p) => problems.push(p));
  const h: Harness = {
    dir,
    od,
    changes,
    problems,
    async put(name, text) {
      const tmp = join(dir, `${name}.tmp`);
      await writeFile(tmp, text);
      await rename(tmp, join(dir, name));
    },
    async settle(expected) {
      const current = () =>
        Object.fromEntries([...od.values].map(([k, v]) => [k, v.value] as const));
      await until(
        () => {
          try {
            assert.deepEqual(current(), expected);
            return true;
          } catch {
            return false;
          }
        },
        {
          describe: () =>
            `outputs ${JSON.stringify(expected)}; have ${JSON.stringify(current())}; ` +
            `changes ${JSON.stringify(changes)}`,
        },
      );
    },
  };
  return h;
}

describe('outputKey', () => {
  it('maps file names to keys, and ignores temporary and hidden files', () => {
    assert.deepEqual(outputKey('address'), { key: 'address', isPreserves: false });
    assert.deepEqual(outputKey('dns.pr'), { key: 'dns', isPreserves: true });
    assert.deepEqual(outputKey('lease.json'), { key: 'lease.json', isPreserves: false });
    for (const ignored of ['.hidden', '.address.swp', 'address.tmp', 'address~', '.pr']) {
      assert.equal(outputKey(ignored), null, ignored);
    }
  });
});

describe('OutputsDir', () => {
  it('creates the directory (mode 0755) and empties it on open', async (t) => {
    const h = await harness(t);
    await mkdir(join(h.dir, 'stale-subdir'), { recursive: true });
    await writeFile(join(h.dir, 'address'), 'stale');
    await writeFile(join(h.dir, '.hidden'), 'stale');
    const oldUmask = process.umask(0o077);
    try {
      await h.od.open();
    } finally {
      process.umask(oldUmask);
    }
    assert.equal((await stat(h.dir)).mode & 0o777, 0o755);
    assert.deepEqual(await readdir(h.dir), []);
    assert.deepEqual(h.changes, []);
    assert.equal(h.od.values.size, 0);
  });

  it('reports a file written by rename, trimmed; a change; and a removal', async (t) => {
    const h = await harness(t);
    await h.od.open();
    await h.put('address', '192.0.2.10/24\n');
    await h.settle({ address: '192.0.2.10/24' });
    await h.put('address', '  192.0.2.11/24 \n');
    await h.settle({ address: '192.0.2.11/24' });
    await unlink(join(h.dir, 'address'));
    await h.settle({});
    assert.deepEqual(h.changes, [
      { kind: 'set', key: 'address', value: '192.0.2.10/24', isPreserves: false },
      { kind: 'set', key: 'address', value: '192.0.2.11/24', isPreserves: false },
      { kind: 'delete', key: 'address' },
    ]);
  });

  it('reports NAME.pr as key NAME with isPreserves, and it wins over a plain NAME', async (t) => {
    const h = await harness(t);
    await h.od.open();
    await h.put('dns', '192.0.2.53');
    await h.settle({ dns: '192.0.2.53' });
    await h.put('dns.pr', '["192.0.2.53" "192.0.2.54"]\n');
    await h.settle({ dns: '["192.0.2.53" "192.0.2.54"]' });
    assert.equal(h.od.values.get('dns')?.isPreserves, true);
    assert.equal(h.od.values.get('dns')?.file, 'dns.pr');
    await unlink(join(h.dir, 'dns.pr'));
    await h.settle({ dns: '192.0.2.53' });
    assert.deepEqual(h.changes, [
      { kind: 'set', key: 'dns', value: '192.0.2.53', isPreserves: false },
      { kind: 'set', key: 'dns', value: '["192.0.2.53" "192.0.2.54"]', isPreserves: true },
      { kind: 'set', key: 'dns', value: '192.0.2.53', isPreserves: false },
    ]);
  });

  it('does not report a rewrite with the same content', async (t) => {
    const h = await harness(t);
    await h.od.open();
    await h.put('router', '192.0.2.1');
    await h.settle({ router: '192.0.2.1' });
    await h.put('router', '192.0.2.1\n');
    await h.put('sentinel', 'x'); // a rescan that sees the sentinel saw the rewrite too
    await h.settle({ router: '192.0.2.1', sentinel: 'x' });
    assert.deepEqual(
      h.changes.map((c) => c.kind === 'set' && c.key),
      ['router', 'sentinel'],
    );
  });

  it('ignores temporary files, hidden files, directories and symlinks', async (t) => {
    const h = await harness(t);
    await h.od.open();
    await writeFile(join(h.dir, 'address.tmp'), 'half-written');
    await writeFile(join(h.dir, 'address~'), 'backup');
    await writeFile(join(h.dir, '.address'), 'hidden');
    await mkdir(join(h.dir, 'subdir'));
    await symlink('/etc/hostname', join(h.dir, 'secret'));
    await h.put('sentinel', 'x');
    await h.settle({ sentinel: 'x' });
    assert.deepEqual(h.changes, [{ kind: 'set', key: 'sentinel', value: 'x', isPreserves: false }]);
  });

  it('loses nothing in a burst of writes', async (t) => {
    const h = await harness(t);
    await h.od.open();
    const expected: Record<string, string> = {};
    await Promise.all(
      Array.from({ length: 50 }, (_, i) => {
        expected[`k${i}`] = `v${i}`;
        return h.put(`k${i}`, `v${i}`);
      }),
    );
    await h.settle(expected);
    // Then remove half, rewrite the other half.
    await Promise.all(
      Array.from({ length: 50 }, (_, i) => {
        if (i % 2 === 0) {
          delete expected[`k${i}`];
          return unlink(join(h.dir, `k${i}`));
        }
        expected[`k${i}`] = `w${i}`;
        return h.put(`k${i}`, `w${i}`);
      }),
    );
    await h.settle(expected);
  });

  it('reports a file too big to be an output as a problem, once', async (t) => {
    const h = await harness(t, { maxValueBytes: 16 });
    await h.od.open();
    await h.put('big', 'x'.repeat(17));
    await h.put('small', 'ok');
    await h.settle({ small: 'ok' });
    await until(() => h.problems.length > 0, { describe: () => JSON.stringify(h.problems) });
    await h.od.rescan();
    assert.equal(h.problems.length, 1);
    const [problem] = h.problems;
    assert.equal(problem?.file, 'big');
    assert.match(problem.message, /17 bytes, more than the 16/);
  });

  it('rescan() resolves after reporting what the directory holds', async (t) => {
    const h = await harness(t, { debounceMs: 60_000 }); // notifications alone would be too late
    await h.od.open();
    await writeFile(join(h.dir, 'mtu'), '1492');
    await h.od.rescan();
    assert.deepEqual(h.changes, [{ kind: 'set', key: 'mtu', value: '1492', isPreserves: false }]);
  });

  it('clear() empties the directory and reports every delete before it resolves', async (t) => {
    const h = await harness(t);
    await h.od.open();
    await h.put('address', '192.0.2.10/24');
    await h.put('router', '192.0.2.1');
    await writeFile(join(h.dir, 'x.tmp'), 'junk');
    await h.settle({ address: '192.0.2.10/24', router: '192.0.2.1' });
    h.changes.length = 0;
    await h.od.clear();
    assert.deepEqual(h.changes, [
      { kind: 'delete', key: 'address' },
      { kind: 'delete', key: 'router' },
    ]);
    assert.deepEqual(await readdir(h.dir), []);
    assert.equal(h.od.values.size, 0);
  });

  it('reports nothing after dispose()', async (t) => {
    const h = await harness(t);
    await h.od.open();
    await h.put('a', '1');
    await h.settle({ a: '1' });
    h.od.dispose();
    await h.put('b', '2');
    await h.od.rescan();
    assert.deepEqual(h.changes, [{ kind: 'set', key: 'a', value: '1', isPreserves: false }]);
  });

  it('stops opening when aborted', async (t) => {
    const h = await harness(t);
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(h.od.open({ signal: ac.signal }), { name: 'AbortError' });
  });
});
