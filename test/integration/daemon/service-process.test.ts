// `<service-process S INFO>` against the real daemon (docs/vocabulary.md): a watch
// sees a service's PID appear, a restart after the process is killed (the new PID,
// restarts + 1, the last exit's signal), and on a stop the exits and then the
// record go. Each record differs from the one before: the supervisor replaces it
// only on a change. Waits for records, never for time.

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ControlClient, decodeWatchEvent } from '../../../src/control/index.ts';
import type { Record } from '../../../src/preserves/index.ts';
import { Dict, is, parse, peel, stringify, sym, type Value } from '../../../src/preserves/index.ts';
import { removeSubtreeOf } from '../../support/cgroups.ts';
import { DaemonProcess } from '../../support/daemon-process.ts';
import { until } from '../../support/until.ts';
import { describeProcs, killMarked, newMarker, processesWithEnv } from '../../support/processes.ts';

const MARK = 'LIMEN_TEST_MARK';
const SERVICE = parse('<daemon sleeper>');

/** A field of a dictionary value, or undefined. */
function get(v: Value | undefined, key: string): Value | undefined {
  const d = v === undefined ? undefined : peel(v);
  return d instanceof Dict ? d.get(sym(key)) : undefined;
}

function infoOf(record: Value): Value {
  return (peel(record) as Record).fields[1]!;
}

function pidsOf(record: Value): number[] {
  const pids = get(infoOf(record), 'pids');
  return Array.isArray(pids) ? pids.filter((p): p is number => typeof p === 'number') : [];
}

describe('<service-process S INFO>', () => {
  const dir = mkdtempSync(join(tmpdir(), 'limen-service-process-test-'));
  const marker = newMarker();
  let d: DaemonProcess | undefined;
  let client: ControlClient | undefined;
  const ac = new AbortController();
  after(async () => {
    ac.abort();
    client?.close();
    await d?.kill();
    killMarked(MARK, marker);
    await removeSubtreeOf(join(dir, 'root'));
    rmSync(dir, { recursive: true, force: true });
  });

  it('follows a PID, a restart after a kill, and a stop', async () => {
    mkdirSync(join(dir, 'site/services'), { recursive: true });
    writeFileSync(
      join(dir, 'site/services/sleeper.pr'),
      '<daemon sleeper {argv: ["/bin/sleep" "1000"] restart: on-error}>\n',
    );
    const socket = join(dir, 'root/run/limen/control.sock');
    // --no-network: a service manager only; nothing on the host's links is touched.
    d = new DaemonProcess(
      ['--root', join(dir, 'root'), '--config', join(dir, 'site'), '--no-network'],
      { env: { [MARK]: marker } },
    );
    await d.started();
    client = await ControlClient.connect(socket);

    // Every record the watch adds, in order, and those asserted now.
    const added: Value[] = [];
    let current: Value[] = [];
    let synced = false;
    const watching = client
      .watch('config', parse('<service-process <daemon sleeper> ?info>'), {
        signal: ac.signal,
        onEvent: (v) => {
          const e = decodeWatchEvent(v);
          if (e === undefined) return;
          if (e.type === 'synced') synced = true;
          if (e.type === 'added') {
            added.push(e.value);
            current.push(e.value);
          }
          if (e.type === 'removed') current = current.filter((c) => !is(c, e.value));
        },
      })
      .catch(() => undefined);
    const seen = () =>
      `current: ${current.map((v) => stringify(v)).join(', ')}\nadded:\n${added
        .map((v) => stringify(v))
        .join('\n')}\nlog:\n${d!.logText()}`;
    /** The one record asserted now, once `pred` holds for it. */
    const recordWhere = (what: string, pred: (r: Value) => boolean) =>
      until(() => current.length === 1 && pred(current[0]!) && current[0]!, {
        timeoutMs: 10_000,
        describe: () => `${what}; ${seen()}`,
      });

    await until(() => synced, { describe: () => 'the watch to sync' });
    assert.deepEqual(current, [], 'no record before the service runs');

    await client.start(SERVICE);
    const first = await recordWhere('a PID', (r) => pidsOf(r).length === 1);
    const pid1 = pidsOf(first)[0]!;
    const info1 = infoOf(first);
    assert.equal(get(info1, 'restarts'), 0);
    assert.equal(typeof get(info1, 'started'), 'string');
    assert.equal(get(info1, 'lastExit'), undefined);

    process.kill(pid1, 'SIGKILL');
    const second = await recordWhere(
      'a new PID after the kill',
      (r) => pidsOf(r).length === 1 && pidsOf(r)[0] !== pid1,
    );
    const info2 = infoOf(second);
    assert.equal(get(info2, 'restarts'), 1);
    const exit = get(info2, 'lastExit');
    assert.equal(get(exit, 'pid'), pid1);
    assert.ok(is(get(exit, 'signal')!, sym('SIGKILL')), seen());
    assert.equal(get(exit, 'stopped'), undefined, 'killed, not stopped by the supervisor');
    // Between the two: the exit, with no PID, while the restart backed off.
    assert.ok(
      added.some(
        (r) => pidsOf(r).length === 0 && is(get(get(infoOf(r), 'lastExit'), 'pid') ?? false, pid1),
      ),
      seen(),
    );
    const pid2 = pidsOf(second)[0]!;

    await client.stop(SERVICE);
    // The last record shows the stop's exit and no PID, and then goes.
    const stoppedExit = (r: Value) => get(get(infoOf(r), 'lastExit'), 'stopped') === true;
    await until(() => current.length === 0 && stoppedExit(added.at(-1)!), {
      timeoutMs: 10_000,
      describe: () => `the record to go after the stop; ${seen()}`,
    });
    const last = added.at(-1)!;
    assert.deepEqual(pidsOf(last), []);
    assert.equal(get(get(infoOf(last), 'lastExit'), 'pid'), pid2);

    // Replaced only on a change: no record repeats the one before it.
    for (let i = 1; i < added.length; i++) {
      assert.ok(!is(added[i - 1]!, added[i]!), `record ${i} repeats the one before; ${seen()}`);
    }

    ac.abort();
    await watching;
    client.close();
    d.child.kill('SIGTERM');
    assert.equal(await d.exitCode(), 0);
    const left = processesWithEnv(MARK, marker);
    assert.deepEqual(left, [], `left behind: ${describeProcs(left)}`);
  });
});
