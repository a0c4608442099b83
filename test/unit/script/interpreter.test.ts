import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parse, record, stringify, type Value } from '../../../src/preserves/index.ts';
import { BudgetExceededError, P, asRef, type Handle } from '../../../src/dataspace/index.ts';
import {
  ScriptRuntimeError,
  bindingsOf,
  compileScript,
  formatProblem,
  runScript,
} from '../../../src/script/index.ts';
import { sortedText, world } from './world.ts';

const v = (text: string): Value => parse(text);

describe('running scripts: assertions, messages and targets', () => {
  it('asserts records and dictionaries into $config, and any value with +=', async () => {
    const w = world();
    w.run('<a 1> {k: "v"} += "text" += sym [<b> [<c>]]');
    await w.engine.sync();
    assert.deepEqual(w.show(), ['"text"', 'sym', '<a 1>', '<b>', '<c>', '{k: "v"}']);
  });

  it('retargets the next instruction, including everything nested in it', async () => {
    const w = world();
    w.run(`
      $machine <m>
      $machine ? <link ?n> <seen $n>
      $machine [<x> $config <back-in-config>]
      <plain>
    `);
    w.engine.root.assert(w.machine.ref, record('link', 'eth0'));
    await w.engine.sync();
    assert.deepEqual(w.show(w.machine), ['<link "eth0">', '<m>', '<seen "eth0">', '<x>']);
    assert.deepEqual(w.show(), ['<back-in-config>', '<plain>']);
  });

  it('sends messages to the current observers of the target', async () => {
    const w = world();
    const got: string[] = [];
    w.engine.root.observe(w.log.ref, P.rec('hello', P.bind('x')), {
      onMessage: (_v, c) => got.push(stringify(c.get('x')!)),
    });
    w.run('$log ! <hello "world">');
    await w.engine.sync();
    assert.deepEqual(got, ['"world"']);
    assert.equal(w.log.size, 0, 'a message is not kept');
  });

  it('retracts what a file asserted when its facet stops', async () => {
    const w = world();
    const r = w.run('<a> $machine <b>');
    await w.engine.sync();
    r.facet.stop();
    await w.engine.sync();
    assert.equal(w.config.size + w.machine.size, 0);
  });
});

describe('running scripts: ? (during)', () => {
  it('runs one facet per distinct capture tuple, stopped when the last match goes', async () => {
    const w = world();
    const r = w.run(`
      ? <link ?name _> [
        <seen $name>
        ?- $log ! <stopped $name>
      ]
    `);
    const stopped: string[] = [];
    w.engine.root.observe(w.log.ref, P.rec('stopped', P.bind('n')), {
      onMessage: (_v, c) => stopped.push(stringify(c.get('n')!)),
    });
    const hs: Handle[] = [];
    w.engine.turn(() => {
      hs.push(w.engine.root.assert(w.config.ref, v('<link "eth0" 1>')));
      hs.push(w.engine.root.assert(w.config.ref, v('<link "eth0" 2>')));
      hs.push(w.engine.root.assert(w.config.ref, v('<link "eth1" 1>')));
    });
    await w.engine.sync();
    assert.equal(r.facet.children.length, 2, 'one facet per distinct tuple');
    assert.ok(w.config.has(v('<seen "eth0">')) && w.config.has(v('<seen "eth1">')));
    w.engine.turn(() => w.engine.root.retract(hs[0]!));
    await w.engine.sync();
    assert.ok(w.config.has(v('<seen "eth0">')), 'eth0 still has a match');
    assert.deepEqual(stopped, []);
    w.engine.turn(() => w.engine.root.retract(hs[1]!));
    await w.engine.sync();
    assert.ok(!w.config.has(v('<seen "eth0">')));
    assert.deepEqual(stopped, ['"eth0"']);
    assert.equal(r.facet.children.length, 1);
  });

  it('counts the same value asserted twice as one match until both are retracted', async () => {
    const w = world();
    w.run('? <up ?x> <derived $x>');
    const a = w.engine.root.assert(w.config.ref, v('<up 1>'));
    const b = w.engine.root.assert(w.config.ref, v('<up 1>'));
    await w.engine.sync();
    assert.ok(w.config.has(v('<derived 1>')));
    w.engine.root.retract(a);
    await w.engine.sync();
    assert.ok(w.config.has(v('<derived 1>')));
    w.engine.root.retract(b);
    await w.engine.sync();
    assert.ok(!w.config.has(v('<derived 1>')));
  });

  it('matches records and sequences with exact arity unless the pattern ends in ...', async () => {
    const w = world();
    w.run(`
      ? <a ?x> <exact $x>
      ? <a ?x ...> <open $x>
      ? <seq [?x]> <exact-seq $x>
      ? <seq [?x ...]> <open-seq $x>
      ? <d {k: ?x}> <dict $x>
    `);
    for (const t of ['<a 1>', '<a 2 extra>', '<seq [3]>', '<seq [4 5]>', '<d {k: 6 other: 7}>'])
      w.engine.root.assert(w.config.ref, v(t));
    await w.engine.sync();
    const derived = w.show().filter((s) => !/^<(a|seq|d) /.test(s));
    assert.deepEqual(derived, [
      '<dict 6>',
      '<exact 1>',
      '<exact-seq 3>',
      '<open 1>',
      '<open 2>',
      '<open-seq 3>',
      '<open-seq 4>',
    ]);
  });

  it('fills $x in a pattern with its value when the instruction runs', async () => {
    const w = world();
    w.run('let ?want = "eth0" ? <link $want ?s> <state $s>');
    w.engine.root.assert(w.config.ref, v('<link "eth0" up>'));
    w.engine.root.assert(w.config.ref, v('<link "eth1" down>'));
    await w.engine.sync();
    assert.ok(w.config.has(v('<state up>')));
    assert.ok(!w.config.has(v('<state down>')));
  });

  it('captures with <?x P> and lets an inner capture shadow an outer binding', async () => {
    const w = world();
    w.run('let ?x = outer ? <?whole <pair ?x _>> <got $whole $x>');
    w.engine.root.assert(w.config.ref, v('<pair 1 2>'));
    await w.engine.sync();
    assert.ok(w.config.has(v('<got <pair 1 2> 1>')));
  });
});

describe('running scripts: ?? (on message)', () => {
  it('runs each message in a fresh facet that `$facet ! stop` stops alone', async () => {
    const w = world();
    const r = w.run(`
      ?? <ping ?n> [
        let ?f = facet
        <pong $n>
        ? <ack $n> $f ! stop
      ]
    `);
    w.engine.root.send(w.config.ref, v('<ping 1>'));
    w.engine.root.send(w.config.ref, v('<ping 2>'));
    await w.engine.sync();
    assert.deepEqual(w.show(), ['<pong 1>', '<pong 2>']);
    assert.equal(r.facet.children.length, 2);
    w.engine.root.assert(w.config.ref, v('<ack 1>'));
    await w.engine.sync();
    assert.deepEqual(w.show(), ['<ack 1>', '<pong 2>']);
    assert.equal(r.facet.children.length, 1);
  });

  it('stops a message facet at once when it holds nothing after its setup', async () => {
    const w = world();
    const r = w.run('?? <ping ?n> [let ?f = facet $log ! <pong $n>]');
    const pongs: Value[] = [];
    w.engine.root.observe(w.log.ref, P.rec('pong', P._), { onMessage: (m) => pongs.push(m) });
    w.engine.root.send(w.config.ref, v('<ping 1>'));
    await w.engine.sync();
    assert.equal(pongs.length, 1);
    assert.equal(r.facet.children.length, 0, 'the inert facet was stopped');
  });

  it('runs ?- of an inert message facet when it is stopped', async () => {
    const w = world();
    w.run('?? <ping ?n> ?- $log ! <done $n>');
    const done: Value[] = [];
    w.engine.root.observe(w.log.ref, P.rec('done', P._), { onMessage: (m) => done.push(m) });
    w.engine.root.send(w.config.ref, v('<ping 7>'));
    await w.engine.sync();
    assert.deepEqual(sortedText(done), ['<done 7>']);
  });
});

describe('running scripts: ?-, let, =~', () => {
  it('runs ?- when the enclosing facet stops; its messages are delivered', async () => {
    const w = world();
    const got: Value[] = [];
    w.engine.root.observe(w.log.ref, P._, { onMessage: (m) => got.push(m) });
    const r = w.run('?- $log ! <file-stopped> ? <a> ?- $log ! <a-gone>');
    const h = w.engine.root.assert(w.config.ref, v('<a>'));
    await w.engine.sync();
    w.engine.root.retract(h);
    await w.engine.sync();
    assert.deepEqual(sortedText(got), ['<a-gone>']);
    r.facet.stop();
    await w.engine.sync();
    assert.deepEqual(sortedText(got), ['<a-gone>', '<file-stopped>']);
  });

  it('destructures with let', async () => {
    const w = world();
    w.run('let <p ?a ?b> = <p 1 [2 3]> let [?c ?d] = $b <sum $a $c $d>');
    await w.engine.sync();
    assert.deepEqual(w.show(), ['<sum 1 2 3>']);
  });

  it('runs the =~ instruction on a match and the rest of the block otherwise', async () => {
    const w = world();
    w.run(`
      ? <v ?x> [
        $x =~ <ok ?y> <good $y>
        <bad $x>
        <also-bad $x>
      ]
    `);
    w.engine.root.assert(w.config.ref, v('<v <ok 1>>'));
    w.engine.root.assert(w.config.ref, v('<v 2>'));
    await w.engine.sync();
    assert.deepEqual(
      w.show().filter((s) => !s.startsWith('<v ')),
      ['<also-bad 2>', '<bad 2>', '<good 1>'],
    );
  });
});

describe('running scripts: expressions', () => {
  it('evaluates timestamp, scriptdir, stringify and join', async () => {
    const w = world();
    w.run(
      `
      let ?t = timestamp
      let ?dir = scriptdir
      let ?s = stringify <a "b" 1 [c]>
      let ?q = stringify "quoted"
      let ?ref = stringify $config
      let ?j = join ", " ["a" b 1 "c d" <e>]
      let ?nested = join "/" [$dir "x.pr"]
      <out $t $dir $s $q $ref $j $nested>
    `,
      '/etc/limen/core/test.pr',
    );
    await w.engine.sync();
    assert.deepEqual(w.show(), [
      '<out "2024-01-02T03:04:05.000Z" "/etc/limen/core" "<a \\"b\\" 1 [c]>" "\\"quoted\\"" "#:<dataspace config>" "a, b, 1, c d, <e>" "/etc/limen/core/x.pr">',
    ]);
  });

  it('makes a fresh dataspace with `dataspace`', async () => {
    const w = world();
    w.run('let ?ds = dataspace $ds <inside> <holder $ds> ? <holder ?d> $d ? <inside> $d <seen>');
    await w.engine.sync();
    const holder = [...w.config.values()][0] as { fields: readonly Value[] };
    const ref = asRef(holder.fields[0]!);
    assert.ok(ref !== undefined);
    assert.deepEqual(sortedText(ref.dataspace.values()), ['<inside>', '<seen>']);
    assert.match(w.show()[0]!, /^<holder #:<dataspace '\/etc\/limen\/test\.pr:1:11'>>$/);
  });

  it('yields the same value for `facet` twice in one facet', async () => {
    const w = world();
    w.run('let ?a = facet let ?b = facet let ?s = stringify $a $a =~ $b <same $s> <different>');
    await w.engine.sync();
    assert.deepEqual(w.show(), ['<same "#:<facet \\"/etc/limen/test.pr\\">">']);
  });
});

describe('running scripts: attenuation', () => {
  it('rewrites, accepts and rejects what is published through an attenuated ref', async () => {
    const w = world();
    w.run(`
      let ?sys = <* $config [<or [
        <rewrite <require-service ?s> <require-core-service $s>>
        <accept <plain ...>>
      ]>]>
      $sys <require-service <x>>
      $sys <plain 1 2>
      $sys <dropped>
      let ?ro = <* $config [<reject <secret ...>>]>
      $ro <secret 1>
      $ro <public>
      <holder <* $config [<accept <only>>]>>
    `);
    await w.engine.sync();
    assert.deepEqual(w.show(), [
      '<holder #:<dataspace config attenuated>>',
      '<plain 1 2>',
      '<public>',
      '<require-core-service <x>>',
    ]);
  });

  it('fills a rewrite template from the bindings in scope and the captures', async () => {
    const w = world();
    w.run(`
      let ?tag = core
      let ?r = <* $config [<rewrite <svc ?s> <tagged $tag $s>>]>
      $r <svc 1>
    `);
    await w.engine.sync();
    assert.deepEqual(w.show(), ['<tagged core 1>']);
  });
});

describe('running scripts: runtime errors', () => {
  it('stops only the facet whose let failed, and logs file:line:col', async () => {
    const w = world();
    const r = w.run(
      `<still-here>
? <go> [
  let <p ?a> = 5
  <never>
]
? <go> <other-reaction>`,
      'boot.pr',
    );
    w.engine.root.assert(w.config.ref, v('<go>'));
    await w.engine.sync();
    assert.deepEqual(w.show(), ['<go>', '<other-reaction>', '<still-here>']);
    assert.equal(r.facet.isAlive, true);
    assert.equal(w.errors.length, 1);
    assert.match(
      w.errors[0]!,
      /^boot\.pr:2:1: facet setup failed: boot\.pr:3:3: let: 5 does not match the pattern$/,
    );
  });

  it("reports a top-level failure to the caller, and discards the file's effects", async () => {
    const w = world();
    const r = w.run('<before>\nlet [?x] = <not-a-list>\n<after>', 'top.pr');
    await w.engine.sync();
    assert.ok(r.error instanceof ScriptRuntimeError);
    assert.equal(r.error.code, 'LIMEN_SCRIPT_RUNTIME');
    assert.deepEqual(r.error.pos && [r.error.pos.line, r.error.pos.column], [2, 1]);
    assert.equal(r.facet.isAlive, false);
    assert.equal(w.config.size, 0);
    assert.match(
      w.errors[0]!,
      /^top\.pr: facet setup failed: top\.pr:2:1: let: <not-a-list> does not match/,
    );
  });

  it('refuses to retarget to a value that is not a ref', async () => {
    const w = world();
    w.run('let ?x = 1 ? <go> $x <a>', 'r.pr');
    w.engine.root.assert(w.config.ref, v('<go>'));
    await w.engine.sync();
    assert.match(w.errors[0]!, /r\.pr:1:19: cannot assert into \$x: it is 1, not a dataspace ref/);
  });

  it('accepts only `stop` on a facet ref', async () => {
    const w = world();
    w.run('let ?f = facet ? <go> $f <a>  ? <go2> $f ! restart  ? <go3> $f ? <x> <y>', 'f.pr');
    for (const g of ['go', 'go2', 'go3']) w.engine.root.assert(w.config.ref, record(g));
    await w.engine.sync();
    assert.equal(w.errors.length, 3);
    assert.match(
      w.errors[0]!,
      /f\.pr:1:23: cannot assert into \$f: it is a facet, which only accepts the message stop/,
    );
    assert.match(
      w.errors[1]!,
      /f\.pr:1:42: \$f is a facet: the only message it accepts is stop \(got restart\)/,
    );
    assert.match(w.errors[2]!, /cannot observe \$f: it is a facet/);
  });

  it('reports join and attenuation misuse', async () => {
    const w = world();
    w.run(
      `? <a> let ?j = join 1 ["x"]
       ? <b> let ?j = join "," "x"
       ? <c> [let ?n = 5 let ?r = <* $n [<accept _>]>]`,
      'j.pr',
    );
    for (const g of ['a', 'b', 'c']) w.engine.root.assert(w.config.ref, record(g));
    await w.engine.sync();
    assert.equal(w.errors.length, 3);
    assert.match(w.errors[0]!, /join: the separator must be a string, not 1/);
    assert.match(w.errors[1]!, /join: the list must be a sequence, not "x"/);
    assert.match(
      w.errors[2]!,
      /\$n is not a dataspace ref, so <\* \$n \.\.\.> cannot attenuate it/,
    );
  });

  it('logs a failing ?- with its position and still stops the facet', async () => {
    const w = world();
    const r = w.run('let ?n = 1\n?- $n <x>\n<a>', 's.pr');
    await w.engine.sync();
    r.facet.stop();
    await w.engine.sync();
    assert.equal(r.facet.isStopped, true);
    assert.equal(w.config.size, 0);
    assert.deepEqual(w.errors, [
      's.pr: stop handler failed: s.pr:2:4: cannot assert into $n: it is 1, not a dataspace ref',
    ]);
  });

  it('passes the loader bindings through as they are (embedded refs)', async () => {
    const w = world();
    w.run('let ?c = $config <copy $c>');
    await w.engine.sync();
    const [copy] = [...w.config.values()] as { fields: readonly Value[] }[];
    assert.equal(asRef(copy!.fields[0]!), w.config.ref);
  });
});

describe('running scripts: budgets', () => {
  /** Runs a script with a budget, collecting what it reports (and the engine logs). */
  function budgeted(text: string, limits: { handles?: number; turns?: number } = {}) {
    const w = world();
    const source = '/etc/limen/loop.pr';
    const r = compileScript(text, { source, names: ['config', 'machine', 'log'] });
    if (r.script === undefined) throw new Error(r.problems.map(formatProblem).join('\n'));
    const problems: string[] = [];
    const run = runScript(
      w.engine.root,
      r.script,
      bindingsOf({ config: w.config.ref, machine: w.machine.ref, log: w.log.ref }),
      { limits, onBudgetExceeded: (p) => problems.push(formatProblem(p)) },
    );
    return { w, run, problems };
  }

  it('stops a message loop at the ?? that loops, with its file:line:col', async () => {
    const { w, run, problems } = budgeted('<kept>\n?? <ping> ! <ping>\n! <ping>');
    await w.engine.sync();
    assert.equal(run.facet.isStopped, true);
    assert.deepEqual(problems, [
      '/etc/limen/loop.pr:2:1: stopped: a chain of more than 100000 turns, each caused by the one before, did not end (a message or assertion loop?)',
    ]);
    assert.equal(w.errors.length, 1);
  });

  it('stops a value that grows each turn at 256 levels, where it is built, and only that facet', async () => {
    const { w, run, problems } = budgeted(
      '?? <grow ?n> [ <grown $n> ! <grow <s $n>> ]\n! <grow z>',
    );
    await w.engine.sync();
    // The reaction that went over stopped; the file's facet and what earlier messages built stay.
    assert.equal(run.facet.isAlive, true);
    assert.deepEqual(problems, [
      '/etc/limen/loop.pr:1:27: stopped: a value nested more than 256 levels deep (one that grows each turn?)',
    ]);
    assert.equal(w.config.size, 255);
  });

  it('stops a value that doubles each turn at 1 MiB written out, long before it is deep', async () => {
    // Each turn's value holds the last one twice: a few objects in memory, 2^n bytes in
    // every reply, log line and comparison (and, unchecked, a walk that never ends).
    const { w, run, problems } = budgeted(
      '?? <dbl ?n> [ <d $n> ! <dbl [$n $n]> ]\n! <dbl "0123456789">',
    );
    await w.engine.sync();
    assert.equal(run.facet.isAlive, true);
    assert.equal(problems.length, 1, problems.join('\n'));
    assert.match(
      problems[0]!,
      /^\/etc\/limen\/loop\.pr:1:22: stopped: a value larger than 1 MiB written out \(\d+ bytes; one that doubles each turn\?\)$/,
    );
    assert.ok(w.config.size > 10 && w.config.size < 20, `${w.config.size} values`);
  });

  it('stops a reaction that asserts too much at the assertion, and keeps the rest', async () => {
    const { w, run, problems } = budgeted(
      '<a 1> <a 2>\n?? <add ?n> <b $n>\n! <add 1> ! <add 2> ! <add 3>',
      { handles: 4 },
    );
    await w.engine.sync();
    assert.equal(run.facet.isAlive, true);
    assert.deepEqual(w.show(), ['<a 1>', '<a 2>', '<b 1>']);
    assert.deepEqual(problems, [
      '/etc/limen/loop.pr:2:13: stopped: more than 4 assertions and observations held at once by one script',
    ]);
  });

  it('fails the setup, not a report, when the top level itself goes over', async () => {
    const { w, run, problems } = budgeted('<a 1>\n<a 2>\n<a 3>', { handles: 2 });
    await w.engine.sync();
    assert.ok(run.error instanceof BudgetExceededError);
    assert.equal(run.error.pos?.line, 3);
    assert.equal(run.facet.isStopped, true);
    assert.equal(w.config.size, 0);
    assert.deepEqual(problems, []);
  });
});
