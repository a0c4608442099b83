// Live views of the daemon's dataspaces, from `watch` streams: the page never polls.
//
// Why one watch per dataspace: a browser holds at most six HTTP/1.1 connections to a
// host, and each server-sent-event stream keeps one. The overview alone follows seven
// shapes; seven streams would leave no connection for requests. So the page watches
// every assertion of `config` and of `machine` once (pattern `_`), keeps them in one
// store each, and each view selects its shape from the store with a local matcher of
// the same patterns the daemon takes (`_`, `?x`, `<?x P>`, literals, records and
// sequences by prefix, dictionaries by the keys listed).

import { useEffect, useState } from 'preact/hooks';
import { stream, type ApiError } from './api.ts';
import { match } from './pattern-match.ts';
import { asDict, asRecord, keyOf, sym, type Json } from './values.ts';

export type Dataspace = 'config' | 'machine';

export interface Match {
  readonly value: Json;
  readonly captures: Readonly<Record<string, Json>>;
}

/** A watch's present assertions, keyed by the JSON text of each value. */
export interface WatchState {
  readonly items: ReadonlyMap<string, Match>;
  /** Everything present at the start has arrived. */
  readonly synced: boolean;
  readonly error: ApiError | undefined;
}

export interface Watch {
  readonly state: WatchState;
  subscribe(listener: () => void): () => void;
  close(): void;
}

/**
 * `watch {pattern, dataspace}` as a store: `<added V C>` adds V, `<removed V C>`
 * removes it, `<synced>` marks the end of what was there at the start.
 */
export function watch(pattern: Json, dataspace: Dataspace): Watch {
  // Events change `working` in place; listeners get a new snapshot at most once a
  // frame, so a replay of thousands of assertions costs one copy, not one per event.
  let working = new Map<string, Match>();
  let synced = false;
  let error: ApiError | undefined;
  let state: WatchState = { items: new Map(), synced, error };
  const listeners = new Set<() => void>();
  let frame: number | undefined;
  // After a reconnection the old snapshot stays shown until the replay is complete,
  // rather than flashing empty views.
  let replaying = false;
  let opened = false;
  const publish = () => {
    frame = undefined;
    state = { items: new Map(working), synced, error };
    for (const l of [...listeners]) l();
  };
  const changed = () => {
    if (!replaying) frame ??= requestAnimationFrame(publish);
  };
  const s = stream(
    'watch',
    { pattern, dataspace },
    {
      onOpen() {
        // A reconnection replays every present assertion.
        replaying = opened;
        opened = true;
        working = new Map();
        synced = false;
        error = undefined;
        changed();
      },
      onEvent(event) {
        const r = asRecord(event);
        if (r === undefined) return;
        const value = r.fields[0];
        const captures = asDict(r.fields[1]) ?? {};
        if (r.label === 'synced') {
          synced = true;
          replaying = false;
        } else if (value === undefined) return;
        else if (r.label === 'added') working.set(keyOf(value), { value, captures });
        else if (r.label === 'removed') working.delete(keyOf(value));
        else return; // messages: no view uses them
        changed();
      },
      onError(e) {
        error = e;
        replaying = false;
        changed();
      },
    },
  );
  return {
    get state() {
      return state;
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    close() {
      s.close();
      if (frame !== undefined) cancelAnimationFrame(frame);
    },
  };
}

// ---- One shared watch per dataspace ---------------------------------------------------

// Opened by the first view that needs it and kept for the session (closed at logout):
// switching views then shows the present state at once, without replaying it, and the
// header's live indicator follows the same two streams whatever the view.
const shared = new Map<Dataspace, Watch>();

function acquire(dataspace: Dataspace): Watch {
  let w = shared.get(dataspace);
  if (w === undefined) {
    w = watch(sym('_'), dataspace);
    shared.set(dataspace, w);
  }
  return w;
}

/** Closes every shared watch (logout, or the session ended). */
export function closeAllWatches(): void {
  for (const w of shared.values()) w.close();
  shared.clear();
}

/** The assertions of `dataspace` matching `pattern`, live, for a component. */
export function useWatch(pattern: Json, dataspace: Dataspace): WatchState {
  const patternKey = keyOf(pattern);
  const [state, setState] = useState<WatchState>(() => ({
    items: new Map(),
    synced: false,
    error: undefined,
  }));
  useEffect(() => {
    const w = acquire(dataspace);
    let lastItems: ReadonlyMap<string, Match> | undefined;
    let last: WatchState | undefined;
    const update = () => {
      const all = w.state;
      // Filter again only when the store changed; an unchanged selection keeps its
      // identity, so views re-render only for changes of their own shape.
      if (all.items !== lastItems) {
        lastItems = all.items;
        const selected = new Map<string, Match>();
        for (const [key, m] of all.items) {
          const captures = match(pattern, m.value);
          if (captures !== undefined) selected.set(key, { value: m.value, captures });
        }
        const same =
          last !== undefined &&
          last.items.size === selected.size &&
          [...selected.keys()].every((k) => last!.items.has(k));
        if (!same || last === undefined) {
          last = { items: selected, synced: all.synced, error: all.error };
          setState(last);
          return;
        }
      }
      if (last === undefined || last.synced !== all.synced || last.error !== all.error) {
        last = { items: last?.items ?? new Map(), synced: all.synced, error: all.error };
        setState(last);
      }
    };
    update();
    const unsubscribe = w.subscribe(update);
    return unsubscribe;
    // The pattern is compared by its text: a new literal with the same shape is the same.
  }, [patternKey, dataspace]);
  return state;
}

/** The error that ended the shared watch of `dataspace`, if one did (shown by the shell). */
export function useWatchError(dataspace: Dataspace): ApiError | undefined {
  const [error, setError] = useState<ApiError | undefined>(undefined);
  useEffect(() => {
    const w = acquire(dataspace);
    const update = () => setError(w.state.error);
    update();
    return w.subscribe(update);
  }, [dataspace]);
  return error;
}
