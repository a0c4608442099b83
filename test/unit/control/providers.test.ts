// The supervisor's LogBuffer is what the daemon hands the control server as a
// service's LogSource: this pins down that it fits without an adapter.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { LogEntry, LogSource } from '../../../src/control/index.ts';
import { LogBuffer } from '../../../src/supervisor/log-buffer.ts';

describe('LogSource', () => {
  it('is satisfied by the supervisor LogBuffer', () => {
    const buffer = new LogBuffer({ capacity: 2 });
    const source: LogSource = buffer;
    const seen: LogEntry[] = [];
    buffer.append({ time: 1, stream: 'stdout', line: 'a' });
    const sub = source.follow((e) => seen.push(e));
    buffer.append({ time: 2, stream: 'stderr', line: 'b' });
    buffer.append({ time: 3, stream: 'stdout', line: 'c' });
    sub.dispose();
    buffer.append({ time: 4, stream: 'stdout', line: 'd' });
    assert.deepEqual(
      seen.map((e) => e.line),
      ['b', 'c'],
    );
    assert.deepEqual(
      source.tail(5).map((e) => e.line),
      ['c', 'd'],
    );
    assert.deepEqual(source.tail().length, 2);
  });
});
