// The script language's public surface: compile (read + check) a script, run it in
// a facet, load script files, and watch a config tree. Import from here.

export type { Script } from './ast.ts';
export {
  DEFAULT_TARGET,
  EXPRESSIONS,
  OPERATORS,
  compileScript,
  compileValues,
  loadScript,
  type CompileOptions,
  type CompileResult,
} from './compile.ts';
export {
  ConfigWatcher,
  configWatcherName,
  defaultEnvFor,
  startConfigWatcherService,
  type ConfigWatcherOptions,
  type ConfigWatcherService,
  type ConfigWatcherServiceOptions,
} from './config-watcher.ts';
export { describeEmbedded, plainText, presentable } from './describe.ts';
export {
  ConfigWatcherError,
  ScriptCheckError,
  ScriptPathError,
  ScriptRuntimeError,
  filePosition,
  formatLocation,
  formatProblem,
  type ScriptProblem,
} from './errors.ts';
export { FacetRef, facetValue } from './facet-ref.ts';
export {
  SCRIPT_EXTENSION,
  SnapshotSource,
  checkScriptFile,
  checkScriptFiles,
  listScriptFiles,
  runScripts,
  scanScriptTree,
  type CheckedFile,
  type ScriptSource,
  type ScriptTree,
} from './files.ts';
export { bindingsOf, runScript, type RunResult, type ScriptBindings } from './interpreter.ts';
