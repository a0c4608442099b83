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
  MAX_SOCKET_PATH_BYTES,
  SOCKET_MODE,
  checkSocketPath,
  listenOnSocketFile,
  type ListeningSocket,
} from './socket-file.ts';
