// The virtual-links driver (src/net/virtual-links.ts) against stand-ins for `ip`
// and `wg` (fake-link-tools.mjs; this kernel has neither VLAN nor WireGuard, which
// test/vm/links.test.ts tests for real): when links are created, what is left
// alone, what is deleted, and that a key reaches `wg` through a descriptor and
// never a command line.

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from '../../../src/preserves/index.ts';
import { Dataspace, P, type Engine, type Handle } from '../../../src/dataspace/index.ts';
import { startVirtualLinks, type VirtualLinks } from '../../../src/net/virtual-links.ts';
import { until } from '../../support/until.ts';
import { checkedEngine } from '../../support/engine-log.ts';

const fake = join(dirname(fileURLToPath(import.meta.url)), 'fake-link-tools.mjs');
const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
const uid = process.getuid?.() ?? 0;
const PRIVATE = Buffer.alloc(32, 9).toString('base64');
const PUB1 = Buffer.alloc(32, 1).toString('base64');
const PUB2 = Buffer.alloc(32, 2).toString('base64');

interface FakeLink {
  ifname: string;
  ifalias?: string;
  peers?: string[];
  keyDigest?: string;
  port?: number;
}

class World {
  readonly dir = mkdtempSync(join(tmpdir(), 'limen-links-'));
  readonly config: Dataspace;
  readonly machine: Dataspace;
  readonly driver: VirtualLinks;
  readonly engine: Engine;

  constructor(engine: Engine, o: { links?: object[]; settled?: Promise<void> } = {}) {
    dirs.push(this.dir);
    if (o.links !== undefined) writeFileSync(join(this.dir, 'links.json'), JSON.stringify(o.links));
    this.engine = engine;
    this.config = new Dataspace(engine, 'config');
    this.machine = new Dataspace(engine, 'machine');
    const tool = (t: string) => [process.execPath, fake, t, this.dir];
    this.driver = startVirtualLinks(engine.root, {
      config: this.config.ref,
      machine: this.machine.ref,
      ip: tool('ip'),
      wg: tool('wg'),
      keyOwner: uid,
      ...(o.settled === undefined ? {} : { settled: o.settled }),
    });
  }

  assert(text: string, where: 'config' | 'machine' = 'config'): Handle {
    let h!: Handle;
    const ds = where === 'config' ? this.config : this.machine;
    this.engine.turn(() => (h = this.engine.root.assert(ds.ref, parse(text))));
    return h;
  }

  retract(h: Handle): void {
    this.engine.turn(() => this.engine.root.retract(h));
  }

  links(): FakeLink[] {
    const f = join(this.dir, 'links.json');
    return existsSync(f) ? (JSON.parse(readFileSync(f, 'utf8')) as FakeLink[]) : [];
  }

  link(name: string): FakeLink | undefined {
    return this.links().find((l) => l.ifname === name);
  }

  argv(): string {
    const f = join(this.dir, 'argv.log');
    return existsSync(f) ? readFileSync(f, 'utf8') : '';
  }

  /** The `<LABEL "NAME" …>` records in $config, as text. */
  seen(label: string): string[] {
    return this.config.query(P.rec(label)).map((m) => stringify(m.value));
  }

  async until(label: string, re: RegExp): Promise<string> {
    const found = await until(() => this.seen(label).find((s) => re.test(s)), {
      timeoutMs: 10_000,
      describe: () => `${label} ${String(re)}; seen: ${this.seen(label).join(' ')}`,
    });
    return found;
  }
}

const VLAN = '<vlan "wan0.7" {parent: "wan0" id: 7}>';
const WAN0 = '<interface "wan0" 2 normal up up carrier "02:00:00:00:00:01">';

function keyFile(dir: string, mode = 0o600): string {
  const p = join(dir, 'wg0.key');
  writeFileSync(p, `${PRIVATE}\n`, { mode });
  return p;
}

const wireguard = (key: string, peers: string) =>
  `<wireguard "wg0" {private-key-file: "${key}" listen-port: 51820 addresses: ["10.9.0.1/24"] peers: [${peers}]}>`;

describe('virtual links', () => {
  it('creates a VLAN once the kernel and the parent are there, and deletes it when retracted', async (t) => {
    const w = new World(checkedEngine(t).engine);
    const spec = w.assert(VLAN);
    await w.until('link-state', /waiting "the kernel has no 802\.1Q VLAN support/);
    w.assert('<kernel-feature vlan present>', 'machine');
    await w.until('link-state', /waiting "parent wan0 does not exist"/);
    w.assert(WAN0, 'machine');
    await w.until('link-state', /<link-state "wan0\.7" vlan created "">/);
    assert.equal(w.link('wan0.7')?.ifalias, 'limen');
    w.retract(spec);
    await until(() => w.link('wan0.7') === undefined && w.seen('link-state').length === 0);
    await w.driver.whenIdle();
  });

  it('leaves alone a link of that name that limen did not create', async (t) => {
    const foreign = {
      ifindex: 5,
      ifname: 'wan0.7',
      link: 'wan0',
      linkinfo: { info_kind: 'vlan', info_data: { id: 7 } },
    };
    const w = new World(checkedEngine(t).engine, { links: [foreign] });
    w.assert('<kernel-feature vlan present>', 'machine');
    w.assert(WAN0, 'machine');
    const spec = w.assert(VLAN);
    await w.until(
      'vlan-error',
      /"wan0\.7" "wan0\.7 exists \(a vlan link\) and limen did not create it/,
    );
    w.retract(spec);
    await until(() => w.seen('vlan-error').length === 0);
    await w.driver.whenIdle();
    assert.ok(w.link('wan0.7') !== undefined, 'still there');
    assert.doesNotMatch(w.argv(), /link del/);
  });

  it('reports every problem of an invalid spec, and a conflict between two specs', async (t) => {
    const w = new World(checkedEngine(t).engine);
    const bad = w.assert('<vlan "wan0.9" {parent: "wan0" id: 5000}>');
    await w.until('vlan-error', /id must be a whole number from 1 to 4094/);
    w.retract(bad);
    await until(() => w.seen('vlan-error').length === 0);
    w.assert(VLAN);
    w.assert('<vlan "wan0.7" {parent: "wan0" id: 8}>');
    await w.until('vlan-error', /another vlan spec for wan0\.7 is in force/);
  });

  it('keys and peers a WireGuard link through descriptors, and provides its addresses and routes', async (t) => {
    const w = new World(checkedEngine(t).engine);
    w.assert('<kernel-feature wireguard present>', 'machine');
    const key = keyFile(w.dir);
    const first = w.assert(wireguard(key, `{public-key: "${PUB1}" allowed-ips: ["10.9.0.2"]}`));
    await w.until('link-state', /<link-state "wg0" wireguard created "">/);
    const link = w.link('wg0')!;
    assert.equal(link.keyDigest, createHash('sha256').update(PRIVATE).digest('hex'));
    assert.deepEqual(link.peers, [PUB1]);
    assert.match(w.argv(), /"private-key","\/proc\/self\/fd\/3"/);
    assert.ok(!w.argv().includes(PRIVATE), 'the key is on no command line');
    await w.until('ip-address', /<ip-address "wg0" "10\.9\.0\.1\/24" \{\}>/);
    await w.until('ip-route', /<ip-route ipv4 "10\.9\.0\.2\/32" \{dev: "wg0" metric: 50\}>/);
    // A new spec (the file edited): peers replaced in place, the old one removed.
    const second = w.assert(wireguard(key, `{public-key: "${PUB2}" allowed-ips: ["10.9.0.3"]}`));
    w.retract(first);
    await until(() => w.link('wg0')?.peers?.join() === PUB2);
    await w.until('ip-route', /"10\.9\.0\.3\/32"/);
    assert.match(w.argv(), new RegExp(`"peer","${PUB1.replace(/[+/]/g, '.')}","remove"`));
    w.retract(second);
    await until(() => w.link('wg0') === undefined && w.seen('ip-address').length === 0);
    assert.deepEqual(w.seen('ip-route'), []);
  });

  it('refuses a key file others can read, and creates nothing', async (t) => {
    const w = new World(checkedEngine(t).engine);
    w.assert('<kernel-feature wireguard present>', 'machine');
    const key = keyFile(w.dir, 0o644);
    w.assert(wireguard(key, `{public-key: "${PUB1}" allowed-ips: ["10.9.0.2"]}`));
    await w.until(
      'wireguard-error',
      /wg0\.key can be read or written by others \(mode 0644\): chmod 600 it/,
    );
    await w.driver.whenIdle();
    assert.equal(w.link('wg0'), undefined);
    assert.deepEqual(w.seen('ip-address'), []);
  });

  it('keeps links when the driver stops, and deletes only its own leftovers once settled', async (t) => {
    const engine = checkedEngine(t).engine;
    const ours = {
      ifindex: 7,
      ifname: 'wg9',
      ifalias: 'limen',
      linkinfo: { info_kind: 'wireguard' },
    };
    const theirs = { ifindex: 8, ifname: 'wg8', linkinfo: { info_kind: 'wireguard' } };
    let settle!: () => void;
    const settled = new Promise<void>((r) => (settle = r));
    const w = new World(engine, { links: [ours, theirs], settled });
    w.assert('<kernel-feature vlan present>', 'machine');
    w.assert(WAN0, 'machine');
    w.assert(VLAN);
    await w.until('link-state', /created/);
    settle();
    await until(() => w.link('wg9') === undefined);
    assert.ok(w.link('wg8') !== undefined, 'a link limen did not make stays');
    engine.turn(() => w.driver.stop());
    await w.driver.closed;
    assert.ok(w.link('wan0.7') !== undefined, 'a stop deletes nothing');
  });
});
