// Maintenance mode (docs/safe-change.md, "Maintenance mode"): only the recovery
// bundle runs. Its state is on disk in the state directory, so that it survives a
// restart: `maintenance.pr` (`<maintenance "REASON">`) while it is on, and
// `start-attempts` (starts in a row whose configuration did not come up), which
// turns it on by itself at the fourth start after three that failed, so a router
// never boot-loops out of reach.

import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { syncDirectory, writeFileAtomic } from '../platform/atomic-file.ts';
import { Record, parse, peel, record, stringify, sym } from '../preserves/index.ts';

/** Starts in a row that did not bring the configuration up before maintenance is entered. */
export const FAILED_STARTS_FOR_MAINTENANCE = 3;

const MODE_FILE = 'maintenance.pr';
const ATTEMPTS_FILE = 'start-attempts';

async function readText(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/** The reason maintenance mode is on, or undefined when it is off. */
export async function readMaintenance(stateDir: string): Promise<string | undefined> {
  const text = await readText(join(stateDir, MODE_FILE));
  if (text === undefined) return undefined;
  try {
    const v = peel(parse(text));
    if (v instanceof Record && peel(v.label) === sym('maintenance')) {
      const reason = peel(v.fields[0] ?? '');
      return typeof reason === 'string' ? reason : stringify(reason);
    }
  } catch {
    // A damaged file still means "on": the safe reading.
  }
  return 'maintenance mode (its state file could not be read)';
}

/** Turns maintenance mode on (with its reason) or off, durably. */
export async function writeMaintenance(
  stateDir: string,
  reason: string | undefined,
): Promise<void> {
  const path = join(stateDir, MODE_FILE);
  if (reason === undefined) {
    await rm(path, { force: true });
    await syncDirectory(stateDir);
  } else {
    await writeFileAtomic(path, stringify(record('maintenance', reason)) + '\n', { mode: 0o600 });
  }
}

/** Starts in a row that have not (yet) brought the configuration up. */
export async function readStartAttempts(stateDir: string): Promise<number> {
  const n = Number((await readText(join(stateDir, ATTEMPTS_FILE)))?.trim() ?? '0');
  return Number.isSafeInteger(n) && n >= 0 ? n : 0;
}

export async function writeStartAttempts(stateDir: string, n: number): Promise<void> {
  await writeFileAtomic(join(stateDir, ATTEMPTS_FILE), `${n}\n`, { mode: 0o600 });
}

/**
 * At start: counts this start, and returns the reason to enter maintenance mode
 * when the previous FAILED_STARTS_FOR_MAINTENANCE starts all failed to bring the
 * configuration up (undefined otherwise).
 */
export async function countStart(stateDir: string): Promise<string | undefined> {
  const failed = await readStartAttempts(stateDir);
  await writeStartAttempts(stateDir, failed + 1);
  return failed >= FAILED_STARTS_FOR_MAINTENANCE
    ? `the configuration did not come up in ${failed} starts in a row`
    : undefined;
}
