// The hardware watchdog driver (docs/running.md, "The hardware watchdog"). Opt-in:
// nothing is opened without a `<watchdog {device interval}>` in $config, so that no
// test or lab on a machine with a real watchdog can reboot it. While one lasts, its
// device is open and written to every interval from the event loop: a daemon whose
// loop hangs, or that dies, stops feeding it, and the kernel resets the machine.
// Retracting it, or stopping the daemon normally, closes the device with the magic
// character, which disarms it (unless the kernel enforces nowayout).
//
// Invariants: one opening per device, however many `<watchdog>` assertions name it
// (an edited file asserts its new spec before it retracts the old one: the device
// stays open, only the interval changes, with a feed at the change so that no gap
// is longer than either interval); the interval is the shortest asked for, and
// never more than half the device's timeout when the kernel tells it; a device
// that cannot be opened, or is not a watchdog, is `<watchdog-error DEVICE MESSAGE>`
// and is tried again every 10 s while it is asked for.

import { Double, ValueMap, dict, int, record, type Value } from '../preserves/index.ts';
import {
  P,
  anyRecord,
  declareFailures,
  driverLog,
  spawnDriver,
  type Driver,
  type DriverLog,
  type Facet,
  type Handle,
  type Ref,
} from '../dataspace/index.ts';
import {
  inspectWatchdog,
  openWatchdog,
  type WatchdogHandle,
  type WatchdogInfo,
} from '../platform/watchdog-device.ts';
import { feedInterval, parseWatchdogSpec } from './watchdog-spec.ts';

export interface WatchdogOptions {
  readonly config: Ref;
  /**
   * What a path is, before it is opened (default: inspectWatchdog, which accepts only
   * a watchdog character device). Tests replace it: their host has no watchdog.
   */
  readonly inspect?: (path: string) => Promise<WatchdogInfo>;
  /** The wait before a device that could not be opened is tried again; default 10 s. */
  readonly retryMs?: number;
}

export const WATCHDOG_RETRY_MS = 10_000;

interface FeederContext {
  readonly config: Ref;
  readonly log: DriverLog;
  readonly inspect: (path: string) => Promise<WatchdogInfo>;
  readonly retryMs: number;
}

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));
const seconds = (n: number): Value => (Number.isInteger(n) ? int(n) : new Double(n));

/** One device: opened once, fed at the shortest interval its specs ask for. */
class Feeder {
  readonly facet: Facet;
  readonly #device: string;
  readonly #c: FeederContext;
  /** Each spec naming this device, with the interval it asks for. */
  readonly #specs = new ValueMap<number | undefined>();
  #info: WatchdogInfo | undefined;
  #handle: WatchdogHandle | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** The interval the timer runs at. */
  #seconds: number | undefined;
  #retry: NodeJS.Timeout | undefined;
  #error: Handle | undefined;
  #warning: Handle | undefined;
  #state: Handle | undefined;

  constructor(parent: Facet, device: string, c: FeederContext) {
    this.#device = device;
    this.#c = c;
    this.facet = parent.spawn((f) => f.onStop(() => this.#close()), `watchdog ${device}`);
    void this.#attempt();
  }

  add(spec: Value, interval: number | undefined): void {
    this.#specs.set(spec, interval);
    this.#schedule();
  }

  /** Removes a spec; false once none is left (and the device is closed). */
  remove(spec: Value): boolean {
    this.#specs.delete(spec);
    if (this.#specs.size > 0) {
      this.#schedule();
      return true;
    }
    this.facet.stop();
    return false;
  }

  async #attempt(): Promise<void> {
    let info: WatchdogInfo;
    let handle: WatchdogHandle;
    try {
      info = await this.#c.inspect(this.#device);
      // Opening arms it: not for a spec already gone.
      if (!this.facet.isAlive) return;
      handle = await openWatchdog(info);
    } catch (e) {
      this.facet.turn(() => {
        this.#fail(message(e));
        this.#retry = setTimeout(() => void this.#attempt(), this.#c.retryMs);
      });
      return;
    }
    if (!this.facet.isAlive) return handle.close();
    this.facet.turn(() => this.#opened(info, handle));
  }

  #opened(info: WatchdogInfo, handle: WatchdogHandle): void {
    this.#info = info;
    this.#handle = handle;
    this.#fail(undefined);
    this.#schedule();
    const { identity, timeout } = info;
    this.#c.log.info(`opened ${this.#device}`, {
      ...(identity === undefined ? {} : { identity }),
      ...(timeout === undefined ? {} : { timeout }),
    });
  }

  /** (Re)starts the feeding timer at the interval the specs and the timeout give. */
  #schedule(): void {
    const info = this.#info;
    if (info === undefined || this.#handle === undefined) return;
    const asked = [...this.#specs].map(([, i]) => i).filter((i) => i !== undefined);
    const interval = feedInterval(asked.length > 0 ? Math.min(...asked) : undefined, info.timeout);
    if (interval.seconds !== this.#seconds) {
      // A feed now, so that the gap across the change is never longer than either interval.
      this.#feed();
      clearInterval(this.#timer);
      this.#timer = setInterval(() => this.#feed(), interval.seconds * 1000);
      this.#timer.unref();
      this.#seconds = interval.seconds;
    }
    const { config } = this.#c;
    const warning = interval.warning;
    this.#warning = this.facet.replace(
      this.#warning,
      config,
      warning === undefined ? undefined : record('watchdog-warning', this.#device, warning),
    );
    this.#state = this.facet.replace(this.#state, config, this.#stateRecord(interval.seconds));
  }

  #stateRecord(interval: number): Value {
    const { identity, timeout, nowayout } = this.#info ?? {};
    return record(
      'watchdog-feeding',
      this.#device,
      dict({
        interval: seconds(interval),
        ...(timeout === undefined ? {} : { timeout: seconds(timeout) }),
        ...(identity === undefined ? {} : { identity }),
        ...(nowayout === undefined ? {} : { nowayout }),
      }),
    );
  }

  /** One write, from the event loop; a failed one is a failure until one succeeds. */
  #feed(): void {
    try {
      this.#handle?.feed();
      if (this.#error !== undefined) this.facet.turn(() => this.#fail(undefined));
    } catch (e) {
      this.facet.turn(() => this.#fail(message(e)));
    }
  }

  /** A failure (the daemon's failure collector logs it), or none. */
  #fail(why: string | undefined): void {
    this.#error = this.facet.replace(
      this.#error,
      this.#c.config,
      why === undefined ? undefined : record('watchdog-error', this.#device, why),
    );
  }

  /** Magic close, when the last spec goes or the daemon stops. */
  #close(): void {
    clearTimeout(this.#retry);
    clearInterval(this.#timer);
    const handle = this.#handle;
    if (handle === undefined) return;
    this.#handle = undefined;
    handle.close();
    this.#c.log.info(`closed ${this.#device} (magic close)`);
    const info = this.#info;
    if (info?.nowayout === true)
      this.#c.log.warn(
        `${this.#device} has nowayout set: the machine resets in ${info.timeout ?? '?'} s unless something opens it`,
      );
  }
}

/** Starts the driver in a child facet of `parent`; it opens nothing until asked to. */
export function startWatchdog(parent: Facet, o: WatchdogOptions): Driver {
  return spawnDriver(parent, 'watchdog', (facet) => {
    declareFailures(
      facet,
      o.config,
      anyRecord('watchdog-error', 2),
      anyRecord('watchdog-warning', 2),
    );
    const c: FeederContext = {
      config: o.config,
      log: driverLog(facet, 'watchdog'),
      inspect: o.inspect ?? ((path) => inspectWatchdog(path)),
      retryMs: o.retryMs ?? WATCHDOG_RETRY_MS,
    };
    const feeders = new Map<string, Feeder>();
    /** Each spec's device, or the handle of its `<watchdog-error …>`. */
    const specs = new ValueMap<string | Handle>();
    facet.observe(
      o.config,
      P.rec('watchdog'),
      {
        onAdd: (v) => {
          const r = parseWatchdogSpec(v);
          if ('problems' in r) {
            const error = record('watchdog-error', r.device, r.problems.join('; '));
            specs.set(v, facet.assert(o.config, error));
            return;
          }
          const { device, interval } = r.spec;
          specs.set(v, device);
          let feeder = feeders.get(device);
          if (feeder === undefined) feeders.set(device, (feeder = new Feeder(facet, device, c)));
          feeder.add(v, interval);
        },
        onRemove: (v) => {
          const entry = specs.get(v);
          specs.delete(v);
          if (typeof entry !== 'string') {
            if (entry !== undefined) facet.retract(entry);
            return;
          }
          if (feeders.get(entry)?.remove(v) === false) feeders.delete(entry);
        },
      },
      'watchdog: specs',
    );
  });
}
