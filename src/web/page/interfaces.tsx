// The kernel's interfaces ($machine) with ifup/ifdown, each showing its progress and
// its answer or error under the row.

import { useState } from 'preact/hooks';
import { request } from './api.ts';
import { Card, ErrorLine, StateBadge, sortBy, stateText } from './common.tsx';
import { useWatch, type Match } from './live.ts';
import * as P from './patterns.ts';
import { asNumber, fieldsOf, printValue, show, type Json } from './values.ts';

export function InterfacesView() {
  const links = useWatch(P.networkInterface, 'machine');
  // One row per name, keyed by it: a change of state replaces the assertion, and the
  // row (with an ifup/ifdown's answer under it) must stay.
  const byName = new Map<string, Match>();
  for (const m of links.items.values()) byName.set(show(m.captures.name), m);
  const rows = sortBy(byName.values(), (m) =>
    String(asNumber(m.captures.index) ?? 0).padStart(6, '0'),
  );
  return (
    <Card title="Interfaces" testid="interfaces">
      <table>
        <thead>
          <tr>
            <th>Name</th>
            <th>Type</th>
            <th>Admin</th>
            <th>Oper</th>
            <th>Carrier</th>
            <th>MAC</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {rows.map((m) => (
            <InterfaceRow key={show(m.captures.name)} captures={m.captures} />
          ))}
        </tbody>
      </table>
      {rows.length === 0 && <p class="muted">{links.synced ? 'No interfaces.' : 'Loading…'}</p>}
    </Card>
  );
}

function InterfaceRow(props: { captures: Readonly<Record<string, Json>> }) {
  const c = props.captures;
  const name = show(c.name);
  const [busy, setBusy] = useState(false);
  const [progress, setProgress] = useState<string[]>([]);
  const [answer, setAnswer] = useState<string | undefined>(undefined);
  const [error, setError] = useState<unknown>(undefined);
  const run = (command: 'ifup' | 'ifdown') => () => {
    setBusy(true);
    setProgress([]);
    setAnswer(undefined);
    setError(undefined);
    request(command, { interface: name }, (event) => {
      const p = fieldsOf(event, 'progress')?.[0];
      setProgress((old) => [...old, show(p ?? event)]);
    }).then(
      (v) => {
        setBusy(false);
        setAnswer(printValue(v));
      },
      (err: unknown) => {
        setBusy(false);
        setError(err);
      },
    );
  };
  const shown = busy || progress.length > 0 || answer !== undefined || error !== undefined;
  return (
    <>
      <tr data-testid="interface" data-interface={name}>
        <td>
          <strong>{name}</strong>
        </td>
        <td>{stateText(c.type)}</td>
        <td>
          <StateBadge state={stateText(c.admin)} />
        </td>
        <td>
          <StateBadge state={stateText(c.oper)} />
        </td>
        <td>
          <StateBadge state={stateText(c.carrier)} />
        </td>
        <td>
          <code>{c.mac === false ? '' : show(c.mac)}</code>
        </td>
        <td class="buttons">
          <button type="button" data-testid="ifup" disabled={busy} onClick={run('ifup')}>
            ifup
          </button>
          <button type="button" data-testid="ifdown" disabled={busy} onClick={run('ifdown')}>
            ifdown
          </button>
        </td>
      </tr>
      {shown && (
        <tr class="result-row">
          <td colSpan={7} data-testid="if-result">
            {progress.map((p, i) => (
              <div key={i} class="progress-line">
                {p}
              </div>
            ))}
            {busy && <span class="muted">working…</span>}
            {answer !== undefined && <code>{answer}</code>}
            <ErrorLine error={error} />
          </td>
        </tr>
      )}
    </>
  );
}
