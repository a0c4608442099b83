// Records every configuration the daemon runs as a generation (generations.ts):
// the site configuration at start, then every hand edit once it has settled
// (no change in the site roots for `settleMs`, longer than the config watchers'
// own settling, so the generation is what they applied). A snapshot equal to the
// current generation records nothing: a rollback that writes a generation's files
// back, or an edit undone, is no new generation. One operation at a time.

import { watch, type FSWatcher } from 'node:fs';
import type { Logger } from '../dataspace/index.ts';
import {
  GenerationError,
  describeOutcome,
  isDirectory,
  restoreFiles,
  snapshot,
  type GenerationInfo,
  type GenerationStore,
} from './generations.ts';

/** Quiet time before a hand edit is recorded (the watchers settle in 100 ms, 2 s at most). */
export const DEFAULT_SETTLE_MS = 500;

export interface GenerationRecorderOptions {
  readonly store: GenerationStore;
  /** The site roots the daemon was started with. */
  readonly roots: readonly string[];
  readonly logger: Logger;
  readonly settleMs?: number;
}

export interface RollbackResult {
  readonly from: number | undefined;
  readonly to: number;
  readonly written: number;
  readonly removed: number;
}

export interface GenerationRecorder {
  /** Resolves once nothing is waiting to be recorded (for tests and `rollback`). */
  idle(): Promise<void>;
  /** Runs `f` with the store to itself: after, and before, every recording and rollback. */
  exclusive<T>(f: () => Promise<T>): Promise<T>;
  list(): Promise<GenerationInfo[]>;
  /** Puts generation `to` (default: the last confirmed before the current) back in place. */
  rollback(to: number | undefined, reason: string): Promise<RollbackResult>;
  close(): void;
}

export async function startGenerationRecorder(
  o: GenerationRecorderOptions,
): Promise<GenerationRecorder> {
  const settleMs = o.settleMs ?? DEFAULT_SETTLE_MS;
  const { store, logger } = o;
  let chain: Promise<unknown> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  /** Resolves once the edit waiting to settle has been looked at. */
  let waiting: { promise: Promise<void>; resolve: () => void } | undefined;
  let closed = false;
  const watchers: FSWatcher[] = [];

  /** Runs `f` after everything queued before it. */
  const serial = <T>(f: () => Promise<T>): Promise<T> => {
    const run = chain.then(f, f);
    chain = run.catch(() => undefined);
    return run;
  };

  const recordIfChanged = async (message: string, who: string): Promise<void> => {
    let snap;
    try {
      snap = await snapshot(o.roots);
    } catch (e) {
      logger.warn('cannot record the site configuration as a generation', {
        error: (e as Error).message,
      });
      return;
    }
    try {
      if (snap.checksum === (await store.currentChecksum())) return;
      const n = await store.record(snap, { message, who });
      logger.info?.('configuration generation recorded', { generation: n, message, who });
    } catch (e) {
      logger.warn('cannot record the site configuration as a generation', {
        error: (e as Error).message,
      });
    }
  };

  const poke = (): void => {
    if (closed) return;
    if (waiting === undefined) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      waiting = { promise, resolve };
    }
    clearTimeout(timer);
    timer = setTimeout(() => {
      const done = waiting;
      waiting = undefined;
      void serial(() => recordIfChanged('hand edit', 'a file edit')).finally(() => done?.resolve());
    }, settleMs);
  };

  if (store.damagedState)
    logger.warn('the generations state file was damaged: rebuilt from the generations', {
      kept: `${store.dir}/state.pr.damaged`,
    });
  await serial(() =>
    recordIfChanged(
      store.current === undefined
        ? 'the configuration at first start'
        : 'changed while limen was not running',
      'daemon start',
    ),
  );
  for (const root of o.roots) {
    if (!(await isDirectory(root))) continue;
    try {
      const w = watch(root, { recursive: true, persistent: false }, (_event, name) => {
        // Dot-files (editors' swap files, atomic writes' temporaries) are not configuration.
        const base =
          String(name ?? '')
            .split('/')
            .at(-1) ?? '';
        if (!base.startsWith('.')) poke();
      });
      w.on('error', () => undefined);
      watchers.push(w);
    } catch (e) {
      logger.warn('cannot watch a site root for hand edits', {
        root,
        error: (e as Error).message,
      });
    }
  }

  return {
    async idle() {
      while (waiting !== undefined) await waiting.promise;
      await chain;
    },
    list: () => serial(() => store.list()),
    exclusive: serial,
    rollback(to, reason) {
      return serial(async () => {
        const from = store.current;
        const target =
          to ??
          (await store.list())
            .filter((g) => g.outcome.kind === 'confirmed' && g.number !== from)
            .at(-1)?.number;
        if (target === undefined) {
          throw new GenerationError(
            from === undefined
              ? 'there is no generation yet'
              : `generation ${from} is the only confirmed generation: there is nothing to go back to`,
          );
        }
        const g = await store.read(target);
        // The target is current before its files land, so that the watcher sees no edit.
        if (from !== undefined && from !== target) {
          await store.settle(from, { kind: 'rolled-back', reason }, target);
        }
        await store.makeCurrent(target);
        const r = await restoreFiles(g);
        logger.info?.('configuration rolled back', {
          from: from ?? 'none',
          to: target,
          reason,
          outcome: from === undefined ? '' : describeOutcome(store.outcome(from)),
        });
        return { from, to: target, ...r };
      });
    },
    close() {
      closed = true;
      clearTimeout(timer);
      waiting?.resolve();
      waiting = undefined;
      for (const w of watchers.splice(0)) w.close();
    },
  };
}
