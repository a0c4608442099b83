import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Dataspace, type Handle } from '../../../src/dataspace/index.ts';
import { parse, stringify } from '../../../src/preserves/index.ts';
import { startSysctl, sysctlInterface, sysctlPath } from '../../../src/net/sysctl.ts';
import { checkedEngine } from '../../support/engine-log.ts';

function setup(t: TestContext) {
  const root = mkdtempSync(join(tmpdir(), 'limen-sysctl-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const file = (key: string, value?: string) => {
    const p = join(root, key.replace(/\./g, '/'));
    if (value !== undefined) {
      mkdirSync(dirname(p), { recursive: true });
      writeFileSync(p, value + '\n');
    }
    return p;
  };
  const engine = checkedEngine().engine;
  const config = new Dataspace(engine, 'config');
  const machine = new Dataspace(engine, 'machine');
  engine.turn(() => startSysctl(engine.root, { config: config.ref, machine: machine.ref, root }));
  const assertIn = async (ds: Dataspace, text: string): Promise<Handle> => {
    let h!: Handle;
    engine.turn(() => (h = engine.root.assert(ds.ref, parse(text))));
    await engine.sync();
    return h;
  };
  const retract = async (h: Handle) => {
    engine.turn(() => engine.root.retract(h));
    await engine.sync();
  };
  const errors = () =>
    [...config.values()].map((v) => stringify(v)).filter((s) => s.startsWith('<sysctl-error'));
  return { root, file, config, machine, assertIn, retract, errors, engine };
}

const read = (p: string) => readFileSync(p, 'utf8').trim();

describe('sysctl driver', () => {
  it('maps keys to paths', () => {
    assert.equal(sysctlPath('net.ipv4.ip_forward'), 'net/ipv4/ip_forward');
    assert.equal(
      sysctlPath('net/ipv4/conf/eth0.100/forwarding'),
      'net/ipv4/conf/eth0.100/forwarding',
    );
    assert.ok(typeof sysctlPath('net/../../etc/passwd') !== 'string');
    assert.ok(typeof sysctlPath('forwarding') !== 'string');
    assert.equal(sysctlInterface('net/ipv6/conf/wan0/accept_ra'), 'wan0');
    assert.equal(sysctlInterface('net/ipv6/conf/all/forwarding'), undefined);
  });

  it('sets a value and restores the previous one when retracted', async (t) => {
    const s = setup(t);
    const p = s.file('net.ipv4.ip_forward', '0');
    const h = await s.assertIn(s.config, '<sysctl "net.ipv4.ip_forward" "1">');
    assert.equal(read(p), '1');
    await s.retract(h);
    assert.equal(read(p), '0');
    const n = await s.assertIn(s.config, '<sysctl "net.ipv4.ip_forward" 1>');
    assert.equal(read(p), '1', 'an integer value is written in decimal');
    await s.retract(n);
    assert.equal(read(p), '0');
  });

  it('keeps the first of two conflicting values and says so', async (t) => {
    const s = setup(t);
    const p = s.file('net.ipv4.ip_forward', '0');
    const a = await s.assertIn(s.config, '<sysctl "net.ipv4.ip_forward" "1">');
    const b = await s.assertIn(s.config, '<sysctl "net.ipv4.ip_forward" "2">');
    assert.equal(read(p), '1');
    assert.deepEqual(s.errors(), [
      '<sysctl-error "net.ipv4.ip_forward" "conflicting values: keeping \\"1\\", ignoring \\"2\\"">',
    ]);
    // The first goes: the other one is now in force, and the conflict is over.
    await s.retract(a);
    assert.equal(read(p), '2');
    assert.deepEqual(s.errors(), []);
    await s.retract(b);
    assert.equal(read(p), '0', 'the value from before limen is back');
  });

  it('reports a key that does not exist or is malformed', async (t) => {
    const s = setup(t);
    const h = await s.assertIn(s.config, '<sysctl "net.ipv4.no_such_thing" "1">');
    assert.deepEqual(s.errors(), [
      '<sysctl-error "net.ipv4.no_such_thing" "no such kernel parameter">',
    ]);
    await s.retract(h);
    assert.deepEqual(s.errors(), []);
    const bad = await s.assertIn(s.config, '<sysctl "../x" [1]>');
    assert.equal(s.errors().length, 1);
    assert.match(s.errors()[0]!, /is not a sysctl key.*VALUE must be a string or an integer/);
    await s.retract(bad);
    assert.deepEqual(s.errors(), []);
  });

  it('writes a per-interface key when the interface appears, and again when it is recreated', async (t) => {
    const s = setup(t);
    const h = await s.assertIn(s.config, '<sysctl "net.ipv6.conf.wan0.accept_ra" "2">');
    assert.deepEqual(s.errors(), [
      '<sysctl-error "net.ipv6.conf.wan0.accept_ra" "waiting for interface wan0">',
    ]);
    const p = s.file('net.ipv6.conf.wan0.accept_ra', '1');
    const iface = await s.assertIn(
      s.machine,
      '<interface "wan0" 7 normal up up carrier "02:00:00:00:00:07">',
    );
    assert.equal(read(p), '2');
    assert.deepEqual(s.errors(), []);
    // The interface goes away, and comes back with the kernel's default.
    unlinkSync(p);
    await s.retract(iface);
    assert.deepEqual(s.errors(), [
      '<sysctl-error "net.ipv6.conf.wan0.accept_ra" "waiting for interface wan0">',
    ]);
    s.file('net.ipv6.conf.wan0.accept_ra', '1');
    await s.assertIn(s.machine, '<interface "wan0" 8 normal up up carrier "02:00:00:00:00:08">');
    assert.equal(read(p), '2');
    await s.retract(h);
    assert.equal(read(p), '1');
  });
});
