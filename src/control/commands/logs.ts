// `logs`: a service's kept output, the last `lines` lines; with `follow`, those lines
// as events, then each new one, until the client cancels (a stream: it ends with
// `<end ID>`).
//
// A new command goes in a file of its own beside this one, with its line in index.ts
// (handler.ts says what else it needs).

import { ControlRequestError } from '../errors.ts';
import { ErrorReason, encodeLogEntry } from '../protocol.ts';
import { waitForAbort } from '../signals.ts';
import { command, label } from './handler.ts';

export const logs = command({
  name: 'logs',
  tooLargeHint: 'ask for fewer lines (limen logs --lines N)',
  async handle(ctx, deps) {
    const service = ctx.args.value('service', true);
    const lines = ctx.args.count('lines', Number.MAX_SAFE_INTEGER);
    const follow = ctx.args.boolean('follow', false);
    ctx.args.done();
    const source = deps.options.services.logs(service);
    if (source === undefined) {
      throw new ControlRequestError(
        ErrorReason.NotFound,
        `no logs for ${label(service)}: limen has not run that service`,
      );
    }
    if (!follow) return source.tail(lines).map(encodeLogEntry);
    for (const e of source.tail(lines)) ctx.event(encodeLogEntry(e));
    const sub = source.follow((e) => ctx.event(encodeLogEntry(e)));
    try {
      await waitForAbort(ctx.signal);
    } finally {
      sub.dispose();
    }
    return undefined;
  },
});
