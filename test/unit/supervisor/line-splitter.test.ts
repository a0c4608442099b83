import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LineSplitter } from '../../../src/supervisor/line-splitter.ts';

function split(chunks: (string | Buffer)[], maxBytes?: number): string[] {
  const out: string[] = [];
  const s = new LineSplitter((l) => out.push(l), maxBytes);
  for (const c of chunks) s.push(typeof c === 'string' ? Buffer.from(c) : c);
  s.end();
  return out;
}

describe('LineSplitter', () => {
  it('splits on LF and drops a CR before it', () => {
    assert.deepEqual(split(['a\nb\r\nc\r\n']), ['a', 'b', 'c']);
  });

  it('keeps a CR that is not at the end of a line', () => {
    assert.deepEqual(split(['a\rb\n']), ['a\rb']);
  });

  it('joins a line split across chunks, CRLF split too', () => {
    assert.deepEqual(split(['he', 'llo\r', '\nwor', 'ld\n']), ['hello', 'world']);
  });

  it('keeps empty lines', () => {
    assert.deepEqual(split(['\n\na\n\n']), ['', '', 'a', '']);
  });

  it('flushes a final line without a newline at end(), and only then', () => {
    const out: string[] = [];
    const s = new LineSplitter((l) => out.push(l));
    s.push(Buffer.from('x\npartial'));
    assert.deepEqual(out, ['x']);
    s.end();
    assert.deepEqual(out, ['x', 'partial']);
    s.end();
    assert.deepEqual(out, ['x', 'partial'], 'a second end() adds nothing');
  });

  it('emits nothing for empty input', () => {
    assert.deepEqual(split([]), []);
    assert.deepEqual(split(['']), []);
  });

  it('cuts an over-long line into pieces of at most the cap, losing nothing', () => {
    assert.deepEqual(split(['abcdefghij\nxy\n'], 4), ['abcd', 'efgh', 'ij', 'xy']);
    assert.deepEqual(split(['ab', 'cd', 'ef', 'gh', 'i'], 4), ['abcd', 'efgh', 'i']);
  });

  it('does not cut inside a UTF-8 character', () => {
    // 'é' is 2 bytes, '€' is 3: a cap of 5 bytes fits "éé" but not "éé€".
    const pieces = split(['éé€€\n'], 5);
    assert.deepEqual(pieces, ['éé', '€', '€']);
    for (const p of pieces) assert.ok(Buffer.byteLength(p) <= 5);
  });

  it('decodes a character split across chunks', () => {
    const euro = Buffer.from('€');
    assert.deepEqual(split([euro.subarray(0, 1), euro.subarray(1), '\n']), ['€']);
  });

  it('rejects a silly cap', () => {
    assert.throws(() => new LineSplitter(() => {}, 2), RangeError);
  });
});
