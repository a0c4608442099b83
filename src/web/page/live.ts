// Live views of the daemon's dataspaces, from `watch` streams: the page never polls.
//
// Why one stream: a browser holds at most six HTTP/1.1 connections to a host, and each
// server-sent-event stream keeps one. The overview alone follows seven shapes; seven
// streams would leave no connection for requests. So the page watches every shape the
// views use (SHAPES, below) once, all in one stream (`GET /api/watch`), keeps what
// they match in one store per dataspace, and each view selects its shape from the store
// with a local matcher of the same patterns the daemon takes (`_`, `?x`, `<?x P>`,
// literals, records and sequences by prefix, dictionaries by the keys listed). Only
// what some view shows crosses the network.

import { useEffect, useState } from 'preact/hooks';
import { streamWatches, type ApiError } from './api.ts';
import * as P from './patterns.ts';
import { match } from './pattern-match.ts';
import { asDict, asRecord, keyOf, printValue, symName, type Json } from './values.ts';

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

/** What the views select (patterns.ts), each watched once, all in one stream. */
const SHAPES: readonly { readonly pattern: Json; readonly dataspace: Dataspace }[] = [
  { pattern: P.currentFailure, dataspace: 'config' },
  { pattern: P.configureInterface, dataspace: 'config' },
  { pattern: P.firewallZone, dataspace: 'config' },
  { pattern: P.dhcpLease, dataspace: 'config' },
  { pattern: P.dnsServer, dataspace: 'config' },
  { pattern: P.serviceState, dataspace: 'config' },
  { pattern: P.serviceProcess, dataspace: 'config' },
  { pattern: P.requireService, dataspace: 'config' },
  { pattern: P.dependsOn, dataspace: 'config' },
  { pattern: P.address, dataspace: 'machine' },
  { pattern: P.defaultRoute, dataspace: 'machine' },
  { pattern: P.lanClient, dataspace: 'machine' },
  { pattern: P.networkInterface, dataspace: 'machine' },
];

/** A dataspace's store: what the shapes watched in it match now. */
class Store implements Watch {
  /** By the JSON text of each value, with how many of the watches report it. */
  working = new Map<string, { match: Match; count: number }>();
  synced = false;
  error: ApiError | undefined;
  state: WatchState = { items: new Map(), synced: false, error: undefined };
  readonly listeners = new Set<() => void>();
  close: () => void = () => undefined;

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  publish(): void {
    const items = new Map<string, Match>();
    for (const [k, e] of this.working) items.set(k, e.match);
    this.state = { items, synced: this.synced, error: this.error };
    for (const l of [...this.listeners]) l();
  }
}

/**
 * Every shape of SHAPES as one stream: `<added V C>` adds V to its dataspace's store,
 * `<removed V C>` removes it, each watch's `<synced>` counts towards the store's. Events
 * change the stores in place; listeners get a new snapshot at most once a frame, so a
 * replay of thousands of assertions costs one copy, not one per event.
 */
function watchShapes(): Map<Dataspace, Store> {
  const stores = new Map<Dataspace, Store>([
    ['config', new Store()],
    ['machine', new Store()],
  ]);
  const syncedWatches = new Set<number>();
  let frame: number | undefined;
  // After a reconnection the old snapshot stays shown until the replay is complete,
  // rather than flashing empty views.
  let replaying = false;
  let opened = false;
  const publish = () => {
    frame = undefined;
    for (const st of stores.values()) st.publish();
  };
  const changed = () => {
    if (!replaying) frame ??= requestAnimationFrame(publish);
  };
  const s = streamWatches(SHAPES, {
    onOpen() {
      // A reconnection replays every present assertion.
      replaying = opened;
      opened = true;
      syncedWatches.clear();
      for (const st of stores.values()) {
        st.working = new Map();
        st.synced = false;
        st.error = undefined;
      }
      changed();
    },
    onEvent(data) {
      const tagged = asDict(data);
      const index = tagged?.['watch'];
      const shape = typeof index === 'number' ? SHAPES[index] : undefined;
      const r = asRecord(tagged?.['event']);
      if (shape === undefined || r === undefined) return;
      const st = stores.get(shape.dataspace)!;
      const value = r.fields[0];
      const captures = asDict(r.fields[1]) ?? {};
      if (r.label === 'synced') {
        syncedWatches.add(index as number);
        for (const [ds, store] of stores)
          store.synced = SHAPES.every((w, i) => w.dataspace !== ds || syncedWatches.has(i));
        if (syncedWatches.size === SHAPES.length) replaying = false;
      } else if (value === undefined) return;
      else if (r.label === 'added') {
        const key = keyOf(value);
        const e = st.working.get(key);
        if (e === undefined) st.working.set(key, { match: { value, captures }, count: 1 });
        else e.count++;
      } else if (r.label === 'removed') {
        const key = keyOf(value);
        const e = st.working.get(key);
        if (e !== undefined && --e.count <= 0) st.working.delete(key);
      } else return; // messages: no view uses them
      changed();
    },
    onError(e) {
      for (const st of stores.values()) st.error = e;
      replaying = false;
      changed();
    },
  });
  const close = () => {
    s.close();
    if (frame !== undefined) cancelAnimationFrame(frame);
  };
  for (const st of stores.values()) st.close = close;
  return stores;
}

// ---- The shared stores ------------------------------------------------------------------

// Opened by the first view that needs them and kept for the session (closed at logout):
// switching views then shows the present state at once, without replaying it, and the
// header's live indicator follows the one stream whatever the view.
let shared: Map<Dataspace, Store> | undefined;

function acquire(dataspace: Dataspace): Watch {
  shared ??= watchShapes();
  return shared.get(dataspace)!;
}

/** Closes every shared watch (logout, or the session ended). */
export function closeAllWatches(): void {
  shared?.get('config')?.close();
  shared = undefined;
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

/**
 * `<service-state S STATE>` by service, one state each: the supervisor's (`started`,
 * `ready`, `complete`, `failed`) rather than the boot layer's `up`, which it adds beside
 * `ready` and `complete`; `up` only where it is all there is.
 */
export function serviceStates(
  items: Iterable<Match>,
): Map<string, { service: Json; state: string }> {
  const out = new Map<string, { service: Json; state: string }>();
  for (const m of items) {
    const service = m.captures['s'] ?? null;
    const state = symName(m.captures['state']) ?? printValue(m.captures['state'] ?? null);
    const key = keyOf(service);
    const had = out.get(key);
    if (had === undefined || had.state === 'up' || state === 'failed')
      out.set(key, { service, state });
  }
  return out;
}
