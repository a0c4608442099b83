// Editing the site configuration while limen runs: a new file under core/ adds
// a port forward from the WAN to a web server on lan1. Only the firewall is
// applied again (one new <firewall-applied> revision); every other service
// keeps its process. And the forward works: the ISP reaches lan1's server on the
// router's WAN address, port 8080, and lan1's server sees the ISP's address (DNAT,
// no source NAT).

import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { until } from '../support/until.ts';
import type { Lab } from '../../src/lab/lab.ts';
import type { ProcessRecord } from '../../src/lab/system.ts';
import {
  DNSMASQ_LAN,
  NTPD,
  UDHCPC_WAN,
  clientAddress,
  fetchUntil,
  httpClients,
  firewallGenerations,
  ipv4Addresses,
  labSkip,
  nftChain,
  routerLogTail,
  services,
  showServices,
  failures,
  writeSiteFile,
  withLab,
  type ServiceRow,
} from './harness.ts';

describe(
  'a site file added at run time: a port forward',
  { skip: labSkip(), timeout: 300_000 },
  () => {
    const getLab = withLab();
    let lab: Lab;
    let lan1: string;
    let wanIp: string;
    let httpd: ProcessRecord;
    let before1: Map<string, ServiceRow>;
    let generation: number;

    before(async () => {
      lab = getLab();
      lan1 = clientAddress(lab, 'lan1')!;
      wanIp = ipv4Addresses(lab, 'rtr', 'wan0')[0]!.split('/')[0]!;
      const www = join(lab.dir, 'lan1', 'www');
      mkdirSync(www, { recursive: true });
      writeFileSync(join(www, 'index.html'), '<p>Hello from lan1, behind the router.</p>\n');
      httpd = lab.startProcess('lan1/httpd', 'lan1', [
        'busybox',
        'httpd',
        '-f',
        '-vv',
        '-p',
        `${lan1}:80`,
        '-h',
        www,
      ]);
      // lan1's server answers on the LAN (from the router) before the forward exists…
      await fetchUntil(lab, 'rtr', `http://${lan1}/`, { page: /Hello from lan1/ });
      // …and the WAN cannot reach it.
      const r = await lab.fetch('isp', `http://${wanIp}:8080/`, 3000);
      assert.ok(!/Hello from lan1/.test(r.stdout), 'port 8080 was forwarded before the edit');
      before1 = await services(lab);
      const gens = await firewallGenerations(lab);
      assert.equal(gens.length, 1);
      generation = gens[0]!;
    });

    it('the new file applies the firewall once more', async () => {
      writeSiteFile(lab, 'core/port-forward.pr', `<port-forward wan tcp 8080 "${lan1}" 80>\n`);
      let seen: number[] = [];
      await until(
        async () => {
          seen = await firewallGenerations(lab);
          return seen.length === 1 && seen[0]! > generation;
        },
        {
          timeoutMs: 20_000,
          intervalMs: 100,
          describe: () =>
            `a new <firewall-applied> revision after ${generation} (seen: ${seen.join(', ') || 'none'})${routerLogTail(lab)}`,
        },
      );
      assert.deepEqual(seen, [generation + 1]);
      assert.match(
        nftChain(lab, 'prerouting'),
        new RegExp(`iifname "wan0" .*tcp dport 8080 dnat ip to ${lan1.replace(/\./g, '\\.')}:80`),
      );
      assert.equal(await failures(lab, 'config-error'), 'none');
    });

    it('the ISP reaches lan1 on the WAN address, port 8080', async () => {
      const body = await fetchUntil(lab, 'isp', `http://${wanIp}:8080/`, {
        page: /Hello from lan1/,
      });
      assert.match(body, /Hello from lan1/);
      // lan1's server saw the ISP itself: destination NAT only.
      const clients = httpClients(httpd.log);
      assert.ok(clients.includes(lab.ispAddress), `lan1's server saw ${clients.join(', ')}`);
    });

    it('nothing else was restarted, and the firewall was applied only once', async () => {
      const after1 = await services(lab);
      for (const name of [UDHCPC_WAN, DNSMASQ_LAN, NTPD]) {
        const b = before1.get(name);
        const a = after1.get(name);
        assert.ok(
          b !== undefined && b.pids.length === 1,
          `${name} before: ${showServices(before1)}`,
        );
        assert.deepEqual(
          a,
          b,
          `${name} changed: before ${showServices(before1)}; after ${showServices(after1)}`,
        );
      }
      assert.deepEqual([...after1.keys()].sort(), [...before1.keys()].sort());
      assert.deepEqual(await firewallGenerations(lab), [generation + 1]);
    });
  },
);
