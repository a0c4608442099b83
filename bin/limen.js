#!/usr/bin/env -S node --max-semi-space-size=2
// Thin shim: the CLI lives in dist/cli/main.js (built by `npm run build`).
// A 2 MB young generation keeps the daemon's RSS ~10 MB lower at no measured
// cost (bench/supervisor.ts runs limen with the same flag).
import { main } from '../dist/cli/main.js';

process.exitCode = await main(process.argv.slice(2));
