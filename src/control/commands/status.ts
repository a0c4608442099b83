// `status`: what the daemon says about itself (CommandOptions.status), as it says it.
//
// A new command goes in a file of its own beside this one, with its line in index.ts
// (handler.ts says what else it needs).

import { command } from './handler.ts';

export const status = command({
  name: 'status',
  handle(ctx, deps) {
    ctx.args.done();
    return deps.options.status();
  },
});
