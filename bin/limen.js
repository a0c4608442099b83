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
// bin/code-cache.js keeps V8's compiled code for the bundles between runs.
// The line runs only sh builtins (`:`, case, exec): no extra process. Prettier
// leaves this file alone (.prettierignore), as it would rewrite that line.
'use strict';

require('./code-cache.js');

// A command's output goes out with write(2) (src/cli/io.ts) unless the pipe is full,
// when it goes through process.stdout or process.stderr. When neither stream was
// ever made, nothing is left to write once the command returns, and it exits at
// once rather than wait for Node's teardown (some 3 ms of every command). The
// daemon and the lab, which own children and streams, always end the usual way.
const streams = { used: false };
for (const name of ['stdout', 'stderr']) {
  const d = Object.getOwnPropertyDescriptor(process, name);
  if (d === undefined || d.get === undefined || !d.configurable) {
    streams.used = true;
    continue;
  }
  Object.defineProperty(process, name, {
    configurable: true,
    enumerable: d.enumerable,
    get() {
      streams.used = true;
      return d.get.call(process);
    },
  });
}

const argv = process.argv.slice(2);
require('../dist/cli/main.cjs')
  .main(argv)
  .then((code) => {
    if (!streams.used && argv[0] !== 'daemon' && argv[0] !== 'lab') process.exit(code);
    process.exitCode = code;
  });
