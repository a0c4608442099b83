// Namespaces, veth pairs and small peer programs for the LAN and firewall
// tests. Everything made here is registered for cleanup (namespaces deleted,
// processes killed) when the test ends, whether it passed or not; names carry
// a random suffix so parallel runs do not collide.

import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { TestContext } from 'node:test';
import { testLink } from '../../support/names.ts';
import { prerequisites } from '../../support/prerequisites.ts';
import { until } from '../../support/until.ts';

/** Why these tests cannot run here, or false (in CI: a failure, see prerequisites.ts). */
export function skipReason(programs: readonly string[]): string | false {
  return prerequisites({ netns: true, programs });
}

export function suffix(): string {
  return randomBytes(3).toString('hex');
}

export function run(argv: readonly string[]): string {
  return execFileSync(argv[0]!, argv.slice(1), {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** Runs argv inside namespace ns; returns stdout, throws on failure. */
export function inNs(ns: string, argv: readonly string[]): string {
  return run(['ip', 'netns', 'exec', ns, ...argv]);
}

/** Like inNs but never throws: the exit status and both streams. */
export function tryInNs(
  ns: string,
  argv: readonly string[],
  timeoutMs = 10_000,
): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('ip', ['netns', 'exec', ns, ...argv], {
    encoding: 'utf8',
    timeout: timeoutMs,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Creates a namespace (loopback up) that is deleted when the test ends. */
export function netns(t: TestContext, name: string): string {
  run(['ip', 'netns', 'add', name]);
  t.after(() => {
    spawnSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
  });
  run(['ip', '-n', name, 'link', 'set', 'lo', 'up']);
  return name;
}

export interface VethEnd {
  readonly ns: string;
  readonly name: string;
  /** "ADDR/LEN", if any. */
  readonly address?: string;
  readonly mac?: string;
}

/** A veth pair between two namespaces, both ends up (deleted with the namespaces). */
export function veth(a: VethEnd, b: VethEnd): void {
  const tmpA = testLink();
  const tmpB = testLink();
  run([
    'ip',
    'link',
    'add',
    tmpA,
    'netns',
    a.ns,
    'type',
    'veth',
    'peer',
    'name',
    tmpB,
    'netns',
    b.ns,
  ]);
  for (const [end, tmp] of [
    [a, tmpA],
    [b, tmpB],
  ] as const) {
    run(['ip', '-n', end.ns, 'link', 'set', tmp, 'name', end.name]);
    if (end.mac !== undefined)
      run(['ip', '-n', end.ns, 'link', 'set', end.name, 'address', end.mac]);
    if (end.address !== undefined)
      run(['ip', '-n', end.ns, 'addr', 'add', end.address, 'dev', end.name]);
    run(['ip', '-n', end.ns, 'link', 'set', end.name, 'up']);
  }
}

/** A long-running program inside a namespace, killed when the test ends. */
export function spawnInNs(t: TestContext, ns: string, argv: readonly string[]): Peer {
  const child = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
  const peer = new Peer(child);
  t.after(() => peer.kill());
  return peer;
}

export class Peer {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  constructor(child: ChildProcess) {
    this.child = child;
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (this.stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
  }
  async waitFor(text: string, timeoutMs = 5000): Promise<void> {
    await until(() => this.stdout.includes(text) || this.child.exitCode !== null, {
      timeoutMs,
      describe: () => `'${text}' from a peer; stdout ${this.stdout}; stderr ${this.stderr}`,
    });
    if (!this.stdout.includes(text))
      throw new Error(`peer exited (${String(this.child.exitCode)}): ${this.stderr}`);
  }
  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}

/**
 * A TCP server (plain Node, no tsx) that tells each client the address it saw the
 * connection come from, then closes it. Prints "listening" once it listens. With
 * `countBytes`, it first reads until the client has sent everything (an upload,
 * see tcpAsk) and tells "ADDRESS BYTES".
 */
export function peerAddressServer(
  t: TestContext,
  ns: string,
  host: string,
  port: number,
  { countBytes = false }: { readonly countBytes?: boolean } = {},
): Peer {
  const answer = countBytes
    ? `let n = 0; c.on('data', (d) => (n += d.length));` +
      `c.on('end', () => c.end(c.remoteAddress + ' ' + n + '\\n'));`
    : `c.end(c.remoteAddress + '\\n');`;
  const code =
    `const s = require('node:net').createServer({ allowHalfOpen: true }, (c) => { ${answer} });` +
    `s.listen(${port}, ${JSON.stringify(host)}, () => console.log('listening'));`;
  return spawnInNs(t, ns, [process.execPath, '-e', code]);
}

/**
 * Connects once (bounded by timeoutMs of silence) and returns what the server said,
 * or an error text. With `upload`, it first sends that many bytes and ends its side.
 */
export function tcpAsk(
  ns: string,
  host: string,
  port: number,
  timeoutMs = 3000,
  upload = 0,
): string {
  const code =
    `const c = require('node:net').connect(${port}, ${JSON.stringify(host)});` +
    (upload > 0 ? `c.on('connect', () => c.end(Buffer.alloc(${upload})));` : '') +
    `let out = ''; c.setEncoding('utf8'); c.on('data', (d) => (out += d));` +
    `c.setTimeout(${timeoutMs}, () => { console.log('timeout'); process.exit(2); });` +
    `c.on('end', () => { console.log(out.trim()); process.exit(0); });` +
    `c.on('error', (e) => { console.log('error ' + e.code); process.exit(1); });`;
  return tryInNs(ns, [process.execPath, '-e', code], timeoutMs + 5000).stdout.trim();
}
