import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { main } from '../../../src/cli/main.ts';
import { captureIo } from '../../support/cli-io.ts';

const iface = '<interface "eth0" 2 normal up up carrier "52:54:00:12:34:56">';

describe('limen preserves convert', () => {
  it('converts text to canonical hex and back through binary', async () => {
    const io = captureIo(iface);
    assert.equal(await main(['preserves', 'convert', '--to', 'hex'], io), 0);
    const hex = io.stdout().trim();
    assert.match(hex, /^b4b309696e74657266616365/);
    const back = captureIo(Buffer.from(hex, 'hex'));
    assert.equal(await main(['preserves', 'convert', '--from', 'binary'], back), 0);
    assert.equal(back.stdout(), `${iface}\n`);
  });

  it('auto-detects binary input and keeps annotations in --to binary', async () => {
    const io = captureIo('@"note" [1 2]');
    assert.equal(await main(['preserves', 'convert', '--to', 'binary'], io), 0);
    const round = captureIo(io.stdoutBytes());
    assert.equal(await main(['preserves', 'convert'], round), 0);
    assert.equal(round.stdout(), '@"note" [1 2]\n');
  });

  it('maps to and from JSON', async () => {
    const io = captureIo('{argv: ["udhcpc" "-f"] restart: always}');
    assert.equal(await main(['preserves', 'convert', '--to', 'json'], io), 0);
    assert.deepEqual(JSON.parse(io.stdout()), {
      argv: ['udhcpc', '-f'],
      restart: { '@sym': 'always' },
    });
    const back = captureIo(io.stdout());
    assert.equal(await main(['preserves', 'convert', '--from', 'json'], back), 0);
    assert.equal(back.stdout(), '{argv: ["udhcpc" "-f"] restart: always}\n');
  });

  it('reports a syntax error with its position and exit code 1', async () => {
    const io = captureIo('[1 2\n<a 3');
    assert.equal(await main(['preserves', 'convert'], io), 1);
    assert.match(io.stderr(), /<stdin>:2:\d+: expected '>'/);
    assert.equal(io.stdout(), '');
  });

  it('reports truncated binary with its byte offset', async () => {
    const io = captureIo(Buffer.from('b5b00101', 'hex'));
    assert.equal(await main(['preserves', 'convert', '--from', 'binary'], io), 1);
    assert.match(io.stderr(), /<stdin>:@\d+/);
  });

  it('rejects unknown options and formats as usage errors (exit 2)', async () => {
    const io = captureIo('1');
    assert.equal(await main(['preserves', 'convert', '--to', 'yaml'], io), 2);
    assert.match(io.stderr(), /--to must be one of/);
    const io2 = captureIo('1');
    assert.equal(await main(['preserves', 'convert', '--frm', 'text'], io2), 2);
    assert.match(io2.stderr(), /unknown option '--frm'/);
  });

  it('lab commands reject bad arguments before touching the machine', async () => {
    const io = captureIo();
    assert.equal(await main(['lab', 'exec', 'router', '--', 'true'], io), 2);
    assert.match(io.stderr(), /no node 'router': one of world, isp, sw, rtr, lan1, lan2/);
    const io2 = captureIo();
    assert.equal(await main(['lab', 'up', '--name', 'Bad_Name'], io2), 1);
    assert.match(io2.stderr(), /lab name "Bad_Name": use 1 to 12 lower-case letters/);
    const io3 = captureIo();
    assert.equal(await main(['lab', 'exec', '--name', 'x', 'rtr'], io3), 2);
    assert.match(io3.stderr(), /put the command after '--'/);
    const io4 = captureIo();
    assert.equal(await main(['lab', 'down', 'a', '--all'], io4), 2);
    assert.match(io4.stderr(), /a NAME or --all, not both/);
  });
});
