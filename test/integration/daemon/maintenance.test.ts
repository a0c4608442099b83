// Maintenance mode (issue 12; docs/safe-change.md) against the real daemon in a
// private --root (no network layer), its services real processes: on, every
// daemon outside the recovery bundle stops and the bundle keeps running (the same
// process); it survives a restart; off brings everything back. Three starts in a
// row that did not bring the configuration up turn it on by themselves; a start
// that does resets the count. (The lab test, SSH from the LAN in maintenance:
// not built yet.)

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, type Daemon } from '../../../src/daemon/daemon.ts';
import { main } from '../../../src/cli/main.ts';
import { captureIo } from '../../support/cli-io.ts';
import { killMarked, newMarker, processesWithEnv } from '../../support/processes.ts';
import { until } from '../../support/until.ts';

const MARK = 'LIMEN_TEST_MARK';
const marker = newMarker();

const daemonSpec = (name: string) =>
  `<require-service <daemon ${name}>>\n<daemon ${name} {argv: ["sleep" "1000"] env: {${MARK}: ${JSON.stringify(marker)} LIMEN_SERVICE: "${name}"}}>\n`;

describe('maintenance mode', () => {
  let dir: string;
  let site: string;
  let root: string;
  let daemon: Daemon | undefined;

  const start = async () => {
    daemon = await startDaemon({
      root,
      configDirs: [site],
      network: false,
      write: () => undefined,
    });
  };
  const cli = async (...args: string[]) => {
    const io = captureIo();
    const code = await main([...args, '--root', root], io);
    return { code, out: io.stdout(), err: io.stderr() };
  };
  /** The pids of the sleeps, by service. */
  const running = () => {
    const out: { [name: string]: number } = {};
    for (const p of processesWithEnv(MARK, marker)) {
      const env = readFileSync(`/proc/${p.pid}/environ`, 'utf8');
      const m = /(?:^|\0)LIMEN_SERVICE=([a-z]+)/.exec(env);
      if (m !== null && p.state !== 'Z') out[m[1]!] = p.pid;
    }
    return out;
  };
  const stateDir = () => join(root, 'var/lib/limen');

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'limen-maintenance-'));
    site = join(dir, 'site');
    root = join(dir, 'root');
    mkdirSync(join(site, 'services'), { recursive: true });
    writeFileSync(
      join(site, 'services/web.pr'),
      daemonSpec('web') + '<recovery-service <daemon web>>\n',
    );
    writeFileSync(join(site, 'services/app.pr'), daemonSpec('app'));
    await start();
    await until(() => Object.keys(running()).length === 2, {
      timeoutMs: 15_000,
      describe: () => JSON.stringify(running()),
    });
  });

  after(async () => {
    await daemon?.shutdown('test over');
    killMarked(MARK, marker);
    rmSync(dir, { recursive: true, force: true });
  });

  it('on: stops what is outside the recovery bundle, keeps the bundle running', async () => {
    const web = running()['web'];
    assert.match((await cli('maintenance')).out, /^maintenance mode is off\n$/);
    const on = await cli('maintenance', 'on');
    assert.equal(on.code, 0, on.err);
    assert.equal(
      on.out,
      'maintenance mode is on (limen maintenance on): only the recovery bundle runs\n',
    );
    await until(() => running()['app'] === undefined, {
      timeoutMs: 15_000,
      describe: () => JSON.stringify(running()),
    });
    assert.equal(running()['web'], web, 'the bundle keeps its process');
    assert.match(
      (await cli('status')).out,
      /^maintenance +ON: limen maintenance on \(only the recovery bundle runs; limen maintenance off\)$/m,
    );
  });

  it('stays on across a restart, and off brings everything back', async () => {
    await daemon!.shutdown('restart');
    await start();
    await until(() => running()['web'] !== undefined, { timeoutMs: 15_000 });
    assert.equal(running()['app'], undefined, 'still held down after the restart');
    const off = await cli('maintenance', 'off');
    assert.equal(off.out, 'maintenance mode is off\n');
    await until(() => running()['app'] !== undefined, {
      timeoutMs: 15_000,
      describe: () => JSON.stringify(running()),
    });
    assert.doesNotMatch((await cli('status')).out, /^maintenance/m);
  });

  it('comes on by itself after three starts in a row that failed; a good start resets the count', async () => {
    // A good start (every required service up) resets the count.
    await until(() => readFileSync(join(stateDir(), 'start-attempts'), 'utf8') === '0\n', {
      timeoutMs: 15_000,
    });
    await daemon!.shutdown('restart');
    // Three starts that did not come up (as if the daemon died each time before).
    writeFileSync(join(stateDir(), 'start-attempts'), '3\n');
    await start();
    const status = await cli('status');
    assert.match(
      status.out,
      /^maintenance +ON: the configuration did not come up in 3 starts in a row/m,
    );
    await until(() => running()['web'] !== undefined, { timeoutMs: 15_000 });
    assert.equal(running()['app'], undefined);
    assert.equal((await cli('maintenance', 'off')).code, 0);
    assert.equal(readFileSync(join(stateDir(), 'start-attempts'), 'utf8'), '0\n');
    await until(() => running()['app'] !== undefined, { timeoutMs: 15_000 });
  });
});
