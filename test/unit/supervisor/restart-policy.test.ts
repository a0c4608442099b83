import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  DEFAULT_RESTART_OPTIONS,
  RestartTracker,
  isFailure,
  isRestartPolicy,
  type ExitOutcome,
  type RestartDecision,
} from '../../../src/supervisor/restart-policy.ts';
import { InvalidRestartOptionsError } from '../../../src/supervisor/errors.ts';

const clean: ExitOutcome = { code: 0, signal: null, durationMs: 1000 };
/** A clean exit after a run longer than stableAfterMs (10 s). */
const cleanAfterStableRun: ExitOutcome = { code: 0, signal: null, durationMs: 10_000 };
const failed: ExitOutcome = { code: 1, signal: null, durationMs: 1000 };
const killed: ExitOutcome = { code: null, signal: 'SIGSEGV', durationMs: 1000 };
const unstartable: ExitOutcome = {
  code: null,
  signal: null,
  durationMs: 0,
  error: { message: "program 'x' not found on PATH" },
};
const stopped: ExitOutcome = { code: null, signal: 'SIGTERM', durationMs: 1000, stopped: true };

const restart = (delayMs: number, scope: 'process' | 'service' = 'process'): RestartDecision => ({
  action: 'restart',
  delayMs,
  scope,
});
const complete: RestartDecision = { action: 'stop', state: 'complete' };

describe('restart policy: what each policy does with each exit', () => {
  const cases: [string, ExitOutcome, Record<string, RestartDecision>][] = [
    [
      'a quick clean exit',
      clean,
      {
        always: restart(250),
        'on-error': complete,
        all: complete,
        never: complete,
      },
    ],
    [
      'a clean exit after a stable run',
      cleanAfterStableRun,
      {
        always: restart(100),
        'on-error': complete,
        all: complete,
        never: complete,
      },
    ],
    [
      'a non-zero exit',
      failed,
      {
        always: restart(250),
        'on-error': restart(250),
        all: restart(250, 'service'),
        never: complete,
      },
    ],
    [
      'death by a signal',
      killed,
      {
        always: restart(250),
        'on-error': restart(250),
        all: restart(250, 'service'),
        never: complete,
      },
    ],
    [
      'a failure to start',
      unstartable,
      {
        always: restart(250),
        'on-error': restart(250),
        all: restart(250, 'service'),
        never: { action: 'stop', state: 'failed' },
      },
    ],
    [
      'an exit after a requested stop',
      stopped,
      { always: complete, 'on-error': complete, all: complete, never: complete },
    ],
  ];
  for (const [what, exit, expected] of cases) {
    for (const [policy, decision] of Object.entries(expected)) {
      it(`${policy} after ${what}: ${decision.action}`, () => {
        assert.ok(isRestartPolicy(policy));
        assert.deepEqual(new RestartTracker(policy).decide(exit, 0), decision);
      });
    }
  }

  it('classifies failures', () => {
    assert.equal(isFailure(clean), false);
    assert.equal(isFailure(failed), true);
    assert.equal(isFailure(killed), true);
    assert.equal(isFailure(unstartable), true);
    assert.equal(isRestartPolicy('on-failure'), false);
  });
});

describe('restart policy: backoff', () => {
  it('doubles the delay after each failure in a row, up to the cap', () => {
    const tr = new RestartTracker('on-error', { crashLoopFailures: Infinity });
    const delays: number[] = [];
    for (let i = 0; i < 10; i++) {
      const d = tr.decide(failed, i * 100_000); // far apart: never a crash loop
      assert.equal(d.action, 'restart');
      if (d.action === 'restart') delays.push(d.delayMs);
    }
    assert.deepEqual(delays, [250, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
    assert.equal(tr.consecutiveFailures, 10);
  });

  it('starts afresh after a run that stayed up long enough', () => {
    const tr = new RestartTracker('always');
    assert.deepEqual(tr.decide(failed, 0), restart(250));
    assert.deepEqual(tr.decide(failed, 1000), restart(500));
    assert.deepEqual(tr.decide({ ...failed, durationMs: 9_999 }, 20_000), restart(1000));
    assert.deepEqual(tr.decide({ ...failed, durationMs: 10_000 }, 40_000), restart(250));
    assert.equal(tr.consecutiveFailures, 1);
  });

  it('starts afresh after a clean exit that ended a stable run', () => {
    const tr = new RestartTracker('always');
    tr.decide(failed, 0);
    tr.decide(failed, 1000);
    assert.deepEqual(tr.decide(cleanAfterStableRun, 20_000), restart(100));
    assert.deepEqual(tr.decide(failed, 21_000), restart(250));
  });

  it('backs off quick clean exits under always, as it does failures', () => {
    const tr = new RestartTracker('always', { crashLoopFailures: Infinity });
    const delays = [0, 1, 2, 3, 4, 5].map((i) => tr.decide(clean, i * 100_000));
    assert.deepEqual(
      delays,
      [250, 500, 1000, 2000, 4000, 8000].map((d) => restart(d)),
    );
    // A quick clean exit does not end a streak of failures either.
    const mixed = new RestartTracker('always', { crashLoopFailures: Infinity });
    assert.deepEqual(mixed.decide(failed, 0), restart(250));
    assert.deepEqual(mixed.decide(clean, 100_000), restart(500));
    assert.deepEqual(mixed.decide(failed, 200_000), restart(1000));
  });

  it('restarts only the process after a clean exit, even under all', () => {
    // `all` leaves a clean exit complete; `always` restarts one process.
    assert.deepEqual(new RestartTracker('always').decide(clean, 0), restart(250, 'process'));
  });

  it('takes its numbers from the options', () => {
    const tr = new RestartTracker('always', {
      cleanRestartDelayMs: 5,
      initialBackoffMs: 10,
      backoffFactor: 3,
      maxBackoffMs: 50,
    });
    assert.deepEqual(tr.decide(cleanAfterStableRun, 0), restart(5));
    assert.deepEqual(
      [1, 2, 3].map((i) => tr.decide(failed, i * 100_000)),
      [restart(10), restart(30), restart(50)],
    );
  });
});

describe('restart policy: crash-loop limit', () => {
  it('gives up on the 5th failure within 60 s, and stays given up', () => {
    const tr = new RestartTracker('on-error');
    const at = [0, 1_000, 5_000, 20_000];
    for (const t of at) assert.equal(tr.decide(failed, t).action, 'restart');
    const d = tr.decide(killed, 59_000);
    assert.equal(d.action, 'give-up');
    if (d.action === 'give-up') {
      assert.match(d.reason, /5 failures within 60 s/);
      assert.match(d.reason, /killed by SIGSEGV/);
    }
    assert.ok(tr.givenUpReason);
    // Still given up, even after a clean exit much later, until reset().
    assert.equal(tr.decide(clean, 1_000_000).action, 'give-up');
    tr.reset();
    assert.equal(tr.givenUpReason, undefined);
    assert.deepEqual(tr.decide(failed, 1_000_001), restart(250));
  });

  it('counts only the failures inside the window', () => {
    const tr = new RestartTracker('always');
    // Failures 20 s apart: never 5 within 60 s.
    for (let i = 0; i < 20; i++) {
      assert.equal(tr.decide(failed, i * 20_000).action, 'restart', `failure ${i}`);
    }
  });

  it('counts clean exits under always: exit 0 at once, for ever, is a loop too', () => {
    const tr = new RestartTracker('always');
    for (let i = 0; i < 4; i++) assert.equal(tr.decide(clean, i * 1000).action, 'restart');
    const d = tr.decide(clean, 4000);
    assert.equal(d.action, 'give-up');
    if (d.action === 'give-up') {
      assert.match(d.reason, /^crash loop: 5 exits within 60 s \(last: exited with code 0\)/);
    }
    assert.equal(tr.decide(cleanAfterStableRun, 1_000_000).action, 'give-up', 'until reset()');
  });

  it('counts clean exits after stable runs in the window too', () => {
    const tr = new RestartTracker('always');
    for (let i = 0; i < 4; i++) {
      assert.deepEqual(tr.decide(cleanAfterStableRun, i * 10_000), restart(100));
    }
    assert.equal(tr.decide(cleanAfterStableRun, 40_000).action, 'give-up');
  });

  it('says failures when every exit in the window failed, exits otherwise', () => {
    const tr = new RestartTracker('always', { crashLoopFailures: 2 });
    tr.decide(clean, 0);
    const d = tr.decide(failed, 1);
    assert.ok(d.action === 'give-up' && d.reason.startsWith('crash loop: 2 exits within'));
  });

  it('has a configurable limit and window', () => {
    const tr = new RestartTracker('on-error', { crashLoopFailures: 2, crashLoopWindowMs: 1000 });
    assert.equal(tr.decide(failed, 0).action, 'restart');
    assert.equal(tr.decide(failed, 1000).action, 'restart', 'the first left the window');
    assert.equal(tr.decide(failed, 1999).action, 'give-up');
  });

  it('never gives up under the never policy', () => {
    const tr = new RestartTracker('never', { crashLoopFailures: 1 });
    for (let i = 0; i < 5; i++) assert.deepEqual(tr.decide(failed, i), complete);
  });

  it('is deterministic: the same exits at the same times give the same decisions', () => {
    const script: [ExitOutcome, number][] = [
      [failed, 0],
      [killed, 300],
      [clean, 900],
      [failed, 2000],
      [unstartable, 2500],
      [failed, 4000],
      [failed, 8000],
    ];
    const run = () => {
      const tr = new RestartTracker('always', { crashLoopFailures: 4 });
      return script.map(([e, t]) => tr.decide(e, t));
    };
    assert.deepEqual(run(), run());
    assert.equal(run().at(-1)?.action, 'give-up');
  });
});

describe('restart policy: options', () => {
  it('rejects bad options and an unknown policy, listing every problem', () => {
    assert.throws(
      () =>
        new RestartTracker('sometimes' as 'always', {
          initialBackoffMs: -1,
          backoffFactor: 0.5,
          crashLoopFailures: 0,
        }),
      (e: unknown) => {
        assert.ok(e instanceof InvalidRestartOptionsError);
        assert.equal(e.code, 'LIMEN_RESTART_INVALID_OPTIONS');
        assert.equal(e.problems.length, 4, e.problems.join('; '));
        assert.match(e.problems[0]!, /unknown restart policy 'sometimes'/);
        return true;
      },
    );
  });

  it('documents its defaults', () => {
    assert.deepEqual(DEFAULT_RESTART_OPTIONS, {
      cleanRestartDelayMs: 100,
      initialBackoffMs: 250,
      backoffFactor: 2,
      maxBackoffMs: 30_000,
      stableAfterMs: 10_000,
      crashLoopFailures: 5,
      crashLoopWindowMs: 60_000,
    });
  });
});
