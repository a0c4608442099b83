// The CLI's daemon commands, run through main() against a control server on a
// temp socket: tables for people, --json for scripts, exit codes 0/1/2/3, and
// carets under bad Preserves arguments.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { main } from '../../../src/cli/main.ts';
import { parse, record, sym, type Value } from '../../../src/preserves/index.ts';
import { captureIo, type CapturedIo } from '../../support/cli-io.ts';
import { until } from '../../support/until.ts';
import { daemon, startHarness, type FakeLog, type Harness } from '../control/harness.ts';

describe('limen CLI against the control socket', () => {
  let h: Harness;
  let sshdLog: FakeLog;

  before(async () => {
    h = await startHarness();
    sshdLog = h.services.add({
      service: daemon('sshd'),
      state: 'ready',
      pids: [412],
      restarts: 0,
      since: Date.UTC(2024, 0, 1, 12, 0, 0),
      processes: [{ spec: 'sshd -D', state: 'ready', pid: 412, restarts: 0, problems: [] }],
    });
    h.services.add({
      service: record('daemon', record('udhcpc', 'wan0')),
      state: 'failed',
      pids: [],
      restarts: 3,
      lastExit: 'exited with code 1',
      processes: [],
    });
    sshdLog.append('Server listening on 0.0.0.0 port 22.');
    sshdLog.append('error: kex failed', 'stderr');
  });
  after(async () => {
    await h?.close();
  });

  async function run(args: string[], io: CapturedIo = captureIo()): Promise<[number, CapturedIo]> {
    const code = await main([...args, '--socket', h.socketPath], io);
    return [code, io];
  }

  describe('status and services', () => {
    it('status: key/value lines, or JSON', async () => {
      const [code, io] = await run(['status']);
      assert.equal(code, 0);
      assert.equal(io.stdout(), 'services  2\nversion   0.1.0\n');
      const [code2, io2] = await run(['status', '--json']);
      assert.equal(code2, 0);
      assert.deepEqual(JSON.parse(io2.stdout()), { services: 2, version: '0.1.0' });
    });

    it('services: an aligned table', async () => {
      const [code, io] = await run(['services']);
      assert.equal(code, 0);
      assert.equal(
        io.stdout(),
        [
          'SERVICE                   STATE   PIDS  RESTARTS  SINCE                 LAST EXIT',
          '<daemon sshd>             ready   412   0         2024-01-01 12:00:00Z  -',
          '<daemon <udhcpc "wan0">>  failed  -     3         -                     exited with code 1',
          '',
        ].join('\n'),
      );
    });

    it('services --json: the protocol answer as JSON', async () => {
      const [, io] = await run(['services', '--json']);
      const list = JSON.parse(io.stdout()) as { state: string; service: unknown }[];
      assert.deepEqual(
        list.map((s) => s.state),
        ['ready', 'failed'],
      );
      assert.deepEqual(list[0]!.service, { '@rec': [{ '@sym': 'daemon' }, { '@sym': 'sshd' }] });
    });

    it('service: a bare word is a daemon; a Preserves value is a service', async () => {
      const [code, io] = await run(['service', 'sshd']);
      assert.equal(code, 0);
      assert.match(io.stdout(), /^service +<daemon sshd>\nstate +ready\npids +412\n/);
      assert.match(
        io.stdout(),
        /\nPROCESS +STATE +PID +RESTARTS +LAST EXIT\n"sshd -D" +ready +412 +0 +-\n/,
      );
      const [code2, io2] = await run(['service', '<daemon <udhcpc "wan0">>']);
      assert.equal(code2, 0);
      assert.match(io2.stdout(), /state +failed/);
    });

    it("service: an unknown one fails with exit 1 and the daemon's reason", async () => {
      const [code, io] = await run(['service', 'nope']);
      assert.equal(code, 1);
      assert.equal(io.stderr(), 'limen service: unknown service <daemon nope>\n');
      assert.equal(io.stdout(), '');
    });

    it('colours states only when the Io allows it, and never with NO_COLOR', async () => {
      const tty = { ...captureIo(), isTty: true, color: true };
      await run(['services'], tty);
      assert.ok(tty.stdout().includes('\u001b[31mfailed\u001b[0m'), tty.stdout());
      const noColor = { ...captureIo('', { NO_COLOR: '1' }), isTty: true, color: true };
      await run(['services'], noColor);
      assert.ok(!noColor.stdout().includes('\u001b'), noColor.stdout());
    });
  });

  describe('logs', () => {
    it('prints the last lines, -n limits them, --json makes JSON lines', async () => {
      const [code, io] = await run(['logs', 'sshd']);
      assert.equal(code, 0);
      assert.equal(
        io.stdout(),
        '2024-01-01 12:00:00Z stdout Server listening on 0.0.0.0 port 22.\n' +
          '2024-01-01 12:00:01Z stderr error: kex failed\n',
      );
      const [, io2] = await run(['logs', '-n', '1', '--json', 'sshd']);
      assert.deepEqual(
        io2
          .stdout()
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l) as unknown),
        [{ time: '2024-01-01T12:00:01.000Z', stream: 'stderr', line: 'error: kex failed' }],
      );
    });

    it('-f follows new lines until the signal aborts (exit 0)', async () => {
      const ac = new AbortController();
      const io = { ...captureIo(), signal: ac.signal };
      const done = run(['logs', '-f', '-n', '0', 'sshd'], io);
      await until(() => sshdLog.followers === 1);
      sshdLog.append('Accepted publickey for root');
      await until(() => io.stdout().includes('Accepted publickey'));
      ac.abort();
      const [code] = await done;
      assert.equal(code, 0);
      assert.equal(io.stdout(), '2024-01-01 12:00:02Z stdout Accepted publickey for root\n');
      await until(() => sshdLog.followers === 0);
    });

    it('a bad -n is a usage error', async () => {
      const [code, io] = await run(['logs', '-n', 'many', 'sshd']);
      assert.equal(code, 2);
      assert.match(io.stderr(), /-n must be a number of lines/);
    });
  });

  describe('query, watch and send', () => {
    it('query: a table of captures, or one value per line, or JSON', async () => {
      h.engine.turn(() => {
        h.engine.root.assert(h.machine.ref, record('interface', 'eth0', 2, sym('up')));
        h.engine.root.assert(h.machine.ref, record('interface', 'wan0', 3, sym('down')));
      });
      const [code, io] = await run([
        'query',
        '--dataspace',
        'machine',
        '<interface ?name _ ?oper>',
      ]);
      assert.equal(code, 0);
      assert.equal(io.stdout(), 'name    oper\n"eth0"  up\n"wan0"  down\n');
      const [, io2] = await run(['query', '--dataspace', 'machine', '<interface "eth0">']);
      assert.equal(io2.stdout(), '<interface "eth0" 2 up>\n');
      const [, io3] = await run(['query', '--json', '--dataspace', 'machine', '<interface ?n>']);
      const j = JSON.parse(io3.stdout()) as { names: string[]; matches: { captures: unknown }[] };
      assert.deepEqual(j.names, ['n']);
      assert.deepEqual(
        j.matches.map((m) => m.captures),
        [{ n: 'eth0' }, { n: 'wan0' }],
      );
    });

    it('a Preserves syntax error shows the argument and a caret (exit 2)', async () => {
      const [code, io] = await run(['query', '<interface ?n _']);
      assert.equal(code, 2);
      assert.equal(
        io.stderr().split('\n').slice(0, 3).join('\n'),
        "limen query: PATTERN is not valid Preserves: expected '>' to close the record opened at 1:1, found end of input (column 16)\n" +
          '  <interface ?n _\n' +
          '                 ^',
      );
      assert.match(io.stderr(), /\nUsage: limen query PATTERN/);
    });

    it('a pattern error points at the offending capture', async () => {
      const [code, io] = await run(['watch', '<a ?x [?x]>']);
      assert.equal(code, 2);
      const lines = io.stderr().split('\n');
      assert.match(lines[0]!, /PATTERN is not a valid pattern: \?x is captured twice/);
      assert.equal(lines[1], '  <a ?x [?x]>');
      assert.equal(lines[2], '         ^');
    });

    it('watch: + then - lines until the signal aborts, JSON lines with --json', async () => {
      const ac = new AbortController();
      const io = { ...captureIo(), signal: ac.signal };
      const done = run(['watch', '--json', '<flag ?n>', '<other>'], io);
      const jsonLines = (): { event: string; value?: unknown }[] =>
        io
          .stdout()
          .split('\n')
          .filter((l) => l !== '')
          .map((l) => JSON.parse(l) as { event: string });
      await until(() => jsonLines().filter((e) => e.event === 'synced').length === 2);
      const handle = h.engine.root.assert(h.config.ref, record('flag', 1));
      await until(() => jsonLines().some((e) => e.event === 'added'));
      handle.dispose();
      await until(() => jsonLines().some((e) => e.event === 'removed'));
      ac.abort();
      const [code] = await done;
      assert.equal(code, 0);
      assert.deepEqual(jsonLines().slice(2), [
        { event: 'added', value: { '@rec': [{ '@sym': 'flag' }, 1] }, captures: { n: 1 } },
        { event: 'removed', value: { '@rec': [{ '@sym': 'flag' }, 1] }, captures: { n: 1 } },
      ]);

      const ac2 = new AbortController();
      const io2 = { ...captureIo(), signal: ac2.signal };
      const present = h.engine.root.assert(h.config.ref, record('flag', 2));
      const done2 = run(['watch', '<flag ?n>'], io2);
      await until(() => io2.stdout() === '+ <flag 2>\n');
      present.dispose();
      await until(() => io2.stdout() === '+ <flag 2>\n- <flag 2>\n');
      ac2.abort();
      assert.equal((await done2)[0], 0);
    });

    it('send: a message to the named dataspace', async () => {
      const ac = new AbortController();
      const watcher = { ...captureIo(), signal: ac.signal };
      const done = run(['watch', '--dataspace', 'log', '<note _>'], watcher);
      await until(async () => {
        // Resend until the watch is in place: messages are not kept.
        await run(['send', '--dataspace', 'log', '<note "hello">']);
        return watcher.stdout().includes('! <note "hello">');
      });
      ac.abort();
      await done;
      const [code, io] = await run(['send', '<restart-service <daemon sshd>>', '--json']);
      assert.equal(code, 0);
      assert.equal(io.stdout(), 'true\n');
    });
  });

  describe('clients', () => {
    it('a table of the LAN clients, a row more per further address, or JSON', async () => {
      const [, none] = await run(['clients']);
      assert.equal(none.stdout(), 'no clients\n');
      h.engine.turn(() => {
        for (const t of [
          '<lan-client "lan0" "02:00:5e:10:00:02" {hostname: #f ipv4: [] ipv6: ["2001:db8::20"] expires: #f}>',
          '<lan-client "lan0" "02:00:5e:10:00:01" {hostname: "laptop" ipv4: ["192.168.1.100"] ipv6: ["2001:db8::10" "fd00::10"] expires: 1704110400}>',
          '<lan-client "lan1" "02:00:5e:10:00:03" {hostname: "nas" ipv4: ["192.168.2.5"] ipv6: [] expires: never}>',
        ])
          h.engine.root.assert(h.machine.ref, parse(t));
      });
      const [code, io] = await run(['clients']);
      assert.equal(code, 0);
      assert.equal(
        io.stdout(),
        [
          'INTERFACE  MAC                HOSTNAME  IPV4           EXPIRES               IPV6',
          'lan0       02:00:5e:10:00:01  laptop    192.168.1.100  2024-01-01 12:00:00Z  2001:db8::10',
          '                                                                             fd00::10',
          'lan0       02:00:5e:10:00:02  -         -              -                     2001:db8::20',
          'lan1       02:00:5e:10:00:03  nas       192.168.2.5    never                 -',
          '',
        ].join('\n'),
      );
      const [, json] = await run(['clients', '--json']);
      assert.deepEqual(JSON.parse(json.stdout()), [
        {
          interface: 'lan0',
          mac: '02:00:5e:10:00:01',
          hostname: 'laptop',
          ipv4: ['192.168.1.100'],
          ipv6: ['2001:db8::10', 'fd00::10'],
          expires: 1704110400,
        },
        {
          interface: 'lan0',
          mac: '02:00:5e:10:00:02',
          hostname: false,
          ipv4: [],
          ipv6: ['2001:db8::20'],
          expires: false,
        },
        {
          interface: 'lan1',
          mac: '02:00:5e:10:00:03',
          hostname: 'nas',
          ipv4: ['192.168.2.5'],
          ipv6: [],
          expires: { '@sym': 'never' },
        },
      ]);
    });
  });

  describe('start, stop, restart', () => {
    it('start requires, stop withdraws, restart sends', async () => {
      const req = record('require-service', daemon('web'));
      let [code, io] = await run(['start', 'web']);
      assert.equal(code, 0);
      assert.equal(io.stdout(), '<daemon web> is required\n');
      assert.ok(h.config.has(req));
      [code, io] = await run(['restart', 'web']);
      assert.equal(io.stdout(), '<daemon web>: restart requested\n');
      [code, io] = await run(['stop', 'web']);
      assert.equal(io.stdout(), '<daemon web> is no longer required\n');
      assert.ok(!h.config.has(req));
    });

    it('stop fails (exit 1) while the configuration requires the service', async () => {
      const cfg = h.engine.root.assert(h.config.ref, record('require-service', daemon('core')));
      try {
        const [code, io] = await run(['stop', 'core']);
        assert.equal(code, 1);
        assert.match(
          io.stderr(),
          /^limen stop: <daemon core> is still required by the configuration/,
        );
      } finally {
        cfg.dispose();
      }
    });
  });

  describe('ifup and ifdown', () => {
    it('prints progress, then the result', async () => {
      const [code, io] = await run(['ifup', 'ok0']);
      assert.equal(code, 0);
      assert.equal(
        io.stdout(),
        'ok0: link is up\nok0: <dhcp "lease" "192.0.2.10/24">\nok0 is up: {address: "192.0.2.10/24"}\n',
      );
    });

    it('fails with the reason (exit 1)', async () => {
      const [code, io] = await run(['ifup', 'bad0']);
      assert.equal(code, 1);
      assert.equal(io.stdout(), 'bad0: waiting for carrier\n');
      assert.equal(io.stderr(), 'limen ifup: bad0: no carrier\n');
    });

    it('gives up after --timeout', async () => {
      const [code, io] = await run(['ifdown', '--timeout', '0.05', 'slow0']);
      assert.equal(code, 1);
      assert.equal(io.stderr(), 'limen ifdown: slow0 did not come down within 50 ms\n');
      const [code2, io2] = await run(['ifup', '--timeout', 'soon', 'slow0']);
      assert.equal(code2, 2);
      assert.match(io2.stderr(), /--timeout must be a positive number of seconds/);
    });

    it('--json: progress lines, then the answer', async () => {
      const [, io] = await run(['ifup', '--json', 'ok1']);
      const lines = io
        .stdout()
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as unknown);
      assert.deepEqual(lines[0], { progress: 'link is up' });
      assert.deepEqual(lines[2], {
        interface: 'ok1',
        state: 'up',
        detail: { address: '192.0.2.10/24' },
      });
    });
  });

  describe('settings', () => {
    it('set, list, unset', async () => {
      let [code, io] = await run(['settings', 'set', '<hostname "router">']);
      assert.equal(code, 0);
      assert.equal(io.stdout(), 'set <hostname "router">\n');
      [code, io] = await run(['settings', 'set', '<hostname "router">']);
      assert.equal(io.stdout(), '<hostname "router"> was already set\n');
      await run(['settings', 'set', '"motd"']);
      [code, io] = await run(['settings', 'list']);
      assert.equal(io.stdout(), '"motd"\n<hostname "router">\n');
      [code, io] = await run(['settings', 'list', '--json']);
      const j = JSON.parse(io.stdout()) as { settings: { value: Value; file: string }[] };
      assert.equal(j.settings.length, 2);
      assert.match(j.settings[0]!.file, /^[0-9a-f]{40}\.pr$/);
      [code, io] = await run(['settings', 'unset', '<hostname "router">']);
      assert.equal(code, 0);
      [code, io] = await run(['settings', 'unset', '<hostname "router">']);
      assert.equal(code, 1);
      assert.equal(
        io.stderr(),
        'limen settings unset: not a stored setting: <hostname "router">\n',
      );
      await run(['settings', 'unset', '"motd"']);
    });

    it('an invalid setting fails with every reason (exit 1)', async () => {
      const [code, io] = await run(['settings', 'set', '<x _ $y>']);
      assert.equal(code, 1);
      assert.match(io.stderr(), /symbol _ is pattern syntax.*; the symbol \$y is a variable/);
    });

    it('a corrupt file is a warning; the rest is listed', async () => {
      const { writeFile } = await import('node:fs/promises');
      await run(['settings', 'set', '<ok>']);
      await writeFile(join(h.settingsDir, 'junk.pr'), '<unclosed');
      const [code, io] = await run(['settings', 'list']);
      assert.equal(code, 0);
      assert.equal(io.stdout(), '<ok>\n');
      assert.match(io.stderr(), /^limen settings list: warning: junk\.pr: .*junk\.pr:1:/);
    });
  });

  describe('reaching the daemon', () => {
    it('exit 3, with how to start it, when nothing listens', async () => {
      const io = captureIo();
      const path = join(h.dir, 'nothing.sock');
      const code = await main(['status', '--socket', path], io);
      assert.equal(code, 3);
      assert.equal(
        io.stderr(),
        `limen status: cannot reach limen at ${path} (ENOENT): is the daemon running? start it with \`limen daemon\` or \`systemctl start limen\`\n`,
      );
    });

    it('finds the socket through LIMEN_SOCKET and --root', async () => {
      const io = captureIo('', { LIMEN_SOCKET: h.socketPath });
      assert.equal(await main(['status'], io), 0);
      const io2 = captureIo();
      assert.equal(await main(['status', '--root', h.dir], io2), 0);
      assert.equal(io2.stdout(), io.stdout());
    });

    it('usage errors are exit 2', async () => {
      for (const args of [
        ['logs'],
        ['status', 'extra'],
        ['query', '--dataspace', 'other', '_'],
        ['services', '--jsn'],
        ['settings', 'set'],
      ]) {
        const [code, io] = await run(args);
        assert.equal(code, 2, args.join(' '));
        assert.match(io.stderr(), /Usage: limen/);
      }
    });

    it('--help shows the examples and the exit codes', async () => {
      const io = captureIo();
      assert.equal(await main(['watch', '--help'], io), 0);
      assert.match(io.stdout(), /Examples:\n {2}limen watch '<service-state \?s \?state>'/);
      assert.match(
        io.stdout(),
        /Exit codes: 0 ok, 1 the request failed, 2 usage error, 3 cannot reach/,
      );
    });
  });
});
