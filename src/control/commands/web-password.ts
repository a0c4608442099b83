// `check-password {password}` answers `{valid: BOOL}`: the web dashboard's login, on
// the web endpoint (rate-limited: ../web-endpoint.ts). `web-password-set {password}`
// or `{random: #t}` stores a new one (root's socket only) and answers `{file}`, with
// `password` when it chose it. Neither ever logs the password.
//
// A new command goes in a file of its own beside this one, with its line in index.ts
// (handler.ts says what else it needs).

import type { Value } from '../../preserves/index.ts';
import { ControlRequestError } from '../errors.ts';
import { ErrorReason, dictOf } from '../protocol.ts';
import type { WebPasswords } from '../web-endpoint.ts';
import { MAX_PASSWORD_BYTES } from '../web-password.ts';
import { command, type CommandDeps } from './handler.ts';

function passwords(deps: CommandDeps, command: string): WebPasswords {
  const w = deps.options.webPasswords;
  if (w === undefined)
    throw new ControlRequestError(
      ErrorReason.Unsupported,
      `${command} is not available: this daemon keeps no web password`,
    );
  return w;
}

export const checkPassword = command({
  name: 'check-password',
  async handle(ctx, deps): Promise<Value> {
    const password = ctx.args.string('password', true);
    ctx.args.done();
    if (Buffer.byteLength(password) > MAX_PASSWORD_BYTES)
      throw new ControlRequestError(
        ErrorReason.BadRequest,
        `a password has at most ${MAX_PASSWORD_BYTES} bytes`,
      );
    // The connection's facet stands for the connection: its failures are counted on it.
    const valid = await passwords(deps, 'check-password').check(password, ctx.facet, deps.endpoint);
    return dictOf({ valid });
  },
});

export const webPasswordSet = command({
  name: 'web-password-set',
  async handle(ctx, deps): Promise<Value> {
    const password = ctx.args.string('password');
    const random = ctx.args.boolean('random', false);
    if ((password === undefined) === !random)
      ctx.args.problem('give either argument password or random: #t');
    ctx.args.done();
    const r = await passwords(deps, 'web-password-set').set(random ? undefined : password);
    return dictOf(r);
  },
});

/**
 * `web-password-change {old new}`: the dashboard's own change of password. The old one
 * is checked as `check-password` checks it (its failures count towards the same rate
 * limits), so the web endpoint may run it: it changes nothing without the password.
 * Answers `{changed: BOOL}`.
 */
export const webPasswordChange = command({
  name: 'web-password-change',
  async handle(ctx, deps): Promise<Value> {
    const old = ctx.args.string('old', true);
    const next = ctx.args.string('new', true);
    ctx.args.done();
    if (Buffer.byteLength(old) > MAX_PASSWORD_BYTES)
      throw new ControlRequestError(
        ErrorReason.BadRequest,
        `a password has at most ${MAX_PASSWORD_BYTES} bytes`,
      );
    const w = passwords(deps, 'web-password-change');
    if (!(await w.check(old, ctx.facet, deps.endpoint))) return dictOf({ changed: false });
    await w.set(next);
    return dictOf({ changed: true });
  },
});
