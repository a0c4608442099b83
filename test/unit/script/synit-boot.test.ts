import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse, record, stringify, sym, type Value } from '../../../src/preserves/index.ts';
import { P } from '../../../src/dataspace/index.ts';
import { until } from '../../support/until.ts';
import { T0, world } from './world.ts';

const bootFile = fileURLToPath(new URL('../../fixtures/scripts/synit/boot.pr', import.meta.url));
const boot = readFileSync(bootFile, 'utf8');
const v = (text: string): Value => parse(text);

/** A world running the boot script; the clock ticks a second per reading, so execs differ. */
function booted(extra = '') {
  let t = T0;
  const w = world({ now: () => (t += 1000) });
  const r = w.run(boot + extra, bootFile);
  assert.equal(r.error, undefined);
  const execs: string[] = [];
  w.engine.root.observe(w.config.ref, P.rec('exec', P._), {
    onMessage: (m) => execs.push(stringify(m)),
  });
  /** Waits for quiescence, failing (instead of hanging) if a message loop keeps it busy. */
  const settle = () =>
    until(w.engine.sync(), {
      timeoutMs: 2000,
      describe: () => `quiescence (${execs.length} execs)`,
    });
  /** The facets of running execs (started by the `??` on line 4). */
  const running = () => r.facet.children.filter((f) => f.origin === `${bootFile}:4:1`).length;
  return { ...w, script: r.facet, execs, settle, running };
}

function daemonId(shown: string[]): string {
  const d = shown.find((s) => s.startsWith('<daemon '));
  assert.ok(d, `a <daemon ...> assertion in ${shown.join(' ')}`);
  return d.slice('<daemon '.length, d.indexOf('> {') + 1);
}

describe('the Synit boot layer example', () => {
  it('turns `! <exec argv policy>` into a temporary daemon', async () => {
    const w = booted();
    w.engine.root.send(w.config.ref, v('<exec ["true"] on-error>'));
    await w.settle();
    assert.deepEqual(w.show(), [
      '<daemon <temporary-exec "2024-01-02T03:04:06.000Z" ["true"]> {argv: ["true"] readyOnStart: #f restart: on-error}>',
      '<run-service <daemon <temporary-exec "2024-01-02T03:04:06.000Z" ["true"]>>>',
    ]);
  });

  it('handles `! <exec argv>` once, as <exec argv on-error>, without looping', async () => {
    const w = booted();
    w.engine.root.send(w.config.ref, v('<exec ["sleep" "1"]>'));
    await w.settle();
    assert.equal(w.execs.length, 2, 'the message and its one re-send');
    const shown = w.show();
    assert.equal(shown.filter((s) => s.startsWith('<run-service ')).length, 1, 'one daemon');
    assert.match(daemonId(shown), /^<temporary-exec "[^"]+" \["sleep" "1"\]>$/);
    assert.match(
      shown.find((s) => s.startsWith('<daemon '))!,
      /restart: on-error\}>$/,
    );
  });

  it('retracts the daemon when it completes or fails, and stops only that exec', async () => {
    const w = booted();
    w.engine.root.send(w.config.ref, v('<exec ["a"] never>'));
    await w.settle();
    w.engine.root.send(w.config.ref, v('<exec ["b"] never>'));
    await w.settle();
    assert.equal(w.running(), 2, 'one facet per exec');
    const [a, b] = w
      .show()
      .filter((s) => s.startsWith('<run-service '))
      .map((s) => v(s) as unknown as { fields: readonly Value[] })
      .map((r) => r.fields[0]!);
    const aState = w.engine.root.assert(w.config.ref, record('service-state', a!, sym('complete')));
    await w.settle();
    const shown = w.show();
    assert.ok(!shown.some((s) => s.includes('["a"]') && /^<(daemon|run-service) /.test(s)));
    assert.ok(shown.some((s) => s.includes('["b"]') && s.startsWith('<run-service ')));
    assert.ok(w.config.has(record('service-state', a!, sym('up'))), 'complete synthesizes up');
    assert.equal(w.running(), 1);
    w.engine.root.assert(w.config.ref, record('service-state', b!, sym('failed')));
    await w.settle();
    assert.equal(w.running(), 0);
    assert.ok(!w.show().some((s) => /^<(daemon|run-service) /.test(s)));
    w.engine.root.retract(aState);
    await w.settle();
    assert.ok(!w.config.has(record('service-state', a!, sym('up'))), 'up follows complete');
    assert.deepEqual(w.errors, []);
  });

  it('synthesizes <service-state X up> from ready', async () => {
    const w = booted();
    const h = w.engine.root.assert(w.config.ref, v('<service-state <daemon sshd> ready>'));
    await w.settle();
    assert.ok(w.config.has(v('<service-state <daemon sshd> up>')));
    w.engine.root.retract(h);
    await w.settle();
    assert.ok(!w.config.has(v('<service-state <daemon sshd> up>')));
  });

  it('rewrites <require-service X> to <require-core-service X> through $sys', async () => {
    const w = booted('\n$sys <require-service <daemon sshd>>\n$sys <other 1>\n');
    await w.settle();
    assert.deepEqual(w.show(), ['<other 1>', '<require-core-service <daemon sshd>>']);
  });
});
