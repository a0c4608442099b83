#!/bin/sh
":" //; case "$1" in daemon) exec node --max-semi-space-size=2 "$0" "$@" ;; esac; exec node "$0" "$@"
// The limen CLI: a thin shim over dist/cli/main.cjs (the bundle `npm run build`
// makes: scripts/build-cli.mjs). CommonJS (bin/package.json), so that a command
// that talks to the daemon does not pay for Node's ES module loader.
//
// The line above is for sh, which runs this file first (to node it is a comment):
// the daemon gets a 2 MB young generation, which keeps its RSS ~10 MB lower at no
// measured cost (bench/supervisor.ts runs limen with the same flag), while the
// other commands, short-lived, start without it: with it they start ~10% slower
// (bench/cli.ts). `node bin/limen.js …` skips that line, and the flag with it.
// The line runs only sh builtins (`:`, case, exec): no extra process. Prettier
// leaves this file alone (.prettierignore), as it would rewrite that line.
'use strict';

require('../dist/cli/main.cjs')
  .main(process.argv.slice(2))
  .then((code) => {
    process.exitCode = code;
  });
