// `watch`: a stream of the assertions of a dataspace that match a pattern, as they
// come and go (`<added V {CAPTURES}>`, `<removed ...>`, `<message ...>`), with one
// `<synced>` once those already there have been reported. The observer lives in a
// child of the connection's facet: it stops when the client cancels or goes away.
// Every client watching the same pattern shares the text of each event.
//
// A new command goes in a file of its own beside this one, with its line in index.ts
// (handler.ts says what else it needs).

import { record, type Value } from '../../preserves/index.ts';
import { ControlRequestError } from '../errors.ts';
import { ErrorReason, encodeWatchEvent, writeValue } from '../protocol.ts';
import { command, label } from './handler.ts';
import { readPattern } from './query.ts';

export const watch = command({
  name: 'watch',
  tooLargeHint: 'narrow the pattern so that it leaves such values out',
  handle(ctx, deps): Promise<Value | undefined> {
    const ref = deps.ref(ctx.args.dataspace());
    const pattern = readPattern(ctx)!;
    // Bounded: it was read from a request line.
    const patternKey = writeValue(ctx.args.value('pattern', true));
    ctx.args.done();
    const { signal } = ctx;
    const emit =
      (type: 'added' | 'removed' | 'message') =>
      (value: Value, captures: ReadonlyMap<string, Value>): void =>
        ctx.eventText(
          () =>
            deps.sharedEventText(value, `${type} ${patternKey}`, () =>
              encodeWatchEvent({ type, value, captures: [...captures] }),
            ),
          () => label(record(type, value)),
        );
    return new Promise((resolve, reject) => {
      const onAbort = (): void => child.stop();
      const child = ctx.facet.spawn((f) => {
        f.onStop(() => {
          signal.removeEventListener('abort', onAbort);
          if (signal.aborted) resolve(undefined);
          else reject(new ControlRequestError(ErrorReason.Internal, 'the watch failed'));
        });
        f.observe(
          ref,
          pattern,
          {
            onAdd: emit('added'),
            onRemove: emit('removed'),
            onMessage: emit('message'),
          },
          'control watch',
        );
        // Turns run in order, and the observation's first notifications are queued when
        // this turn commits: a turn queued from a turn queued now runs after all of them.
        f.turn(() => f.turn(() => ctx.event(encodeWatchEvent({ type: 'synced' }))));
      }, 'control watch');
      signal.addEventListener('abort', onAbort, { once: true });
      if (signal.aborted) child.stop();
    });
  },
});
