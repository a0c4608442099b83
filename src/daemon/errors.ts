// Errors of the daemon's start: each says in one line what is wrong and what to
// do; the CLI prints it without a stack trace and exits 1.

import { LimenError, UserError } from '../base/errors.ts';

/** A --config root that does not exist or is not a directory. */
export class SiteConfigMissingError extends UserError {
  readonly code = 'LIMEN_SITE_CONFIG_MISSING';
}

/** A directory or file the daemon needs could not be made or opened (permissions, disk). */
export class StartupIoError extends LimenError {
  readonly code = 'LIMEN_STARTUP_IO';
}

/** `--web-group` names no group of /etc/group (nor is a gid). */
export class WebGroupError extends UserError {
  readonly code = 'LIMEN_WEB_GROUP';
}
