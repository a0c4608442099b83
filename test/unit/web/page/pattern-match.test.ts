// The page's matcher and printer (src/web/page) work on values in the JSON mapping;
// they must agree with the daemon's pattern matcher and Preserves text writer on the
// same values, or a view would show what the daemon never sent.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parse, stringify, toJSON } from '../../../../src/preserves/index.ts';
import { compilePattern, match as daemonMatch } from '../../../../src/dataspace/pattern.ts';
import { match } from '../../../../src/web/page/pattern-match.ts';
import {
  asRecord,
  bytesToText,
  dictEntries,
  printValue,
  stringKeyedDict,
  symName,
  textToBytes,
  type Json,
} from '../../../../src/web/page/values.ts';

const json = (text: string) => toJSON(parse(text)) as Json;

const values = [
  '<service-state <daemon ntpd> ready>',
  '<service-state <milestone core> up>',
  '<service-state <daemon <udhcpc "wan0">> failed>',
  '<service-process <daemon sshd> {pids: [812] restarts: 0 started: "2026-01-01T00:00:00Z"}>',
  '<address "wan0" ipv4 "100.64.0.12" 24 {scope: global valid: 120 preferred: 120}>',
  '<address "lan0" ipv6 "fe80::1" 64 {scope: link valid: forever preferred: forever}>',
  '<route ipv4 "default" 100 main "wan0" "100.64.0.1">',
  '<route ipv4 "10.0.0.0/8" 0 main "lan0" #f>',
  '<depends-on <daemon ntpd> <default-route ipv4>>',
  '<depends-on <daemon ntpd> <service-state <milestone network> _>>',
  '<current-failure {kind: "dhcp-error" level: "error" text: "wan0: bad"}>',
  '[1 2 3]',
  '"just a string"',
];

const patterns = [
  '_',
  '<service-state ?s ?state>',
  '<service-state <milestone ?m> ?state>',
  '<service-state <daemon ?id> ready>',
  '<service-state>',
  '<service-process ?s {pids: ?pids}>',
  '<service-process ?s {}>',
  '<address ?if ?family ?addr ?len ?info>',
  '<address "wan0" ?family ?addr>',
  '<route ?family "default" ?prio ?table ?ifname ?gw>',
  '<depends-on ?s <?dep <service-state ?d _>>>',
  '<current-failure ?f>',
  '[1 ?second]',
  '[1 2 3 4]',
  '"just a string"',
];

describe('web page: pattern-match', () => {
  for (const p of patterns) {
    it(`agrees with the daemon on ${p}`, () => {
      const compiled = compilePattern(parse(p));
      for (const v of values) {
        const theirs = daemonMatch(compiled, parse(v));
        const ours = match(json(p), json(v));
        if (theirs === null) {
          assert.equal(ours, undefined, `${p} should not match ${v}`);
          continue;
        }
        assert.ok(ours !== undefined, `${p} should match ${v}`);
        const expected = Object.fromEntries([...theirs].map(([k, x]) => [k, toJSON(x)]));
        assert.deepEqual(ours, expected, `captures of ${p} on ${v}`);
      }
    });
  }
});

describe('web page: values', () => {
  it('prints as the Preserves text writer does', () => {
    for (const v of [
      ...values,
      '#t',
      '#f',
      '1.5',
      '#"hi"',
      '#x"00ff"',
      '#{1 2}',
      "'a b'",
      '-3',
      '"tab\there"',
    ]) {
      assert.equal(printValue(json(v)), stringify(parse(v)), v);
    }
  });

  it('reads records and symbols', () => {
    const r = asRecord(json('<service-state <daemon ntpd> ready>'));
    assert.equal(r?.label, 'service-state');
    assert.equal(symName(r?.fields[1]), 'ready');
  });

  it('writes string-keyed dictionaries in the general form the daemon reads', () => {
    const files = stringKeyedDict([
      ['services/b.pr', textToBytes('b')],
      ['core/a.pr', textToBytes('é')],
    ]);
    assert.deepEqual(files, toJSON(parse('{"core/a.pr": #"\\xc3\\xa9" "services/b.pr": #"b"}')));
    const entries = dictEntries(files);
    assert.equal(entries[0]?.[0], 'core/a.pr');
    assert.equal(bytesToText(entries[0]?.[1]), 'é');
  });
});
