import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { main } from '../../../src/cli/main.ts';
import { captureIo } from '../../support/cli-io.ts';
import { packageRoot } from '../../../src/platform/package-root.ts';

const fixtures = fileURLToPath(new URL('../../fixtures/scripts/', import.meta.url));
const f = (p: string): string => join(fixtures, p);

async function run(...argv: string[]) {
  const io = captureIo();
  const code = await main(argv, io);
  return { code, out: io.stdout(), err: io.stderr() };
}

describe('limen check', () => {
  it('reports no errors for a good tree, with a one-line summary', async () => {
    const r = await run('check', f('tree'));
    assert.deepEqual(r, { code: 0, out: 'checked 4 files: no errors\n', err: '' });
    const one = await run('check', f('synit/boot.pr'));
    assert.equal(one.out, 'checked 1 file: no errors\n');
  });

  it('prints every problem of every file as file:line:col: message, and exits 1', async () => {
    const r = await run('check', f('broken'), f('tree'));
    assert.equal(r.code, 1);
    assert.equal(
      r.out,
      [
        `${f('broken/20-bad.pr')}:1:1: unknown instruction 'let?' (did you mean 'let'?)`,
        `${f('broken/20-bad.pr')}:2:20: unbound variable $nam (did you mean $name?)`,
        `${f('broken/20-bad.pr')}:3:1: '!' needs a value to send`,
        `${f('broken/30-syntax.pr')}:2:1: expected '>' to close the record opened at 1:1, found end of input`,
        'checked 7 files: 4 errors in 2 files',
        '',
      ].join('\n'),
    );
  });

  it('fails on a missing path and refuses no arguments', async () => {
    const missing = await run('check', f('nope'));
    assert.equal(missing.code, 1);
    assert.equal(missing.err, `limen check: ${f('nope')}: no such file or directory\n`);
    const none = await run('check');
    assert.equal(none.code, 2);
    assert.match(none.err, /expected at least one DIR or FILE\nUsage: limen check DIR\|FILE\.\.\./);
  });
});

describe('limen eval', () => {
  it('prints the resulting assertions of $config, sorted, with readable refs', async () => {
    const r = await run('eval', f('tree'));
    assert.equal(r.err, '');
    assert.equal(r.code, 0);
    assert.deepEqual(r.out.split('\n'), [
      '<greeting "router">',
      '<hostname "router">',
      `<lan-space #:<dataspace '${f('tree/10-base.pr')}:4:12'>>`,
      '<require-core-service <daemon sshd>>',
      '<service b>',
      '',
    ]);
  });

  it('prints another dataspace, and JSON lines with --json', async () => {
    const machine = await run('eval', f('tree'), '--dataspace', 'machine');
    assert.deepEqual(machine, { code: 0, out: '<interface "eth0" 2>\n', err: '' });
    const log = await run('eval', f('tree'), '--dataspace=log');
    assert.deepEqual(log, { code: 0, out: '', err: '' }, 'messages are not kept');
    const json = await run('eval', f('tree'), '--json');
    const lines = json.out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as unknown);
    assert.deepEqual(lines[0], { '@rec': [{ '@sym': 'greeting' }, 'router'] });
    assert.deepEqual(lines[2], {
      '@rec': [
        { '@sym': 'lan-space' },
        {
          '@embedded': {
            '@rec': [{ '@sym': 'dataspace' }, { '@sym': `${f('tree/10-base.pr')}:4:12` }],
          },
        },
      ],
    });
  });

  it('runs the shipped network layer: an interface is configured by an address on a link made over it', async () => {
    const network = join(packageRoot(), 'config', 'core', 'network.pr');
    const r = await run('eval', network, f('ppp-link'));
    assert.equal(r.code, 0, r.err);
    const lines = r.out.split('\n');
    assert.ok(lines.includes('<interface-configured "wan0">'), r.out);
    assert.ok(!lines.includes('<interface-configured "lan0">'), 'lan0 has no address installed');
  });

  it('is deterministic', async () => {
    const a = await run('eval', f('tree'), f('synit/boot.pr'));
    const b = await run('eval', f('tree'), f('synit/boot.pr'));
    assert.equal(a.code, 0);
    assert.equal(a.out, b.out);
  });

  it('prints check errors like limen check and runs nothing', async () => {
    const r = await run('eval', f('broken'));
    assert.equal(r.code, 1);
    assert.equal(r.out, '');
    assert.match(r.err, /20-bad\.pr:1:1: unknown instruction 'let\?' \(did you mean 'let'\?\)\n/);
    assert.match(r.err, /limen eval: 4 errors; nothing was run\n$/);
  });

  it('reports a runtime error with its position, prints the assertions anyway, and exits 1', async () => {
    const r = await run('eval', f('runtime-error.pr'));
    assert.equal(r.code, 1);
    assert.equal(r.out, '<ok>\n');
    assert.equal(
      r.err,
      `limen eval: ${f('runtime-error.pr')}:2:1: facet setup failed: ${f('runtime-error.pr')}:2:8: let: 5 does not match the pattern\n`,
    );
  });

  it('gives up on scripts that never settle', async () => {
    // 10 ms: far less than the loop takes to reach its budget of turns on any machine.
    const r = await run('eval', f('loop.pr'), '--timeout', '10');
    assert.equal(r.code, 1);
    assert.match(r.err, /still busy after 10 ms; stopped them\n$/);
  });

  it('stops a message loop at its budget and says where, as the daemon does', async () => {
    // The timeout is only a backstop here: the budget ends the loop, not the clock.
    const r = await run('eval', f('loop.pr'), '--timeout', '30000');
    assert.equal(r.code, 1);
    assert.equal(
      r.err,
      `limen eval: ${f('loop.pr')}:2:1: facet stopped: a chain of more than 100000 turns, each caused by the one before, did not end (a message or assertion loop?)\n`,
    );
  });

  it('rejects bad options', async () => {
    const bad = await run('eval', f('tree'), '--dataspace', 'nope');
    assert.equal(bad.code, 2);
    assert.match(bad.err, /--dataspace must be one of config, machine, log \(got 'nope'\)/);
    assert.equal((await run('eval', f('tree'), '--timeout', 'soon')).code, 2);
    assert.equal((await run('eval')).code, 2);
    const missing = await run('eval', f('nope'));
    assert.equal(missing.code, 1);
  });
});
