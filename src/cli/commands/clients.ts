// `limen clients`: the hosts on the LAN interfaces, as the daemon's client list
// (`<lan-client IF MAC {…}>` in $machine, src/net/lan-clients.ts) has them: DHCPv4
// leases and IPv6 neighbours joined by hardware address.

import { Dict, Record, Sym, dict, parse, peel, sym, type Value } from '../../preserves/index.ts';
import { decodeQueryAnswer } from '../../control/client.ts';
import { controlCommand } from '../control-command.ts';
import { jsonLine, showTime } from '../format.ts';
import { ExitCode } from '../io.ts';
import { renderTable } from '../table.ts';

export interface LanClient {
  readonly ifname: string;
  readonly mac: string;
  readonly hostname: string | undefined;
  readonly ipv4: readonly string[];
  readonly ipv6: readonly string[];
  /** Seconds since the epoch, 'never', or undefined (no lease). */
  readonly expires: number | 'never' | undefined;
}

const texts = (v: Value | undefined): string[] => {
  const s = v === undefined ? undefined : peel(v);
  return Array.isArray(s)
    ? s.map((x) => peel(x as Value)).filter((x) => typeof x === 'string')
    : [];
};

/** A `<lan-client IF MAC {hostname ipv4 ipv6 expires}>`, or undefined if it is not one. */
export function decodeLanClient(v: Value): LanClient | undefined {
  const r = peel(v);
  if (!(r instanceof Record) || r.fields.length < 3) return undefined;
  const [ifname, mac, info] = r.fields.map((f) => peel(f));
  if (typeof ifname !== 'string' || typeof mac !== 'string' || !(info instanceof Dict))
    return undefined;
  const host = peel(info.get(sym('hostname')) ?? false);
  const exp = peel(info.get(sym('expires')) ?? false);
  return {
    ifname,
    mac,
    hostname: typeof host === 'string' ? host : undefined,
    ipv4: texts(info.get(sym('ipv4'))),
    ipv6: texts(info.get(sym('ipv6'))),
    expires:
      typeof exp === 'number'
        ? exp
        : exp instanceof Sym && exp.name === 'never'
          ? 'never'
          : undefined,
  };
}

/** The table: one row per client, and a row more for each further address. */
export function clientRows(clients: readonly LanClient[]): string[][] {
  const rows: string[][] = [];
  for (const c of clients) {
    const expires =
      c.expires === undefined ? '-' : c.expires === 'never' ? 'never' : showTime(c.expires * 1000);
    const n = Math.max(1, c.ipv4.length, c.ipv6.length);
    for (let i = 0; i < n; i++)
      rows.push(
        i === 0
          ? [c.ifname, c.mac, c.hostname ?? '-', c.ipv4[0] ?? '-', expires, c.ipv6[0] ?? '-']
          : ['', '', '', c.ipv4[i] ?? '', '', c.ipv6[i] ?? ''],
      );
  }
  return rows;
}

export const clientsCommand = controlCommand({
  path: ['clients'],
  summary: 'the hosts on the LAN: DHCP leases and IPv6 neighbours',
  usage: 'limen clients [--json] [--socket PATH]',
  help: `Lists the hosts on every LAN interface (one with <lan-dhcp IF …>): each hardware
address that holds a DHCPv4 lease of the LAN's dnsmasq, or that the kernel knows as an
IPv6 neighbour with a global or ULA address (SLAAC hosts, which dnsmasq never hears
of), with its name, IPv4 addresses and when their lease expires (UTC), and IPv6
addresses. A host's IPv6 addresses are listed while the kernel keeps them in its
neighbour table (stale entries included), so a host that left may stay a while.

With --json, a list of {interface, mac, hostname, ipv4, ipv6, expires} (hostname and
expires false when unknown; expires in seconds since the epoch, or {"@sym": "never"}).

Examples:
  limen clients
  limen clients --json | jq -r '.[] | select(.ipv6 != []) | .mac'`,
  positionals: [0, 0],
  async run(ctx) {
    const client = await ctx.client();
    const answer = decodeQueryAnswer(await client.query('machine', parse('<lan-client _ _ _>')));
    const clients = answer.matches
      .map((m) => decodeLanClient(m.value))
      .filter((c): c is LanClient => c !== undefined)
      .sort((a, b) => a.ifname.localeCompare(b.ifname) || a.mac.localeCompare(b.mac));
    if (ctx.json) {
      ctx.io.out(
        jsonLine(
          clients.map((c) =>
            dict({
              interface: c.ifname,
              mac: c.mac,
              hostname: c.hostname ?? false,
              ipv4: [...c.ipv4],
              ipv6: [...c.ipv6],
              expires: c.expires === 'never' ? sym('never') : (c.expires ?? false),
            }),
          ),
        ),
      );
      return ExitCode.Ok;
    }
    if (clients.length === 0) {
      ctx.io.out('no clients\n');
      return ExitCode.Ok;
    }
    ctx.io.out(
      renderTable(
        ['INTERFACE', 'MAC', 'HOSTNAME', 'IPV4', 'EXPIRES', 'IPV6'],
        clientRows(clients),
        { color: ctx.color },
      ),
    );
    return ExitCode.Ok;
  },
});
