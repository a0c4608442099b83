// The CLI against a real daemon over its control socket: status (with a
// broken file reported as file:line:col), services, logs, settings that come
// back as <user-setting X>, start/stop of a service, and exit code 3 once the
// daemon is gone.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, type Daemon } from '../../../src/daemon/daemon.ts';
import { main } from '../../../src/cli/main.ts';
import { captureIo } from '../../support/cli-io.ts';
import { until } from '../../support/until.ts';
import { killMarked, newMarker } from '../../support/processes.ts';

const MARK = 'LIMEN_TEST_MARK';

describe('limen CLI against the daemon', () => {
  let dir: string;
  let daemon: Daemon;
  const marker = newMarker();
  const logLines: string[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'limen-control-e2e-'));
    mkdirSync(join(dir, 'site/services'), { recursive: true });
    writeFileSync(
      join(dir, 'site/services/web.pr'),
      `<require-service <daemon web>>\n<daemon web {argv: "echo web up; exec sleep 1000" env: {${MARK}: "${marker}"}}>\n`,
    );
    writeFileSync(join(dir, 'site/services/broken.pr'), '<require-service <daemon x>\n');
    daemon = await startDaemon({
      root: join(dir, 'root'),
      configDirs: [join(dir, 'site')],
      network: false, // runs in the host's namespace: leave its links alone
      write: (l) => void logLines.push(l),
    });
  });

  after(async () => {
    await daemon.shutdown('test over');
    killMarked(MARK, marker);
    rmSync(dir, { recursive: true, force: true });
  });

  const cli = async (...args: string[]) => {
    const io = captureIo();
    const code = await main([...args, '--root', join(dir, 'root')], io);
    return { code, out: io.stdout(), err: io.stderr() };
  };

  it('status shows the broken file with file:line:col, and services show web ready', async () => {
    const status = await until(
      async () => {
        const r = await cli('status', '--json');
        const s = JSON.parse(r.out) as {
          failures: { kind: string; text: string }[];
          services: string;
        };
        return s.failures.length > 0 && s.services.includes('1 ready') ? s : undefined;
      },
      { describe: () => logLines.join('') },
    );
    assert.deepEqual(
      status.failures.map((f) => f.kind),
      ['config-error'],
    );
    assert.match(status.failures[0]!.text, /broken\.pr:2:1: /);
    const services = await cli('services');
    assert.equal(services.code, 0);
    assert.match(services.out, /<daemon web>\s+ready/);
    const logs = await cli('logs', 'web');
    assert.match(logs.out, /web up/);
  });

  it('settings set comes back as <user-setting X>, and unset removes it', async () => {
    assert.equal((await cli('settings', 'set', '<ntp-server "192.0.2.1">')).code, 0);
    await until(async () =>
      (await cli('query', '<user-setting <ntp-server ?s>>', '--json')).out.includes('192.0.2.1'),
    );
    assert.equal((await cli('settings', 'unset', '<ntp-server "192.0.2.1">')).code, 0);
    await until(
      async () => !(await cli('query', '<user-setting _>', '--json')).out.includes('192.0.2.1'),
    );
  });

  it('start and stop a service by name', async () => {
    writeFileSync(
      join(dir, 'site/services/extra.pr'),
      `<daemon extra {argv: "exec sleep 1000" env: {${MARK}: "${marker}"}}>\n`,
    );
    await until(async () => (await cli('query', '<daemon extra _>')).out.includes('sleep'));
    assert.equal((await cli('start', 'extra')).code, 0);
    await until(async () => /<daemon extra>\s+ready/.test((await cli('services')).out));
    assert.equal((await cli('stop', 'extra')).code, 0);
    await until(
      async () => !/<daemon extra>\s+(ready|started|stopping)/.test((await cli('services')).out),
    );
  });

  it('exits 3 with a hint when the daemon cannot be reached', async () => {
    const io = captureIo();
    const code = await main(['status', '--socket', join(dir, 'nowhere.sock')], io);
    assert.equal(code, 3);
    assert.match(io.stderr(), /limen daemon/);
  });
});
