// Errors of the control layer. Each failure has its own class and a stable
// `code`; a failure the daemon reports over the socket also carries the
// protocol's error code (`reason`, e.g. 'not-found'), which callers match on.

import { LimenError, UserError } from '../base/errors.ts';
import type { ErrorReason, RequestId } from './protocol.ts';

/**
 * A message that is not valid protocol (bad Preserves, wrong shape, bad arguments), or a
 * request the server refuses; `id` is the request's, when one could be read.
 */
export class ProtocolError extends UserError {
  readonly code = 'LIMEN_CONTROL_PROTOCOL';
  readonly reason: ErrorReason;
  readonly id: RequestId | undefined;
  constructor(reason: ErrorReason, message: string, id?: RequestId) {
    super(message);
    this.reason = reason;
    this.id = id;
  }
}

/**
 * A message the server would send passes one of its limits (MessageLimits): too many
 * bytes or too deep. The server answers the request with `too-large` instead.
 */
export class MessageTooLargeError extends UserError {
  readonly code = 'LIMEN_CONTROL_TOO_LARGE';
  readonly limit: 'bytes' | 'depth';
  readonly max: number;
  constructor(limit: 'bytes' | 'depth', max: number) {
    super(
      limit === 'bytes'
        ? `it would be larger than ${formatBytes(max)}`
        : `it would nest deeper than ${max} levels`,
    );
    this.limit = limit;
    this.max = max;
  }
}

/** 4194304 → "4 MiB"; sizes that are not whole MiB or KiB in bytes. */
export function formatBytes(n: number): string {
  if (n >= 1024 * 1024 && n % (1024 * 1024) === 0) return `${n / (1024 * 1024)} MiB`;
  if (n >= 1024 && n % 1024 === 0) return `${n / 1024} KiB`;
  return `${n} bytes`;
}

/** The daemon answered a request with `<error ID REASON "message">`. */
export class ControlRequestError extends UserError {
  readonly code = 'LIMEN_CONTROL_REQUEST';
  /** An ErrorReason, or a reason from a newer daemon. */
  readonly reason: string;
  constructor(reason: string, message: string) {
    super(message);
    this.reason = reason;
  }
}

/** The client could not connect to the control socket; `errno` says why (ENOENT, EACCES...). */
export class ControlConnectError extends UserError {
  readonly code = 'LIMEN_CONTROL_CONNECT';
  readonly errno: string;
  readonly socketPath: string;
  constructor(socketPath: string, errno: string, message: string) {
    super(message);
    this.errno = errno;
    this.socketPath = socketPath;
  }
}

/** The daemon closed the connection before answering (it stopped, or dropped this client). */
export class ControlClosedError extends UserError {
  readonly code = 'LIMEN_CONTROL_CLOSED';
}

/** The control socket's path is in use by a live daemon, or is not a socket. */
export class ControlSocketInUseError extends UserError {
  readonly code = 'LIMEN_CONTROL_SOCKET_IN_USE';
}

/** The control socket's path cannot be bound (too long for sun_path). */
export class SocketPathError extends UserError {
  readonly code = 'LIMEN_CONTROL_SOCKET_PATH';
}

/** A value that cannot be stored as a user setting (see settings-store.ts); lists every problem. */
export class InvalidSettingError extends UserError {
  readonly code = 'LIMEN_SETTING_INVALID';
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`not a valid setting: ${problems.join('; ')}`);
    this.problems = problems;
  }
}

/** Reading or writing the settings directory failed (disk full, permissions...). */
export class SettingsIoError extends LimenError {
  readonly code = 'LIMEN_SETTINGS_IO';
}

/** The daemon speaks another version of the control protocol than this client. */
export class ControlVersionError extends UserError {
  readonly code = 'LIMEN_CONTROL_VERSION';
}
