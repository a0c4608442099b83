// `<watchdog {device: "/dev/watchdog" interval: SECONDS}>`: the configuration of the
// hardware watchdog driver (src/daemon/watchdog.ts), read and checked here. Both keys
// are optional (`<watchdog {}>` or `<watchdog>` feeds /dev/watchdog at half its
// timeout); every problem is reported, together, and a spec with any is not used.

import { nearestKey } from '../base/suggest.ts';
import {
  Dict,
  Double,
  Record,
  Sym,
  peel,
  printable,
  stringify,
  type Value,
} from '../preserves/index.ts';

export const WATCHDOG_DEFAULT_DEVICE = '/dev/watchdog';
/** Bounds of `interval`, in seconds. */
export const WATCHDOG_MIN_INTERVAL = 0.1;
export const WATCHDOG_MAX_INTERVAL = 3600;

const KEYS = ['device', 'interval'] as const;
const USAGE = '<watchdog {device: "/dev/watchdog" interval: SECONDS}>';

/** A checked spec: the device, and how often to feed it (undefined: half its timeout). */
export interface WatchdogSpec {
  readonly device: string;
  readonly interval: number | undefined;
}

/** A spec, or its problems; `device` names the subject of those problems either way. */
export type WatchdogSpecResult =
  | { readonly spec: WatchdogSpec; readonly device: string }
  | { readonly problems: readonly string[]; readonly device: string };

function numberOf(v: Value): number | undefined {
  const x = peel(v);
  if (typeof x === 'number') return x;
  if (x instanceof Double) return x.value;
  return undefined;
}

function deviceProblem(v: Value): string | undefined {
  const d = peel(v);
  if (typeof d !== 'string') return `device: expected a path (a string), got ${stringify(v)}`;
  if (!d.startsWith('/')) return `device: ${JSON.stringify(printable(d))} is not an absolute path`;
  return undefined;
}

function intervalProblem(v: Value): string | undefined {
  const n = numberOf(v);
  if (n === undefined || !(n >= WATCHDOG_MIN_INTERVAL && n <= WATCHDOG_MAX_INTERVAL))
    return `interval: expected seconds from ${WATCHDOG_MIN_INTERVAL} to ${WATCHDOG_MAX_INTERVAL}, got ${stringify(v)}`;
  return undefined;
}

function unknownKey(k: Value): string {
  const key = peel(k);
  const name = key instanceof Sym ? key.name : stringify(k);
  const hint = nearestKey(name, KEYS);
  return (
    `unknown key '${printable(name)}'` +
    (hint !== undefined ? ` (did you mean '${hint}'?)` : ` (known keys: ${KEYS.join(', ')})`)
  );
}

/** Reads the fields of a `<watchdog …>` assertion. */
export function parseWatchdogSpec(assertion: Value): WatchdogSpecResult {
  const r = peel(assertion);
  const fields = r instanceof Record ? r.fields : [];
  const options = fields.length === 0 ? new Dict() : peel(fields[0]!);
  if (!(options instanceof Dict) || fields.length > 1)
    return { problems: [`expected ${USAGE}, got ${stringify(assertion)}`], device: '' };
  const problems: string[] = [];
  let device = WATCHDOG_DEFAULT_DEVICE;
  let interval: number | undefined;
  for (const [k, v] of options) {
    const key = peel(k);
    const name = key instanceof Sym ? key.name : undefined;
    if (name === 'device') {
      const d = peel(v);
      device = typeof d === 'string' ? d : stringify(v);
      const p = deviceProblem(v);
      if (p !== undefined) problems.push(p);
    } else if (name === 'interval') {
      const p = intervalProblem(v);
      if (p === undefined) interval = numberOf(v);
      else problems.push(p);
    } else problems.push(unknownKey(k));
  }
  return problems.length > 0 ? { problems, device } : { spec: { device, interval }, device };
}

/** How often a device is fed, and why not as asked (a warning), if so. */
export interface FeedInterval {
  readonly seconds: number;
  readonly warning?: string;
}

/** When the kernel does not tell the device's timeout and no spec says: every second. */
export const WATCHDOG_FALLBACK_INTERVAL = 1;

/**
 * The interval for the shortest one asked for (undefined: none was) and the device's
 * timeout when known: half the timeout by default, and never more (a feed a little
 * late must not reset the machine).
 */
export function feedInterval(asked: number | undefined, timeout: number | undefined): FeedInterval {
  if (timeout === undefined) return { seconds: asked ?? WATCHDOG_FALLBACK_INTERVAL };
  const half = timeout / 2;
  if (asked === undefined || asked <= half) return { seconds: asked ?? half };
  return {
    seconds: half,
    warning: `interval ${asked} s is more than half the device's timeout (${timeout} s): fed every ${half} s`,
  };
}
