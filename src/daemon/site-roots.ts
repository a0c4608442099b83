// A site root holds core/ and services/, which the boot layer loads; a script
// placed directly in the root belongs to neither layer and is not loaded. Rather
// than ignore it silently, this reports each such file as a
// `<config-error PATH {line: 0 column: 0 message: …}>` (so `limen status` and the
// log show it) for as long as it is there: each root is watched, and rescanned
// on SIGHUP.

import { watch, type FSWatcher } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Dict, record, sym, type Value } from '../preserves/index.ts';
import type { Facet, Handle, Ref } from '../dataspace/index.ts';

export interface SiteRootCheck {
  /** Looks at every root again; resolves once the errors are up to date. */
  rescan(): Promise<void>;
}

const DEBOUNCE_MS = 20;

/** The message for a script directly in a site root. */
export function strayScriptMessage(root: string): string {
  return `not loaded: a script directly in the site root ${root} belongs to no layer; move it into core/ or services/`;
}

function strayError(root: string, path: string): Value {
  return record(
    'config-error',
    path,
    new Dict([
      [sym('line'), 0],
      [sym('column'), 0],
      [sym('message'), strayScriptMessage(root)],
    ]),
  );
}

/** `*.pr` files (not dot-files) directly in `root`; none when it cannot be read. */
async function strayScripts(root: string): Promise<string[]> {
  const entries = await readdir(root, { withFileTypes: true }).catch(() => []);
  return entries
    .filter((e) => !e.name.startsWith('.') && e.name.endsWith('.pr') && !e.isDirectory())
    .map((e) => join(root, e.name))
    .sort();
}

/** Starts the check in a child facet of `parent`; it stops with it. */
export function startSiteRootCheck(
  parent: Facet,
  options: { readonly config: Ref; readonly roots: readonly string[] },
): SiteRootCheck {
  const asserted = new Map<string, Handle>();
  const watchers: FSWatcher[] = [];
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let again = false;
  const facet = parent.spawn((f) => {
    f.onStop(() => {
      clearTimeout(timer);
      for (const w of watchers.splice(0)) w.close();
    });
  }, 'site roots');

  const scanOnce = async (): Promise<void> => {
    const found = new Map<string, string>();
    for (const root of options.roots) for (const p of await strayScripts(root)) found.set(p, root);
    if (!facet.isAlive) return;
    facet.turn(() => {
      for (const [p, h] of asserted) {
        if (found.has(p)) continue;
        facet.retract(h);
        asserted.delete(p);
      }
      for (const [p, root] of found) {
        if (!asserted.has(p)) asserted.set(p, facet.assert(options.config, strayError(root, p)));
      }
    });
  };
  const scan = (): Promise<void> => {
    if (running !== undefined) {
      again = true;
      return running;
    }
    running = (async () => {
      try {
        do {
          again = false;
          await scanOnce();
        } while (again && facet.isAlive);
      } finally {
        running = undefined;
      }
    })();
    return running;
  };
  const schedule = (): void => {
    if (timer !== undefined || !facet.isAlive) return;
    timer = setTimeout(() => {
      timer = undefined;
      void scan();
    }, DEBOUNCE_MS);
  };
  for (const root of options.roots) {
    try {
      const w = watch(root, { persistent: false }, schedule);
      w.on('error', schedule);
      watchers.push(w);
    } catch {
      // A missing default root (/etc/limen) has nothing to report; SIGHUP looks again.
    }
  }
  void scan();
  return { rescan: scan };
}
