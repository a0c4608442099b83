// Every service the supervisor reports, with its processes, start/stop/restart, and a
// live log for the one selected.

import { useEffect, useRef, useState } from 'preact/hooks';
import { request, stream, type ApiError } from './api.ts';
import { Card, ErrorLine, StateBadge, sortBy } from './common.tsx';
import { serviceStates, useWatch } from './live.ts';
import * as P from './patterns.ts';
import { asArray, asDict, keyOf, printValue, show, type Json } from './values.ts';

/** Log lines kept in the page: the oldest go first. */
const LOG_LINES = 1000;

export function ServicesView() {
  const states = useWatch(P.serviceState, 'config');
  const processes = useWatch(P.serviceProcess, 'config');
  const [selected, setSelected] = useState<Json | undefined>(undefined);
  const info = new Map<string, Json>();
  for (const m of processes.items.values())
    info.set(keyOf(m.captures.s ?? null), m.captures.info ?? null);
  const rows = sortBy(serviceStates(states.items.values()).values(), (m) => printValue(m.service));
  return (
    <>
      <Card title={`Services (${rows.length})`} testid="services">
        <table class="services">
          <thead>
            <tr>
              <th>Service</th>
              <th>State</th>
              <th>PIDs</th>
              <th>Restarts</th>
              <th>Started</th>
              <th>Last exit</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {rows.map((m) => {
              const service = m.service;
              return (
                <ServiceRow
                  key={keyOf(service)}
                  service={service}
                  state={m.state}
                  info={asDict(info.get(keyOf(service)))}
                  selected={selected !== undefined && keyOf(selected) === keyOf(service)}
                  onSelect={() => setSelected(service)}
                />
              );
            })}
          </tbody>
        </table>
        {rows.length === 0 && <p class="muted">{states.synced ? 'No services.' : 'Loading…'}</p>}
      </Card>
      {selected !== undefined && (
        <ServiceLog
          key={keyOf(selected)}
          service={selected}
          onClose={() => setSelected(undefined)}
        />
      )}
    </>
  );
}

function ServiceRow(props: {
  service: Json;
  state: string;
  info: Record<string, Json> | undefined;
  selected: boolean;
  onSelect: () => void;
}) {
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<string | undefined>(undefined);
  const [error, setError] = useState<unknown>(undefined);
  const printed = printValue(props.service);
  const run = (command: 'start' | 'stop' | 'restart') => (e: Event) => {
    e.stopPropagation();
    setBusy(true);
    setError(undefined);
    setResult(undefined);
    request(command, { service: props.service }).then(
      (answer) => {
        setBusy(false);
        setResult(`${command}: ${printValue(answer)}`);
      },
      (err: unknown) => {
        setBusy(false);
        setError(err);
      },
    );
  };
  const info = props.info;
  const lastExit = asDict(info?.lastExit);
  return (
    <>
      <tr
        data-testid="service"
        data-service={printed}
        class={`clickable ${props.selected ? 'selected' : ''}`}
        onClick={props.onSelect}
      >
        <td>
          <code>{printed}</code>
        </td>
        <td data-testid="service-state">
          <StateBadge state={props.state} />
        </td>
        <td data-testid="service-pids">{(asArray(info?.pids) ?? []).map(show).join(' ')}</td>
        <td>{show(info?.restarts)}</td>
        <td>{show(info?.started)}</td>
        <td>{lastExit === undefined ? '' : exitText(lastExit)}</td>
        <td class="buttons">
          <button type="button" data-testid="start" disabled={busy} onClick={run('start')}>
            Start
          </button>
          <button type="button" data-testid="stop" disabled={busy} onClick={run('stop')}>
            Stop
          </button>
          <button type="button" data-testid="restart" disabled={busy} onClick={run('restart')}>
            Restart
          </button>
          <button
            type="button"
            data-testid="log"
            onClick={(e) => {
              e.stopPropagation();
              props.onSelect();
            }}
          >
            Log
          </button>
        </td>
      </tr>
      {(error !== undefined || result !== undefined) && (
        <tr class="result-row">
          <td colSpan={7}>
            <ErrorLine error={error} testid="service-error" />
            {result !== undefined && (
              <span class="muted" data-testid="service-result">
                {result}
              </span>
            )}
          </td>
        </tr>
      )}
    </>
  );
}

function exitText(e: Record<string, Json>): string {
  const how =
    e.error !== undefined
      ? show(e.error)
      : e.signal !== undefined
        ? `signal ${show(e.signal)}`
        : `code ${show(e.code)}`;
  return `${how}${e.stopped === true ? ' (stopped)' : ''}${e.at !== undefined ? ` at ${show(e.at)}` : ''}`;
}

interface LogLine {
  readonly id: number;
  readonly time: string;
  readonly stream: string;
  readonly line: string;
}

function ServiceLog(props: { service: Json; onClose: () => void }) {
  const [lines, setLines] = useState<readonly LogLine[]>([]);
  const [error, setError] = useState<ApiError | undefined>(undefined);
  const [ended, setEnded] = useState(false);
  const bottom = useRef<HTMLDivElement>(null);
  useEffect(() => {
    let next = 0;
    // Lines arrive in bursts: gather them and render once a frame.
    let pending: LogLine[] = [];
    let frame: number | undefined;
    const flush = () => {
      frame = undefined;
      const batch = pending;
      pending = [];
      setLines((old) => [...old, ...batch].slice(-LOG_LINES));
    };
    const s = stream(
      'logs',
      { service: props.service, lines: 200, follow: true },
      {
        onOpen: () => {
          pending = [];
          setLines([]);
        },
        onEvent: (v) => {
          const d = asDict(v) ?? {};
          pending.push({
            id: next++,
            time: show(d.time),
            stream: show(d.stream),
            line: show(d.line),
          });
          frame ??= requestAnimationFrame(flush);
        },
        onError: setError,
        onEnd: () => setEnded(true),
      },
    );
    return () => {
      s.close();
      if (frame !== undefined) cancelAnimationFrame(frame);
    };
  }, [props.service]);
  useEffect(() => bottom.current?.scrollIntoView({ block: 'nearest' }), [lines]);
  return (
    <Card
      title={
        <>
          Log of <code>{printValue(props.service)}</code>{' '}
          <button type="button" data-testid="close-log" onClick={props.onClose}>
            Close
          </button>
        </>
      }
      testid="service-log"
    >
      <ErrorLine error={error} testid="log-error" />
      <div class="log">
        {lines.map((l) => (
          <div key={l.id} class={`log-line ${l.stream}`} data-testid="log-line">
            <span class="muted">{l.time}</span> {l.line}
          </div>
        ))}
        <div ref={bottom} />
      </div>
      {ended && <p class="muted">The log ended.</p>}
    </Card>
  );
}
