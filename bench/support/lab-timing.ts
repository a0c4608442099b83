// Timing in the lab for the benchmarks: one wall clock with sub-millisecond
// resolution (what `ip -ts monitor` prints, so the two compare), percentiles,
// a log of timestamped events that a round can wait on, and independent
// observers of a namespace's kernel state: `ip -ts monitor` (stamped by ip
// when it reads each netlink message) and `nft monitor` (stamped when its
// line reaches us; nft prints no time).
//
// Invariants: every wait is bounded (a timeout, and an AbortSignal) and fails
// with what it waited for; a monitor is a child process that stop() kills.

import { spawn, type ChildProcess } from 'node:child_process';

/** Wall-clock milliseconds with sub-millisecond resolution (monotonic after start). */
export function wallNow(): number {
  return performance.timeOrigin + performance.now();
}

/** The nearest-rank percentile p (0–100) of xs; NaN for none. */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const rank = Math.min(s.length, Math.max(1, Math.ceil((p / 100) * s.length)));
  return s[rank - 1]!;
}

export interface Summary {
  readonly n: number;
  readonly p50: number;
  readonly p95: number;
  readonly min: number;
  readonly max: number;
}

export function summarize(xs: readonly number[]): Summary {
  return {
    n: xs.length,
    p50: percentile(xs, 50),
    p95: percentile(xs, 95),
    min: xs.length === 0 ? NaN : Math.min(...xs),
    max: xs.length === 0 ? NaN : Math.max(...xs),
  };
}

/** Milliseconds for a table: one decimal below 100, none above; "-" for NaN. */
export function ms(x: number): string {
  if (Number.isNaN(x)) return '-';
  return Math.abs(x) < 100 ? x.toFixed(1) : x.toFixed(0);
}

/** A round could not be measured: what was awaited and did not come. */
export class MeasureError extends Error {
  readonly code = 'LIMEN_BENCH_MEASURE';
}

export interface Stamped {
  /** When it was observed (wallNow()). */
  readonly at: number;
}

/**
 * Timestamped events in arrival order. A round takes a mark() before it acts and
 * waits for the first event after the mark that it expects.
 */
export class EventLog<T extends Stamped> {
  readonly name: string;
  readonly #events: T[] = [];
  #waiters = new Set<() => void>();
  /** Keeps memory bounded in long runs: older events are dropped (marks stay valid). */
  #dropped = 0;
  readonly #limit: number;

  constructor(name: string, limit = 20_000) {
    this.name = name;
    this.#limit = limit;
  }

  push(e: T): void {
    this.#events.push(e);
    if (this.#events.length > this.#limit) {
      const n = this.#events.length - this.#limit / 2;
      this.#events.splice(0, n);
      this.#dropped += n;
    }
    for (const w of [...this.#waiters]) w();
  }

  /** A position: events pushed after it are "after the mark". */
  mark(): number {
    return this.#dropped + this.#events.length;
  }

  /** The mark just after event e (which must still be held). */
  after(e: T): number {
    const i = this.#events.lastIndexOf(e);
    if (i < 0) throw new Error(`${this.name}: the event is no longer held`);
    return this.#dropped + i + 1;
  }

  /** Every event held, oldest first. */
  all(): readonly T[] {
    return this.#events;
  }

  /** The first event at or after `from` (a mark) that matches, if any yet. */
  find(from: number, match: (e: T) => boolean): T | undefined {
    for (let i = Math.max(0, from - this.#dropped); i < this.#events.length; i++) {
      const e = this.#events[i]!;
      if (match(e)) return e;
    }
    return undefined;
  }

  /** Waits (bounded) for the first matching event at or after `from`. */
  waitFor(
    from: number,
    match: (e: T) => boolean,
    what: string,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined = undefined;
      const check = (): void => {
        const e = this.find(from, match);
        if (e !== undefined) {
          done();
          resolve(e);
        }
      };
      const onAbort = (): void => {
        done();
        reject(new MeasureError(`aborted while waiting for ${what}`));
      };
      const done = (): void => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        signal?.removeEventListener('abort', onAbort);
      };
      if (signal?.aborted) {
        onAbort();
        return;
      }
      timer = setTimeout(() => {
        done();
        reject(new MeasureError(`no ${what} within ${timeoutMs} ms (${this.name})`));
      }, timeoutMs);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiters.add(check);
      check();
    });
  }
}

/** A child process whose stdout lines we read as they come. */
export class LineMonitor {
  readonly argv: readonly string[];
  readonly #child: ChildProcess;
  #stderr = '';
  #exited = false;
  readonly exited: Promise<void>;

  constructor(
    argv: readonly string[],
    onLine: (line: string, at: number) => void,
    env: NodeJS.ProcessEnv = process.env,
  ) {
    this.argv = argv;
    this.#child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env });
    let partial = '';
    this.#child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      const at = wallNow();
      const lines = (partial + chunk).split('\n');
      partial = lines.pop()!;
      for (const line of lines) onLine(line, at);
    });
    this.#child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      if (this.#stderr.length < 4096) this.#stderr += chunk;
    });
    this.exited = new Promise((resolve) => {
      this.#child.on('error', (e) => {
        this.#stderr += e.message;
        this.#exited = true;
        resolve();
      });
      this.#child.on('close', () => {
        this.#exited = true;
        resolve();
      });
    });
  }

  get isRunning(): boolean {
    return !this.#exited;
  }

  get stderr(): string {
    return this.#stderr.trim();
  }

  /** Kills it (SIGTERM, then SIGKILL after a second) and waits for it. */
  async stop(): Promise<void> {
    if (this.#exited) return;
    this.#child.kill('SIGTERM');
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), 1000);
    await this.exited;
    clearTimeout(timer);
  }
}

// ---- ip -ts monitor ---------------------------------------------------------------------------

export interface KernelEvent extends Stamped {
  /** ip's own time of reading the message from the kernel (ms since the epoch). */
  readonly stamp: number;
  /** The line without its timestamp. */
  readonly text: string;
}

const IP_TS = /^\[(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{6})\] (.*)$/;

/**
 * One line of `ip -ts monitor` run with TZ=UTC ("[2026-11-22T20:22:04.487616] …", local
 * time: hence UTC), or undefined for a continuation line ("    valid_lft …").
 */
export function parseIpMonitorLine(line: string): { stamp: number; text: string } | undefined {
  const m = IP_TS.exec(line);
  if (m === null) return undefined;
  const [, y, mo, d, h, mi, s, us, text] = m;
  const stamp =
    Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s)) +
    Number(us) / 1000;
  return { stamp, text: text! };
}

/** `ip -ts monitor address route` in namespace ns, into `log`. */
export function ipMonitor(ns: string, log: EventLog<KernelEvent>): LineMonitor {
  return new LineMonitor(
    ['ip', 'netns', 'exec', ns, 'ip', '-ts', 'monitor', 'address', 'route'],
    (line, at) => {
      const p = parseIpMonitorLine(line);
      if (p !== undefined) log.push({ at, stamp: p.stamp, text: p.text });
    },
    // ip prints local time: make that UTC.
    { ...process.env, TZ: 'UTC' },
  );
}

// ---- nft monitor ------------------------------------------------------------------------------

/** One committed nftables transaction, as `nft monitor` reports it. */
export interface NftTransaction extends Stamped {
  readonly generation: number;
  /** The process that committed it (nft's PID), or undefined if nft did not say. */
  readonly pid: number | undefined;
  /** Its change lines ("add rule inet limen prerouting …"). */
  readonly lines: readonly string[];
}

const NFT_GENERATION = /^# new generation (\d+)(?: by process (\d+))?/;

/** Groups `nft monitor` lines into transactions; feed it lines, it calls onTransaction. */
export function nftTransactionReader(
  onTransaction: (t: NftTransaction) => void,
): (line: string, at: number) => void {
  let lines: string[] = [];
  return (line, at) => {
    const m = NFT_GENERATION.exec(line);
    if (m === null) {
      if (line.trim() !== '') lines.push(line);
      return;
    }
    onTransaction({
      at,
      generation: Number(m[1]),
      pid: m[2] === undefined ? undefined : Number(m[2]),
      lines,
    });
    lines = [];
  };
}

/** `nft monitor` in namespace ns: each committed transaction goes into `log`. */
export function nftMonitor(ns: string, log: EventLog<NftTransaction>): LineMonitor {
  return new LineMonitor(
    ['ip', 'netns', 'exec', ns, 'nft', 'monitor'],
    nftTransactionReader((t) => log.push(t)),
  );
}

// ---- Tables -----------------------------------------------------------------------------------

/** Left-aligned first column, right-aligned others, two spaces apart. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]) {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  const line = (r: readonly string[]) =>
    r
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}
