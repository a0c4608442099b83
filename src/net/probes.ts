// Probes: checks the configuration asks the router to make of its own network,
// which a trial (`limen try`, docs/safe-change.md) must see pass before it is
// kept, and which `limen status` shows while they fail.
//
//   <probe NAME <ping "ADDRESS">>         one echo request (ping -c 1), answered
//   <probe NAME <tcp "HOST" PORT>>        a TCP connection accepted
//   <probe NAME <resolve "DOMAIN">>       the name resolves (the system resolver)
//   <probe NAME <http "URL">>             an HTTP(S) GET answered with a status < 400
//
// Each probe runs from the router every 5 s, one attempt at a time, each attempt
// bounded by 3 s, and its result is `<probe-state NAME passed|failed "DETAIL">`
// in $config (a failed one is a failure: `<failure-shape <probe-state _ failed _>>`).
// `<probes-rerun>`, sent to $config (a trial does, once its files are applied),
// withdraws every result and runs every probe at once, so that what a trial sees
// is the new configuration's. At most 64 probes; a bad spec is a failed probe
// that says why.

import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { lookup } from 'node:dns/promises';
import { Record, peel, record, stringify, sym, type Value } from '../preserves/index.ts';
import {
  spawnDriver,
  type Driver,
  declareFailures,
  P,
  during,
  type Facet,
  type Handle,
  type Ref,
} from '../dataspace/index.ts';

export const PROBE_INTERVAL_MS = 5000;
export const PROBE_TIMEOUT_MS = 3000;
export const MAX_PROBES = 64;

export interface ProbeOptions {
  readonly config: Ref;
  readonly intervalMs?: number;
  readonly timeoutMs?: number;
}

type Outcome = { readonly passed: boolean; readonly detail: string };

function str(v: Value | undefined): string | undefined {
  const p = v === undefined ? undefined : peel(v);
  return typeof p === 'string' ? p : undefined;
}

function withTimeout<T>(
  ms: number,
  what: string,
  run: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(new Error(`no answer within ${ms} ms`)), ms);
  return Promise.race([
    run(ac.signal),
    new Promise<never>((_, reject) =>
      ac.signal.addEventListener('abort', () => reject(ac.signal.reason as Error), { once: true }),
    ),
  ]).finally(() => {
    clearTimeout(timer);
    ac.abort(new Error(`${what} finished`));
  });
}

function ping(address: string, timeoutMs: number): Promise<Outcome> {
  return new Promise((resolve) => {
    const seconds = String(Math.max(1, Math.ceil(timeoutMs / 1000)));
    const child = spawn('ping', ['-c', '1', '-W', seconds, '--', address], {
      stdio: ['ignore', 'ignore', 'pipe'],
      timeout: timeoutMs + 1000,
    });
    let err = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => {
      if (err.length < 300) err += s;
    });
    child.on('error', (e) => resolve({ passed: false, detail: `cannot run ping: ${e.message}` }));
    child.on('close', (code) =>
      resolve(
        code === 0
          ? { passed: true, detail: `${address} answered` }
          : { passed: false, detail: err.trim().split('\n')[0] || `${address} did not answer` },
      ),
    );
  });
}

function tcp(host: string, port: number, signal: AbortSignal): Promise<Outcome> {
  return new Promise((resolve) => {
    const s = connect({ host, port, signal });
    s.once('connect', () => {
      s.destroy();
      resolve({ passed: true, detail: `${host}:${port} accepted` });
    });
    s.once('error', (e: NodeJS.ErrnoException) =>
      resolve({ passed: false, detail: `${host}:${port}: ${e.code ?? e.message}` }),
    );
  });
}

async function http(url: string, signal: AbortSignal): Promise<Outcome> {
  const r = await fetch(url, { signal, redirect: 'manual' });
  await r.body?.cancel();
  return r.status < 400
    ? { passed: true, detail: `HTTP ${r.status}` }
    : { passed: false, detail: `HTTP ${r.status} from ${url}` };
}

/** Runs one probe once; never throws. */
export async function runProbe(spec: Value, timeoutMs = PROBE_TIMEOUT_MS): Promise<Outcome> {
  const p = peel(spec);
  const kind = p instanceof Record ? peel(p.label) : undefined;
  const f = p instanceof Record ? p.fields : [];
  const name = kind === undefined ? '' : stringify(kind);
  try {
    switch (name) {
      case 'ping': {
        const a = str(f[0]);
        if (a === undefined || f.length !== 1) break;
        return await ping(a, timeoutMs);
      }
      case 'tcp': {
        const host = str(f[0]);
        const port = f[1] === undefined ? undefined : peel(f[1]);
        if (
          host === undefined ||
          typeof port !== 'number' ||
          port < 1 ||
          port > 65535 ||
          f.length !== 2
        )
          break;
        return await withTimeout(timeoutMs, 'tcp', (signal) => tcp(host, port, signal));
      }
      case 'resolve': {
        const domain = str(f[0]);
        if (domain === undefined || f.length !== 1) break;
        const a = await withTimeout(timeoutMs, 'resolve', () => lookup(domain));
        return { passed: true, detail: `${domain} is ${a.address}` };
      }
      case 'http': {
        const url = str(f[0]);
        if (url === undefined || f.length !== 1 || !/^https?:\/\//.test(url)) break;
        return await withTimeout(timeoutMs, 'http', (signal) => http(url, signal));
      }
    }
  } catch (e) {
    return { passed: false, detail: (e as Error).message };
  }
  return {
    passed: false,
    detail: `not a probe: ${stringify(spec, { maxLength: 80 })} (expected <ping "ADDRESS">, <tcp "HOST" PORT>, <resolve "DOMAIN"> or <http "URL">)`,
  };
}

/** Starts the probe driver in a child facet of `parent`. */
export function startProbes(parent: Facet, o: ProbeOptions): Driver {
  const interval = o.intervalMs ?? PROBE_INTERVAL_MS;
  const timeoutMs = o.timeoutMs ?? PROBE_TIMEOUT_MS;
  const reruns = new Set<() => void>();
  return spawnDriver(parent, 'probes', (facet) => {
    declareFailures(facet, o.config, record('probe-state', sym('_'), sym('failed'), sym('_')));
    facet.observe(o.config, P.rec('probes-rerun'), {
      onMessage: () => {
        for (const r of reruns) r();
      },
    });
    let active = 0;
    during(
      facet,
      o.config,
      P.rec('probe', P.bind('name'), P.bind('spec')),
      (f, c) => {
        const name = c.get('name')!;
        const spec = c.get('spec')!;
        let state: Handle | undefined;
        let timer: NodeJS.Timeout | undefined;
        let running = false;
        let again = false;
        let generation = 0;
        const publish = (out: Outcome | undefined) =>
          f.turn(() => {
            state = f.replace(
              state,
              o.config,
              out === undefined
                ? undefined
                : record('probe-state', name, sym(out.passed ? 'passed' : 'failed'), out.detail),
            );
          });
        const run = (): void => {
          clearTimeout(timer);
          if (running) {
            again = true;
            return;
          }
          running = true;
          const mine = generation;
          void (async () => {
            const out =
              active > MAX_PROBES
                ? { passed: false, detail: `more than ${MAX_PROBES} probes: this one is not run` }
                : await runProbe(spec, timeoutMs);
            running = false;
            if (!f.isAlive) return;
            if (mine === generation) publish(out);
            if (again) {
              again = false;
              run();
            } else timer = setTimeout(run, interval);
          })();
        };
        const rerun = (): void => {
          generation++;
          publish(undefined);
          run();
        };
        active++;
        reruns.add(rerun);
        f.onStop(() => {
          active--;
          reruns.delete(rerun);
          clearTimeout(timer);
        });
        run();
      },
      'probes',
    );
  });
}
