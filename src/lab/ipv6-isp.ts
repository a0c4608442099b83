// The lab's IPv6 (docs/lab.md, "IPv6"): documentation prefixes only (2001:db8::/32).
//
//   world  2001:db8:ffff::10/64 (AAAA of world.test), via 2001:db8:ffff::1
//   isp    2001:db8:ffff::1/64 towards world; 2001:db8:1::1/64 towards rtr, where
//          radvd announces 2001:db8:1::/64 (SLAAC for the router's WAN, M and O
//          flags, RDNSS 2001:db8:1::1) and Kea's DHCPv6 server hands out an address
//          (2001:db8:1::100–1ff) and a delegated /56 from the pool's /48
//          (2001:db8:8000::/48 in generation 0, 2001:db8:8100::/48 after one
//          renumbering, …). A real ISP routes a delegated prefix to the customer:
//          Kea's run_script hook calls libexec/lab-isp-pd-route, which routes each
//          prefix it hands out via the router's link-local address and removes the
//          route when the lease is released, expires or is replaced.
//
// Kea opens its socket on to-rtr only while the link runs (the router sets its end
// up); it retries every second, for as long as the lab lives.
//
// Over PPPoE the ISP's end of the WAN is a PPP interface its pppd makes for each
// session (ppp0, ppp1 …), which Kea can serve only if it exists when Kea starts
// (it names the subnet's interface). So the ISP's pppd runs libexec/lab-isp-ppp6 as
// /etc/ppp/ipv6-up and ipv6-down (wrappers in DIR/isp, bind-mounted there for the
// ISP's processes alone, as its CHAP secrets are): once IPV6CP is up it routes
// 2001:db8:1::/64 through the session's interface and starts a radvd and a Kea
// for it, from templates naming the interface %IFNAME%; when the session ends it
// stops them. The ISP's own 2001:db8:1::1 (its DNS forwarder) is on its lo.

import { chmodSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../platform/package-root.ts';
import { have, shellQuote } from './system.ts';

export const WORLD_ADDRESS6 = '2001:db8:ffff::10';
export const ISP_WORLD_ADDRESS6 = '2001:db8:ffff::1';
/** The ISP's end of the WAN link, also its DNS forwarder over IPv6. */
export const ISP_WAN_ADDRESS6 = '2001:db8:1::1';
export const ISP_WAN_PREFIX6 = '2001:db8:1::/64';
/** The delegated prefixes' length. */
export const DELEGATED_LENGTH = 56;

const PROGRAMS = ['radvd', 'kea-dhcp6'] as const;
const KEA_HOOK = '/usr/lib/x86_64-linux-gnu/kea/hooks/libdhcp_run_script.so';
/** What the ISP's pppd runs when IPV6CP comes up and goes down (Debian's ppp ships both). */
const PPP_IPV6_SCRIPTS = ['/etc/ppp/ipv6-up', '/etc/ppp/ipv6-down'] as const;
/** What libexec/lab-isp-ppp6 uses besides radvd and Kea. */
const PPP_PROGRAMS = ['start-stop-daemon', 'sed'] as const;

/** Why the lab's ISP cannot serve IPv6 here (over PPPoE with `ppp`), or undefined. */
export function ipv6IspProblem(ppp = false): string | undefined {
  const missing = [...PROGRAMS, ...(ppp ? PPP_PROGRAMS : [])].filter((p) => !have(p));
  if (missing.length > 0)
    return `missing programs: ${missing.join(', ')} (npm run bootstrap installs radvd and kea-dhcp6-server)`;
  if (!existsSync(KEA_HOOK)) return `Kea's run_script hook is missing: ${KEA_HOOK}`;
  const scripts = ppp ? PPP_IPV6_SCRIPTS.filter((f) => !existsSync(f)) : [];
  if (scripts.length > 0)
    return `${scripts.join(' and ')} missing: the ISP's pppd would not run the lab's IPv6 hook (reinstall ppp)`;
  return undefined;
}

/** The /48 the ISP delegates from in renumbering generation n (0–127). */
export function delegationPool(n: number): string {
  return `2001:db8:${(0x8000 + n * 0x100).toString(16)}::/48`;
}

/** The /56 the ISP delegates first from generation n's pool (Kea's first free one). */
export function firstDelegation(n: number): string {
  return delegationPool(n).replace('/48', '/56');
}

/** Subnet 1 of firstDelegation(n) (examples/home-router's lan0), as a prefix of addresses. */
export function lanPrefix(n: number): string {
  return `${delegationPool(n).split('::')[0]}:1:`;
}

/** radvd's configuration for the ISP's end of the WAN link. */
export function radvdConfig(ifname: string): string {
  return [
    `interface ${ifname} {`,
    '  AdvSendAdvert on;',
    '  MinRtrAdvInterval 3;',
    '  MaxRtrAdvInterval 10;',
    // Addresses and prefixes by DHCPv6 (M), DNS by it too (O); SLAAC on the link.
    '  AdvManagedFlag on;',
    '  AdvOtherConfigFlag on;',
    `  prefix ${ISP_WAN_PREFIX6} { AdvOnLink on; AdvAutonomous on; AdvValidLifetime 1800; AdvPreferredLifetime 900; };`,
    `  RDNSS ${ISP_WAN_ADDRESS6} { };`,
    '};',
    '',
  ].join('\n');
}

/** What a Kea DHCPv6 server hands out on one link: a subnet of its own. */
export interface KeaDhcp6Link {
  readonly ifname: string;
  /** The link's /64 and the range of addresses (IA_NA) in it. */
  readonly subnet: string;
  readonly pool: string;
  /** The /48 (or other) delegated from, and the delegated length (IA_PD). */
  readonly pdPrefix: string;
  readonly pdLength: number;
  readonly delegatedLength: number;
  readonly preferred: number;
  readonly valid: number;
  readonly renew?: number;
  readonly rebind?: number;
  /** Kea's option-data entries (dns-servers, domain-search…; raw bytes with csv-format #f). */
  readonly options?: readonly { name: string; data: string; 'csv-format'?: boolean }[];
}

/** A Kea DHCPv6 server (the lab's ISP, and tests' and benchmarks' peers). */
export interface KeaDhcp6Options extends KeaDhcp6Link {
  /** A script run by Kea's run_script hook, or none. */
  readonly hookScript?: string;
  /** Retry opening the links' sockets (each runs only once the peer sets its end up). */
  readonly socketRetries?: number;
}

/**
 * Kea's DHCPv6 configuration (kea-dhcp6 -c FILE), logging to its standard output:
 * the link `o`, and each of `more` with a subnet (and lifetimes) of its own.
 */
export function keaDhcp6Config(o: KeaDhcp6Options, more: readonly KeaDhcp6Link[] = []): object {
  const links = [o, ...more];
  return {
    Dhcp6: {
      'interfaces-config': {
        interfaces: links.map((l) => l.ifname),
        'service-sockets-max-retries': o.socketRetries ?? 60,
        'service-sockets-retry-wait-time': 1000,
      },
      'lease-database': { type: 'memfile', persist: false },
      'server-id': { type: 'LL', persist: false },
      ...(o.hookScript === undefined
        ? {}
        : {
            'hooks-libraries': [
              { library: KEA_HOOK, parameters: { name: o.hookScript, sync: false } },
            ],
          }),
      subnet6: links.map((l) => ({
        subnet: l.subnet,
        interface: l.ifname,
        'preferred-lifetime': l.preferred,
        'valid-lifetime': l.valid,
        ...(l.renew === undefined ? {} : { 'renew-timer': l.renew }),
        ...(l.rebind === undefined ? {} : { 'rebind-timer': l.rebind }),
        pools: [{ pool: l.pool }],
        'pd-pools': [
          {
            prefix: l.pdPrefix.split('/')[0],
            'prefix-len': l.pdLength,
            'delegated-len': l.delegatedLength,
          },
        ],
        'option-data': l.options ?? [],
      })),
      loggers: [
        {
          name: 'kea-dhcp6',
          output_options: [{ output: 'stdout', flush: true }],
          severity: 'INFO',
        },
      ],
    },
  };
}

/** The lab ISP's Kea: delegating /56s from generation n's pool, routing each to the router. */
export function keaConfig(ifname: string, n: number): object {
  return keaDhcp6Config({
    ifname,
    subnet: ISP_WAN_PREFIX6,
    pool: '2001:db8:1::100-2001:db8:1::1ff',
    pdPrefix: delegationPool(n),
    pdLength: 48,
    delegatedLength: DELEGATED_LENGTH,
    preferred: 900,
    valid: 1800,
    renew: 450,
    rebind: 720,
    options: [{ name: 'dns-servers', data: ISP_WAN_ADDRESS6 }],
    hookScript: join(packageRoot(), 'libexec', 'lab-isp-pd-route'),
    // The router sets its end of the link up when it starts, and again after a
    // carrier test: keep retrying for as long as the lab lives.
    socketRetries: 1_000_000,
  });
}

/** Writes radvd's and Kea's files under DIR/isp; the paths. */
export function writeIpv6IspFiles(
  labDir: string,
  ifname: string,
  n: number,
): { radvd: string; kea: string } {
  const radvd = join(labDir, 'isp', 'radvd.conf');
  const kea = join(labDir, 'isp', 'kea-dhcp6.json');
  writeFileSync(radvd, radvdConfig(ifname));
  writeFileSync(kea, JSON.stringify(keaConfig(ifname, n), null, 2) + '\n');
  return { radvd, kea };
}

/** The ISP's PPP interface in the per-session templates (libexec/lab-isp-ppp6 fills it in). */
export const PPP_IFNAME = '%IFNAME%';

/** The files that make the ISP's pppd serve IPv6 on each session: what to bind-mount where. */
export interface PppIpv6IspFiles {
  /** DIR/isp/ipv6-up, bind-mounted over /etc/ppp/ipv6-up for the ISP's pppd. */
  readonly up: string;
  readonly down: string;
}

/**
 * Writes the per-session templates (radvd's and Kea's, delegating from generation n's
 * pool) and the ISP pppd's ipv6-up and ipv6-down, which run libexec/lab-isp-ppp6.
 */
export function writePppIpv6IspFiles(labDir: string, n: number): PppIpv6IspFiles {
  const dir = join(labDir, 'isp');
  writeFileSync(join(dir, 'radvd.conf.in'), radvdConfig(PPP_IFNAME));
  writeFileSync(
    join(dir, 'kea-dhcp6.json.in'),
    JSON.stringify(keaConfig(PPP_IFNAME, n), null, 2) + '\n',
  );
  const hook = join(packageRoot(), 'libexec', 'lab-isp-ppp6');
  const wrapper = (verb: 'up' | 'down') => {
    const file = join(dir, `ipv6-${verb}`);
    writeFileSync(
      file,
      `#!/bin/sh\n# The lab ISP's pppd runs this as /etc/ppp/ipv6-${verb} (src/lab/ipv6-isp.ts).\n` +
        `exec ${shellQuote(hook)} ${verb} ${shellQuote(dir)} ${shellQuote(ISP_WAN_PREFIX6)} "$@"\n`,
    );
    chmodSync(file, 0o755);
    return file;
  };
  return { up: wrapper('up'), down: wrapper('down') };
}

export function radvdArgv(labDir: string, conf: string): string[] {
  return ['radvd', '-n', '-C', conf, '-p', join(labDir, 'isp', 'radvd.pid'), '-m', 'stderr'];
}

export function keaArgv(conf: string): string[] {
  return ['kea-dhcp6', '-c', conf];
}

/** Kea's environment: its pid and lock files in the lab's directory, not /run/kea. */
export function keaEnv(labDir: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    KEA_PIDFILE_DIR: join(labDir, 'isp'),
    KEA_LOCKFILE_DIR: join(labDir, 'isp'),
  };
}
