// runProgram: output and status captured, extra descriptors handed to the child as
// its fds 3, 4, …, a run killed at its time limit, a missing program a clear error.

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runProgram } from '../../../src/platform/run-program.ts';
import { ProgramStartError } from '../../../src/platform/errors.ts';

const dir = mkdtempSync(join(tmpdir(), 'limen-run-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('runProgram', () => {
  it('captures output and status, with stdin from input or from nothing', async () => {
    const r = await runProgram(['sh', '-c', 'cat; echo err >&2; exit 3'], {
      input: 'in',
      timeoutMs: 10_000,
    });
    assert.deepEqual(r, { code: 3, signal: null, stdout: 'in', stderr: 'err\n' });
    const none = await runProgram(['cat'], { timeoutMs: 10_000 });
    assert.equal(none.stdout, '');
  });

  it('hands extra descriptors to the child as fds 3, 4, …', async () => {
    writeFileSync(join(dir, 'a'), 'first');
    writeFileSync(join(dir, 'b'), 'second');
    const fds = [openSync(join(dir, 'a'), 'r'), openSync(join(dir, 'b'), 'r')];
    try {
      const r = await runProgram(['sh', '-c', 'cat /proc/self/fd/4; cat <&3'], {
        fds,
        timeoutMs: 10_000,
      });
      assert.equal(r.stdout, 'secondfirst');
    } finally {
      fds.forEach((fd) => closeSync(fd));
    }
  });

  it('kills a run at its time limit, and says when a program cannot start', async () => {
    const r = await runProgram(['sleep', '30'], { timeoutMs: 100 });
    assert.equal(r.signal, 'SIGKILL');
    await assert.rejects(
      runProgram(['/nonexistent/program'], { timeoutMs: 1000 }),
      (e: unknown) => e instanceof ProgramStartError && /ENOENT/.test(e.message),
    );
  });
});
