// The control layer's public surface, for the daemon (the composition root): the
// server and what it needs (service views, the interface controller, the settings
// store). The CLI imports client.ts only. The commands themselves are in commands/
// (a new one: see commands/index.ts).

export * from './errors.ts';
export * from './protocol.ts';
export * from './providers.ts';
export * from './settings-store.ts';
export {
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_MAX_OPEN_REQUESTS,
  DEFAULT_MAX_OUTPUT_BYTES,
  DEFAULT_MAX_TOTAL_OUTPUT_BYTES,
  startControlServer,
  type ControlServer,
  type ControlServerOptions,
} from './server.ts';
export { COMMANDS, isCommandName, type CommandName } from './commands/index.ts';
export { DEFAULT_INTERFACE_TIMEOUT_MS } from './commands/interfaces.ts';
export { DEFAULT_MAX_QUERY_MATCHES } from './commands/query.ts';
export { ControlClient, describeConnectError, type ConnectOptions } from './client.ts';
export {
  DEFAULT_FAILURES_PER_CONNECTION,
  DEFAULT_FAILURES_PER_WINDOW,
  FAILURE_WINDOW_MS,
  WEB_COMMANDS,
  WEB_POLICY,
  WebPasswords,
  type EndpointPolicy,
} from './web-endpoint.ts';
export {
  MAX_PASSWORD_BYTES,
  WebPasswordError,
  decodeStoredPassword,
  encodeStoredPassword,
  hashPassword,
  readStoredPassword,
  verifyPassword,
  writeStoredPassword,
  type ScryptParams,
  type StoredPassword,
} from './web-password.ts';
export {
  GROUP_DIR_MODE,
  GROUP_SOCKET_MODE,
  MAX_SOCKET_PATH_BYTES,
  prepareGroupDirectory,
  SOCKET_MODE,
  checkSocketPath,
  listenOnSocketFile,
  type ListeningSocket,
} from './socket-file.ts';
