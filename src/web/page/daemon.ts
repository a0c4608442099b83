// What the page asks the daemon once, at load: its status (version, uptime) and the
// configuration generations, the latter again after a trial or a rollback ends.
// Uptime then counts on locally: nothing is polled.

import { useCallback, useEffect, useState } from 'preact/hooks';
import { request } from './api.ts';
import { adoptTrial } from './trial.tsx';
import { asArray, asDict, asNumber, asString, type Json, type JsonObject } from './values.ts';

export interface Generation {
  readonly number: number;
  readonly time: number | undefined;
  readonly message: string;
  readonly who: string;
  readonly outcome: string;
  readonly current: boolean;
  readonly lastConfirmed: boolean;
}

export interface Daemon {
  readonly version: string | undefined;
  /** When the daemon started, ms since the epoch (from its uptime at load). */
  readonly startedAt: number | undefined;
  readonly status: JsonObject | undefined;
  readonly generations: readonly Generation[] | undefined;
  readonly error: unknown;
  readonly refreshGenerations: () => void;
}

function readGeneration(v: Json): Generation | undefined {
  const d = asDict(v);
  const number = asNumber(d?.number);
  if (d === undefined || number === undefined) return undefined;
  return {
    number,
    time: asNumber(d.time),
    message: asString(d.message) ?? '',
    who: asString(d.who) ?? '',
    outcome: asString(d.outcome) ?? '',
    current: d.current === true,
    lastConfirmed: d['last-confirmed'] === true,
  };
}

export function useDaemon(): Daemon {
  const [status, setStatus] = useState<JsonObject | undefined>(undefined);
  const [startedAt, setStartedAt] = useState<number | undefined>(undefined);
  const [generations, setGenerations] = useState<readonly Generation[] | undefined>(undefined);
  const [error, setError] = useState<unknown>(undefined);

  const refreshGenerations = useCallback(() => {
    request('generations', {}).then(
      (v) => setGenerations((asArray(v) ?? []).flatMap((g) => readGeneration(g) ?? [])),
      // A daemon that keeps no generations answers `unsupported`: an empty list then.
      (e: unknown) => {
        setGenerations([]);
        if ((e as { reason?: string }).reason !== 'unsupported') setError(e);
      },
    );
  }, []);

  useEffect(() => {
    request('status', {}).then((v) => {
      const d = asDict(v);
      setStatus(d);
      const uptime = /^(\d+)s$/.exec(asString(d?.uptime) ?? '');
      if (uptime !== null) setStartedAt(Date.now() - Number(uptime[1]) * 1000);
      adoptTrial(d?.trial);
    }, setError);
    refreshGenerations();
  }, [refreshGenerations]);

  return {
    version: asString(status?.version),
    startedAt,
    status,
    generations,
    error,
    refreshGenerations,
  };
}
