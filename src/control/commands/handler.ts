// What a control command is: a name and a handler that reads the request's arguments
// (collecting every problem, then ctx.args.done()), does the work and returns the
// answer, or undefined for a stream that ends. The transport (../server.ts,
// ../connection.ts) owns the connection, the limits, the events' delivery and the
// cancellation; a handler sees only its request (RequestContext) and the daemon's
// providers (CommandDeps).
//
// A new command: a file here exporting `command({ name, handle })`, its line in the
// table (index.ts), a CLI file in src/cli/commands/ with its line in src/cli/main.ts,
// and its section in docs/control-protocol.md.

import type { Facet, Handle, Ref } from '../../dataspace/index.ts';
import { showValue, type ValueMap, type Value } from '../../preserves/index.ts';
import type { ArgReader, DataspaceName, MessageLimits, RequestId } from '../protocol.ts';
import type {
  GenerationsProvider,
  InterfaceController,
  MaintenanceControl,
  ServiceView,
} from '../providers.ts';
import type { SettingsStore } from '../settings-store.ts';
import type { WebPasswords } from '../web-endpoint.ts';

/** What the daemon gives the commands: its dataspaces and providers, and their settings. */
export interface CommandOptions {
  readonly dataspaces: { readonly config: Ref; readonly machine: Ref; readonly log: Ref };
  readonly services: ServiceView;
  /** Absent until the network layer exists: ifup/ifdown then answer `unsupported`. */
  readonly interfaces?: InterfaceController | undefined;
  readonly settings: SettingsStore;
  /** Absent: generations and rollback answer `unsupported`. */
  readonly generations?: GenerationsProvider | undefined;
  /** Absent: maintenance answers `unsupported`. */
  readonly maintenance?: MaintenanceControl | undefined;
  /** Absent: check-password and web-password-set answer `unsupported`. */
  readonly webPasswords?: WebPasswords | undefined;
  /** What `limen status` shows: a dictionary, by convention. */
  readonly status: () => Value | Promise<Value>;
  /** Matches one query may answer (default 20,000). */
  readonly maxQueryMatches?: number;
  /** ifup/ifdown time limit when the request gives none (default 60 s). */
  readonly interfaceTimeoutMs?: number;
}

/** The wire text of an event's value, for `<event ID TEXT>`, and its UTF-8 size. */
export interface EncodedEvent {
  readonly text: string;
  readonly bytes: number;
}

/** What every handler is given: one per server. */
export interface CommandDeps {
  readonly options: CommandOptions;
  /** Which socket the request came on, as the log names it: `root` or `web`. */
  readonly endpoint: string;
  /** The server's facet: what a command asserts for clients lives until the server closes. */
  readonly facet: Facet;
  /** What one message sent may cost. */
  readonly limits: MessageLimits;
  /** `<require-service S>` asserted by `start`, by service. */
  readonly required: ValueMap<Handle>;
  ref(name: DataspaceName): Ref;
  /**
   * `body()` as the wire text of an event's value, within the limits of a message (the
   * event record around it included). Written once per tick for one `owner` object and
   * `key`, so that every client of the same stream shares one text (and one string).
   * Throws MessageTooLargeError, with the message's limits.
   */
  sharedEventText(owner: Value, key: string, body: () => Value): EncodedEvent;
}

/** One request, as its handler sees it. */
export interface RequestContext {
  readonly id: RequestId;
  readonly args: ArgReader;
  /** Aborted when the client cancels the request or goes away. */
  readonly signal: AbortSignal;
  /** The connection's facet: what the request starts there stops with the connection. */
  readonly facet: Facet;
  /** Streams an event; ignored once the request has finished. */
  event(value: Value): void;
  /**
   * Streams an event written as wire text by `write` (see CommandDeps.sharedEventText);
   * `describe` names it if it cannot be sent.
   */
  eventText(write: () => EncodedEvent, describe: () => string): void;
}

export interface CommandHandler<N extends string = string> {
  readonly name: N;
  /** What a client can do about an answer or event of this command over a limit. */
  readonly tooLargeHint?: string;
  /** The answer, or undefined when a stream ends (`<end ID>`). Errors become `<error>`. */
  handle(ctx: RequestContext, deps: CommandDeps): Value | undefined | Promise<Value | undefined>;
}

/** A handler, its name kept as a literal type (the table derives the command names from it). */
export function command<N extends string>(handler: CommandHandler<N>): CommandHandler<N> {
  return handler;
}

/** A request's one argument, `name` (required), read and the arguments checked. */
export function onlyArgument(ctx: RequestContext, name: string): Value {
  const value = ctx.args.value(name, true);
  ctx.args.done();
  return value;
}

/** At most 80 characters of v's text, however large v is (preserves/show.ts). */
export function label(v: Value): string {
  return showValue(v);
}

export function formatSeconds(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(1)} s`;
}
