// The lab's ISP over PPPoE (`limen lab up --wan pppoe`, the demo's `--wan pppoe`):
// Debian's pppoe-server on the ISP's end of the WAN link with CHAP, handing the
// router 100.64.0.10 and the ISP's DNS forwarder 100.64.0.1, and the router's site
// configuration switched to `<configure-interface "wan0" <pppoe {…}>>` with a
// password file of its own. It needs a kernel with PPP and PPPoE, which this kind
// of machine has only in the VM (src/lab/vm.ts, src/lab/vm-lab.ts).
//
// The ISP's pppd reads its CHAP secrets only from /etc/ppp/chap-secrets: the lab's
// own file is bind-mounted there inside the ISP's process alone (`ip netns exec`
// gives every command a private mount namespace), so the machine's file is never
// touched. With IPv6 its pppd runs IPV6CP too (its end fe80::1) and the lab's
// ipv6-up and ipv6-down, bound the same way (src/lab/ipv6-isp.ts), and the router
// asks for DHCPv6 on ppp-wan0.

import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { have, tryRun } from './system.ts';
import { ISP_WAN_ADDRESS6, type PppIpv6IspFiles } from './ipv6-isp.ts';

/** The PPP user name the lab's router dials as. */
export const LAB_PPP_USER = 'lab-router';
/** The ISP's side of the PPP link, also its DNS forwarder. */
export const ISP_PPP_ADDRESS = '100.64.0.1';
/** The first address the ISP hands out on a PPP link. */
export const ISP_PPP_POOL = '100.64.0.10';

const PROGRAMS = ['pppd', 'pppoe-server', 'mount'];

/**
 * Why this machine cannot run a PPPoE lab, or undefined. Loads the modules it can
 * (modprobe, best effort: in the VM they are modules; a host kernel may have them built in).
 */
export function pppoeLabProblem(): string | undefined {
  const missing = PROGRAMS.filter((p) => !have(p));
  if (missing.length > 0)
    return `missing programs: ${missing.join(', ')} (npm run bootstrap installs ppp and pppoe)`;
  if (have('modprobe')) {
    for (const m of ['ppp_generic', 'pppoe', 'ppp_async']) tryRun(['modprobe', '-q', m], 15_000);
  }
  if (!existsSync('/dev/ppp') && !existsSync('/sys/class/misc/ppp'))
    return 'this kernel has no PPP (ppp_generic) and cannot load it: run the lab in the VM (--vm)';
  if (!existsSync('/proc/net/pppoe'))
    return 'this kernel has no PPPoE (pppoe) and cannot load it: run the lab in the VM (--vm)';
  return undefined;
}

export interface PppoeIspFiles {
  /** The ISP's CHAP secrets (bind-mounted over /etc/ppp/chap-secrets for its pppd). */
  readonly secrets: string;
  readonly options: string;
  /** The router's password file (mode 0600), named by its site configuration. */
  readonly routerPassword: string;
  /** The ISP's IPv6 on each session (bind-mounted over /etc/ppp/ipv6-up and ipv6-down). */
  readonly ipv6?: PppIpv6IspFiles;
}

/** Writes the ISP's and the router's PPP files under the lab's directory (IPV6CP with ipv6). */
export function writePppoeFiles(labDir: string, ipv6?: PppIpv6IspFiles): PppoeIspFiles {
  const secret = randomBytes(12).toString('hex');
  const secrets = join(labDir, 'isp', 'chap-secrets');
  const options = join(labDir, 'isp', 'pppoe-server-options');
  const routerPassword = join(labDir, 'rtr', 'ppp-password');
  const write = (path: string, text: string, mode: number) => {
    writeFileSync(path, text, { mode });
    chmodSync(path, mode);
  };
  write(secrets, `"${LAB_PPP_USER}" * "${secret}" *\n`, 0o600);
  write(
    options,
    [
      'require-chap',
      `ms-dns ${ISP_PPP_ADDRESS}`,
      'lcp-echo-interval 1',
      'lcp-echo-failure 3',
      // The ISP's end of the link is fe80::1 (the router's RA default route's gateway).
      ...(ipv6 === undefined ? [] : ['+ipv6', 'ipv6 ::1,']),
      '',
    ].join('\n'),
    0o644,
  );
  write(routerPassword, secret, 0o600);
  return { secrets, options, routerPassword, ...(ipv6 === undefined ? {} : { ipv6 }) };
}

/**
 * pppoe-server's argv (in the ISP's namespace), in the foreground, with the lab's
 * secrets and IPv6 scripts bound over the machine's (pairs FILE TARGET before `--`).
 */
export function pppoeServerArgv(files: PppoeIspFiles): string[] {
  const binds = [
    [files.secrets, '/etc/ppp/chap-secrets'],
    ...(files.ipv6 === undefined
      ? []
      : [
          [files.ipv6.up, '/etc/ppp/ipv6-up'],
          [files.ipv6.down, '/etc/ppp/ipv6-down'],
        ]),
  ];
  return [
    'sh',
    '-c',
    'while [ "$1" != -- ]; do mount --bind "$1" "$2" || exit 1; shift 2; done; ' +
      'shift; exec pppoe-server -F "$@"',
    'pppoe-server',
    ...binds.flat(),
    '--',
    ...['-I', 'to-rtr', '-L', ISP_PPP_ADDRESS, '-R', ISP_PPP_POOL, '-N', '4'],
    ...['-O', files.options],
  ];
}

/** A lab peer's dnsmasq: in the foreground, logging to stderr, reading no file of the machine. */
export function peerDnsmasq(...options: string[]): string[] {
  return [
    'dnsmasq',
    '--keep-in-foreground',
    '--conf-file=/dev/null',
    '--pid-file=',
    '--log-facility=-',
    '--no-resolv',
    '--no-hosts',
    '--bind-interfaces',
    ...options,
  ];
}

/** The ISP's DNS forwarder for PPP links: no DHCP, answers on 100.64.0.1 (and 2001:db8:1::1). */
export function ispDnsArgv(upstream: string, ipv6 = false): string[] {
  return peerDnsmasq(
    `--listen-address=${ISP_PPP_ADDRESS}`,
    ...(ipv6 ? [`--listen-address=${ISP_WAN_ADDRESS6}`] : []),
    `--server=${upstream}`,
  );
}

/** The router's WAN over PPPoE: the site file that replaces the DHCP one. */
export function pppoeWanConfig(passwordFile: string, ipv6 = false): string {
  return (
    `# The WAN over PPPoE (limen lab --wan pppoe): the ISP's pppoe-server with CHAP.\n` +
    `# The link's address, default route and DNS come through the provider contract.\n` +
    `<configure-interface "wan0" <pppoe {user: "${LAB_PPP_USER}" password-file: "${passwordFile}"}>>\n` +
    (ipv6
      ? `# And IPv6 over the PPP link while a session is up: SLAAC and the default route\n` +
        `# from the ISP's router advertisements, an address and a delegated /56 by DHCPv6.\n` +
        `<configure-interface "ppp-wan0" <dhcpv6 {prefix-hint: 56}>>\n`
      : '')
  );
}

/** PIDs of the pppd processes in the namespace `ns` (the ISP's sessions). */
export function pppdPids(ns: string): number[] {
  const r = tryRun(['ip', 'netns', 'pids', ns], 5000);
  if (r.status !== 0) return [];
  return r.stdout
    .split('\n')
    .map(Number)
    .filter((pid) => Number.isInteger(pid) && pid > 0)
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'pppd';
      } catch {
        return false;
      }
    });
}

/** The ISP ends every PPP session (its pppd gets SIGTERM: an LCP terminate); how many. */
export function killIspSessions(ns: string): number {
  const pids = pppdPids(ns);
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // Gone already.
    }
  }
  return pids.length;
}
