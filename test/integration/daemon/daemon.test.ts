// The daemon as a user runs it: `limen daemon --root DIR --config SITE` in a
// process of its own, with real services. Checks the boot layers, start order,
// reverse stop order on SIGTERM, a dependency that fails and recovers, a
// broken file that keeps its last good version, SIGHUP, that every supervisor
// event and script log message is logged exactly once, and that no process
// is left behind. Waits on the daemon's JSON log lines, never on sleeps.

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { until } from '../../support/until.ts';
import { describeProcs, killMarked, newMarker, processesWithEnv } from '../../support/processes.ts';
import { removeSubtreeOf } from '../../support/cgroups.ts';

const repo = resolve(import.meta.dirname, '../../..');
const MARK = 'LIMEN_TEST_MARK';

interface LogLine {
  time: string;
  level: string;
  msg: string;
  [k: string]: unknown;
}

class DaemonProcess {
  readonly child: ChildProcess;
  readonly lines: LogLine[] = [];
  readonly exited: Promise<number | null>;
  constructor(args: string[], env: NodeJS.ProcessEnv) {
    this.child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        join(repo, 'test/support/limen-cli.ts'),
        'daemon',
        '--log-format',
        'json',
        ...args,
      ],
      { cwd: repo, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let buf = '';
    this.child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      buf += chunk;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          this.lines.push(JSON.parse(line) as LogLine);
        } catch {
          this.lines.push({ time: '', level: 'raw', msg: line });
        }
      }
    });
    this.exited = new Promise((r) => this.child.once('exit', (code) => r(code)));
  }
  find(pred: (l: LogLine) => boolean): LogLine | undefined {
    return this.lines.find(pred);
  }
  count(pred: (l: LogLine) => boolean): number {
    return this.lines.filter(pred).length;
  }
  async waitFor(what: string, pred: (l: LogLine) => boolean, timeoutMs = 15_000): Promise<LogLine> {
    return until(() => this.find(pred), {
      timeoutMs,
      describe: () =>
        `${what}; log so far:\n${this.lines.map((l) => JSON.stringify(l)).join('\n')}`,
    });
  }
  state(service: string, state: string) {
    return (l: LogLine) => l.msg === 'service state' && l.service === service && l.state === state;
  }
  /** A supervisor event about the service (mirrored from $log). */
  event(service: string, msg: RegExp) {
    return (l: LogLine) => l.service === service && typeof l.msg === 'string' && msg.test(l.msg);
  }
}

function site(dir: string, files: { [path: string]: string }): void {
  for (const [p, text] of Object.entries(files)) {
    mkdirSync(join(dir, p, '..'), { recursive: true });
    writeFileSync(join(dir, p), text);
  }
}

describe('limen daemon', () => {
  const dirs: string[] = [];
  const markers: string[] = [];
  const daemons: DaemonProcess[] = [];
  after(async () => {
    for (const d of daemons) {
      if (d.child.exitCode === null) d.child.kill('SIGKILL');
      await d.exited;
    }
    for (const m of markers) killMarked(MARK, m);
    // A daemon SIGKILLed here (a failed test) leaves its cgroup subtree behind.
    for (const d of dirs) await removeSubtreeOf(join(d, 'root'));
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  function setup(files: { [path: string]: string }) {
    const dir = mkdtempSync(join(tmpdir(), 'limen-daemon-test-'));
    dirs.push(dir);
    const marker = newMarker();
    markers.push(marker);
    site(join(dir, 'site'), files);
    // --no-network: these tests run in the host's namespace and must not touch its links.
    const d = new DaemonProcess(
      ['--root', join(dir, 'root'), '--config', join(dir, 'site'), '--no-network'],
      {
        [MARK]: marker,
        T: dir,
      },
    );
    daemons.push(d);
    return { dir, marker, d };
  }

  it('starts a chain of three in order, stops it in reverse on SIGTERM, and leaves no process', async () => {
    const svc = (name: string) =>
      `["sh" "-c" "echo ${name} up; trap 'echo ${name} stopping; exit 0' TERM; while :; do sleep 1; done"]`;
    const { marker, d } = setup({
      'core/a.pr': [
        '<require-service <daemon a>>',
        `<daemon a ${svc('a')}>`,
        // A script's own message naming a service is logged like any other.
        '$log ! <log "2030-01-01T00:00:00Z" {service: <daemon a> level: warn message: "a note from a script"}>',
      ].join('\n'),
      'services/bc.pr': [
        '<require-service <daemon c>>',
        '<depends-on <daemon b> <service-state <daemon a> up>>',
        '<depends-on <daemon c> <service-state <daemon b> up>>',
        `<daemon b ${svc('b')}>`,
        `<daemon c ${svc('c')}>`,
      ].join('\n'),
    });
    await d.waitFor('c ready', d.state('<daemon c>', 'ready'));
    const started = (s: string) => d.lines.findIndex(d.state(s, 'started'));
    assert.ok(started('<daemon a>') < started('<daemon b>'), 'a starts before b');
    assert.ok(started('<daemon b>') < started('<daemon c>'), 'b starts before c');
    assert.ok(d.find(d.state('<milestone core>', 'up')), 'the core milestone is up');
    // Each supervisor event reaches the log once (from $log, not also from the engine's
    // logger, which would say '<daemon a>: started …').
    await d.waitFor('c ready, the event', d.event('<daemon c>', /^ready$/));
    for (const s of ['<daemon a>', '<daemon b>', '<daemon c>']) {
      assert.equal(d.count(d.event(s, /(^|: )started \(pid \d+\)$/)), 1, `${s} started, once`);
      assert.equal(d.count(d.event(s, /(^|: )ready$/)), 1, `${s} ready, once`);
    }
    const note = await d.waitFor(
      "the script's note",
      d.event('<daemon a>', /^a note from a script$/),
    );
    assert.equal(note.level, 'warn');
    assert.equal(d.count(d.event('<daemon a>', /a note from a script/)), 1);
    // The three services' shells: not a shell's own child, which is briefly an `sh` too
    // between its fork and its exec of sleep.
    const marked = processesWithEnv(MARK, marker);
    const shells = marked.filter((p) => p.comm === 'sh' && p.state !== 'Z');
    assert.equal(
      shells.filter((p) => !shells.some((q) => q.pid === p.ppid)).length,
      3,
      describeProcs(marked),
    );

    d.child.kill('SIGTERM');
    assert.equal(await d.exited, 0, 'the daemon exits 0 after SIGTERM');
    const stoppedAt = (name: string) =>
      d.lines.findIndex((l) => l.msg === 'output' && l.line === `${name} stopping`);
    assert.ok(
      stoppedAt('c') >= 0 && stoppedAt('b') >= 0 && stoppedAt('a') >= 0,
      `every service got SIGTERM; the log:\n${d.lines.map((l) => JSON.stringify(l)).join('\n')}`,
    );
    assert.ok(
      stoppedAt('c') < stoppedAt('b') && stoppedAt('b') < stoppedAt('a'),
      'stops in reverse dependency order',
    );
    for (const s of ['<daemon a>', '<daemon b>', '<daemon c>'])
      assert.equal(d.count(d.event(s, /(^|: )stopped \(/)), 1, `${s} stopped, once`);
    const left = processesWithEnv(MARK, marker);
    assert.equal(left.length, 0, `processes left behind: ${describeProcs(left)}`);
  });

  it('stops a dependent when its dependency fails, and starts it again when it recovers', async () => {
    const { dir, d } = setup({
      'services/x.pr': [
        '<require-service <daemon web>>',
        '<depends-on <daemon web> <service-state <daemon db> up>>',
        // db crashes once, when the test creates $T/crash, then runs for good.
        '<daemon db {argv: ["sh" "-c" "if [ -e $T/crashed ]; then exec sleep 1000; fi; while [ ! -e $T/crash ]; do sleep 0.05; done; touch $T/crashed; exit 1"] restart: on-error}>',
        '<daemon web "exec sleep 1000">',
      ].join('\n'),
    });
    await d.waitFor('web ready', d.state('<daemon web>', 'ready'));
    writeFileSync(join(dir, 'crash'), '');
    await d.waitFor(
      'web started a second time',
      () => d.count(d.state('<daemon web>', 'started')) >= 2,
    );
    const events = d.lines.filter(
      (l) =>
        l.msg === 'service state' && (l.service === '<daemon web>' || l.service === '<daemon db>'),
    );
    const firstWebStop = d.lines.findIndex(d.event('<daemon web>', /^stopped/));
    assert.ok(firstWebStop >= 0, `web was stopped while db was down: ${JSON.stringify(events)}`);
    d.child.kill('SIGTERM');
    assert.equal(await d.exited, 0);
  });

  it('keeps the last good version of a broken file, says where it is broken, and applies the fix', async () => {
    const { dir, d } = setup({
      'services/s.pr': '<require-service <daemon one>>\n<daemon one "exec sleep 1000">\n',
    });
    await d.waitFor('one ready', d.state('<daemon one>', 'ready'));
    const file = join(dir, 'site/services/s.pr');
    writeFileSync(file, '<require-service <daemon one>>\n<daemon one "exec sleep 1000"\n');
    const err = await d.waitFor('config error', (l) => l.msg === 'config-error');
    assert.equal(err.level, 'error');
    assert.equal(err.subject, file);
    assert.equal(err.line, 3);
    assert.equal(d.count(d.event('<daemon one>', /(^|: )stopped/)), 0, 'one keeps running');
    writeFileSync(file, '<require-service <daemon two>>\n<daemon two "exec sleep 1000">\n');
    await d.waitFor('two ready', d.state('<daemon two>', 'ready'));
    await d.waitFor('error retracted', (l) => l.msg === 'config-error fixed' && l.subject === file);
    await d.waitFor('one stopped', d.event('<daemon one>', /^stopped/));
    d.child.kill('SIGHUP');
    await d.waitFor('rescan on SIGHUP', (l) => l.msg === 'rescanning configuration');
    d.child.kill('SIGTERM');
    assert.equal(await d.exited, 0);
  });
});
