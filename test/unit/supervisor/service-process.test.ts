import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { is, parse, stringify, type Value } from '../../../src/preserves/index.ts';
import { ProgramNotFoundError } from '../../../src/supervisor/errors.ts';
import type { ExitInfo } from '../../../src/supervisor/process-runner.ts';
import {
  MAX_ERROR_CHARS,
  MAX_PIDS,
  serviceProcessRecord,
  type ServiceProcessFacts,
} from '../../../src/supervisor/service-process.ts';

const web = parse('<daemon web>');
const T0 = Date.UTC(2026, 0, 2, 3, 4, 5, 678);
const T0_TEXT = '"2026-01-02T03:04:05.678Z"';

const exit = (over: Partial<ExitInfo>): ExitInfo => ({
  pid: 41,
  code: null,
  signal: null,
  durationMs: 1000,
  stopped: false,
  forced: false,
  ...over,
});

function assertRecord(actual: Value, expected: string): void {
  assert.ok(is(actual, parse(expected)), `${stringify(actual)}\n!= ${expected}`);
}

describe('serviceProcessRecord', () => {
  it('says a service with no process yet has no PIDs and no restarts, and nothing else', () => {
    const facts: ServiceProcessFacts = {
      pids: [],
      restarts: 0,
      started: undefined,
      lastExit: undefined,
    };
    assertRecord(
      serviceProcessRecord(web, facts),
      '<service-process <daemon web> {pids: [] restarts: 0}>',
    );
  });

  it('gives the PIDs, restarts, start time and a signal exit', () => {
    const v = serviceProcessRecord(web, {
      pids: [42],
      restarts: 1,
      started: T0,
      lastExit: { exit: exit({ signal: 'SIGKILL' }), at: T0 },
    });
    assertRecord(
      v,
      `<service-process <daemon web> {pids: [42] restarts: 1 started: ${T0_TEXT}
        lastExit: {pid: 41 signal: SIGKILL at: ${T0_TEXT}}}>`,
    );
  });

  it('gives an exit code, and whether the exit was asked for or forced', () => {
    const v = serviceProcessRecord(web, {
      pids: [],
      restarts: 0,
      started: undefined,
      lastExit: { exit: exit({ code: 0, stopped: true, forced: true }), at: T0 },
    });
    assertRecord(
      v,
      `<service-process <daemon web> {pids: [] restarts: 0
        lastExit: {pid: 41 code: 0 stopped: #t forced: #t at: ${T0_TEXT}}}>`,
    );
  });

  it('gives why a program could not start, shortened', () => {
    const long = `no such program: /${'x'.repeat(500)}`;
    const v = serviceProcessRecord(web, {
      pids: [],
      restarts: 3,
      started: undefined,
      lastExit: {
        exit: exit({ pid: null, durationMs: 0, error: new ProgramNotFoundError(long) }),
        at: T0,
      },
    });
    const text = stringify(v);
    assert.doesNotMatch(text, /pid:/, 'no pid for a program that never ran');
    const m = /error: "([^"]*)"/.exec(text);
    assert.ok(m, text);
    assert.equal(m[1]!.length, MAX_ERROR_CHARS);
    assert.ok(m[1]!.endsWith('...'));
  });

  it(`lists at most ${MAX_PIDS} PIDs and then says how many there are`, () => {
    const pids = Array.from({ length: MAX_PIDS + 6 }, (_, i) => 1000 + i);
    const v = serviceProcessRecord(web, {
      pids,
      restarts: 0,
      started: T0,
      lastExit: undefined,
    });
    assertRecord(
      v,
      `<service-process <daemon web> {pids: [${pids.slice(0, MAX_PIDS).join(' ')}]
        pidCount: ${MAX_PIDS + 6} restarts: 0 started: ${T0_TEXT}}>`,
    );
    const exactly = serviceProcessRecord(web, {
      pids: pids.slice(0, MAX_PIDS),
      restarts: 0,
      started: T0,
      lastExit: undefined,
    });
    assert.doesNotMatch(stringify(exactly), /pidCount/);
  });

  it('gives equal records for equal facts, so an unchanged service is not re-asserted', () => {
    const facts = (): ServiceProcessFacts => ({
      pids: [42, 43],
      restarts: 2,
      started: T0,
      lastExit: { exit: exit({ code: 1 }), at: T0 },
    });
    assert.ok(is(serviceProcessRecord(web, facts()), serviceProcessRecord(web, facts())));
    assert.ok(
      !is(
        serviceProcessRecord(web, facts()),
        serviceProcessRecord(web, { ...facts(), restarts: 3 }),
      ),
    );
  });
});
