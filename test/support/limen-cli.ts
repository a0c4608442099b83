// Runs the limen CLI from the TypeScript sources (through tsx), so that
// integration tests exercise the code under test without a build step.
// Usage: node --import tsx test/support/limen-cli.ts ARGS...

import { main } from '../../src/cli/main.ts';

process.exitCode = await main(process.argv.slice(2));
