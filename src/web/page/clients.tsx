// Hosts on the LAN: `<lan-client IF MAC {hostname ipv4 ipv6 expires}>` in $machine.

import { Card, sortBy, useNow, duration } from './common.tsx';
import { useWatch } from './live.ts';
import * as P from './patterns.ts';
import { asArray, asDict, asNumber, printValue, show, symName, type Json } from './values.ts';

function expiry(v: Json | undefined, now: number): string {
  const at = asNumber(v);
  if (at !== undefined) return `in ${duration(at - now / 1000)}`;
  if (v === false || v === undefined) return '—';
  return symName(v) ?? show(v);
}

export function ClientsView() {
  const clients = useWatch(P.lanClient, 'machine');
  const now = useNow(10_000);
  const rows = sortBy(clients.items.values(), (m) => show(m.captures.if) + show(m.captures.mac));
  return (
    <Card title={`LAN clients (${rows.length})`} testid="clients">
      <table>
        <thead>
          <tr>
            <th>Hostname</th>
            <th>Interface</th>
            <th>MAC</th>
            <th>IPv4</th>
            <th>IPv6</th>
            <th>Lease ends</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((m) => {
            const info = asDict(m.captures.info) ?? {};
            const hostname = info.hostname === false ? '' : show(info.hostname);
            return (
              <tr key={printValue(m.value)} data-testid="client" data-mac={show(m.captures.mac)}>
                <td>{hostname || <span class="muted">unknown</span>}</td>
                <td>{show(m.captures.if)}</td>
                <td>
                  <code>{show(m.captures.mac)}</code>
                </td>
                <td>
                  {(asArray(info.ipv4) ?? []).map((a) => (
                    <div key={show(a)}>{show(a)}</div>
                  ))}
                </td>
                <td>
                  {(asArray(info.ipv6) ?? []).map((a) => (
                    <div key={show(a)}>
                      <code>{show(a)}</code>
                    </div>
                  ))}
                </td>
                <td>{expiry(info.expires, now)}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
      {rows.length === 0 && <p class="muted">{clients.synced ? 'No clients.' : 'Loading…'}</p>}
    </Card>
  );
}
