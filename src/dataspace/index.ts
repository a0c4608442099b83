// The dataspace layer's public surface: patterns, the engine and its facets,
// dataspaces and refs, attenuation. Import from here.

export * from './errors.ts';
export {
  P,
  captureNames,
  compilePattern,
  exactPattern,
  instantiate,
  isPattern,
  match,
  matches,
  noCaptures,
  substitute,
  type Bindings,
  type Captures,
  type CompileOptions,
  type Pattern,
  type PatternLike,
} from './pattern.ts';
export { analyze, type QueryResult } from './match-index.ts';
export { Dataspace, Ref, asRef, embed } from './dataspace.ts';
export {
  C,
  applyCaveat,
  applyCaveats,
  attenuate,
  compileCaveat,
  compileCaveats,
  type Caveat,
} from './caveat.ts';
export {
  DEFAULT_CHAIN_LIMIT,
  Engine,
  silentLogger,
  type EngineOptions,
  type LogFields,
  type Logger,
} from './engine.ts';
export {
  Budget,
  DEFAULT_BUDGET_LIMITS,
  MAX_VALUE_DEPTH,
  MAX_VALUE_SIZE,
  checkBuiltValue,
  type BudgetLimits,
  type BudgetOptions,
} from './budget.ts';
export { Facet, Handle, type ObserverCallbacks } from './facet.ts';
export { during } from './during.ts';
export {
  anyRecord,
  declareFailures,
  driverLog,
  spawnDriver,
  type Driver,
  type DriverLog,
} from './driver.ts';
