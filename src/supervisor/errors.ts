// Errors of the supervisor's process layer. Each failure has its own class and
// a stable code; a failure to start a program is a UserError (a mistake in a
// service's spec or on the machine), never an exception thrown at the caller.

import { UserError } from '../base/errors.ts';

export type ProcessStartErrorCode =
  | 'LIMEN_PROCESS_NOT_FOUND'
  | 'LIMEN_PROCESS_NOT_EXECUTABLE'
  | 'LIMEN_PROCESS_BAD_DIR'
  | 'LIMEN_PROCESS_UNKNOWN_USER'
  | 'LIMEN_PROCESS_UNKNOWN_GROUP'
  | 'LIMEN_PROCESS_NOT_PERMITTED'
  | 'LIMEN_PROCESS_CGROUP'
  | 'LIMEN_PROCESS_SPAWN';

/** Why a program never ran; carried by the exit it is reported as. */
export abstract class ProcessStartError extends UserError {
  abstract override readonly code: ProcessStartErrorCode;
}

/** argv[0] is not on the PATH, or the path it names does not exist. */
export class ProgramNotFoundError extends ProcessStartError {
  readonly code = 'LIMEN_PROCESS_NOT_FOUND';
}

/** argv[0] exists but is not an executable regular file. */
export class ProgramNotExecutableError extends ProcessStartError {
  readonly code = 'LIMEN_PROCESS_NOT_EXECUTABLE';
}

/** The working directory does not exist or is not a directory. */
export class BadDirectoryError extends ProcessStartError {
  readonly code = 'LIMEN_PROCESS_BAD_DIR';
}

/** A user name or uid that /etc/passwd does not know (when it must). */
export class UnknownUserError extends ProcessStartError {
  readonly code = 'LIMEN_PROCESS_UNKNOWN_USER';
}

/** A group name that /etc/group does not know. */
export class UnknownGroupError extends ProcessStartError {
  readonly code = 'LIMEN_PROCESS_UNKNOWN_GROUP';
}

/** Switching user or group was asked for, but limen does not run as root. */
export class NotPermittedError extends ProcessStartError {
  readonly code = 'LIMEN_PROCESS_NOT_PERMITTED';
}

/** The cgroup the program was to run in could not be made or entered. */
export class CgroupError extends ProcessStartError {
  readonly code = 'LIMEN_PROCESS_CGROUP';
  /** The errno name (EACCES, EBUSY…) when the system gave one. */
  readonly errno: string | undefined;
  constructor(message: string, errno?: string) {
    super(message);
    this.errno = errno;
  }
}

/** Any other failure of the operating system to start the program. */
export class SpawnError extends ProcessStartError {
  readonly code = 'LIMEN_PROCESS_SPAWN';
  /** The errno name (EACCES, ENOMEM…) when the system gave one. */
  readonly errno: string | undefined;
  constructor(message: string, errno?: string) {
    super(message);
    this.errno = errno;
  }
}

/** A ProcessSpec that cannot describe a process; lists every problem found. */
export class InvalidProcessSpecError extends UserError {
  readonly code = 'LIMEN_PROCESS_INVALID_SPEC';
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`invalid process spec: ${problems.join('; ')}`);
    this.problems = problems;
  }
}

/** Restart-policy options out of range; lists every problem found. */
export class InvalidRestartOptionsError extends UserError {
  readonly code = 'LIMEN_RESTART_INVALID_OPTIONS';
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`invalid restart options: ${problems.join('; ')}`);
    this.problems = problems;
  }
}
