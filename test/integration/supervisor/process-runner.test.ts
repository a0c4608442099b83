import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  ManagedProcess,
  describeExit,
  type ExitInfo,
  type LogLine,
  type ManagedProcessOptions,
  type ProcessSpec,
} from '../../../src/supervisor/process-runner.ts';
import { InvalidProcessSpecError } from '../../../src/supervisor/errors.ts';
import { RestartTracker } from '../../../src/supervisor/restart-policy.ts';
import { until } from '../../support/until.ts';
import {
  describeProcs,
  groupMembers,
  killMarked,
  newMarker,
  processesWithEnv,
} from '../../support/processes.ts';
import { skipUnmet } from '../../support/prerequisites.ts';

const fixtures = fileURLToPath(new URL('../../fixtures/supervisor/', import.meta.url));
const fixture = (name: string) => join(fixtures, name);
const MARK = 'LIMEN_TEST_MARKER';

interface Run {
  readonly proc: ManagedProcess;
  readonly marker: string;
  /** start:PID, ready, line:STREAM:TEXT, exit — in the order they came. */
  readonly events: string[];
  readonly lines: LogLine[];
  readonly exits: ExitInfo[];
  out(): string[];
  err(): string[];
  waitLine(text: string): Promise<void>;
}

/** Starts a process whose events are recorded; the test's end kills whatever is left. */
function run(t: TestContext, spec: ProcessSpec, options: ManagedProcessOptions = {}): Run {
  const marker = newMarker();
  const proc = new ManagedProcess({ ...spec, env: { ...spec.env, [MARK]: marker } }, options);
  const events: string[] = [];
  const lines: LogLine[] = [];
  const exits: ExitInfo[] = [];
  proc.onDidStart((pid) => events.push(`start:${pid}`));
  proc.onDidBecomeReady(() => events.push('ready'));
  proc.onDidLogLine((l) => {
    lines.push(l);
    events.push(`line:${l.stream}:${l.line}`);
  });
  proc.onDidExit((e) => {
    exits.push(e);
    events.push('exit');
  });
  t.after(async () => {
    proc.dispose();
    await until(proc.exited, { describe: () => `exit of ${spec.argv.join(' ')}` });
    const leaked = killMarked(MARK, marker);
    assert.deepEqual(leaked, [], `processes left behind: ${describeProcs(leaked)}`);
  });
  const r: Run = {
    proc,
    marker,
    events,
    lines,
    exits,
    out: () => lines.filter((l) => l.stream === 'stdout').map((l) => l.line),
    err: () => lines.filter((l) => l.stream === 'stderr').map((l) => l.line),
    waitLine: (text) =>
      until(() => lines.some((l) => l.line === text), {
        describe: () => `line '${text}'; events so far: ${events.join(', ')}`,
      }).then(() => undefined),
  };
  proc.start();
  return r;
}

function exited(r: Run, timeoutMs = 10_000): Promise<ExitInfo> {
  return until(r.proc.exited, {
    timeoutMs,
    describe: () => `exit; events so far: ${r.events.join(', ')}`,
  });
}

/** Nothing of the run is alive, and no zombie is ours to reap. */
function assertNoLeftovers(r: Run): void {
  const pid = r.proc.pid;
  assert.ok(pid !== undefined);
  const members = groupMembers(pid);
  const live = members.filter((p) => p.state !== 'Z');
  assert.deepEqual(live, [], `live members of group ${pid}: ${describeProcs(live)}`);
  // Zombies of killed grandchildren belong to init (which may be slow or lazy
  // to reap); a zombie whose parent is this process would be limen's fault.
  const ours = members.filter((p) => p.ppid === process.pid);
  assert.deepEqual(ours, [], `unreaped children: ${describeProcs(ours)}`);
  const marked = processesWithEnv(MARK, r.marker);
  assert.deepEqual(marked, [], `processes with the marker: ${describeProcs(marked)}`);
}

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'limen-proc-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

describe('ManagedProcess: exits', () => {
  it('reports the exit code, after start and ready, exactly once', async (t) => {
    const r = run(t, { argv: ['sh', '-c', 'exit 7'] });
    const exit = await exited(r);
    assert.equal(exit.code, 7);
    assert.equal(exit.signal, null);
    assert.equal(exit.stopped, false);
    assert.equal(exit.forced, false);
    assert.equal(exit.error, undefined);
    assert.equal(exit.pid, r.proc.pid);
    assert.deepEqual(r.events, [`start:${r.proc.pid}`, 'ready', 'exit']);
    assert.deepEqual(r.exits, [exit]);
    assert.equal(r.proc.state, 'exited');
    assert.equal(describeExit(exit), 'exited with code 7');
    // An ExitInfo is what the restart policy takes.
    assert.deepEqual(new RestartTracker('on-error').decide(exit, 0), {
      action: 'restart',
      delayMs: 250,
      scope: 'process',
    });
  });

  it('reports death by a signal', async (t) => {
    const r = run(t, { argv: ['sh', '-c', 'kill -USR1 $$'] });
    const exit = await exited(r);
    assert.equal(exit.code, null);
    assert.equal(exit.signal, 'SIGUSR1');
    assert.equal(describeExit(exit), 'killed by SIGUSR1');
  });

  it('kills what the program left in its group when it exits on its own', async (t) => {
    const r = run(t, { argv: ['sh', '-c', 'sleep 1000 & echo bg-started; exit 3'] });
    let liveAtExit: string | undefined;
    r.proc.onDidExit(() => {
      liveAtExit = describeProcs(groupMembers(r.proc.pid!).filter((p) => p.state !== 'Z'));
    });
    const exit = await exited(r);
    assert.equal(exit.code, 3);
    assert.equal(exit.forced, false, 'sleep dies of the stop signal; no SIGKILL needed');
    assert.equal(liveAtExit, 'none', 'the group is gone before the exit is reported');
    assert.ok(r.out().includes('bg-started'));
    assertNoLeftovers(r);
  });
});

describe('ManagedProcess: output lines', () => {
  it('splits stdout and stderr into lines: CRLF, empty lines, a final partial line', async (t) => {
    // Found on the child's PATH, which holds the fixtures directory.
    const r = run(t, {
      argv: ['lines.sh'],
      env: { PATH: `${fixtures}:/usr/bin:/bin` },
    });
    await exited(r);
    assert.deepEqual(r.out(), ['one', 'two', '', 'threepartial-end']);
    assert.deepEqual(r.err(), ['four']);
    assert.equal(r.events.at(-1), 'exit', 'every line comes before the exit');
    for (const l of r.lines) assert.equal(typeof l.time, 'number');
  });

  it('cuts a very long line into pieces of at most 64 KiB', async (t) => {
    const r = run(t, {
      argv: ['sh', '-c', "head -c 70000 /dev/zero | tr '\\0' x; echo; echo next"],
    });
    await exited(r);
    assert.deepEqual(
      r.out().map((l) => l.length),
      [65536, 70000 - 65536, 4],
    );
    assert.equal(r.out()[2], 'next');
    assert.ok(
      r
        .out()[0]!
        .split('')
        .every((c) => c === 'x'),
    );
  });

  it('stamps lines with the injected clock', async (t) => {
    const r = run(t, { argv: ['sh', '-c', 'echo a; echo b'] }, { clock: () => 42 });
    await exited(r);
    assert.deepEqual(
      r.lines.map((l) => [l.time, l.line]),
      [
        [42, 'a'],
        [42, 'b'],
      ],
    );
  });
});

describe('ManagedProcess: readiness', () => {
  it('is ready when the program writes a newline to the notification fd', async (t) => {
    const r = run(t, {
      argv: ['sh', fixture('notify-ready.sh')],
      readiness: { kind: 'notification-fd', fd: 3 },
    });
    await until(() => r.proc.isReady, { describe: () => r.events.join(', ') });
    await r.waitLine('ready-sent');
    assert.equal(r.events.filter((e) => e === 'ready').length, 1);
    assert.equal(r.proc.state, 'running');
    const exit = await r.proc.stop();
    assert.equal(exit.signal, 'SIGTERM');
    assert.equal(exit.stopped, true);
    assert.ok(r.out().includes('initialising'));
    assertNoLeftovers(r);
  });

  it('uses any fd the spec names', async (t) => {
    const r = run(t, {
      argv: ['sh', fixture('notify-ready.sh'), '5'],
      readiness: { kind: 'notification-fd', fd: 5 },
    });
    await until(() => r.proc.isReady, { describe: () => r.events.join(', ') });
    await r.proc.stop();
    assertNoLeftovers(r);
  });

  it('is never ready when the fd reaches EOF without a newline', async (t) => {
    const r = run(t, {
      argv: ['sh', fixture('notify-eof.sh')],
      readiness: { kind: 'notification-fd', fd: 3 },
    });
    const exit = await exited(r);
    assert.equal(exit.code, 0);
    assert.ok(r.out().includes('closed'));
    assert.equal(r.proc.isReady, false);
    assert.ok(!r.events.includes('ready'), r.events.join(', '));
  });

  it('reports a newline written just before exiting, before the exit', async (t) => {
    const r = run(t, {
      argv: ['sh', fixture('notify-then-exit.sh')],
      readiness: { kind: 'notification-fd', fd: 3 },
    });
    await exited(r);
    assert.deepEqual(r.events, [`start:${r.proc.pid}`, 'ready', 'exit']);
  });

  it('is never ready with readiness none, even after a clean exit', async (t) => {
    const r = run(t, { argv: ['sh', '-c', 'exit 0'], readiness: { kind: 'none' } });
    await exited(r);
    assert.deepEqual(r.events, [`start:${r.proc.pid}`, 'exit']);
  });
});

describe('ManagedProcess: stop', () => {
  it('stops the program and its children with SIGTERM to the group', async (t) => {
    const r = run(t, { argv: ['sh', '-c', 'sleep 1000 & sleep 1000 & echo up; wait'] });
    await r.waitLine('up');
    await until(() => groupMembers(r.proc.pid!).filter((p) => p.state !== 'Z').length === 3, {
      describe: () => `3 members in the group; saw ${describeProcs(groupMembers(r.proc.pid!))}`,
    });
    const exit = await r.proc.stop();
    assert.equal(exit.signal, 'SIGTERM');
    assert.equal(exit.stopped, true);
    assert.equal(exit.forced, false);
    assertNoLeftovers(r);
  });

  it('escalates to SIGKILL when SIGTERM is caught and ignored', async (t) => {
    const r = run(t, { argv: [process.execPath, fixture('trap-term.mjs')], stopTimeoutMs: 300 });
    await r.waitLine('started');
    const exit = await r.proc.stop();
    assert.equal(exit.signal, 'SIGKILL');
    assert.equal(exit.forced, true);
    assert.equal(exit.stopped, true);
    const termAt = r.events.indexOf('line:stdout:got-term');
    assert.ok(termAt >= 0, `SIGTERM was seen first: ${r.events.join(', ')}`);
    assert.ok(termAt < r.events.indexOf('exit'));
    assert.match(describeExit(exit), /SIGKILL \(forced/);
    assertNoLeftovers(r);
  });

  it('kills a whole group that ignores SIGTERM, children included', async (t) => {
    const r = run(t, { argv: ['sh', fixture('ignore-term-children.sh')], stopTimeoutMs: 200 });
    await r.waitLine('started');
    const exit = await r.proc.stop();
    assert.equal(exit.signal, 'SIGKILL');
    assert.equal(exit.forced, true);
    assertNoLeftovers(r);
  });

  it('sends the configured stop signal', async (t) => {
    const r = run(t, {
      argv: [
        'sh',
        '-c',
        "trap 'echo got-int; exit 0' INT; echo started; while :; do sleep 1; done",
      ],
      stopSignal: 'SIGINT',
    });
    await r.waitLine('started');
    const exit = await r.proc.stop();
    assert.equal(exit.code, 0);
    assert.ok(r.out().includes('got-int'));
    assertNoLeftovers(r);
  });

  it('stopScope main: signals the main process alone, and the rest once it has exited', async (t) => {
    // The child records when it got SIGTERM; the main process waits 300 ms after its
    // own, then exits: with scope all the child would have been signalled with it.
    const r = run(t, {
      argv: [
        'sh',
        '-c',
        'sh -c \'trap "echo child-term; exit 0" TERM; echo child-up; while :; do sleep 0.05; done\' & ' +
          'trap \'trap "" TERM; echo main-term; sleep 0.3; echo main-exit; exit 0\' TERM; ' +
          'echo started; while :; do sleep 0.05; done',
      ],
      stopScope: 'main',
    });
    await r.waitLine('child-up');
    await r.waitLine('started');
    const exit = await r.proc.stop();
    assert.equal(exit.code, 0);
    assert.equal(exit.forced, false);
    const lines = r.out();
    const at = (l: string) => lines.indexOf(l);
    assert.ok(at('main-term') >= 0 && at('main-exit') > at('main-term'), lines.join('\n'));
    assert.ok(
      at('child-term') > at('main-exit'),
      `the child was signalled before main exited:\n${lines.join('\n')}`,
    );
    assertNoLeftovers(r);
  });

  it('stopScope main: sends the stop signal again until the main process exits (dhcpcd loses one)', async (t) => {
    // The first SIGTERM is ignored, as dhcpcd does while it runs a hook on losing carrier.
    const r = run(t, {
      argv: [
        'sh',
        '-c',
        "n=0; trap 'n=$((n+1)); echo term-$n; [ $n -ge 2 ] && exit 0' TERM; " +
          'echo started; while :; do sleep 0.05; done',
      ],
      stopScope: 'main',
      stopTimeoutMs: 10_000,
    });
    await r.waitLine('started');
    const exit = await r.proc.stop();
    assert.equal(exit.code, 0);
    assert.equal(exit.forced, false);
    assert.deepEqual(
      r.out().filter((l) => l.startsWith('term-')),
      ['term-1', 'term-2'],
    );
    assertNoLeftovers(r);
  });

  it('returns the same exit to every stop() call', async (t) => {
    const r = run(t, { argv: ['sleep', '1000'] });
    await until(() => r.proc.state === 'running');
    const [a, b] = await Promise.all([r.proc.stop(), r.proc.stop()]);
    assert.equal(a, b);
    assert.equal(await r.proc.stop(), a);
    assert.equal(r.exits.length, 1);
  });

  it('stops before spawning when stop() comes first', async (t) => {
    const r = run(t, { argv: ['sleep', '1000'] });
    const exit = await r.proc.stop(); // start() ran, but the spawn is still being prepared
    assert.equal(exit.pid, null);
    assert.equal(exit.stopped, true);
    assert.deepEqual(r.events, ['exit']);
    assert.equal(describeExit(exit), 'stopped before it started');
  });

  it('stops when the start signal is aborted', async (t) => {
    const marker = newMarker();
    const proc = new ManagedProcess({ argv: ['sleep', '1000'], env: { [MARK]: marker } });
    t.after(() => {
      proc.dispose();
      killMarked(MARK, marker);
    });
    const ac = new AbortController();
    proc.start({ signal: ac.signal });
    await until(() => proc.state === 'running');
    ac.abort();
    const exit = await until(proc.exited);
    assert.equal(exit.signal, 'SIGTERM');
    assert.equal(exit.stopped, true);
  });

  it('dispose() kills the group at once and reports no more events', async (t) => {
    const r = run(t, { argv: ['sh', fixture('ignore-term-children.sh')] });
    await r.waitLine('started');
    r.proc.dispose();
    const exit = await until(r.proc.exited);
    assert.equal(exit.signal, 'SIGKILL');
    assert.equal(exit.stopped, true);
    assert.deepEqual(r.exits, [], 'listeners were dropped');
    assertNoLeftovers(r);
  });
});

describe('ManagedProcess: failures to start', () => {
  async function failure(t: TestContext, spec: ProcessSpec): Promise<ExitInfo> {
    const r = run(t, spec);
    const exit = await exited(r);
    assert.deepEqual(r.events, ['exit'], 'no start, no ready');
    assert.equal(exit.pid, null);
    assert.ok(exit.error, 'the exit carries the reason');
    assert.match(describeExit(exit), /^failed to start: /);
    return exit;
  }

  it('reports a program that is not on the PATH', async (t) => {
    const exit = await failure(t, { argv: ['limen-no-such-program', 'x'] });
    assert.equal(exit.error?.code, 'LIMEN_PROCESS_NOT_FOUND');
    assert.match(exit.error.message, /'limen-no-such-program' not found on PATH/);
  });

  it('reports a path that does not exist', async (t) => {
    const exit = await failure(t, { argv: ['/nonexistent/limen/prog'] });
    assert.equal(exit.error?.code, 'LIMEN_PROCESS_NOT_FOUND');
  });

  it('reports a file that is not executable', async (t) => {
    const dir = await tempDir(t);
    const file = join(dir, 'script');
    await writeFile(file, '#!/bin/sh\necho hi\n');
    await chmod(file, 0o644);
    const exit = await failure(t, { argv: [file] });
    assert.equal(exit.error?.code, 'LIMEN_PROCESS_NOT_EXECUTABLE');
  });

  it('reports a script whose interpreter does not exist', async (t) => {
    const dir = await tempDir(t);
    const file = join(dir, 'script');
    await writeFile(file, '#!/nonexistent/interpreter\n');
    await chmod(file, 0o755);
    const exit = await failure(t, { argv: [file] });
    assert.equal(exit.error?.code, 'LIMEN_PROCESS_NOT_FOUND');
    assert.match(exit.error.message, /interpreter/);
  });

  it('reports a working directory that does not exist', async (t) => {
    const exit = await failure(t, { argv: ['sh', '-c', 'true'], dir: '/nonexistent/limen' });
    assert.equal(exit.error?.code, 'LIMEN_PROCESS_BAD_DIR');
    assert.match(exit.error.message, /does not exist/);
  });

  it('reports a working directory that is a file', async (t) => {
    const exit = await failure(t, { argv: ['sh', '-c', 'true'], dir: fixture('lines.sh') });
    assert.equal(exit.error?.code, 'LIMEN_PROCESS_BAD_DIR');
  });

  it('reports an unknown user', async (t) => {
    const exit = await failure(t, { argv: ['sh', '-c', 'true'], user: 'limen-no-such-user' });
    assert.equal(exit.error?.code, 'LIMEN_PROCESS_UNKNOWN_USER');
  });

  it('rejects an invalid spec with every problem at once', () => {
    assert.throws(
      () =>
        new ManagedProcess({
          argv: [],
          env: { 'A=B': 'x' },
          readiness: { kind: 'notification-fd', fd: 1 },
          stopSignal: 'SIGNOPE' as NodeJS.Signals,
          stopTimeoutMs: -1,
        }),
      (e: unknown) => {
        assert.ok(e instanceof InvalidProcessSpecError);
        assert.equal(e.code, 'LIMEN_PROCESS_INVALID_SPEC');
        assert.equal(e.problems.length, 5, e.problems.join('; '));
        return true;
      },
    );
  });
});

describe('ManagedProcess: environment, directory, user', () => {
  it('clears the environment, sets env and LIMEN_OUTPUTS, finds sh on the default PATH', async (t) => {
    const r = run(t, {
      argv: ['sh', '-c', 'echo "$FOO|${HOME-unset}|$LIMEN_OUTPUTS|${PATH-nopath}"'],
      clearEnv: true,
      env: { FOO: 'bar' },
      outputsDir: '/run/limen/outputs/x',
    });
    await exited(r);
    // dash sets a default PATH of its own when none is inherited.
    assert.match(r.out()[0]!, /^bar\|unset\|\/run\/limen\/outputs\/x\|/);
  });

  it('inherits limen’s environment unless cleared', async (t) => {
    process.env['LIMEN_TEST_INHERITED'] = 'yes';
    t.after(() => delete process.env['LIMEN_TEST_INHERITED']);
    const r = run(t, { argv: ['sh', '-c', 'echo "$LIMEN_TEST_INHERITED"'] });
    await exited(r);
    assert.deepEqual(r.out(), ['yes']);
  });

  it('runs in the given directory, where a relative argv[0] resolves', async (t) => {
    const dir = await tempDir(t);
    await writeFile(join(dir, 'here.sh'), '#!/bin/sh\npwd\n');
    await chmod(join(dir, 'here.sh'), 0o755);
    const r = run(t, { argv: ['./here.sh'], dir });
    const exit = await exited(r);
    assert.equal(exit.code, 0, describeExit(exit));
    assert.deepEqual(r.out(), [await realpath(dir)]);
  });

  it('switches user and group, dropping supplementary groups (as root)', async (t) => {
    if (skipUnmet(t, { root: 'to switch user' })) return;
    const r = run(t, { argv: ['sh', '-c', 'id -u; id -g; id -G'], user: 'nobody' });
    const exit = await exited(r);
    assert.equal(exit.code, 0, describeExit(exit));
    assert.deepEqual(r.out(), ['65534', '65534', '65534']);
  });
});
