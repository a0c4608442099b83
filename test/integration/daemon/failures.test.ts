// Every current failure in `limen status` (text and --json) and in the daemon
// log, against the real daemon in a private --root (no network layer: these
// failures come from scripts, the supervisor and a driver's declaration): a broken
// script, a broken service spec, a failure shape declared by a site script
// (no code change), and a declaration that is not a pattern. The log reports
// each at its level when it appears and "KIND fixed" at info only when none of
// that kind and subject is left: one config error replacing another logs the
// new error and no "fixed", the real fix logs "fixed" once. A flood of failures
// costs bounded log lines and a bounded status answer.
// (The network drivers' failures: failures-network.test.ts.)

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, type Daemon } from '../../../src/daemon/daemon.ts';
import type { Handle } from '../../../src/dataspace/index.ts';
import { parse } from '../../../src/preserves/index.ts';
import { main } from '../../../src/cli/main.ts';
import { captureIo } from '../../support/cli-io.ts';
import { until } from '../../support/until.ts';
import { describeProcs, killMarked, newMarker, processesWithEnv } from '../../support/processes.ts';

const MARK = 'LIMEN_TEST_MARK';

interface LogLine {
  level: string;
  msg: string;
  subject?: string;
  message?: string;
  line?: number;
  column?: number;
  [k: string]: unknown;
}

interface StatusFailure {
  kind: string;
  subject: string;
  message: string;
  text: string;
  level: string;
  since: string;
  assertion: string;
}

describe('failures in limen status and the daemon log', () => {
  let dir: string;
  let site: string;
  let daemon: Daemon;
  const marker = newMarker();
  const lines: LogLine[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'limen-failures-'));
    site = join(dir, 'site');
    mkdirSync(join(site, 'services'), { recursive: true });
    daemon = await startDaemon({
      root: join(dir, 'root'),
      configDirs: [site],
      network: false, // runs in the host's namespace: leave its links alone
      logFormat: 'json',
      write: (l) => void lines.push(JSON.parse(l) as LogLine),
    });
  });

  after(async () => {
    await daemon?.shutdown('test over');
    killMarked(MARK, marker);
    rmSync(dir, { recursive: true, force: true });
  });

  const cli = async (...args: string[]) => {
    const io = captureIo();
    const code = await main([...args, '--root', join(dir, 'root')], io);
    return { code, out: io.stdout(), err: io.stderr() };
  };
  const statusJson = async () => {
    const r = await cli('status', '--json');
    assert.equal(r.code, 0, r.err);
    return JSON.parse(r.out) as { failures: StatusFailure[]; 'failures-omitted'?: number };
  };
  const logText = () => lines.map((l) => JSON.stringify(l)).join('\n');
  const waitLog = (what: string, pred: (l: LogLine) => boolean) =>
    until(() => lines.find(pred), {
      timeoutMs: 10_000,
      describe: () => `${what}; log:\n${logText()}`,
    });
  const waitStatus = (what: string, pred: (fs: StatusFailure[]) => boolean) => {
    let seen: StatusFailure[] = [];
    // Wrapped: an empty list is an answer here, not "not yet" (see until()).
    return until(
      async () => {
        seen = (await statusJson()).failures;
        return pred(seen) ? { seen } : undefined;
      },
      { timeoutMs: 10_000, describe: () => `${what}; failures: ${JSON.stringify(seen)}` },
    ).then((r) => r.seen);
  };
  const siteFile = (name: string, text: string) =>
    writeFileSync(join(site, 'services', name), text);

  it('a config error: in status and the log; replaced by another, no "fixed"; fixed once', async () => {
    const file = join(site, 'services', 'broken.pr');
    const ofFile = (l: LogLine) => l.subject === file;
    siteFile('broken.pr', '<greeting "hi">\n');
    await until(async () => (await cli('query', '<greeting _>')).out.includes('hi'));
    siteFile('broken.pr', '<greeting "hi"\n');
    const first = await waitLog('the first error', (l) => l.msg === 'config-error' && ofFile(l));
    assert.equal(first.level, 'error');
    assert.equal(first.line, 2);
    assert.equal(first.column, 1);
    assert.match(first.message!, /expected '>'/);

    const [f] = await waitStatus('the error', (fs) => fs.some((x) => x.subject === file));
    assert.deepEqual(
      { kind: f!.kind, subject: f!.subject, level: f!.level },
      { kind: 'config-error', subject: file, level: 'error' },
    );
    assert.equal(f!.text, `${file}:2:1: ${f!.message}`);
    assert.match(f!.assertion, /^<config-error "/);
    assert.ok(!Number.isNaN(Date.parse(f!.since)));
    const text = await cli('status');
    assert.match(text.out, new RegExp(`^failures +config-error ${file}:2:1: expected '>'`, 'm'));

    // Broken differently: the new error is logged, and nothing says "fixed".
    siteFile('broken.pr', '<greeting "hi">\n\n<greeting "hello" {\n');
    const second = await waitLog(
      'the second error',
      (l) => l.msg === 'config-error' && ofFile(l) && l.line !== 2,
    );
    assert.equal(second.level, 'error');
    await waitStatus('only the second error', (fs) => fs.length === 1 && fs[0]!.text !== f!.text);
    const fixedLines = () => lines.filter((l) => l.msg === 'config-error fixed' && ofFile(l));
    assert.deepEqual(fixedLines(), [], 'one error replaced by another is not a fix');

    // Really fixed: "fixed" once, at info, and status is clean.
    siteFile('broken.pr', '<greeting "hello">\n');
    const fixed = await waitLog('fixed', (l) => l.msg === 'config-error fixed' && ofFile(l));
    assert.equal(fixed.level, 'info');
    await waitStatus('no failure', (fs) => fs.length === 0);
    assert.match((await cli('status')).out, /^failures +none$/m);
    // A later change is logged after anything the fix could still cause: still one "fixed".
    siteFile('later.pr', '<failure-shape <later-error>>\n<later-error "x" "y">\n');
    await waitLog('a later failure', (l) => l.msg === 'later-error');
    assert.equal(fixedLines().length, 1, logText());
    unlinkSync(join(site, 'services', 'later.pr'));
    await waitLog('the later one fixed', (l) => l.msg === 'later-error fixed');
  });

  it('a service error: in status and the log, and "fixed" once its spec is', async () => {
    siteFile(
      'web.pr',
      `<require-service <daemon web>>\n<daemon web {agrv: "exec sleep 1000" env: {${MARK}: "${marker}"}}>\n`,
    );
    const appeared = await waitLog(
      'the service error',
      (l) => l.msg === 'service-error' && l.subject === '<daemon web>',
    );
    assert.equal(appeared.level, 'error');
    assert.match(appeared.message!, /unknown key 'agrv' \(did you mean 'argv'\?\)/);
    // One failure per problem of the spec (the key it does not know, the one it lacks).
    const fs = await waitStatus('the service errors', (xs) =>
      xs.some((x) => x.kind === 'service-error' && /agrv/.test(x.message)),
    );
    const f = fs.find((x) => x.kind === 'service-error' && /agrv/.test(x.message))!;
    assert.equal(f.subject, '<daemon web>');
    assert.equal(f.text, `<daemon web>: ${f.message}`);
    assert.match(
      (await cli('status')).out,
      /^failures +service-error <daemon web>: 'argv' is missing: what should run\?\n +service-error <daemon web>: unknown key 'agrv'/m,
    );

    siteFile(
      'web.pr',
      `<require-service <daemon web>>\n<daemon web {argv: "exec sleep 1000" env: {${MARK}: "${marker}"}}>\n`,
    );
    const fixed = await waitLog(
      'service error fixed',
      (l) => l.msg === 'service-error fixed' && l.subject === '<daemon web>',
    );
    assert.equal(fixed.level, 'info');
    await until(() => processesWithEnv(MARK, marker).length === 1, {
      describe: () => describeProcs(processesWithEnv(MARK, marker)),
    });
    await waitStatus('no failure', (xs) => xs.length === 0);
    unlinkSync(join(site, 'services', 'web.pr'));
    await until(() => processesWithEnv(MARK, marker).length === 0, {
      describe: () => describeProcs(processesWithEnv(MARK, marker)),
    });
  });

  it('a failure shape declared by a site script shows up with no code change, a warning at warn', async () => {
    siteFile(
      'mine.pr',
      [
        '<failure-shape <my-error>>',
        '<failure-shape <my-warning>>',
        '<my-error "disk" "almost full">',
        '<my-warning "fan" "noisy">',
      ].join('\n'),
    );
    const error = await waitLog('my-error', (l) => l.msg === 'my-error');
    assert.deepEqual(
      { level: error.level, subject: error.subject, message: error.message },
      { level: 'error', subject: 'disk', message: 'almost full' },
    );
    const warning = await waitLog('my-warning', (l) => l.msg === 'my-warning');
    assert.deepEqual(
      { level: warning.level, subject: warning.subject, message: warning.message },
      { level: 'warn', subject: 'fan', message: 'noisy' },
    );
    const fs = await waitStatus('both', (xs) => xs.length === 2);
    assert.deepEqual(
      fs.map((x) => [x.kind, x.subject, x.message, x.text, x.level]),
      [
        ['my-error', 'disk', 'almost full', 'disk: almost full', 'error'],
        ['my-warning', 'fan', 'noisy', 'fan: noisy', 'warn'],
      ],
    );
    const text = (await cli('status')).out;
    assert.match(text, /^failures +my-error disk: almost full\n +my-warning fan: noisy$/m);

    // The failure goes, the declaration stays: fixed. Then the declaration goes too.
    siteFile(
      'mine.pr',
      '<failure-shape <my-error>>\n<failure-shape <my-warning>>\n<my-warning "fan" "noisy">\n',
    );
    const fixed = await waitLog('my-error fixed', (l) => l.msg === 'my-error fixed');
    assert.deepEqual(
      { level: fixed.level, subject: fixed.subject },
      { level: 'info', subject: 'disk' },
    );
    unlinkSync(join(site, 'services', 'mine.pr'));
    await waitLog('my-warning fixed', (l) => l.msg === 'my-warning fixed');
    await waitStatus('no failure', (xs) => xs.length === 0);
  });

  it('a declared shape that is not a pattern is itself a failure', async () => {
    // As a driver would declare it (a script cannot write ?x in a value).
    const bad = parse('<failure-shape <?x a b>>');
    let h: Handle | undefined;
    daemon.engine.turn(() => (h = daemon.engine.root.assert(daemon.config.ref, bad)));
    const [f] = await waitStatus('the bad shape', (xs) => xs.length === 1);
    assert.equal(f!.kind, 'failure-shape-error');
    assert.equal(f!.subject, '<?x a b>');
    assert.match(f!.message, /^not a pattern: .*captures while matching one pattern/);
    await waitLog('logged', (l) => l.msg === 'failure-shape-error' && l.level === 'error');
    daemon.engine.turn(() => daemon.engine.root.retract(h!));
    await waitLog('fixed', (l) => l.msg === 'failure-shape-error fixed');
    await waitStatus('no failure', (xs) => xs.length === 0);
  });

  it('a flood of failures costs a bounded log and a bounded status', async () => {
    const n = 300;
    const body = ['<failure-shape <flood-error>>'];
    for (let i = 0; i < n; i++) body.push(`<flood-error "pump" "problem ${i}">`);
    const before = lines.length;
    siteFile('flood.pr', body.join('\n') + '\n');
    const more = await waitLog('the count', (l) => l.msg === 'flood-error: 280 more');
    assert.deepEqual(
      { level: more.level, subject: more.subject },
      { level: 'error', subject: 'pump' },
    );
    const logged = lines.slice(before).filter((l) => l.msg === 'flood-error');
    assert.equal(logged.length, 20);
    const s = await statusJson();
    assert.equal(s.failures.length, 100);
    assert.equal(s['failures-omitted'], n - 100);
    unlinkSync(join(site, 'services', 'flood.pr'));
    await waitLog('fixed', (l) => l.msg === 'flood-error fixed');
    const after = await statusJson();
    assert.equal(after.failures.length, 0);
    assert.equal(after['failures-omitted'], undefined);
    assert.equal(lines.filter((l) => l.msg === 'flood-error fixed').length, 1);
  });
});
