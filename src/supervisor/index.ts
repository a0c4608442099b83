// The supervisor: `startSupervisor` maps `<run-service <daemon ID>>` and
// `<daemon ID SPEC>` in $config onto processes (supervisor.ts). Underneath, the
// process layer knows nothing of dataspaces: running one program, deciding
// restarts, keeping its log lines, and watching its outputs directory.

export * from './errors.ts';
export * from './process-runner.ts';
export * from './restart-policy.ts';
export { LogBuffer, DEFAULT_LOG_CAPACITY, type LogBufferOptions } from './log-buffer.ts';
export * from './outputs-dir.ts';
export { resolveCredentials, type Credentials } from './user-db.ts';
export type { Listener, ListenerErrorHandler } from './emitter.ts';
export * from './daemon-spec.ts';
export { outputsDirName, serviceLabel } from './service-names.ts';
export * from './supervisor.ts';
