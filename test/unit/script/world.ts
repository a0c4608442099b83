// A small world for script tests: an engine with a fake clock and a capturing
// logger, the three standard dataspaces, and helpers to run a script and read
// what it asserted.

import { Dataspace, Engine, type Logger } from '../../../src/dataspace/index.ts';
import { compare, stringify, type Value } from '../../../src/preserves/index.ts';
import {
  bindingsOf,
  compileScript,
  formatProblem,
  presentable,
  runScript,
  type RunResult,
} from '../../../src/script/index.ts';

export const T0 = Date.UTC(2024, 0, 2, 3, 4, 5);

export interface World {
  readonly engine: Engine;
  readonly config: Dataspace;
  readonly machine: Dataspace;
  readonly log: Dataspace;
  /** Everything the engine logged (runtime errors). */
  readonly errors: string[];
  /** Compiles and runs a script in a child of the root; throws if it has problems. */
  run(text: string, source?: string): RunResult;
  /** A dataspace's assertions as sorted text. */
  show(ds?: Dataspace): string[];
}

export function world(options: { now?: () => number } = {}): World {
  const errors: string[] = [];
  const logger: Logger = { error: (m) => errors.push(m), warn: (m) => errors.push(m) };
  const engine = new Engine({ logger, now: options.now ?? (() => T0) });
  const config = new Dataspace(engine, 'config');
  const machine = new Dataspace(engine, 'machine');
  const log = new Dataspace(engine, 'log');
  const bindings = bindingsOf({ config: config.ref, machine: machine.ref, log: log.ref });
  return {
    engine,
    config,
    machine,
    log,
    errors,
    run(text, source = '/etc/limen/test.pr') {
      const r = compileScript(text, { source, names: bindings.keys() });
      if (r.script === undefined) throw new Error(r.problems.map(formatProblem).join('\n'));
      return runScript(engine.root, r.script, bindings);
    },
    show(ds = config) {
      return sortedText([...ds.values()]);
    },
  };
}

export function sortedText(values: Iterable<Value>): string[] {
  return [...values]
    .map(presentable)
    .sort(compare)
    .map((v) => stringify(v));
}
