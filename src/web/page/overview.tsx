// The router at a glance: current failures first, then each WAN interface (protocol,
// addresses, default routes, DNS, DHCP lease), the milestones and the daemon itself.

import { Fragment } from 'preact';
import { Card, StateBadge, ago, duration, sortBy, stateText, useNow } from './common.tsx';
import type { Daemon } from './daemon.ts';
import { serviceStates, useWatch, type Match } from './live.ts';
import * as P from './patterns.ts';
import {
  asArray,
  asDict,
  asNumber,
  asRecord,
  asString,
  fieldsOf,
  printValue,
  show,
  symName,
  type Json,
} from './values.ts';

export function OverviewView(props: { daemon: Daemon }) {
  return (
    <div class="overview">
      <Failures />
      <div class="columns">
        <div>
          <WanCards />
        </div>
        <div>
          <LanCard />
          <Milestones />
          <DaemonCard daemon={props.daemon} />
        </div>
      </div>
    </div>
  );
}

function Failures() {
  const failures = useWatch(P.currentFailure, 'config');
  const now = useNow(10_000);
  const list = sortBy(failures.items.values(), (m) => show(asDict(m.captures.f)?.kind));
  return (
    <section
      class={`card failures ${list.length > 0 ? 'has-failures' : 'no-failures'}`}
      data-testid="failures"
    >
      <h2>
        {list.length > 0 ? `${list.length} failure${list.length > 1 ? 's' : ''}` : 'No failures'}
      </h2>
      {list.length === 0 && failures.synced && (
        <p class="muted">Everything limen checks is fine.</p>
      )}
      <ul>
        {list.map((m) => {
          const f = asDict(m.captures.f) ?? {};
          const level = asString(f.level) ?? 'error';
          return (
            <li key={printValue(m.value)} class={`failure level-${level}`} data-testid="failure">
              <span class="kind">{show(f.kind)}</span>
              <span class="text">{show(f.text ?? f.message)}</span>
              {f.since !== undefined && (
                <span class="since muted" title={show(f.since)}>
                  since {ago(show(f.since), now)}
                </span>
              )}
            </li>
          );
        })}
      </ul>
    </section>
  );
}

/** The interface names a `<firewall-zone Z [IF…]>` lists; `"ppp*"` matches by prefix. */
function inZone(zones: Iterable<Match>, zone: string, ifname: string): boolean {
  for (const m of zones) {
    if (symName(m.captures.zone) !== zone) continue;
    for (const member of asArray(m.captures.ifs) ?? []) {
      const name = asString(member);
      if (name === undefined) continue;
      if (name.endsWith('*') ? ifname.startsWith(name.slice(0, -1)) : name === ifname) return true;
    }
  }
  return false;
}

function byInterface(items: Iterable<Match>, key: string, ifname: string): Match[] {
  return [...items].filter((m) => asString(m.captures[key]) === ifname);
}

function WanCards() {
  const configured = useWatch(P.configureInterface, 'config');
  const zones = useWatch(P.firewallZone, 'config');
  const links = useWatch(P.networkInterface, 'machine');
  const addresses = useWatch(P.address, 'machine');
  const routes = useWatch(P.defaultRoute, 'machine');
  const dns = useWatch(P.dnsServer, 'config');
  const leases = useWatch(P.dhcpLease, 'config');
  // One card per interface, with every protocol that configures it (wan0 has <dhcp>
  // and <dhcpv6 …>).
  const byIf = new Map<string, Json[]>();
  for (const m of configured.items.values()) {
    const ifname = asString(m.captures.if) ?? show(m.captures.if);
    if (inZone(zones.items.values(), 'lan', ifname)) continue;
    byIf.set(ifname, [...(byIf.get(ifname) ?? []), m.captures.proto ?? null]);
  }
  const wans = sortBy(byIf, ([ifname]) => ifname);
  if (wans.length === 0) {
    return (
      <Card title="WAN">
        <p class="muted">{configured.synced ? 'No WAN interface is configured.' : 'Loading…'}</p>
      </Card>
    );
  }
  return (
    <>
      {wans.map(([ifname, protos]) => {
        const link = byInterface(links.items.values(), 'name', ifname)[0];
        return (
          <Wan
            key={ifname}
            ifname={ifname}
            protos={sortBy(protos, (p) => printValue(p))}
            link={link}
            addresses={byInterface(addresses.items.values(), 'if', ifname)}
            routes={byInterface(routes.items.values(), 'ifname', ifname)}
            dns={[...dns.items.values()].filter(
              (d) => asString(fieldsOf(d.captures.source, 'dhcp')?.[0]) === ifname,
            )}
            lease={byInterface(leases.items.values(), 'if', ifname)[0]}
          />
        );
      })}
    </>
  );
}

function lifetime(v: Json | undefined): string {
  const n = asNumber(v);
  return n === undefined ? (symName(v) ?? show(v)) : duration(n);
}

function Wan(props: {
  ifname: string;
  protos: Json[];
  link: Match | undefined;
  addresses: Match[];
  routes: Match[];
  dns: Match[];
  lease: Match | undefined;
}) {
  const oper = stateText(props.link?.captures.oper);
  const carrier = stateText(props.link?.captures.carrier);
  const lease = asDict(props.lease?.captures.lease);
  const global = sortBy(
    props.addresses.filter((a) => symName(asDict(a.captures.info)?.scope) !== 'link'),
    (a) => show(a.captures.family) + show(a.captures.addr),
  );
  return (
    <Card
      class="wan"
      testid={`wan-${props.ifname}`}
      title={
        <>
          {props.ifname}{' '}
          <span class="muted">
            {props.protos.map((p) => asRecord(p)?.label ?? show(p)).join(' + ')}
          </span>
          {props.link === undefined ? (
            <StateBadge state="absent" />
          ) : (
            <StateBadge state={carrier === 'no-carrier' ? 'no-carrier' : oper} />
          )}
        </>
      }
    >
      <dl>
        <dt>Protocol</dt>
        <dd>
          {props.protos.map((p) => (
            <div key={printValue(p)}>
              <code>{printValue(p)}</code>
            </div>
          ))}
        </dd>
        <dt>Addresses</dt>
        <dd>
          {global.length === 0 && <span class="muted">none</span>}
          {global.map((a) => {
            const info = asDict(a.captures.info);
            return (
              <div key={printValue(a.value)} data-testid="wan-address">
                <code>
                  {show(a.captures.addr)}/{show(a.captures.len)}
                </code>{' '}
                <span class="muted">
                  {symName(a.captures.family)}
                  {info !== undefined && info.valid !== undefined
                    ? ` · valid ${lifetime(info.valid)}, preferred ${lifetime(info.preferred)}`
                    : ''}
                </span>
              </div>
            );
          })}
        </dd>
        <dt>Default routes</dt>
        <dd>
          {props.routes.length === 0 && <span class="muted">none</span>}
          {sortBy(props.routes, (r) => show(r.captures.family)).map((r) => (
            <div key={printValue(r.value)} data-testid="wan-route">
              <span class="muted">{symName(r.captures.family)}</span> via{' '}
              <code>{r.captures.gw === false ? 'direct' : show(r.captures.gw)}</code>{' '}
              <span class="muted">metric {show(r.captures.prio)}</span>
            </div>
          ))}
        </dd>
        <dt>DNS</dt>
        <dd>
          {props.dns.length === 0 && <span class="muted">none</span>}
          {props.dns.map((d) => (
            <code key={printValue(d.value)} class="inline-list">
              {show(d.captures.addr)}
            </code>
          ))}
        </dd>
        {lease !== undefined && (
          <>
            <dt>DHCP lease</dt>
            <dd data-testid="wan-lease">
              <code>
                {show(lease.ip)}/{show(lease.prefix)}
              </code>{' '}
              <span class="muted">
                {lease.lease === undefined ? '' : `lease ${lifetime(lease.lease)}`}
                {lease.server !== undefined ? ` from ${show(lease.server)}` : ''}
                {lease.event !== undefined ? ` (${show(lease.event)})` : ''}
              </span>
            </dd>
          </>
        )}
      </dl>
    </Card>
  );
}

/** The LAN side in brief: each interface of zone lan, its addresses and its clients. */
function LanCard() {
  const zones = useWatch(P.firewallZone, 'config');
  const links = useWatch(P.networkInterface, 'machine');
  const addresses = useWatch(P.address, 'machine');
  const clients = useWatch(P.lanClient, 'machine');
  const lans = sortBy(
    [...links.items.values()].filter((m) =>
      inZone(zones.items.values(), 'lan', asString(m.captures.name) ?? ''),
    ),
    (m) => show(m.captures.name),
  );
  if (lans.length === 0) return null;
  return (
    <Card title="LAN" testid="lan">
      <dl>
        {lans.map((m) => {
          const ifname = asString(m.captures.name) ?? '';
          const count = byInterface(clients.items.values(), 'if', ifname).length;
          return (
            <Fragment key={ifname}>
              <dt>
                {ifname} <StateBadge state={stateText(m.captures.oper)} />
              </dt>
              <dd>
                {sortBy(
                  byInterface(addresses.items.values(), 'if', ifname).filter(
                    (a) => symName(asDict(a.captures.info)?.scope) !== 'link',
                  ),
                  (a) => show(a.captures.family) + show(a.captures.addr),
                ).map((a) => (
                  <div key={printValue(a.value)}>
                    <code>
                      {show(a.captures.addr)}/{show(a.captures.len)}
                    </code>
                  </div>
                ))}
                <a href="#clients" class="muted">
                  {count} client{count === 1 ? '' : 's'}
                </a>
              </dd>
            </Fragment>
          );
        })}
      </dl>
    </Card>
  );
}

function Milestones() {
  const states = useWatch(P.serviceState, 'config');
  const milestones = sortBy(
    [...serviceStates(states.items.values()).values()].flatMap((m) => {
      const name = fieldsOf(m.service, 'milestone')?.[0];
      return name === undefined ? [] : [{ name: show(name), state: m.state }];
    }),
    (m) => m.name,
  );
  return (
    <Card title="Milestones" testid="milestones">
      {milestones.length === 0 && <p class="muted">none</p>}
      <ul class="milestones">
        {milestones.map((m) => (
          <li key={m.name} data-testid="milestone" data-milestone={m.name}>
            <StateBadge state={m.state} /> {m.name}
          </li>
        ))}
      </ul>
    </Card>
  );
}

function DaemonCard(props: { daemon: Daemon }) {
  const now = useNow(1000);
  const { daemon } = props;
  const current = daemon.generations?.find((g) => g.current);
  return (
    <Card title="Daemon" testid="daemon">
      <dl>
        <dt>Version</dt>
        <dd data-testid="version">{daemon.version ?? '…'}</dd>
        <dt>Uptime</dt>
        <dd data-testid="uptime">
          {daemon.startedAt === undefined ? '…' : duration((now - daemon.startedAt) / 1000)}
        </dd>
        <dt>Services</dt>
        <dd>{show(daemon.status?.services)}</dd>
        <dt>Configuration</dt>
        <dd data-testid="generation">
          {current === undefined ? (
            <span class="muted">{daemon.generations === undefined ? '…' : 'no generations'}</span>
          ) : (
            <>
              generation {current.number} <span class="muted">({current.outcome})</span>
            </>
          )}
        </dd>
      </dl>
    </Card>
  );
}
