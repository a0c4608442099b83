// The hardware watchdog driver (src/daemon/watchdog.ts) and its device
// (src/platform/watchdog-device.ts) on a host that has no watchdog: what is refused
// is refused for real (a missing path, a FIFO, a regular file, a directory, /dev/null:
// a character device that is not a watchdog), and the kernel's facts are read from a
// sysfs tree the test writes. The feeding itself is checked against a FAKE: a FIFO
// read by `cat`, accepted by an inspection the test injects (a real watchdog would
// need root tricks or a reboot to show anything), so that every byte written is seen:
// fed at the interval asked, no reopening when a spec changes, 'V' then EOF (magic
// close) when the last spec goes and when the driver stops. Inside the VM, the real
// softdog: test/vm/watchdog.test.ts. Last, the daemon: it opens nothing without
// <watchdog …>, and a refused device is a failure in `limen status`.

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Dataspace, P, type Facet } from '../../../src/dataspace/index.ts';
import { parse, stringify } from '../../../src/preserves/index.ts';
import {
  inspectWatchdog,
  openWatchdog,
  type WatchdogInfo,
} from '../../../src/platform/watchdog-device.ts';
import { startWatchdog } from '../../../src/daemon/watchdog.ts';
import { checkedEngine } from '../../support/engine-log.ts';
import { SiteDaemon } from '../../support/site-daemon.ts';
import { until } from '../../support/until.ts';

const dir = mkdtempSync(join(tmpdir(), 'limen-watchdog-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const refusal = async (path: string, sysfs?: string): Promise<string> => {
  try {
    await inspectWatchdog(path, sysfs);
  } catch (e) {
    return (e as Error).message;
  }
  return 'accepted';
};

/** A sysfs tree naming /dev/null's device (1:3) `watchdog`, with the class's facts. */
function fakeSysfs(name: string, facts: { [file: string]: string }): string {
  const sysfs = mkdtempSync(join(dir, 'sys-'));
  mkdirSync(join(sysfs, 'dev', 'char', '1:3'), { recursive: true });
  writeFileSync(join(sysfs, 'dev', 'char', '1:3', 'uevent'), `MAJOR=1\nMINOR=3\nDEVNAME=${name}\n`);
  const cls = join(sysfs, 'class', 'watchdog', 'watchdog0');
  mkdirSync(cls, { recursive: true });
  for (const [f, text] of Object.entries(facts)) writeFileSync(join(cls, f), `${text}\n`);
  return sysfs;
}

describe('the watchdog device', () => {
  it('refuses, without opening it, what is not a watchdog character device', async () => {
    const fifo = join(dir, 'refused.fifo');
    execFileSync('mkfifo', [fifo]);
    writeFileSync(join(dir, 'file'), '');
    assert.equal(
      await refusal(join(dir, 'absent')),
      `${join(dir, 'absent')}: no such device (is the watchdog's driver loaded?)`,
    );
    assert.equal(await refusal(fifo), `${fifo} is a FIFO, not a character device: refused`);
    assert.equal(
      await refusal(join(dir, 'file')),
      `${join(dir, 'file')} is a regular file, not a character device: refused`,
    );
    assert.equal(await refusal(dir), `${dir} is a directory, not a character device: refused`);
    assert.equal(
      await refusal('/dev/null'),
      '/dev/null is the character device null, not a watchdog: refused',
    );
  });

  it("reads the kernel's name, timeout, identity and nowayout from sysfs", async () => {
    const sysfs = fakeSysfs('watchdog', {
      timeout: '7',
      identity: 'Software Watchdog',
      nowayout: '0',
    });
    const info = await inspectWatchdog('/dev/null', sysfs);
    const s = statSync('/dev/null', { bigint: true });
    assert.deepEqual(info, {
      path: '/dev/null',
      node: `${s.dev}:${s.ino}`,
      name: 'watchdog',
      identity: 'Software Watchdog',
      timeout: 7,
      nowayout: false,
    });
    const bare = await inspectWatchdog('/dev/null', fakeSysfs('watchdog0', {}));
    assert.deepEqual(Object.keys(bare), ['path', 'node', 'name'], 'what sysfs lacks is unknown');
    assert.equal(
      await refusal('/dev/null', join(dir, 'no-sysfs')),
      `cannot tell whether /dev/null is a watchdog: the kernel has no ${join(dir, 'no-sysfs', 'dev', 'char', '1:3')}`,
    );
  });

  it('opens only the node it inspected', async () => {
    const info = await inspectWatchdog('/dev/null', fakeSysfs('watchdog', {}));
    await assert.rejects(openWatchdog({ ...info, node: '0:0' }), {
      code: 'LIMEN_WATCHDOG_DEVICE',
      message: '/dev/null changed between its inspection and its opening',
    });
  });
});

/** A FIFO read by `cat`, standing in for a watchdog: what was written, and whether it was closed. */
class FakeDevice {
  readonly path: string;
  #reader: ChildProcess | undefined;
  written = '';
  closed = false;

  constructor(name: string) {
    this.path = join(dir, name);
    execFileSync('mkfifo', [this.path]);
  }

  /** Starts the reader: until then, opening the FIFO fails (ENXIO), as a busy device would. */
  read(): void {
    const cat = spawn('cat', [this.path], { stdio: ['ignore', 'pipe', 'inherit'] });
    cat.stdout.setEncoding('utf8').on('data', (s: string) => void (this.written += s));
    cat.on('exit', () => void (this.closed = true));
    this.#reader = cat;
  }

  /** The inspection the test injects: the FIFO passes for a watchdog with this timeout. */
  inspect = async (path: string): Promise<WatchdogInfo> => {
    const s = await stat(path, { bigint: true });
    return { path, node: `${s.dev}:${s.ino}`, identity: 'fake', timeout: 1, nowayout: false };
  };

  feeds(): number {
    return this.written.split('\n').length - 1;
  }

  dispose(): void {
    this.#reader?.kill('SIGKILL');
  }
}

describe('the watchdog driver (a FIFO standing in for the device)', () => {
  const setup = (fake: FakeDevice) => {
    const { engine } = checkedEngine();
    const config = new Dataspace(engine, 'config');
    engine.turn(() =>
      startWatchdog(engine.root, { config: config.ref, inspect: fake.inspect, retryMs: 100 }),
    );
    const holders: Facet[] = [];
    const assertSpec = (text: string): Facet => {
      let f!: Facet;
      engine.turn(() => (f = engine.root.spawn((x) => void x.assert(config.ref, parse(text)))));
      holders.push(f);
      return f;
    };
    const seen = (label: string) =>
      config.query(P.rec(label, P._, P._)).map((r) => stringify(r.value));
    return { engine, config, assertSpec, seen, retract: (f: Facet) => engine.turn(() => f.stop()) };
  };

  it('feeds at the shortest interval asked, never reopens, and magic-closes when the last spec goes', async (t) => {
    const fake = new FakeDevice('feed.fifo');
    t.after(() => fake.dispose());
    fake.read();
    const d = setup(fake);
    const spec = `<watchdog {device: ${JSON.stringify(fake.path)} interval: 0.1}>`;
    const first = d.assertSpec(spec);
    const state = (interval: string) =>
      `<watchdog-feeding ${JSON.stringify(fake.path)} {identity: "fake" interval: ${interval} nowayout: #f timeout: 1}>`;
    await until(() => d.seen('watchdog-feeding')[0] === state('0.1') && fake.feeds() >= 5, {
      describe: () => `${JSON.stringify(d.seen('watchdog-feeding'))}, ${fake.feeds()} feeds`,
    });
    // A second spec for the device (an edited file) only changes the interval.
    const second = d.assertSpec(`<watchdog {device: ${JSON.stringify(fake.path)} interval: 0.4}>`);
    d.retract(first);
    await until(() => d.seen('watchdog-feeding')[0] === state('0.4'), {
      describe: () => JSON.stringify(d.seen('watchdog-feeding')),
    });
    // More than half the timeout: fed at half of it, with a warning.
    const slow = d.assertSpec(`<watchdog {device: ${JSON.stringify(fake.path)} interval: 3}>`);
    d.retract(second);
    await until(() => d.seen('watchdog-feeding')[0] === state('0.5'));
    assert.deepEqual(d.seen('watchdog-warning'), [
      `<watchdog-warning ${JSON.stringify(fake.path)} "interval 3 s is more than half the device's timeout (1 s): fed every 0.5 s">`,
    ]);
    assert.equal(fake.closed, false, 'never closed while a spec names it');
    assert.doesNotMatch(fake.written, /V/);
    d.retract(slow);
    await until(() => fake.closed, { describe: () => 'the reader sees the end of the FIFO' });
    assert.match(fake.written, /^\n+V$/, 'fed, then the magic character, then closed');
    assert.deepEqual(d.seen('watchdog-feeding'), []);
    assert.deepEqual(d.seen('watchdog-warning'), []);
    d.engine.turn(() => d.engine.root.stop());
  });

  it('reports a device it cannot open, tries again, and magic-closes when the driver stops', async (t) => {
    const fake = new FakeDevice('busy.fifo');
    t.after(() => fake.dispose());
    const d = setup(fake);
    d.assertSpec(`<watchdog {device: ${JSON.stringify(fake.path)}}>`);
    const error = `<watchdog-error ${JSON.stringify(fake.path)} "cannot open ${fake.path}: ENXIO">`;
    await until(() => d.seen('watchdog-error')[0] === error, {
      describe: () => JSON.stringify(d.seen('watchdog-error')),
    });
    assert.equal(
      d.config.query(P.rec('failure-shape', P.rec('watchdog-error', P._, P._))).length,
      1,
    );
    fake.read();
    await until(() => d.seen('watchdog-feeding').length === 1 && fake.feeds() >= 1);
    assert.deepEqual(d.seen('watchdog-error'), [], 'the error goes once it is open');
    // The daemon's normal stop: its facets stop.
    d.engine.turn(() => d.engine.root.stop());
    await until(() => fake.closed);
    assert.match(fake.written, /\nV$/);
  });

  it('reports every problem of a spec, and opens nothing for it', async (t) => {
    const fake = new FakeDevice('typo.fifo');
    t.after(() => fake.dispose());
    fake.read();
    const d = setup(fake);
    const f = d.assertSpec(`<watchdog {device: ${JSON.stringify(fake.path)} intervall: 2}>`);
    const error = `<watchdog-error ${JSON.stringify(fake.path)} "unknown key 'intervall' (did you mean 'interval'?)">`;
    await until(() => d.seen('watchdog-error')[0] === error, {
      describe: () => JSON.stringify(d.seen('watchdog-error')),
    });
    d.retract(f);
    await until(() => d.seen('watchdog-error').length === 0);
    assert.equal(fake.written, '');
    d.engine.turn(() => d.engine.root.stop());
  });
});

describe('the daemon and the watchdog', () => {
  it('opens nothing without <watchdog …>; a device that is not one is a failure in status', async (t) => {
    const s = new SiteDaemon('limen-watchdog-daemon-', {});
    t.after(() => s.close());
    mkdirSync(join(s.site, 'core'));
    await s.start();
    const query = async () => (await s.cli('query', '<?x <watchdog-feeding _ _>>')).out.trim();
    assert.equal(await query(), '');
    assert.match((await s.cli('status')).out, /^failures +none$/m);
    const fifo = join(s.dir, 'not-a-watchdog');
    execFileSync('mkfifo', [fifo]);
    writeFileSync(
      join(s.site, 'core', 'watchdog.pr'),
      `<watchdog {device: ${JSON.stringify(fifo)}}>\n`,
    );
    const failure = `watchdog-error ${fifo}: ${fifo} is a FIFO, not a character device: refused`;
    await until(async () => (await s.cli('status')).out.includes(failure), {
      timeoutMs: 10_000,
      describe: () => failure,
    });
    rmSync(join(s.site, 'core', 'watchdog.pr'));
    await until(async () => /^failures +none$/m.test((await s.cli('status')).out), {
      timeoutMs: 10_000,
    });
  });
});
