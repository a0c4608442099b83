// The test side of harness-monitor.ts: network namespaces that clean up after
// themselves, `ip` in them, and a running harness whose published assertions
// are mirrored here (a multiset per dataspace) so that tests can wait on them.

import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { TestContext } from 'node:test';
import {
  Record as PRecord,
  Sym,
  parse,
  peel,
  stringify,
  sym,
  type Dict,
  type Value,
} from '../../../src/preserves/index.ts';
import type { LogFields } from '../../../src/dataspace/index.ts';
import { RecordingLogger, type LogLevel } from '../../support/engine-log.ts';
import { testNamespace } from '../../support/names.ts';
import { until } from '../../support/until.ts';

const harnessPath = fileURLToPath(new URL('./harness-monitor.ts', import.meta.url));
const packageRoot = fileURLToPath(new URL('../../../', import.meta.url));

/** Runs `ip ARGS` in the namespace; returns stdout. */
export function ip(ns: string, ...args: string[]): string {
  return execFileSync('ip', ['-n', ns, ...args], { encoding: 'utf8' });
}

export function ipJson<T = unknown>(ns: string, ...args: string[]): T {
  return JSON.parse(ip(ns, '-json', ...args) || '[]') as T;
}

/** Feeds many `ip` commands at once (ip -batch). */
export function ipBatch(ns: string, lines: readonly string[]): void {
  execFileSync('ip', ['-n', ns, '-force', '-batch', '-'], { input: lines.join('\n') + '\n' });
}

/** A fresh namespace with loopback up, deleted when the test ends. */
export function netns(t: TestContext): string {
  const ns = testNamespace();
  execFileSync('ip', ['netns', 'add', ns]);
  t.after(() => {
    try {
      execFileSync('ip', ['netns', 'del', ns]);
    } catch {
      // already gone
    }
  });
  ip(ns, 'link', 'set', 'lo', 'up');
  return ns;
}

export interface LogLine {
  readonly level: string;
  readonly message: string;
  readonly fields?: unknown;
}

export class Harness {
  readonly child: ChildProcess;
  /** Published assertions, by dataspace, as Preserves text with their counts. */
  readonly ds = { config: new Map<string, number>(), machine: new Map<string, number>() };
  readonly logs: LogLine[] = [];
  /** The same lines, checked when the test ends: an unexpected error fails it. */
  readonly engineLog = new RecordingLogger();
  readonly replies = new Map<number, Record<string, unknown>>();
  readonly done = new Set<number>();
  readonly stderr: string[] = [];
  isReady = false;
  exited: Promise<number | null>;
  #nextId = 1;

  constructor(ns: string, args: readonly string[]) {
    this.child = spawn(
      'ip',
      ['netns', 'exec', ns, process.execPath, '--import', 'tsx', harnessPath, ...args],
      { cwd: packageRoot, stdio: ['pipe', 'pipe', 'pipe'] },
    );
    this.exited = new Promise((resolve) => this.child.on('exit', (code) => resolve(code)));
    createInterface({ input: this.child.stderr! }).on('line', (l) => this.stderr.push(l));
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      const m = JSON.parse(line) as {
        ev: string;
        ds?: 'config' | 'machine';
        v?: string;
        req?: number;
      };
      switch (m.ev) {
        case '+': {
          const d = this.ds[m.ds!];
          d.set(m.v!, (d.get(m.v!) ?? 0) + 1);
          break;
        }
        case '-': {
          const d = this.ds[m.ds!];
          const n = (d.get(m.v!) ?? 0) - 1;
          if (n <= 0) d.delete(m.v!);
          else d.set(m.v!, n);
          break;
        }
        case 'ready':
          this.isReady = true;
          break;
        case 'reply':
          this.replies.set(m.req!, m);
          break;
        case 'done':
          this.done.add(m.req!);
          break;
        case 'log': {
          const l = m as unknown as LogLine;
          this.logs.push(l);
          this.engineLog.record(l.level as LogLevel, l.message, l.fields as LogFields | undefined);
          break;
        }
      }
    });
  }

  /** Starts a harness in the namespace and waits for its first dump. */
  static async start(t: TestContext, ns: string, args: readonly string[]): Promise<Harness> {
    const h = new Harness(ns, args);
    t.after(() => h.kill());
    t.after(() => h.engineLog.check());
    await until(() => h.isReady, {
      timeoutMs: 20_000,
      describe: () => `harness ready; stderr: ${h.stderr.join('\n')}`,
    });
    return h;
  }

  send(cmd: object): void {
    this.child.stdin!.write(JSON.stringify(cmd) + '\n');
  }

  /** Asserts a value (Preserves text) into a dataspace; resolves with its id once the turn ran. */
  async assert(text: string, ds: 'config' | 'machine' = 'config'): Promise<number> {
    const id = this.#nextId++;
    this.send({ cmd: 'assert', id, req: id, ds, v: text });
    await until(() => this.done.has(id), { describe: () => `assert ${text}` });
    return id;
  }

  async retract(id: number): Promise<void> {
    const req = this.#nextId++;
    this.send({ cmd: 'retract', id, req });
    await until(() => this.done.has(req), { describe: () => `retract ${id}` });
  }

  async request(cmd: object, timeoutMs = 5000): Promise<Record<string, unknown>> {
    const id = this.#nextId++;
    this.send({ ...cmd, req: id });
    return until(() => this.replies.get(id), {
      timeoutMs,
      describe: () => `reply to ${JSON.stringify(cmd)}`,
    });
  }

  /** Published values of a dataspace whose label is `label`, parsed. */
  values(ds: 'config' | 'machine', label: string): PRecord[] {
    const out: PRecord[] = [];
    for (const text of this.ds[ds].keys()) {
      if (!text.startsWith(`<${label} `) && text !== `<${label}>`) continue;
      const v = peel(parse(text));
      if (v instanceof PRecord) out.push(v);
    }
    return out;
  }

  /** Published values (Preserves text) that start with `prefix`. */
  texts(ds: 'config' | 'machine', prefix: string): string[] {
    return [...this.ds[ds].keys()].filter((t) => t.startsWith(prefix));
  }

  has(ds: 'config' | 'machine', text: string): boolean {
    return this.ds[ds].has(text);
  }

  async exit(): Promise<void> {
    this.send({ cmd: 'exit' });
    await until(this.exited, { timeoutMs: 10_000, describe: () => 'harness exit' });
  }

  /** The harness and its netlink helper process(es). */
  #family(): number[] {
    const pid = this.child.pid!;
    const kids = readdirSync('/proc')
      .filter((n) => /^[0-9]+$/.test(n))
      .filter((n) => {
        try {
          const stat = readFileSync(`/proc/${n}/stat`, 'utf8');
          return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid;
        } catch {
          return false;
        }
      })
      .map(Number);
    return [pid, ...kids];
  }

  /** Freezes the harness and its netlink helper (SIGSTOP), so the kernel's queue fills up. */
  pause(): void {
    for (const p of this.#family()) process.kill(p, 'SIGSTOP');
  }

  resume(): void {
    for (const p of this.#family()) process.kill(p, 'SIGCONT');
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      // Its helper exits when the harness's end of the pipe closes.
      for (const p of this.#family()) {
        try {
          process.kill(p, 'SIGCONT');
        } catch {
          // gone already
        }
      }
      this.child.kill('SIGKILL');
    }
  }
}

// ---- What the kernel says, through iproute2, in the monitor's terms ------------------------

function str(v: Value | undefined): string {
  const x = v === undefined ? undefined : peel(v);
  if (typeof x === 'string') return x;
  if (x === false) return '#f';
  if (x instanceof Sym) return x.name;
  return x === undefined ? '' : typeof x === 'number' ? String(x) : stringify(x);
}

/** "name index admin oper mac" for every link. */
export function kernelInterfaces(ns: string): string[] {
  const links = ipJson<
    { ifname: string; ifindex: number; flags: string[]; operstate: string; address?: string }[]
  >(ns, 'link');
  const oper = (s: string) => (s === 'LOWERLAYERDOWN' ? 'lower-layer-down' : s.toLowerCase());
  return links
    .map(
      (l) =>
        `${l.ifname} ${l.ifindex} ${l.flags.includes('UP') ? 'up' : 'down'} ${oper(l.operstate)} ${l.address ?? ''}`,
    )
    .sort();
}

export function publishedInterfaces(h: Harness): string[] {
  return h
    .values('machine', 'interface')
    .map((r) => {
      const f = r.fields;
      return `${str(f[0])} ${str(f[1])} ${str(f[3])} ${str(f[4])} ${str(f[6])}`;
    })
    .sort();
}

/** "name family address/len scope" for every address. */
export function kernelAddresses(ns: string): string[] {
  const links = ipJson<
    {
      ifname: string;
      addr_info: { family: string; local: string; prefixlen: number; scope: string }[];
    }[]
  >(ns, 'addr');
  const out: string[] = [];
  for (const l of links)
    for (const a of l.addr_info)
      out.push(
        `${l.ifname} ${a.family === 'inet6' ? 'ipv6' : 'ipv4'} ${a.local}/${a.prefixlen} ${a.scope}`,
      );
  return out.sort();
}

export function publishedAddresses(h: Harness): string[] {
  return h
    .values('machine', 'address')
    .map((r) => {
      const f = r.fields;
      const scope = (peel(f[4]!) as Dict).get(sym('scope'));
      return `${str(f[0])} ${str(f[1])} ${str(f[2])}/${str(f[3])} ${str(scope)}`;
    })
    .sort();
}

interface IpRoute {
  type?: string;
  dst: string;
  gateway?: string;
  dev?: string;
  table?: string;
  metric?: number;
  flags: string[];
  nexthops?: unknown[];
}

/** "family dest priority table ifname gateway" for every published kind of route. */
export function kernelRoutes(ns: string): string[] {
  const out: string[] = [];
  for (const [fam, flag] of [
    ['ipv4', '-4'],
    ['ipv6', '-6'],
  ] as const) {
    for (const r of ipJson<IpRoute[]>(ns, flag, 'route', 'show', 'table', 'all')) {
      if ((r.type ?? 'unicast') !== 'unicast' || r.table === 'local') continue;
      const max = fam === 'ipv4' ? 32 : 128;
      const dest = r.dst === 'default' || r.dst.includes('/') ? r.dst : `${r.dst}/${max}`;
      out.push(
        `${fam} ${dest} ${r.metric ?? 0} ${r.table ?? 'main'} ${r.dev ?? '#f'} ${r.gateway ?? '#f'}`,
      );
    }
  }
  return out.sort();
}

export function publishedRoutes(h: Harness): string[] {
  return h
    .values('machine', 'route')
    .map((r) => r.fields.map((x) => str(x)).join(' '))
    .sort();
}

/** Waits until the harness publishes exactly what iproute2 reports. */
export async function untilInSync(h: Harness, ns: string, timeoutMs = 5000): Promise<void> {
  let last = '';
  await until(
    () => {
      const parts = [
        [kernelInterfaces(ns), publishedInterfaces(h)],
        [kernelAddresses(ns), publishedAddresses(h)],
        [kernelRoutes(ns), publishedRoutes(h)],
      ];
      const bad = parts.filter(([k, p]) => JSON.stringify(k) !== JSON.stringify(p));
      last = bad
        .map(([k, p]) => `kernel:\n  ${k!.join('\n  ')}\npublished:\n  ${p!.join('\n  ')}`)
        .join('\n');
      return bad.length === 0;
    },
    { timeoutMs, describe: () => `published state to match ip -json:\n${last}` },
  );
}
