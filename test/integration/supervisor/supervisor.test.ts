import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, readdir, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  Dataspace,
  Engine,
  P,
  type Facet,
  type Handle,
  type LogFields,
  type Logger,
} from '../../../src/dataspace/index.ts';
import type { Record, Sym } from '../../../src/preserves/index.ts';
import {
  Dict,
  is,
  parse,
  peel,
  record,
  stringify,
  sym,
  type Value,
} from '../../../src/preserves/index.ts';
import {
  startSupervisor,
  type Supervisor,
  type SupervisorOptions,
} from '../../../src/supervisor/supervisor.ts';
import { describeProcs, killMarked, newMarker, processesWithEnv } from '../../support/processes.ts';
import { until } from '../../support/until.ts';

const fixtures = fileURLToPath(new URL('../../fixtures/supervisor/', import.meta.url));
const fixture = (name: string) => JSON.stringify(join(fixtures, name));
const MARK = 'LIMEN_TEST_MARKER';
const TIME = Date.UTC(2030, 0, 1);

/** Fast backoff, and a crash loop after three failures, so that tests take milliseconds. */
const fastRestarts = {
  cleanRestartDelayMs: 5,
  initialBackoffMs: 5,
  maxBackoffMs: 20,
  crashLoopFailures: 3,
  crashLoopWindowMs: 600_000,
};

interface Harness {
  readonly engine: Engine;
  readonly config: Dataspace;
  readonly log: Dataspace;
  readonly sup: Supervisor;
  readonly runDir: string;
  readonly marker: string;
  /** Every `<log …>` message on $log, in order. */
  readonly messages: Value[];
  /** What the engine's logger got, as "level: message". */
  readonly logged: string[];
  /** Errors matching re are what the test provokes: the end-of-test check lets them pass. */
  expectError(re: RegExp): void;
  /** Asserts a value into $config (from a test facet); the handle retracts it. */
  assert(value: Value): Handle;
  retract(h: Handle): void;
  send(value: Value): void;
  /** Asserts `<daemon ID SPEC>` for each spec (Preserves text) and `<run-service <daemon ID>>`. */
  run(id: string, ...specs: string[]): { specs: Handle[]; runService: Handle };
  /** The service-state values asserted for the service now (normally zero or one). */
  states(id: string): string[];
  /** Every state the service was seen to enter, in order. */
  history(id: string): string[];
  waitState(id: string, state: string | undefined, timeoutMs?: number): Promise<void>;
  /** The service's output lines, from its log buffer. */
  lines(id: string): string[];
  waitLine(id: string, line: string, count?: number): Promise<void>;
  /** Supervisor events ({level message}) for the service, from $log. */
  events(id: string): string[];
  waitEvent(id: string, pattern: RegExp): Promise<void>;
  outputs(id: string): [string, Value][];
}

const daemon = (id: string) => record('daemon', sym(id));

function field(body: Value, key: string): Value | undefined {
  const d = peel(body);
  return d instanceof Dict ? d.get(sym(key)) : undefined;
}

async function harness(t: TestContext, options: Partial<SupervisorOptions> = {}): Promise<Harness> {
  const runDir = await mkdtemp(join(tmpdir(), 'limen-supervisor-'));
  const marker = newMarker();
  // Children inherit limen's environment, so every process of this test carries the marker.
  process.env[MARK] = marker;
  const logged: string[] = [];
  const expectedErrors: RegExp[] = [];
  const record_ = (level: string) => (m: string, _f?: LogFields) => logged.push(`${level}: ${m}`);
  const logger: Logger & { info(m: string): void } = {
    error: record_('error'),
    warn: record_('warn'),
    info: record_('info'),
  };
  const engine = new Engine({ logger });
  const config = new Dataspace(engine, 'config');
  const log = new Dataspace(engine, 'log');
  const messages: Value[] = [];
  const histories = new Map<string, string[]>();
  let tester!: Facet;
  engine.root.spawn((f) => {
    tester = f;
    f.observe(config.ref, P.rec('service-state', P.bind('s'), P.bind('st')), {
      onAdd: (_v, c) => {
        const key = stringify(c.get('s')!);
        const h = histories.get(key) ?? [];
        h.push((peel(c.get('st')!) as Sym).name);
        histories.set(key, h);
      },
    });
    f.observe(log.ref, P.rec('log', P._, P._), { onMessage: (v) => void messages.push(v) });
  }, 'test');
  const sup = startSupervisor(engine.root, {
    config: config.ref,
    log: log.ref,
    runDir,
    clock: () => TIME,
    restart: fastRestarts,
    outputsDebounceMs: 2,
    ...options,
  });
  t.after(async () => {
    try {
      engine.root.stop();
      await until(sup.closed, { timeoutMs: 15_000, describe: () => 'the supervisor to close' });
      const leaked = killMarked(MARK, marker);
      assert.deepEqual(leaked, [], `processes left behind: ${describeProcs(leaked)}`);
      // A failed turn is logged, never thrown: it must not pass unseen.
      assert.deepEqual(
        logged.filter((l) => l.startsWith('error: ') && !expectedErrors.some((re) => re.test(l))),
        [],
        'unexpected engine errors',
      );
    } finally {
      killMarked(MARK, marker);
      await rm(runDir, { recursive: true, force: true });
    }
  });

  const query = (pattern: Parameters<Dataspace['query']>[0]) => config.query(pattern);
  const h: Harness = {
    engine,
    config,
    log,
    sup,
    runDir,
    marker,
    messages,
    logged,
    expectError: (re) => void expectedErrors.push(re),
    assert: (v) => tester.assert(config.ref, v),
    retract: (handle) => tester.retract(handle),
    send: (v) => tester.send(config.ref, v),
    run(id, ...specs) {
      const handles = specs.map((s) => h.assert(record('daemon', sym(id), parse(s))));
      return { specs: handles, runService: h.assert(record('run-service', daemon(id))) };
    },
    states: (id) =>
      query(P.rec('service-state', P.lit(daemon(id)), P.bind('st'))).map(
        (r) => (peel(r.captures.get('st')!) as Sym).name,
      ),
    history: (id) => histories.get(stringify(daemon(id))) ?? [],
    async waitState(id, state, timeoutMs = 8000) {
      const want = state === undefined ? [] : [state];
      await until(() => JSON.stringify(h.states(id)) === JSON.stringify(want), {
        timeoutMs,
        describe: () =>
          `${id} in state ${state ?? '(none)'}; states now [${h.states(id).join(' ')}], ` +
          `history [${h.history(id).join(' ')}], events:\n  ${h.events(id).join('\n  ')}`,
      });
    },
    lines: (id) => (sup.logs(daemon(id))?.tail() ?? []).map((l) => l.line),
    async waitLine(id, line, count = 1) {
      await until(() => h.lines(id).filter((l) => l === line).length >= count, {
        describe: () =>
          `${count} × line '${line}' from ${id}; lines: [${h.lines(id).join(' | ')}], ` +
          `events:\n  ${h.events(id).join('\n  ')}`,
      });
    },
    events: (id) =>
      messages.flatMap((m) => {
        const body = (m as Record).fields[1]!;
        const level = field(body, 'level');
        const service = field(body, 'service');
        if (level === undefined || service === undefined || !is(service, daemon(id))) return [];
        return [`${(level as Sym).name}: ${field(body, 'message') as string}`];
      }),
    async waitEvent(id, pattern) {
      await until(() => h.events(id).some((e) => pattern.test(e)), {
        describe: () =>
          `an event ${String(pattern)} from ${id}; events:\n  ${h.events(id).join('\n  ')}`,
      });
    },
    outputs: (id) =>
      query(P.rec('output', P.lit(daemon(id)), P.bind('k'), P.bind('v')))
        .map((r) => [(r.captures.get('k') as Sym).name, r.captures.get('v')!] as [string, Value])
        .sort((a, b) => a[0].localeCompare(b[0])),
  };
  return h;
}

function marked(h: Harness) {
  return processesWithEnv(MARK, h.marker);
}

describe('supervisor: spec forms', () => {
  it('runs a string with sh -c; ready on start', async (t) => {
    const h = await harness(t);
    h.run('web', '"echo hello from $0; exec sleep 1000"');
    await h.waitState('web', 'ready');
    await h.waitLine('web', 'hello from sh');
    assert.deepEqual(h.history('web'), ['started', 'ready']);
    const [status] = h.sup.services();
    assert.ok(status !== undefined && is(status.service, daemon('web')));
    assert.equal(status.state, 'ready');
    assert.equal(status.pids.length, 1);
    assert.deepEqual(
      marked(h).map((p) => p.pid),
      status.pids,
    );
  });

  it('runs an argv sequence, finding the program on the PATH', async (t) => {
    const h = await harness(t);
    h.run('nap', '["sleep" "1000"]');
    await h.waitState('nap', 'ready');
    const procs = marked(h);
    assert.deepEqual(
      procs.map((p) => p.comm),
      ['sleep'],
    );
  });

  it('runs a <one-shot> once to completion: started, then complete, never ready', async (t) => {
    const h = await harness(t);
    h.run('setup', '<one-shot "echo setting up">');
    await h.waitState('setup', 'complete');
    assert.deepEqual(h.history('setup'), ['started', 'complete']);
    assert.deepEqual(h.lines('setup'), ['setting up']);
    assert.equal(h.sup.services()[0]!.restarts, 0);
  });

  it('restarts a failing <one-shot> (on-error) until it succeeds', async (t) => {
    const h = await harness(t);
    const flag = join(h.runDir, 'tries');
    // Fails twice, then succeeds: three runs in all.
    h.run(
      'setup',
      `<one-shot ${JSON.stringify(`echo x >> ${flag}; [ $(wc -l < ${flag}) -ge 3 ]`)}>`,
    );
    await h.waitState('setup', 'complete');
    assert.equal(h.sup.services()[0]!.restarts, 2);
    assert.deepEqual(h.history('setup').at(-1), 'complete');
    assert.ok(!h.history('setup').includes('failed'));
  });

  it('runs the dictionary form with env (set and removed), dir and clearEnv', async (t) => {
    const h = await harness(t);
    const script = 'echo "FOO=$FOO HOME=${HOME-unset} dir=$(pwd)"; exec sleep 1000';
    h.run(
      'dict',
      `{argv: ["sh" "-c" ${JSON.stringify(script)}] env: {FOO: "bar" "HOME": #f} dir: ${JSON.stringify(h.runDir)}}`,
    );
    await h.waitLine('dict', `FOO=bar HOME=unset dir=${h.runDir}`);
    await h.waitState('dict', 'ready');

    const clean = 'echo "keys=$(env | cut -d= -f1 | sort | tr "\\n" " ")"; exec sleep 1000';
    h.run(
      'clean',
      `{argv: ["sh" "-c" ${JSON.stringify(clean)}] clearEnv: #t env: {${MARK}: ${JSON.stringify(h.marker)}}}`,
    );
    await until(() => h.lines('clean').find((l) => l.startsWith('keys=')), {
      describe: () => `the env of 'clean': ${h.lines('clean').join(' | ')}`,
    });
    const keys = h.lines('clean')[0]!.slice('keys='.length).trim().split(' ');
    // Only what the spec gave, what sh sets itself, and LIMEN_OUTPUTS.
    assert.ok(keys.includes('LIMEN_OUTPUTS') && keys.includes(MARK), keys.join(' '));
    assert.ok(
      !keys.includes('HOME') && !keys.includes('PATH') && !keys.includes('FOO'),
      keys.join(' '),
    );
  });
});

describe('supervisor: readiness', () => {
  it('is ready when the program writes a newline to its notification fd', async (t) => {
    const h = await harness(t);
    const flag = join(h.runDir, 'go');
    h.run(
      'slow',
      `{argv: [${fixture('ready-when-file.sh')} ${JSON.stringify(flag)}] readiness: <notification-fd 3>}`,
    );
    await h.waitLine('slow', `waiting for ${flag}`);
    await h.engine.sync();
    assert.deepEqual(h.states('slow'), ['started'], 'not ready before it says so');
    await writeFile(flag, '');
    await h.waitState('slow', 'ready');
    assert.deepEqual(h.history('slow'), ['started', 'ready']);
  });

  it('with readyOnStart: #f and no readiness, stays started', async (t) => {
    const h = await harness(t);
    h.run('quiet', '{argv: "echo up; exec sleep 1000" readyOnStart: #f}');
    await h.waitLine('quiet', 'up');
    await h.waitState('quiet', 'started');
    // Readiness on start would have come before the first line.
    assert.deepEqual(h.history('quiet'), ['started']);
  });

  it('a service of several processes is ready when all of them are', async (t) => {
    const h = await harness(t);
    const flag = join(h.runDir, 'go');
    h.run(
      'pair',
      '["sleep" "1000"]',
      `{argv: [${fixture('ready-when-file.sh')} ${JSON.stringify(flag)}] readiness: <notification-fd 3>}`,
    );
    await until(
      () => {
        const ps = h.sup.services()[0]?.processes ?? [];
        return (
          ps.length === 2 &&
          ps.some((p) => p.state === 'ready') &&
          ps.some((p) => p.state === 'started')
        );
      },
      { describe: () => JSON.stringify(h.sup.services()[0]?.processes.map((p) => p.state)) },
    );
    await h.engine.sync();
    assert.deepEqual(h.states('pair'), ['started']);
    await writeFile(flag, '');
    await h.waitState('pair', 'ready');
    assert.equal(h.sup.services()[0]!.pids.length, 2);
  });
});

describe('supervisor: restart policies', () => {
  it('always: restarts after a clean exit, with backoff, and gives up on a loop of them', async (t) => {
    const h = await harness(t);
    h.run('loop', '{argv: "echo run" restart: always}');
    await h.waitLine('loop', 'run', 3);
    assert.ok(h.sup.services()[0]!.restarts >= 2);
    assert.ok(!h.history('loop').includes('complete'));
    await h.waitEvent('loop', /^info: exited with code 0; restarting in 5 ms$/);
    await h.waitEvent('loop', /^info: exited with code 0; restarting in 10 ms$/);
    // A program that exits 0 at once and for ever is as much a loop as one that crashes.
    await h.waitState('loop', 'failed');
    await h.waitEvent('loop', /giving up: crash loop: 3 /);
    assert.equal(h.lines('loop').filter((l) => l === 'run').length, 3, 'crashLoopFailures runs');
  });

  it('on-error: a clean exit is complete', async (t) => {
    const h = await harness(t);
    h.run('ok', '{argv: "echo done" restart: on-error}');
    await h.waitState('ok', 'complete');
    assert.equal(h.sup.services()[0]!.restarts, 0);
  });

  it('on-error: restarts a failure with backoff, then gives up on a crash loop', async (t) => {
    const h = await harness(t);
    h.run('crash', '{argv: "echo try; exit 3" restart: on-error}');
    await h.waitState('crash', 'failed');
    assert.equal(h.lines('crash').filter((l) => l === 'try').length, 3, 'crashLoopFailures runs');
    assert.ok(!h.history('crash').includes('complete'));
    const events = h.events('crash');
    assert.ok(events.includes('warn: exited with code 3; restarting in 5 ms'), events.join('\n'));
    assert.ok(events.includes('warn: exited with code 3; restarting in 10 ms'), events.join('\n'));
    assert.ok(
      events.some((e) => /^error: exited with code 3; giving up: crash loop: 3 failures/.test(e)),
      events.join('\n'),
    );
    // Reported once, on $log only: the engine's logger does not repeat it.
    assert.equal(events.filter((e) => /giving up/.test(e)).length, 1, events.join('\n'));
    assert.ok(!h.logged.some((l) => /giving up/.test(l)), h.logged.join('\n'));
  });

  it('all: a clean exit is complete; a failure restarts every process of the service', async (t) => {
    const h = await harness(t);
    h.run('done', '"exit 0"');
    await h.waitState('done', 'complete');

    const flag = join(h.runDir, 'failed-once');
    const flaky = `if [ -e ${flag} ]; then exec sleep 1000; fi; touch ${flag}; exit 1`;
    h.run('both', '"echo steady-start; exec sleep 1000"', JSON.stringify(flaky));
    await h.waitEvent('both', /restarting the whole service in 5 ms$/);
    await h.waitEvent('both', /^info: echo steady-start; exec sleep 1000: stopped for a restart/);
    // The steady process is started again (the first may be stopped before its echo runs,
    // so its line is counted only from the second).
    const starts = () =>
      h.events('both').filter((e) => /^info: echo steady-start.*: started/.test(e));
    await until(() => starts().length === 2, {
      describe: () =>
        `a second start of the steady process; events:\n  ${h.events('both').join('\n  ')}`,
    });
    await h.waitLine('both', 'steady-start');
    await h.waitState('both', 'ready');
    assert.equal(marked(h).length, 2);
  });

  it('never: any exit is complete, but a program that cannot start is failed', async (t) => {
    const h = await harness(t);
    h.run('once', '{argv: "exit 4" restart: never}');
    await h.waitState('once', 'complete');
    h.run('missing', '{argv: ["no-such-program-limen"] restart: never}');
    await h.waitState('missing', 'failed');
    await h.waitEvent(
      'missing',
      /^error: failed to start: program 'no-such-program-limen' not found/,
    );
  });
});

describe('supervisor: stopping', () => {
  it('stops the process when run-service is retracted; the state goes only once it is gone', async (t) => {
    const h = await harness(t);
    const { runService } = h.run('web', '["sleep" "1000"]');
    await h.waitState('web', 'ready');
    assert.equal(marked(h).length, 1);
    h.retract(runService);
    await h.waitState('web', undefined);
    assert.deepEqual(marked(h), [], 'no process is left once the state is retracted');
    await h.waitEvent('web', /^info: stopped \(killed by SIGTERM\)$/);
    assert.deepEqual(h.sup.services(), []);
    // Its logs are kept for `limen logs`.
    assert.ok(h.sup.logs(daemon('web')) !== undefined);
  });

  it('runs while any run-service names it, and only once a spec exists', async (t) => {
    const h = await harness(t);
    const first = h.assert(record('run-service', daemon('shared')));
    const second = h.assert(record('run-service', daemon('shared'), 'another reason'));
    await h.engine.sync();
    assert.deepEqual(h.states('shared'), [], 'no spec, no state');
    h.assert(record('daemon', sym('shared'), ['sleep', '1000']));
    await h.waitState('shared', 'ready');
    const pids = h.sup.services()[0]!.pids;
    h.retract(first);
    await h.engine.sync();
    assert.deepEqual(h.states('shared'), ['ready']);
    assert.deepEqual(h.sup.services()[0]!.pids, pids);
    h.retract(second);
    await h.waitState('shared', undefined);
    assert.deepEqual(marked(h), []);
  });

  it('escalates to SIGKILL after stopTimeout for a program that ignores the stop signal', async (t) => {
    const h = await harness(t);
    const { runService } = h.run(
      'stubborn',
      `{argv: ["node" ${fixture('trap-term.mjs')}] stopTimeout: 200}`,
    );
    await h.waitLine('stubborn', 'started');
    h.retract(runService);
    await h.waitLine('stubborn', 'got-term');
    await h.waitState('stubborn', undefined);
    assert.deepEqual(marked(h), []);
    await h.waitEvent(
      'stubborn',
      /^info: stopped \(killed by SIGKILL \(forced: did not stop in time\)\)$/,
    );
  });

  it("sends the spec's stopSignal", async (t) => {
    const h = await harness(t);
    const script = "trap 'echo got-hup; exit 0' HUP; echo started; while :; do sleep 0.02; done";
    const { runService } = h.run('hup', `{argv: ${JSON.stringify(script)} stopSignal: HUP}`);
    await h.waitLine('hup', 'started');
    h.retract(runService);
    await h.waitState('hup', undefined);
    assert.ok(h.lines('hup').includes('got-hup'));
    await h.waitEvent('hup', /^info: stopped \(exited with code 0\)$/);
  });

  it('restarts a process whose spec changed, after the old one is gone', async (t) => {
    const h = await harness(t);
    const { specs } = h.run('svc', '"echo one; exec sleep 1000"');
    await h.waitState('svc', 'ready');
    await h.waitLine('svc', 'one');
    const [oldPid] = h.sup.services()[0]!.pids;
    // Replace: the new spec is asserted before the old one is retracted.
    h.engine.turn(() => {
      h.assert(record('daemon', sym('svc'), 'echo two; exec sleep 1000'));
      h.retract(specs[0]!);
    });
    await h.waitLine('svc', 'two');
    await h.waitState('svc', 'ready');
    const procs = marked(h);
    assert.equal(procs.length, 1, describeProcs(procs));
    assert.notEqual(procs[0]!.pid, oldPid);
    assert.equal(h.states('svc').length, 1);
  });

  it('stopping the supervisor stops every process, and closed resolves after', async (t) => {
    const h = await harness(t);
    h.run('a', '["sleep" "1000"]');
    h.run('b', `{argv: ["node" ${fixture('trap-term.mjs')}] stopTimeout: 100}`);
    await h.waitState('a', 'ready');
    await h.waitLine('b', 'started');
    assert.equal(marked(h).length, 2);
    h.sup.stop();
    await until(h.sup.closed, { timeoutMs: 10_000 });
    assert.deepEqual(marked(h), []);
    assert.deepEqual(h.states('a'), []);
    assert.deepEqual(h.states('b'), []);
  });
});

describe('supervisor: restart-service', () => {
  it('restarts a failed service after a crash loop, and a running one', async (t) => {
    const h = await harness(t);
    const flag = join(h.runDir, 'fixed');
    const script = `if [ -e ${flag} ]; then echo fixed; exec sleep 1000; fi; echo broken; exit 1`;
    h.run('svc', `{argv: ${JSON.stringify(script)} restart: on-error}`);
    await h.waitState('svc', 'failed');
    assert.equal(h.lines('svc').filter((l) => l === 'broken').length, 3);

    await writeFile(flag, '');
    h.send(record('restart-service', daemon('svc')));
    await h.waitState('svc', 'ready');
    await h.waitLine('svc', 'fixed');
    const [pid] = h.sup.services()[0]!.pids;

    h.send(record('restart-service', daemon('svc')));
    await h.waitLine('svc', 'fixed', 2);
    await h.waitState('svc', 'ready');
    const procs = marked(h);
    assert.equal(procs.length, 1);
    assert.notEqual(procs[0]!.pid, pid);
    await h.waitEvent('svc', /^info: restart requested$/);
  });
});

describe('supervisor: invalid specs', () => {
  it('publishes every problem as a service-error, logs it, and the service is failed', async (t) => {
    const h = await harness(t);
    const { specs } = h.run(
      'bad',
      '{agrv: ["sleep" "1"] stopTimeout: 1.5 protocol: application/syndicate}',
    );
    await h.waitState('bad', 'failed');
    const errors = () =>
      h.config
        .query(P.rec('service-error', P.lit(daemon('bad')), P.bind('m')))
        .map((r) => r.captures.get('m') as string)
        .sort();
    assert.deepEqual(errors(), [
      "'argv' is missing: what should run?",
      'protocol: application/syndicate is not supported yet: the only protocol for now is none',
      'stopTimeout: is a whole number of milliseconds: write 1500 for 1.5 seconds',
      "unknown key 'agrv' (did you mean 'argv'?)",
    ]);
    await h.waitEvent('bad', /^error: invalid spec: unknown key 'agrv' \(did you mean 'argv'\?\)$/);
    assert.ok(
      !h.logged.some((l) => l.includes('invalid spec')),
      `reported on $log only: ${h.logged.join('\n')}`,
    );
    assert.deepEqual(marked(h), []);

    // Fixing the spec clears the errors.
    h.retract(specs[0]!);
    h.assert(record('daemon', sym('bad'), parse('{argv: ["sleep" "1000"]}')));
    await h.waitState('bad', 'ready');
    assert.deepEqual(errors(), []);
  });
});

describe('supervisor: outputs', () => {
  it('publishes files in $LIMEN_OUTPUTS as <output …>, follows changes, clears them on stop', async (t) => {
    const h = await harness(t);
    const { runService } = h.run('dhcp', `[${fixture('write-outputs.sh')}]`);
    const dir = h.sup.outputsDir(daemon('dhcp'));
    assert.ok(dir.startsWith(join(h.runDir, 'outputs', 'daemon-dhcp-')), dir);
    const outputs = () => h.outputs('dhcp').map(([k, v]) => `${k}=${stringify(v)}`);
    const waitOutputs = (want: string[]) =>
      until(() => JSON.stringify(outputs()) === JSON.stringify(want), {
        describe: () => `outputs ${want.join(' ')}; now ${outputs().join(' ')}`,
      });
    await waitOutputs(['address="10.0.0.2"', 'dns=["1.1.1.1" "9.9.9.9"]']);

    // Replaced atomically: the new value replaces the old one.
    await writeFile(join(dir, 'address.tmp'), '10.0.0.3\n');
    await rename(join(dir, 'address.tmp'), join(dir, 'address'));
    await waitOutputs(['address="10.0.0.3"', 'dns=["1.1.1.1" "9.9.9.9"]']);

    // Removed: retracted. A .pr that does not parse is logged, not published.
    await unlink(join(dir, 'dns.pr'));
    await writeFile(join(dir, 'router.pr'), '<unclosed');
    await waitOutputs(['address="10.0.0.3"']);
    await h.waitEvent('dhcp', /^warn: output router\.pr is not valid Preserves/);
    await writeFile(join(dir, 'router.pr'), '<router "10.0.0.1">');
    await waitOutputs(['address="10.0.0.3"', 'router=<router "10.0.0.1">']);

    h.retract(runService);
    await h.waitState('dhcp', undefined);
    assert.deepEqual(outputs(), []);
    assert.deepEqual(await readdir(dir), []);
  });
});

describe('supervisor: outputs of a service running as another user', () => {
  it('gives the outputs directory to that user', async (t) => {
    const h = await harness(t);
    await chmod(h.runDir, 0o755); // mkdtemp's 0700 would keep nobody out
    h.run('unprivileged', `{argv: [${fixture('write-outputs.sh')}] user: "nobody"}`);
    await h.waitLine('unprivileged', 'published');
    await until(() => h.outputs('unprivileged').length === 2, {
      describe: () => `outputs: ${JSON.stringify(h.outputs('unprivileged'))}`,
    });
    assert.equal((await stat(h.sup.outputsDir(daemon('unprivileged')))).uid, 65534);
  });
});

describe('supervisor: logs', () => {
  it('sends every line to $log and keeps the last ones in a buffer', async (t) => {
    const h = await harness(t, { logCapacity: 3 });
    h.run('chatty', `{argv: [${fixture('lines.sh')}] restart: never}`);
    await h.waitState('chatty', 'complete');
    const lines = h.messages.filter((m) => field((m as Record).fields[1]!, 'line') !== undefined);
    const body = (m: Value) => (m as Record).fields[1]!;
    const shown = lines.map(
      (m) => `${(field(body(m), 'stream') as Sym).name}:${field(body(m), 'line') as string}`,
    );
    assert.deepEqual(
      shown.filter((s) => s.startsWith('stdout:')),
      ['stdout:one', 'stdout:two', 'stdout:', 'stdout:threepartial-end'],
    );
    assert.deepEqual(
      shown.filter((s) => s.startsWith('stderr:')),
      ['stderr:four'],
    );
    for (const m of lines) {
      assert.equal((m as Record).fields[0], '2030-01-01T00:00:00.000Z');
      assert.ok(is(field(body(m), 'service')!, daemon('chatty')));
      assert.equal(typeof field(body(m), 'pid'), 'number');
    }
    const buffer = h.sup.logs(daemon('chatty'))!;
    assert.equal(buffer.capacity, 3);
    assert.equal(buffer.total, 5);
    assert.equal(buffer.size, 3);
    assert.equal(h.sup.logs(daemon('nobody')), undefined);
    // Supervisor events are log messages too, each sent once, and not to the engine's logger.
    const started = h.events('chatty').filter((e) => /^info: started \(pid \d+\)$/.test(e));
    assert.equal(started.length, 1, h.events('chatty').join('\n'));
    assert.deepEqual(h.logged, []);
  });
});

describe('supervisor: events without a daemon', () => {
  it('reports an event on $log only, and to the logger once $log is out of reach', async (t) => {
    const h = await harness(t);
    h.run('late', '["sleep" "1000"]');
    await h.waitState('late', 'ready');
    assert.deepEqual(
      h.events('late').filter((e) => !e.startsWith('info: started')),
      ['info: ready'],
    );
    assert.deepEqual(h.logged, [], 'nothing twice: the logger got none of them');
    // Once the supervisor itself stops, $log is out of reach: the process's exit
    // (it gets SIGTERM) is told to the engine's logger instead of being lost.
    h.engine.turn(() => h.sup.stop());
    await until(h.sup.closed, { timeoutMs: 15_000, describe: () => 'the supervisor to close' });
    assert.ok(
      h.logged.some((l) => /^info: <daemon late>: stopped \(.*SIGTERM/.test(l)),
      h.logged.join('\n'),
    );
    assert.ok(!h.events('late').some((e) => e.includes('stopped')), h.events('late').join('\n'));
  });
});

describe('supervisor: failures stay inside their service', () => {
  it("an exception in one service's handling stops only that service, until restarted", async (t) => {
    const h = await harness(t);
    h.run('victim', '["sleep" "1000"]');
    h.run('bystander', '["sleep" "1000"]');
    await h.waitState('victim', 'ready');
    await h.waitState('bystander', 'ready');
    const bystanderPids = h.sup.services().find((s) => is(s.service, daemon('bystander')))!.pids;

    const serviceFacet = h.sup.facet.children.find((f) => f.origin === 'service <daemon victim>')!;
    const processFacet = serviceFacet.children[0]!;
    h.expectError(/turn failed: boom$/);
    processFacet.turn(() => {
      throw new Error('boom');
    });
    await h.waitState('victim', 'failed');
    assert.ok(
      h.logged.some((l) => l.startsWith('error: ') && l.includes('boom')),
      h.logged.join('\n'),
    );
    await h.waitEvent('victim', /^error: stopped after an internal error/);
    assert.equal(marked(h).length, 1, 'only the bystander runs');
    assert.deepEqual(h.states('bystander'), ['ready']);
    assert.deepEqual(
      h.sup.services().find((s) => is(s.service, daemon('bystander')))!.pids,
      bystanderPids,
    );

    h.send(record('restart-service', daemon('victim')));
    await h.waitState('victim', 'ready');
    assert.equal(marked(h).length, 2);
  });
});
