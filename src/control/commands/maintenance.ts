// `maintenance {on: BOOL}` (without `on`: just the state) answers `{on: BOOL reason: "…"}`:
// maintenance mode (CommandOptions.maintenance), where only the recovery bundle runs.
//
// A new command goes in a file of its own beside this one, with its line in index.ts
// (handler.ts says what else it needs).

import { ControlRequestError } from '../errors.ts';
import { ErrorReason, dictOf } from '../protocol.ts';
import { command } from './handler.ts';

export const maintenance = command({
  name: 'maintenance',
  async handle(ctx, deps) {
    const on = ctx.args.value('on');
    if (on !== undefined && typeof on !== 'boolean')
      ctx.args.problem('argument on must be #t or #f');
    ctx.args.done();
    const m = deps.options.maintenance;
    if (m === undefined)
      throw new ControlRequestError(ErrorReason.Unsupported, 'this daemon has no maintenance mode');
    const reason = typeof on === 'boolean' ? await m.set(on) : m.reason();
    return dictOf({ on: reason !== undefined, ...(reason === undefined ? {} : { reason }) });
  },
});
