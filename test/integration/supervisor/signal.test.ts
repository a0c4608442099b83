// `! <signal-service S SIGNAL>` with real processes: the signal reaches the main
// process of each of the service's processes (not the rest of its process group),
// the service keeps running, and a signal that is unknown, quoted, freezing, or
// for a service that is not running is reported on $log and changes nothing.

import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Dataspace, Engine, P, type Facet } from '../../../src/dataspace/index.ts';
import {
  Dict,
  type Record,
  is,
  parse,
  peel,
  record,
  sym,
  type Sym,
  type Value,
} from '../../../src/preserves/index.ts';
import { startSupervisor, type Supervisor } from '../../../src/supervisor/supervisor.ts';
import { describeProcs, killMarked, newMarker, processesWithEnv } from '../../support/processes.ts';
import { until } from '../../support/until.ts';
import { RecordingLogger } from '../../support/engine-log.ts';

const MARK = 'LIMEN_TEST_MARKER';

interface Harness {
  readonly sup: Supervisor;
  readonly marker: string;
  /** Asserts `<daemon ID SPEC>` for each spec (Preserves text) and `<run-service <daemon ID>>`. */
  run(id: string, ...specs: string[]): void;
  /** Sends `<signal-service <daemon ID> SIGNAL>` (SIGNAL as Preserves text) on $config. */
  signal(id: string, signal: string): void;
  lines(id: string): string[];
  waitLines(id: string, want: (lines: string[]) => boolean, what: string): Promise<void>;
  /** Supervisor events for the service, as "level: message". */
  events(id: string): string[];
  waitEvent(id: string, pattern: RegExp): Promise<void>;
  waitReady(id: string): Promise<void>;
}

const daemon = (id: string) => record('daemon', sym(id));

function field(body: Value, key: string): Value | undefined {
  const d = peel(body);
  return d instanceof Dict ? d.get(sym(key)) : undefined;
}

async function harness(t: TestContext): Promise<Harness> {
  const runDir = await mkdtemp(join(tmpdir(), 'limen-signal-'));
  const marker = newMarker();
  process.env[MARK] = marker; // children inherit it: every process of this test is marked
  const engineLog = new RecordingLogger();
  const engine = new Engine({ logger: engineLog });
  const config = new Dataspace(engine, 'config');
  const log = new Dataspace(engine, 'log');
  const messages: Value[] = [];
  let tester!: Facet;
  engine.root.spawn((f) => {
    tester = f;
    f.observe(log.ref, P.rec('log', P._, P._), { onMessage: (v) => void messages.push(v) });
  }, 'test');
  const sup = startSupervisor(engine.root, {
    config: config.ref,
    log: log.ref,
    runDir,
    outputsDebounceMs: 2,
  });
  t.after(async () => {
    try {
      engine.root.stop();
      await until(sup.closed, { timeoutMs: 15_000, describe: () => 'the supervisor to close' });
      const leaked = killMarked(MARK, marker);
      assert.deepEqual(leaked, [], `processes left behind: ${describeProcs(leaked)}`);
      engineLog.check();
    } finally {
      killMarked(MARK, marker);
      await rm(runDir, { recursive: true, force: true });
    }
  });
  const inTurn = (fn: () => void) => engine.turn(fn);
  const h: Harness = {
    sup,
    marker,
    run(id, ...specs) {
      inTurn(() => {
        for (const s of specs) tester.assert(config.ref, record('daemon', sym(id), parse(s)));
        tester.assert(config.ref, record('run-service', daemon(id)));
      });
    },
    signal(id, signal) {
      inTurn(() => tester.send(config.ref, record('signal-service', daemon(id), parse(signal))));
    },
    lines: (id) => (sup.logs(daemon(id))?.tail() ?? []).map((l) => l.line),
    async waitLines(id, want, what) {
      await until(() => want(h.lines(id)), {
        describe: () =>
          `${what} from ${id}; lines: [${h.lines(id).join(' | ')}], events:\n  ${h.events(id).join('\n  ')}`,
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
    async waitReady(id) {
      await until(
        () =>
          config
            .query(P.rec('service-state', P.lit(daemon(id)), P.bind('st')))
            .some((r) => (peel(r.captures.get('st')!) as Sym).name === 'ready'),
        { describe: () => `${id} ready; events:\n  ${h.events(id).join('\n  ')}` },
      );
    },
  };
  return h;
}

/** A shell that prints a line for each USR1 and HUP it gets, and runs until killed. */
const trapper = (name: string) =>
  JSON.stringify(
    `trap 'echo ${name} got USR1' USR1; trap 'echo ${name} got HUP' HUP; echo ${name} up; ` +
      'while :; do sleep 1000 & wait $!; kill $! 2>/dev/null; done',
  );

describe('supervisor: signal-service', () => {
  it('delivers the signal to the running process, which keeps running', async (t) => {
    const h = await harness(t);
    h.run('svc', trapper('svc'));
    await h.waitLines('svc', (l) => l.includes('svc up'), "'svc up'");
    await h.waitReady('svc');
    const [pid] = h.sup.services()[0]!.pids;
    assert.ok(pid !== undefined);

    h.signal('svc', 'SIGUSR1');
    await h.waitLines('svc', (l) => l.includes('svc got USR1'), "'svc got USR1'");
    // The short name works as in a spec's stopSignal.
    h.signal('svc', 'HUP');
    await h.waitLines('svc', (l) => l.includes('svc got HUP'), "'svc got HUP'");
    assert.deepEqual(h.lines('svc'), ['svc up', 'svc got USR1', 'svc got HUP']);
    assert.deepEqual(h.sup.services()[0]!.pids, [pid]);
    assert.equal(h.sup.services()[0]!.restarts, 0);
    assert.ok(
      h.events('svc').includes(`info: sent SIGUSR1 to pid ${pid}`),
      h.events('svc').join('\n'),
    );
    assert.ok(
      h.events('svc').includes(`info: sent SIGHUP to pid ${pid}`),
      h.events('svc').join('\n'),
    );
  });

  it('signals the main process only, not the rest of its process group', async (t) => {
    const h = await harness(t);
    // The child would die of SIGUSR1 (its default action) if the group got it; the
    // main shell reports how its child ended, so that death would show as 138.
    const script =
      'sleep 1000 & child=$!; trap "echo main got USR1" USR1; echo "child $child"; ' +
      'while :; do wait $child; st=$?; if ! kill -0 $child 2>/dev/null; then echo "child ended $st"; exit 0; fi; done';
    h.run('grp', `{argv: ${JSON.stringify(script)} restart: never}`);
    await h.waitLines('grp', (l) => l.some((x) => x.startsWith('child ')), 'the child pid');
    const child = Number(h.lines('grp')[0]!.split(' ')[1]);
    assert.ok(Number.isInteger(child) && child > 0, h.lines('grp').join('|'));

    h.signal('grp', 'SIGUSR1');
    await h.waitLines('grp', (l) => l.includes('main got USR1'), "'main got USR1'");
    // Now end the child ourselves: its exit status says who killed it.
    process.kill(child, 'SIGTERM');
    await h.waitLines('grp', (l) => l.some((x) => x.startsWith('child ended')), 'the child to end');
    // (dash also reports the job's death on stderr: 'Terminated', or 'User defined signal 1'.)
    assert.deepEqual(
      h.lines('grp').filter((l) => /^(child|main) /.test(l)),
      [`child ${child}`, 'main got USR1', 'child ended 143'],
    );
  });

  it('signals every process of a service with several', async (t) => {
    const h = await harness(t);
    h.run('two', trapper('one'), trapper('two'));
    await h.waitLines('two', (l) => l.includes('one up') && l.includes('two up'), 'both up');
    await h.waitReady('two');
    h.signal('two', 'USR1');
    await h.waitLines(
      'two',
      (l) => l.includes('one got USR1') && l.includes('two got USR1'),
      'both to get USR1',
    );
    assert.equal(h.events('two').filter((e) => /sent SIGUSR1 to pid \d+$/.test(e)).length, 2);
  });

  it('ignores, and says why, a bad signal or a service that is not running', async (t) => {
    const h = await harness(t);
    h.run('svc', trapper('svc'));
    await h.waitLines('svc', (l) => l.includes('svc up'), "'svc up'");
    await h.waitReady('svc');

    h.signal('svc', '"SIGUSR1"');
    await h.waitEvent(
      'svc',
      /^warn: <signal-service> ignored: expected a signal name such as SIGHUP or USR1, got "SIGUSR1" \(write SIGUSR1 without quotes\)$/,
    );
    h.signal('svc', 'SIGNOPE');
    await h.waitEvent(
      'svc',
      /^warn: <signal-service> ignored: expected a signal name .* got SIGNOPE$/,
    );
    h.signal('svc', 'SIGSTOP');
    await h.waitEvent('svc', /^warn: <signal-service> ignored: SIGSTOP would freeze the service/);
    h.signal('nobody', 'SIGUSR1');
    await h.waitEvent('nobody', /^info: SIGUSR1 not sent: no process of the service is running$/);

    // None of those reached the process: a good signal after them is the first it sees.
    h.signal('svc', 'SIGUSR1');
    await h.waitLines('svc', (l) => l.includes('svc got USR1'), "'svc got USR1'");
    assert.deepEqual(h.lines('svc'), ['svc up', 'svc got USR1']);
    assert.equal(h.events('svc').filter((e) => e.startsWith('info: sent ')).length, 1);
    assert.equal(processesWithEnv(MARK, h.marker).filter((p) => p.state === 'T').length, 0);
  });
});
