// The one shape of a driver (docs/architecture.md, "Drivers"): the native code that
// turns assertions into actions and back (the supervisor, the service manager, the
// network drivers). Every driver
// - is started by `startXxx(parent, options)`, which spawns one child facet of
//   `parent` (spawnDriver) that owns everything the driver does: its assertions,
//   observers, timers and processes go when the facet stops;
// - returns an object with that `facet` and a `stop()` (Driver); what stopping must
//   undo in the world, and what it deliberately leaves (kernel state outlives the
//   daemon), its own comment says;
// - logs through driverLog(facet, name): every line names the driver, and a broken
//   logger never breaks it;
// - reports a failure by asserting a record in $config whose shape it declared
//   with declareFailures, so that `limen status` and the log list it while it lasts
//   (docs/vocabulary.md, "Failures").

import { record, sym, type Value } from '../preserves/index.ts';
import type { LogFields } from './engine.ts';
import type { Facet } from './facet.ts';
import type { Ref } from './dataspace.ts';

/** What a started driver gives its caller. */
export interface Driver {
  /** The facet that owns everything the driver does. */
  readonly facet: Facet;
  /** Stops the driver: its facet, and with it everything the facet owns. */
  stop(): void;
}

export interface DriverLog {
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
}

/** The driver's log: `NAME: message`, through the engine's logger, never throwing. */
export function driverLog(facet: Facet, name: string): DriverLog {
  const logger = facet.engine.logger;
  const write = (level: 'info' | 'warn' | 'error', message: string, fields?: LogFields) => {
    try {
      if (level === 'info') logger.info?.(`${name}: ${message}`, fields);
      else logger[level](`${name}: ${message}`, fields);
    } catch {
      // A broken logger must not break the driver.
    }
  };
  return {
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
  };
}

/** Spawns the driver's facet under `parent` and runs `setup` in it. */
export function spawnDriver(parent: Facet, name: string, setup: (f: Facet) => void): Driver {
  const facet = parent.spawn(setup, name);
  return { facet, stop: () => facet.stop() };
}

/**
 * Declares the shapes of the failure records a driver asserts in $config (patterns
 * such as `anyRecord('dhcp-error', 2)`, `<dhcp-error _ _>`), for as long as `facet` lives.
 */
export function declareFailures(facet: Facet, config: Ref, ...shapes: Value[]): void {
  for (const shape of shapes) facet.assert(config, record('failure-shape', shape));
}

/** `<LABEL _ _ …>`: a failure shape with `arity` wildcard fields. */
export function anyRecord(label: string, arity: number): Value {
  return record(label, ...Array.from({ length: arity }, () => sym('_')));
}
