// A link as the DHCPv6 tests' (and benchmarks') Kea serves it (src/lab/ipv6-isp.ts,
// keaDhcp6Config): the link's NET::/64 with addresses NET::100–1ff (IA_NA), /56s
// delegated from a /48 (IA_PD), lifetimes 300 s preferred and 600 s valid, renew at
// 100 s and rebind at 200 s, DNS NET::53 and the search domain example.test; any of
// it replaced by `o`. Documentation prefixes only (2001:db8::/32).

import type { KeaDhcp6Link } from '../../src/lab/ipv6-isp.ts';

/** ifname: the ISP's end; net: "2001:db8:N" (the /64's first 48 bits); pool: the /48. */
export function keaLink(
  ifname: string,
  net: string,
  pool: string,
  o: Partial<KeaDhcp6Link> = {},
): KeaDhcp6Link {
  return {
    ifname,
    subnet: `${net}::/64`,
    pool: `${net}::100-${net}::1ff`,
    pdPrefix: pool,
    pdLength: 48,
    delegatedLength: 56,
    preferred: 300,
    valid: 600,
    renew: 100,
    rebind: 200,
    options: [
      { name: 'dns-servers', data: `${net}::53` },
      { name: 'domain-search', data: 'example.test' },
    ],
    ...o,
  };
}
