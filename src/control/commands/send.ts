// `send`: a message into a dataspace, sent from the server's facet.
//
// A new command goes in a file of its own beside this one, with its line in index.ts
// (handler.ts says what else it needs).

import { command } from './handler.ts';

export const send = command({
  name: 'send',
  handle(ctx, deps) {
    const ref = deps.ref(ctx.args.dataspace());
    const message = ctx.args.value('message', true);
    ctx.args.done();
    deps.facet.turn(() => deps.facet.send(ref, message));
    return true;
  },
});
