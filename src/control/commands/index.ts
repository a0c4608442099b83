// The table of control commands: the server finds a request's handler here by name,
// and the names the protocol knows (COMMANDS, CommandName) are those of this table, in
// its order (the order `unknown-command` lists them in). The client takes only the
// CommandName type from here (import type), so the CLI's bundles never hold a handler.
//
// A new command: its handler in a file beside this one (handler.ts says how), its line
// in HANDLERS below, a CLI file in src/cli/commands/ with its line in src/cli/main.ts,
// and its section in docs/control-protocol.md.

import type { CommandHandler } from './handler.ts';
import { configFiles, confirm, diff, generations, rollback, tryCandidate } from './generations.ts';
import { ifdown, ifup } from './interfaces.ts';
import { logs } from './logs.ts';
import { maintenance } from './maintenance.ts';
import { query } from './query.ts';
import { send } from './send.ts';
import { restart, service, services, start, stop } from './services.ts';
import { settingsList, settingsSet, settingsUnset } from './settings.ts';
import { status } from './status.ts';
import { watch } from './watch.ts';
import { checkPassword, webPasswordChange, webPasswordSet } from './web-password.ts';

const HANDLERS = [
  status,
  services,
  service,
  logs,
  query,
  watch,
  send,
  start,
  stop,
  restart,
  ifup,
  ifdown,
  settingsList,
  settingsSet,
  settingsUnset,
  generations,
  rollback,
  tryCandidate,
  diff,
  confirm,
  configFiles,
  maintenance,
  checkPassword,
  webPasswordChange,
  webPasswordSet,
] as const;

export type CommandName = (typeof HANDLERS)[number]['name'];

export const COMMANDS: readonly CommandName[] = HANDLERS.map((h) => h.name);

const byName = new Map<string, CommandHandler>(HANDLERS.map((h) => [h.name, h]));

/** The handler of command `name`, if there is one. */
export function findCommand(name: string): CommandHandler | undefined {
  return byName.get(name);
}

export function isCommandName(s: string): s is CommandName {
  return byName.has(s);
}
