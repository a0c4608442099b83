// The supervisor's process layer, for the wiring that maps it onto the
// dataspace: running one program, deciding restarts, keeping its log lines,
// and watching its outputs directory. Nothing here knows about dataspaces.

export * from './errors.ts';
export * from './process-runner.ts';
export * from './restart-policy.ts';
export { LogBuffer, DEFAULT_LOG_CAPACITY, type LogBufferOptions } from './log-buffer.ts';
export * from './outputs-dir.ts';
export { resolveCredentials, type Credentials } from './user-db.ts';
export type { Listener, ListenerErrorHandler } from './emitter.ts';
