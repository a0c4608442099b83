// `limen try` and `limen confirm` (issue 12; docs/safe-change.md) against the real
// daemon in a private --root with no network layer, its services real processes:
// a good candidate confirmed by its checks, one with a syntax error refused with
// file:line:col and nothing applied, one whose required service fails rolled back
// with the reason, one never confirmed rolled back at its deadline, one confirmed
// with its token from another client after the first went away, and a daemon
// killed with SIGKILL during a trial that comes back on the previous generation.
// (Probes and the network checks in the lab: not built yet.)

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../../src/cli/main.ts';
import {
  ControlClient,
  ControlRequestError,
  answerField,
  socketPathFor,
} from '../../../src/control/index.ts';
import { captureIo } from '../../support/cli-io.ts';
import { SiteDaemon, type FileChanges } from '../../support/site-daemon.ts';
import { DaemonProcess } from '../../support/daemon-process.ts';
import { killMarked, newMarker } from '../../support/processes.ts';
import { until } from '../../support/until.ts';

const MARK = 'LIMEN_TEST_MARK';

interface Listed {
  number: number;
  outcome: string;
  current: boolean;
  'last-confirmed': boolean;
}

const service = (name: string, argv: string) =>
  `<daemon ${name} {argv: ${JSON.stringify(argv)} env: {${MARK}: ${JSON.stringify(marker)}}}>\n<require-service <daemon ${name}>>\n`;
const marker = newMarker();

describe('limen try and limen confirm', () => {
  let t: SiteDaemon;
  let dir: string;
  let site: string;
  let root: string;
  const cli = (...args: string[]) => t.cli(...args);
  const candidate = (name: string, files: FileChanges) => t.candidate(name, files);
  const listed = async (): Promise<Listed[]> =>
    JSON.parse((await cli('generations', '--json')).out) as Listed[];

  before(async () => {
    t = new SiteDaemon('limen-try-', { 'services/web.pr': service('web', 'sleep 1000') });
    ({ dir, site, root } = t);
    await t.start();
    await t.ready('web');
  });

  after(async () => {
    await t?.close();
    killMarked(MARK, marker);
  });

  it('confirms a good candidate once its checks pass (--auto-confirm), and keeps it', async () => {
    const c = candidate('good', { 'services/extra.pr': '<greeting "tried">\n' });
    const r = await cli('try', c, '--auto-confirm', '--timeout', '30');
    assert.equal(r.code, 0, r.out + r.err);
    assert.match(
      r.out,
      /^try: checked: 2 file\(s\), no problems\ntrial: generation 2, until .*\nto keep it, from any session: limen confirm [0-9a-f]{32}\ntry: applied generation 2/,
      'the token comes before the change',
    );
    assert.match(r.out, /try: checked: 2 file\(s\), no problems\n/);
    assert.match(
      r.out,
      /try: checks passed: every required service is up, every probe passed, no new failure\n/,
    );
    assert.match(r.out, /generation 2: confirmed\n$/);
    assert.equal(readFileSync(join(site, 'services/extra.pr'), 'utf8'), '<greeting "tried">\n');
    const gens = await listed();
    assert.deepEqual(gens.at(-1), {
      ...gens.at(-1),
      number: 2,
      outcome: 'confirmed',
      current: true,
      'last-confirmed': true,
    });
  });

  it('refuses a candidate with a syntax error, with file:line:col, and applies nothing', async () => {
    const before = await listed();
    const c = candidate('broken', { 'services/extra.pr': '<greeting "tried">\n<oops\n' });
    const r = await cli('try', c);
    assert.equal(r.code, 1);
    assert.match(
      r.err,
      new RegExp(
        `^limen try: the candidate has 1 problem\\(s\\); nothing was applied:\\n${c}/services/extra\\.pr:3:1: `,
      ),
    );
    assert.deepEqual(await listed(), before);
    assert.equal(readFileSync(join(site, 'services/extra.pr'), 'utf8'), '<greeting "tried">\n');
  });

  it('rolls back a candidate whose required service fails, and says which', async () => {
    const c = candidate('failing', { 'services/web.pr': service('web', 'exit 3') });
    const r = await cli('try', c, '--timeout', '60');
    assert.equal(r.code, 1, r.out + r.err);
    assert.match(r.out, /try: rolled back to generation 2: service <daemon web> failed\n/);
    assert.match(r.out, /generation 3: rolled back: service <daemon web> failed\n$/);
    assert.equal(readFileSync(join(site, 'services/web.pr'), 'utf8'), service('web', 'sleep 1000'));
    await until(async () => /<daemon web> +ready/.test((await cli('services')).out), {
      timeoutMs: 20_000,
      describe: () => 'the previous web service up again',
    });
    assert.match(
      (await cli('status')).out,
      /^configuration +generation 2 \(confirmed\); generation 3 rolled back: service <daemon web> failed$/m,
    );
    const gens = await listed();
    assert.deepEqual(
      gens.slice(-2).map((g) => [g.number, g.outcome, g.current]),
      [
        [2, 'confirmed', true],
        [3, 'rolled back: service <daemon web> failed', false],
      ],
    );
  });

  it('rolls back a trial nobody confirms at its deadline', async () => {
    const c = candidate('unconfirmed', { 'services/extra.pr': '<greeting "not kept">\n' });
    const r = await cli('try', c, '--timeout', '3');
    assert.equal(r.code, 1);
    assert.match(r.out, /generation 4: rolled back: not confirmed within 3 s\n$/);
    assert.equal(readFileSync(join(site, 'services/extra.pr'), 'utf8'), '<greeting "tried">\n');
  });

  it('keeps a trial confirmed with its token from another client after the first went away', async () => {
    const c = candidate('confirmed', { 'services/extra.pr': '<greeting "kept">\n' });
    const first = await ControlClient.connect(socketPathFor(root));
    let token: string | undefined;
    const ac = new AbortController();
    const files = new Map<string, Uint8Array>();
    files.set('services/web.pr', readFileSync(join(c, 'services/web.pr')));
    files.set('services/extra.pr', readFileSync(join(c, 'services/extra.pr')));
    const trying = first.try(
      { files, source: c },
      {
        timeoutMs: 60_000,
        signal: ac.signal,
        onEvent: (e) => {
          const t = answerField(e, 'token');
          if (typeof t === 'string') token = t;
        },
      },
    );
    await until(() => token);
    // The operator's session is cut: the trial goes on.
    first.close();
    await trying.catch(() => undefined);
    assert.match(
      (await cli('status')).out,
      /^configuration +generation 5 ON TRIAL until \S+ \(rolled back to 2 unless confirmed\)/m,
    );
    // For a client that did not start it (a page loaded again): the trial, never its token.
    const status = JSON.parse((await cli('status', '--json')).out) as {
      trial?: { generation: number; previous: number; deadline: string };
    };
    assert.equal(status.trial?.generation, 5);
    assert.equal(status.trial?.previous, 2);
    assert.ok(Date.parse(status.trial?.deadline ?? '') > Date.now(), JSON.stringify(status));
    assert.ok(!JSON.stringify(status).includes(token!), 'the token is not in the status');
    const wrong = await cli('confirm', '0'.repeat(32));
    assert.equal(wrong.code, 1);
    assert.match(
      wrong.err,
      /that is not the token of the running trial/,
      JSON.stringify((await listed()).slice(-2)),
    );
    const ok = await cli('confirm', token!);
    assert.equal(ok.code, 0, ok.err);
    assert.equal(ok.out, 'confirmed generation 5\n');
    const none = await cli('confirm', token!);
    assert.equal(none.code, 1);
    assert.match(none.err, /no trial is running/);
    assert.equal((await listed()).at(-1)!.outcome, 'confirmed');
  });

  it('rolls back a trial whose probe fails, naming the probe; keeps one whose probe passes', async () => {
    const server = createHttpServer((req, res) => {
      res.statusCode = req.url === '/broken' ? 503 : 200;
      res.end();
    });
    const port = await new Promise<number>((r) =>
      server.listen(0, '127.0.0.1', () => r((server.address() as { port: number }).port)),
    );
    try {
      const before = (await listed()).at(-1)!.number;
      const bad = candidate('probe-bad', {
        'services/probe.pr': `<probe web <http "http://127.0.0.1:${port}/broken">>\n`,
      });
      const r = await cli('try', bad, '--auto-confirm', '--timeout', '60');
      assert.equal(r.code, 1, r.out);
      assert.match(
        r.out,
        new RegExp(
          `rolled back: probe web failed: HTTP 503 from http://127\\.0\\.0\\.1:${port}/broken\\n$`,
        ),
      );
      const good = candidate('probe-good', {
        'services/probe.pr': `<probe web <http "http://127.0.0.1:${port}/">>\n`,
      });
      const ok = await cli('try', good, '--auto-confirm', '--timeout', '60');
      assert.equal(ok.code, 0, ok.out + ok.err);
      assert.equal((await listed()).at(-1)!.number, before + 2);
      assert.match((await cli('query', '<probe-state web ?s ?d>')).out, /passed/);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  it('refuses an empty candidate and one too large for a request, and changes nothing', async () => {
    const before = await listed();
    const empty = join(dir, 'empty');
    mkdirSync(empty, { recursive: true });
    const e = await cli('try', empty);
    assert.equal(e.code, 1, e.err);
    assert.match(e.err, /holds no files: an empty configuration is refused/);
    const big = candidate('big', {
      'services/big.pr': `<blob "${'x'.repeat(2 * 1024 * 1024)}">\n`,
    });
    const b = await cli('try', big);
    assert.equal(b.code, 1, b.err);
    assert.match(b.err, /over the 1048576-byte limit of one request .*nothing was sent\n$/);
    assert.deepEqual(await listed(), before);
  });

  it('refuses candidate paths outside the site configuration', async () => {
    const c = await ControlClient.connect(socketPathFor(root));
    try {
      const files = new Map([['../escape.pr', new TextEncoder().encode('<x>')]]);
      await assert.rejects(
        c.try({ files, source: 'x' }),
        (e: unknown) =>
          e instanceof ControlRequestError &&
          /is not a relative path of the site configuration/.test(e.message),
      );
    } finally {
      c.close();
    }
  });
});

describe('a trial when the daemon is killed', () => {
  it('is rolled back at the next start: the previous generation runs, and the log says why', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'limen-try-kill-'));
    const site = join(dir, 'site');
    const root = join(dir, 'root');
    mkdirSync(join(site, 'services'), { recursive: true });
    writeFileSync(join(site, 'services/a.pr'), '<greeting "before">\n');
    const args = ['--root', root, '--config', site, '--no-network'];
    let d = new DaemonProcess(args);
    try {
      await d.started();
      const cand = join(dir, 'cand');
      mkdirSync(join(cand, 'services'), { recursive: true });
      writeFileSync(join(cand, 'services/a.pr'), '<greeting "trial">\n');
      const io = captureIo();
      const trying = main(['try', cand, '--timeout', '600', '--root', root], io);
      await until(() => readFileSync(join(site, 'services/a.pr'), 'utf8').includes('trial'), {
        timeoutMs: 20_000,
        describe: () => `the trial applied; try said: ${io.stdout()}${io.stderr()}`,
      });
      await d.kill(); // SIGKILL, mid-trial
      await trying;
      d = new DaemonProcess(args);
      await d.started();
      assert.equal(readFileSync(join(site, 'services/a.pr'), 'utf8'), '<greeting "before">\n');
      const q = captureIo();
      await main(['generations', '--json', '--root', root], q);
      const gens = JSON.parse(q.stdout()) as Listed[];
      assert.deepEqual(
        gens.map((g) => [g.number, g.outcome, g.current]),
        [
          [1, 'confirmed', true],
          [2, 'rolled back: the daemon restarted during the trial', false],
        ],
      );
      assert.ok(d.find((l) => l.msg === 'trial rolled back') !== undefined, d.logText());
    } finally {
      await d.dispose();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
