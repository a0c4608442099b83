// `limen diff` and `limen try --dry-run` (issue 12, "A plan before applying";
// docs/safe-change.md) against the real daemon in a private --root with no network
// layer: what a change does in the daemon's own terms (assertions that appear and
// disappear, services that start, stop or restart), and that nothing is applied,
// recorded or restarted by asking. Also what a hostile or careless user sends: a
// script with a syntax error, a script that never settles, bad arguments. (The
// network drivers' part, udhcpc and dnsmasq, is in test/lab/08-try.test.ts.)

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ControlClient, ControlRequestError, socketPathFor } from '../../../src/control/index.ts';
import { Bytes, Dict } from '../../../src/preserves/index.ts';
import { SiteDaemon, type FileChanges } from '../../support/site-daemon.ts';
import { killMarked, newMarker } from '../../support/processes.ts';
import { until } from '../../support/until.ts';

const MARK = 'LIMEN_TEST_MARK';
const marker = newMarker();
const web = (argv: string) =>
  `<daemon web {argv: ${JSON.stringify(argv)} env: {${MARK}: ${JSON.stringify(marker)}}}>\n<require-service <daemon web>>\n`;

interface JsonPlan {
  from: string;
  to: string;
  appear: unknown[];
  disappear: unknown[];
  start: unknown[];
  stop: unknown[];
  restart: { service: unknown; changes: { key: string }[] }[];
  notes: string[];
}

describe('limen diff and limen try --dry-run', () => {
  let t: SiteDaemon;
  let dir: string;
  let site: string;
  let root: string;
  const cli = (...args: string[]) => t.cli(...args);
  const candidate = (name: string, files: FileChanges) => t.candidate(name, files);
  const webPid = async (): Promise<string> => {
    const r = await cli('services', '--json');
    const list = JSON.parse(r.out) as { service: string; pid?: number }[];
    return JSON.stringify(list.find((s) => JSON.stringify(s.service).includes('web')));
  };
  const generationCount = async () =>
    (JSON.parse((await cli('generations', '--json')).out) as unknown[]).length;

  before(async () => {
    t = new SiteDaemon('limen-diff-', {
      'services/web.pr': web('sleep 1000'),
      'core/firewall.pr': '<firewall-zone wan ["wan0"]>\n',
    });
    ({ dir, site, root } = t);
    await t.start();
    await t.ready('web');
  });

  after(async () => {
    await t?.close();
    killMarked(MARK, marker);
  });

  it('without arguments, shows what the current generation changed from its parent (none: everything appears)', async () => {
    const r = await cli('diff');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^no site configuration -> generation 1 \(current\)\n/);
    assert.match(r.out, /\n {2}\+ <firewall-zone wan \["wan0"\]>\n/);
    assert.match(r.out, /\n {2}\+ <require-service <daemon web>>\n/);
    assert.match(r.out, /\n {2}start +<daemon web>\n/);
  });

  it('a change that only adds a port forward names that one assertion and no service change; nothing is applied', async () => {
    const pid = await webPid();
    const gens = await generationCount();
    const c = candidate('forward', {
      'core/forward.pr': '<port-forward wan tcp 2222 "192.168.8.10" 22>\n',
    });
    const r = await cli('try', c, '--dry-run');
    assert.equal(r.code, 0, r.err);
    assert.equal(
      r.out,
      `generation 1 (current) -> ${c}\n` +
        '$config: 1 appear, 0 disappear\n' +
        '  + <port-forward wan tcp 2222 "192.168.8.10" 22>\n' +
        'services: none starts, stops or restarts\n',
    );
    const j = JSON.parse((await cli('diff', c, '--json')).out) as JsonPlan;
    assert.deepEqual(
      {
        appear: j.appear.length,
        disappear: j.disappear,
        start: j.start,
        stop: j.stop,
        restart: j.restart,
      },
      { appear: 1, disappear: [], start: [], stop: [], restart: [] },
    );
    assert.equal(await generationCount(), gens, 'nothing recorded');
    assert.equal(await webPid(), pid, 'nothing restarted');
    assert.throws(() => readFileSync(join(site, 'core/forward.pr')), /ENOENT/, 'nothing written');
  });

  it("a change to a daemon's argv names its restart and the field that changed", async () => {
    const c = candidate('argv', { 'services/web.pr': web('sleep 2000') });
    const r = await cli('try', c, '--dry-run');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /\n {2}restart +<daemon web>\n +argv: "sleep 1000" -> "sleep 2000"\n/);
    assert.doesNotMatch(r.out, /\n {2}(start|stop) /);
    const j = JSON.parse((await cli('try', c, '--dry-run', '--json')).out) as JsonPlan;
    assert.equal(j.restart.length, 1);
    assert.deepEqual(
      j.restart[0]!.changes.map((x) => x.key),
      ['argv'],
    );
    assert.equal(j.appear.length, 1);
    assert.equal(j.disappear.length, 1);
  });

  it('a service removed stops, one added starts', async () => {
    const c = candidate('swap', {
      'services/web.pr': undefined,
      'services/api.pr': web('sleep 3000').replaceAll('web', 'api'),
    });
    const r = await cli('diff', c);
    assert.match(r.out, /\n {2}start +<daemon api>\n {2}stop +<daemon web>\n/);
  });

  it('compares two generations, and a generation with the current one', async () => {
    writeFileSync(join(site, 'services/extra.pr'), '<greeting "hello">\n');
    await until(async () => (await generationCount()) === 2, {
      timeoutMs: 10_000,
      describe: () => 'the hand edit recorded',
    });
    const both = await cli('diff', '1', '2');
    assert.equal(both.code, 0, both.err);
    assert.match(
      both.out,
      /^generation 1 -> generation 2 \(current\)\n\$config: 1 appear, 0 disappear\n {2}\+ <greeting "hello">\n/,
    );
    assert.equal((await cli('diff', '1')).out, both.out, 'B defaults to the current generation');
    assert.equal((await cli('diff')).out, both.out, 'no argument: what the current changed');
    const back = await cli('diff', '2', '1');
    assert.match(back.out, /\n {2}- <greeting "hello">\n/);
  });

  it('refuses a candidate with a syntax error with file:line:col, and nothing is applied', async () => {
    const c = candidate('broken', { 'services/bad.pr': '<ok>\n<unclosed\n' });
    const r = await cli('try', c, '--dry-run');
    assert.equal(r.code, 1);
    assert.match(r.err, new RegExp(`${c}/services/bad\\.pr:\\d+:\\d+: `));
  });

  it('a candidate whose script never settles is stopped by its budget and shown as a config error', async () => {
    const c = candidate('loop', { 'services/loop.pr': '?? <ping> ! <ping>\n! <ping>\n' });
    const r = await cli('diff', c);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /\+ <config-error ".*\/services\/loop\.pr" \{/);
    // The daemon still answers, and the sandbox's error is not one of the daemon's.
    assert.match((await cli('status')).out, /failures +none\n/);
  });

  it('answers bad arguments and unknown generations with clear errors', async () => {
    assert.match((await cli('diff', '999')).err, /there is no generation 999/);
    assert.match((await cli('diff', join(dir, 'nowhere'))).err, /holds no files|cannot read/);
    assert.match((await cli('diff', 'a', 'b')).err, /at most one of A and B may be a directory/);
    const client = await ControlClient.connect(socketPathFor(root));
    try {
      await assert.rejects(
        client.request('diff', { from: 'yesterday' }),
        (e: unknown) =>
          e instanceof ControlRequestError &&
          /argument from must be a generation number or a dictionary of files/.test(e.message),
      );
      await assert.rejects(
        client.request('diff', { to: new Dict([['../etc/passwd', new Bytes(new Uint8Array(1))]]) }),
        (e: unknown) =>
          e instanceof ControlRequestError &&
          /is not a relative path of the site configuration/.test(e.message),
      );
    } finally {
      client.close();
    }
  });
});
