// Cold start, end to end: a lab with limen as the router (examples/home-router),
// from nothing to a LAN client that fetches http://world.test/ by name. The name
// is resolved by the router (lan1's only resolver is 192.168.8.1, and rtr saw
// the query), and the page comes through the router's NAT: the world's server
// sees the router's WAN address, rtr's connection tracking shows the
// translation, and the ISP could not have routed an answer to a LAN address.

import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { WORLD_ADDRESS, type Lab } from '../../src/lab/lab.ts';
import type { ProcessRecord } from '../../src/lab/system.ts';
import {
  LAN_ROUTER_ADDRESS,
  WORLD_NAME,
  clientAddress,
  conntrack,
  fetchUntil,
  flowPattern,
  httpClients,
  ipv4Addresses,
  labSkip,
  nameservers,
  nftChain,
  withLab,
} from './harness.ts';

describe(
  'cold start: a LAN client reaches the world by name, through NAT',
  { skip: labSkip(), timeout: 300_000 },
  () => {
    const getLab = withLab();
    let lab: Lab;
    let httpd: ProcessRecord;
    let lan1: string;
    let wanIp: string;

    before(async () => {
      lab = getLab();
      lan1 = clientAddress(lab, 'lan1')!;
      assert.match(lan1, /^192\.168\.8\.\d+$/);
      const wan = ipv4Addresses(lab, 'rtr', 'wan0');
      assert.equal(wan.length, 1, `wan0's addresses: ${wan.join(', ')}`);
      wanIp = wan[0]!.split('/')[0]!;
      assert.match(wanIp, /^100\.64\.0\.\d+$/);
      // The world's server again, verbose: it logs each client's address.
      await lab.stopProcess('world/httpd');
      httpd = lab.startProcess('world/httpd', 'world', [
        'busybox',
        'httpd',
        '-f',
        '-vv',
        '-p',
        `${WORLD_ADDRESS}:80`,
        '-h',
        join(lab.dir, 'world', 'www'),
      ]);
    });

    it('lan1 fetches http://world.test/ by name', async () => {
      const body = await fetchUntil(lab, 'lan1', `http://${WORLD_NAME}/`);
      assert.match(body, /Hello from world\.test/);
    });

    it('the name was resolved by the router', () => {
      assert.deepEqual(nameservers(lab, 'lan1'), [LAN_ROUTER_ADDRESS]);
      const flows = conntrack(lab);
      assert.ok(
        flows.some((l) => flowPattern('udp', lan1, LAN_ROUTER_ADDRESS, 53).test(l)),
        `no DNS query from lan1 to the router in rtr's conntrack:\n${flows.join('\n')}`,
      );
    });

    it("the page came through the router's NAT", () => {
      // The world saw the router's WAN address, never a LAN address…
      const clients = httpClients(httpd.log);
      assert.ok(clients.length > 0, `the world's server logged no request (${httpd.log})`);
      assert.deepEqual([...new Set(clients)], [wanIp], 'the clients the world server saw');
      // …rtr translated lan1's connection (the reply goes to the WAN address)…
      const flows = conntrack(lab);
      assert.ok(
        flows.some((l) => flowPattern('tcp', lan1, WORLD_ADDRESS, 80, wanIp).test(l)),
        `no masqueraded lan1 → world flow in rtr's conntrack:\n${flows.join('\n')}`,
      );
      assert.match(nftChain(lab, 'postrouting'), /oifname "wan0" masquerade/);
      // …and the ISP has no route to the LAN: nothing but NAT could have answered lan1.
      const route = lab.exec('isp', ['ip', 'route', 'get', lan1]);
      assert.notEqual(route.status, 0, `the ISP routes to ${lan1}: ${route.stdout}`);
      assert.match(route.stderr, /unreachable/i);
    });
  },
);
