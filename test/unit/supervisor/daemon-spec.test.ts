import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parse, record, sym } from '../../../src/preserves/index.ts';
import {
  InvalidDaemonSpecError,
  checkDaemonSpec,
  parseDaemonSpec,
  toProcessSpec,
  type DaemonSpec,
} from '../../../src/supervisor/daemon-spec.ts';
import { outputsDirName, rfc3339 } from '../../../src/supervisor/service-names.ts';

const spec = (text: string): DaemonSpec => parseDaemonSpec(parse(text));

/** Every problem's message for a spec written in Preserves text. */
function problems(text: string): string[] {
  const r = checkDaemonSpec(parse(text));
  assert.equal(r.ok, false, `expected problems with ${text}`);
  return r.ok ? [] : r.problems.map((p) => p.message);
}

describe('daemon spec: the forms', () => {
  it('a string runs with sh -c, ready on start, restart all', () => {
    const s = spec('"echo hello; sleep 1"');
    assert.equal(s.form, 'shell');
    assert.deepEqual(s.argv, ['sh', '-c', 'echo hello; sleep 1']);
    assert.deepEqual(s.readiness, { kind: 'on-start' });
    assert.equal(s.restart, 'all');
    assert.equal(s.clearEnv, false);
  });

  it('a sequence of strings is the program and its arguments', () => {
    const s = spec('["sleep" "100"]');
    assert.equal(s.form, 'argv');
    assert.deepEqual(s.argv, ['sleep', '100']);
    assert.deepEqual(s.readiness, { kind: 'on-start' });
  });

  it('<one-shot CMD> is never ready and restarts only on error', () => {
    for (const [text, argv] of [
      ['<one-shot "touch x">', ['sh', '-c', 'touch x']],
      ['<one-shot ["true"]>', ['true']],
    ] as const) {
      const s = spec(text);
      assert.equal(s.form, 'one-shot');
      assert.deepEqual(s.argv, argv);
      assert.deepEqual(s.readiness, { kind: 'none' });
      assert.equal(s.restart, 'on-error');
    }
  });

  it('the dictionary form reads every key', () => {
    const s = spec(`{
      argv: ["/usr/sbin/dnsmasq" "-k"]
      env: {PATH: "/bin" "LANG": "C" HOME: #f}
      dir: "/tmp"
      clearEnv: #t
      restart: on-error
      protocol: none
      readiness: <notification-fd 4>
      stopTimeout: 2500
      stopSignal: HUP
      user: "nobody"
      group: 65534
    }`);
    assert.equal(s.form, 'full');
    assert.deepEqual(s.argv, ['/usr/sbin/dnsmasq', '-k']);
    assert.deepEqual(s.env, { PATH: '/bin', LANG: 'C' });
    assert.deepEqual(s.unsetEnv, ['HOME']);
    assert.equal(s.dir, '/tmp');
    assert.equal(s.clearEnv, true);
    assert.equal(s.restart, 'on-error');
    assert.deepEqual(s.readiness, { kind: 'notification-fd', fd: 4 });
    assert.equal(s.stopTimeoutMs, 2500);
    assert.equal(s.stopSignal, 'SIGHUP');
    assert.equal(s.user, 'nobody');
    assert.equal(s.group, 65534);
  });

  it('the dictionary form has the defaults of the simple forms', () => {
    const s = spec('{argv: "exec sleep 5"}');
    assert.deepEqual(s.argv, ['sh', '-c', 'exec sleep 5']);
    assert.deepEqual(s.readiness, { kind: 'on-start' });
    assert.equal(s.restart, 'all');
    assert.equal(s.stopSignal, undefined);
    assert.equal(s.stopTimeoutMs, undefined);
  });

  it('readyOnStart: #f without readiness means never ready by itself', () => {
    assert.deepEqual(spec('{argv: ["x"] readyOnStart: #f}').readiness, { kind: 'none' });
    assert.deepEqual(spec('{argv: ["x"] readyOnStart: #t}').readiness, { kind: 'on-start' });
    assert.deepEqual(
      spec('{argv: ["x"] readyOnStart: #f readiness: <notification-fd 3>}').readiness,
      {
        kind: 'notification-fd',
        fd: 3,
      },
    );
  });

  it('a stop signal may be written with or without SIG', () => {
    assert.equal(spec('{argv: ["x"] stopSignal: SIGINT}').stopSignal, 'SIGINT');
    assert.equal(spec('{argv: ["x"] stopSignal: INT}').stopSignal, 'SIGINT');
  });

  it('a stop scope is all or main, and nothing else', () => {
    assert.equal(spec('{argv: ["x"] stopScope: main}').stopScope, 'main');
    assert.equal(spec('{argv: ["x"] stopScope: all}').stopScope, 'all');
    assert.equal(spec('{argv: ["x"]}').stopScope, undefined);
    for (const bad of ['"main"', 'group', '#t', '[main]'])
      assert.match(
        problems(`{argv: ["x"] stopScope: ${bad}}`).join('\n'),
        /stopScope.*expected all or main/,
        bad,
      );
  });

  it('becomes a ProcessSpec with the outputs directory and extra environment', () => {
    const s = spec('{argv: ["x"] env: {A: "1" B: #f} stopTimeout: 10}');
    assert.deepEqual(toProcessSpec(s, { outputsDir: '/run/o', env: { C: '2' } }), {
      argv: ['x'],
      env: { A: '1', C: '2' },
      unsetEnv: ['B'],
      clearEnv: false,
      readiness: { kind: 'on-start' },
      stopTimeoutMs: 10,
      outputsDir: '/run/o',
    });
  });
});

describe('daemon spec: problems', () => {
  it('an unknown key suggests the key that was meant', () => {
    assert.deepEqual(problems('{agrv: ["x"]}'), [
      "unknown key 'agrv' (did you mean 'argv'?)",
      "'argv' is missing: what should run?",
    ]);
    assert.deepEqual(problems('{argv: ["x"] readyonstart: #f}'), [
      "unknown key 'readyonstart' (did you mean 'readyOnStart'?)",
    ]);
    const far = problems('{argv: ["x"] colour: "red"}');
    assert.equal(far.length, 1);
    assert.match(far[0]!, /unknown key 'colour' \(known keys: argv, env, dir/);
  });

  it('collects every problem, not just the first', () => {
    const ps = problems(`{
      argv: ["ok" 3]
      env: {A: 1 "": "x"}
      dir: 7
      clearEnv: "yes"
      readyOnStart: #t
      restart: "always"
      protocol: application/syndicate
      readiness: <notification-fd 1>
      stopTimeout: 5.0
      stopSignal: SIGNOPE
      user: #t
      group: ""
      extra: 1
    }`);
    assert.deepEqual(ps, [
      "unknown key 'extra' (known keys: argv, env, dir, clearEnv, readyOnStart, restart, " +
        'protocol, readiness, stopTimeout, stopSignal, stopScope, user, group)',
      'argv: argv item 1 must be a string, got the integer 3',
      'env: A must be a string (or #f to remove it), got the integer 1',
      'env: bad variable name ""',
      'dir: expected a non-empty string (a directory), got the integer 7',
      'clearEnv: expected #t or #f, got the string "yes"',
      'restart: expected one of always, on-error, all, never, got the string "always" (write always without quotes)',
      'protocol: application/syndicate is not supported yet: the only protocol for now is none',
      'readiness: expected <notification-fd N> with N from 3 to 255, got the integer 1',
      'stopTimeout: is a whole number of milliseconds: write 5000 for 5 seconds',
      'stopSignal: expected a signal name such as SIGTERM or HUP, got the symbol SIGNOPE',
      'user: expected a name (string) or a numeric id, got #t',
      'group: expected a name (string) or a numeric id, got the string ""',
      'readyOnStart: #t conflicts with readiness: the process is ready when it says so; drop one of them',
    ]);
  });

  it('refuses values that are no spec at all', () => {
    assert.match(problems('42')[0]!, /^got the integer 42: a daemon spec is a string/);
    assert.match(problems('<daemon "x">')[0]!, /^unknown spec <daemon "x">/);
    assert.deepEqual(problems('""'), ['the command is empty']);
    assert.deepEqual(problems('[]'), ['the argv sequence is empty: it needs at least the program']);
    assert.deepEqual(problems('[sleep "1"]'), [
      'argv item 0 must be a string, got the symbol sleep (write "sleep" in quotes)',
    ]);
    assert.deepEqual(problems('<one-shot "a" "b">'), ['<one-shot CMD> takes one field, found 2']);
    assert.match(problems('<one-shot {argv: "x"}>')[0]!, /use the dictionary form/);
    assert.deepEqual(problems('{"argv": "x"}'), [
      'keys must be symbols, got the string "argv" (write argv: without quotes)',
      "'argv' is missing: what should run?",
    ]);
  });

  it('what the process layer would refuse is a problem too', () => {
    const r = checkDaemonSpec(['sleep', 'a\0b']);
    assert.equal(r.ok, false);
    assert.match(r.ok ? '' : r.problems[0]!.message, /argv\[1\] contains a NUL byte/);
  });

  it('says where, when the spec was read with positions', () => {
    const value = parse('{argv: ["x"]\n stopTimeout: 1.5}', { source: 'svc.pr', positions: true });
    const r = checkDaemonSpec(value);
    assert.equal(r.ok, false);
    assert.deepEqual(r.ok ? [] : r.problems.map((p) => p.message), [
      'svc.pr:2:15: stopTimeout: is a whole number of milliseconds: write 1500 for 1.5 seconds',
    ]);
  });

  it('parseDaemonSpec throws one error with a stable code and every problem', () => {
    assert.throws(
      () => parseDaemonSpec(parse('{argv: 1 dir: 2}')),
      (e: unknown) =>
        e instanceof InvalidDaemonSpecError &&
        e.code === 'LIMEN_DAEMON_INVALID_SPEC' &&
        e.problems.length === 2 &&
        e.problems[1]!.key === 'dir',
    );
  });
});

describe('service names', () => {
  it('an outputs directory name is readable, safe and unique', () => {
    const a = outputsDirName(record('daemon', 'dhcp eth0'));
    const b = outputsDirName(record('daemon', 'dhcp/eth0'));
    assert.match(a, /^daemon-dhcp-eth0-[0-9a-f]{10}$/);
    assert.match(b, /^daemon-dhcp-eth0-[0-9a-f]{10}$/);
    assert.notEqual(a, b);
    assert.equal(outputsDirName(record('daemon', 'dhcp eth0')), a);
    for (const v of [record('daemon', '..'), record('daemon', sym('.')), '/', 'x'.repeat(300)]) {
      const n = outputsDirName(v);
      assert.ok(!n.includes('/') && !n.startsWith('.') && n.length <= 60, n);
    }
  });

  it('log times are RFC 3339', () => {
    assert.equal(rfc3339(Date.UTC(2024, 0, 2, 3, 4, 5, 6)), '2024-01-02T03:04:05.006Z');
  });
});
