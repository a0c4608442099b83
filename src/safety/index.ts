// Safe change (docs/safe-change.md): configuration generations on disk, and the
// recorder that makes every configuration the daemon runs one of them.

export * from './generations.ts';
export * from './recorder.ts';
export * from './trial.ts';
export * from './maintenance.ts';
export * from './plan.ts';
