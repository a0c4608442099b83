import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  DEFAULT_LOG_CAPACITY,
  LogBuffer,
  type LogLine,
} from '../../../src/supervisor/log-buffer.ts';

const line = (i: number, stream: 'stdout' | 'stderr' = 'stdout'): LogLine => ({
  time: i,
  stream,
  line: `line ${i}`,
});
const texts = (ls: readonly LogLine[]) => ls.map((l) => l.line);

describe('LogBuffer', () => {
  it('keeps 1000 lines by default', () => {
    const b = new LogBuffer();
    assert.equal(b.capacity, DEFAULT_LOG_CAPACITY);
    assert.equal(b.capacity, 1000);
    for (let i = 0; i < 1500; i++) b.append(line(i));
    assert.equal(b.size, 1000);
    assert.equal(b.tail(1)[0]?.line, 'line 1499');
    assert.equal(b.tail()[0]?.line, 'line 500');
  });

  it('wraps around, evicting the oldest lines, and tails in order', () => {
    const b = new LogBuffer({ capacity: 3 });
    assert.deepEqual(b.tail(), []);
    b.append(line(1));
    b.append(line(2, 'stderr'));
    assert.deepEqual(texts(b.tail()), ['line 1', 'line 2']);
    for (let i = 3; i <= 7; i++) b.append(line(i));
    assert.deepEqual(texts(b.tail()), ['line 5', 'line 6', 'line 7']);
    assert.deepEqual(texts(b.tail(2)), ['line 6', 'line 7']);
    assert.deepEqual(texts(b.tail(10)), ['line 5', 'line 6', 'line 7']);
    assert.deepEqual(b.tail(0), []);
    assert.equal(b.size, 3);
    assert.equal(b.total, 7);
    assert.equal(b.dropped, 4);
  });

  it('keeps each line whole: time, stream and text', () => {
    const b = new LogBuffer({ capacity: 2 });
    b.append({ time: 5, stream: 'stderr', line: 'oops' });
    assert.deepEqual(b.tail(), [{ time: 5, stream: 'stderr', line: 'oops' }]);
  });

  it('follows new lines until the subscription is disposed', () => {
    const b = new LogBuffer({ capacity: 2 });
    b.append(line(1));
    const seen: string[] = [];
    const sub = b.follow((l) => seen.push(l.line));
    b.append(line(2));
    b.append(line(3));
    sub.dispose();
    b.append(line(4));
    assert.deepEqual(seen, ['line 2', 'line 3']);
  });

  it('replays the last lines first when asked, with nothing lost in between', () => {
    const b = new LogBuffer({ capacity: 5 });
    for (let i = 1; i <= 4; i++) b.append(line(i));
    const seen: string[] = [];
    const sub = b.follow((l) => seen.push(l.line), { replay: 2 });
    b.append(line(5));
    sub.dispose();
    assert.deepEqual(seen, ['line 3', 'line 4', 'line 5']);
  });

  it('keeps calling the other followers when one throws', () => {
    const errors: unknown[] = [];
    const b = new LogBuffer({ onListenerError: (e) => errors.push(e) });
    const seen: string[] = [];
    b.follow(() => {
      throw new Error('bad follower');
    });
    b.follow((l) => seen.push(l.line));
    b.append(line(1));
    assert.deepEqual(seen, ['line 1']);
    assert.equal(errors.length, 1);
  });

  it('clears', () => {
    const b = new LogBuffer({ capacity: 2 });
    b.append(line(1));
    b.clear();
    assert.deepEqual(b.tail(), []);
    b.append(line(2));
    assert.deepEqual(texts(b.tail()), ['line 2']);
  });

  it('rejects a capacity below 1', () => {
    assert.throws(() => new LogBuffer({ capacity: 0 }), RangeError);
  });
});
