// Errors of the platform layer (node-level utilities). Each failure has its own
// class and a stable code.

import { LimenError, UserError } from '../base/errors.ts';

/** Another process (another limen daemon) holds the state directory's lock. */
export class StateLockHeldError extends UserError {
  readonly code = 'LIMEN_STATE_LOCKED';
  readonly lockPath: string;
  /** The holder's pid as it wrote it in the lock file, when it had. */
  readonly holder: number | undefined;
  constructor(lockPath: string, holder: number | undefined, message: string) {
    super(message);
    this.lockPath = lockPath;
    this.holder = holder;
  }
}

/** A lock could not be taken for a reason other than its holder (no flock program, permissions...). */
export class FlockError extends LimenError {
  readonly code = 'LIMEN_FLOCK';
}

/** A program could not be started (not installed, not executable), or the run was aborted first. */
export class ProgramStartError extends LimenError {
  readonly code = 'LIMEN_PROGRAM_START';
}

/** A watchdog device that is not one, cannot be opened, or cannot be written to. */
export class WatchdogDeviceError extends LimenError {
  readonly code = 'LIMEN_WATCHDOG_DEVICE';
}
