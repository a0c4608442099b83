// The router's daemon is stopped with SIGTERM and started again. It exits by
// itself, taking every process it ran with it (nothing is left in rtr). What it
// put in the kernel stays while it is down, by design: the address, the default
// route and `table inet limen`, so lan1 still reaches the world by address
// through NAT (not by name: the router's dnsmasq is gone). After the restart
// there is exactly one of each (one IPv4 address on wan0 and on lan0, one
// default route, one limen table), the WAN keeps its address, and lan1 reaches
// the world by name again.

import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { until } from '../support/until.ts';
import { WORLD_ADDRESS, type Lab } from '../../src/lab/lab.ts';
import { isAlive, type ProcessRecord } from '../../src/lab/system.ts';
import {
  WORLD_NAME,
  defaultRoutes,
  fetchUntil,
  firewallGenerations,
  ipv4Addresses,
  labSkip,
  namespacePids,
  nftChain,
  nftTables,
  routerLogTail,
  waitUntilUp,
  withLab,
} from './harness.ts';

describe('the daemon stopped and started again', { skip: labSkip(), timeout: 300_000 }, () => {
  const getLab = withLab();
  let lab: Lab;
  let router: ProcessRecord;
  let wan: string[];
  let lan: string[];
  let routes: string[];

  const kernel = () =>
    `wan0 ${ipv4Addresses(lab, 'rtr', 'wan0').join(' ')}; lan0 ${ipv4Addresses(lab, 'rtr', 'lan0').join(' ')}; ` +
    `default ${defaultRoutes(lab).join(' | ')}; nft ${nftTables(lab).join(' | ')}`;

  before(() => {
    lab = getLab();
    router = lab.router!;
    wan = ipv4Addresses(lab, 'rtr', 'wan0');
    lan = ipv4Addresses(lab, 'rtr', 'lan0');
    routes = defaultRoutes(lab);
    assert.equal(wan.length, 1, kernel());
    assert.deepEqual(lan, ['192.168.8.1/24'], kernel());
    assert.equal(routes.length, 1, kernel());
    assert.ok(namespacePids(lab, 'rtr').length > 1, 'limen runs its services in rtr');
  });

  it('SIGTERM: limen exits by itself and leaves no process in rtr', async (t) => {
    const sent = Date.now();
    process.kill(router.pid, 'SIGTERM');
    // Its services stop in order (each gets SIGTERM, then SIGKILL after 5 s), then it exits.
    await until(() => !isAlive(router), {
      timeoutMs: 25_000,
      intervalMs: 50,
      describe: () => `limen (pid ${router.pid}) exiting${routerLogTail(lab)}`,
    });
    t.diagnostic(`limen exited ${Date.now() - sent} ms after SIGTERM`);
    assert.equal(await lab.stopRouter(), false, 'limen was still running');
    assert.deepEqual(namespacePids(lab, 'rtr'), [], 'processes left in rtr');
  });

  it('while limen is down the kernel keeps its state, and lan1 reaches the world by address', async () => {
    assert.deepEqual(ipv4Addresses(lab, 'rtr', 'wan0'), wan, kernel());
    assert.deepEqual(ipv4Addresses(lab, 'rtr', 'lan0'), lan, kernel());
    assert.deepEqual(defaultRoutes(lab), routes, kernel());
    assert.deepEqual(nftTables(lab), ['table inet limen'], kernel());
    assert.match(nftChain(lab, 'postrouting'), /oifname "wan0" masquerade/);
    await fetchUntil(lab, 'lan1', `http://${WORLD_ADDRESS}/`);
  });

  it('started again: one address on wan0 and lan0, one default route, one limen table', async () => {
    await lab.startRouter();
    await waitUntilUp(lab);
    assert.deepEqual(ipv4Addresses(lab, 'rtr', 'wan0'), wan, kernel());
    assert.deepEqual(ipv4Addresses(lab, 'rtr', 'lan0'), lan, kernel());
    assert.deepEqual(defaultRoutes(lab), routes, kernel());
    assert.deepEqual(nftTables(lab), ['table inet limen'], kernel());
    // The new daemon applied the table as its own: its first revision, and at most one
    // more when the web dashboard's guard (config/core/web.pr, loaded by another core
    // watcher) came after the debounce.
    const revisions = await firewallGenerations(lab);
    assert.ok(
      JSON.stringify(revisions) === '[1]' || JSON.stringify(revisions) === '[2]',
      `firewall revisions ${JSON.stringify(revisions)}`,
    );
    const routesAll = lab.exec('rtr', ['ip', '-4', 'route', 'show', 'table', 'all']).stdout;
    const lines = routesAll.split('\n').filter((l) => l.trim() !== '');
    assert.equal(new Set(lines).size, lines.length, `duplicate routes:\n${routesAll}`);
  });

  it('lan1 reaches the world by name again', async () => {
    await fetchUntil(lab, 'lan1', `http://${WORLD_NAME}/`);
    assert.equal(ipv4Addresses(lab, 'rtr', 'wan0').length, 1, kernel());
    assert.equal(defaultRoutes(lab).length, 1, kernel());
    assert.equal(nftTables(lab).length, 1, kernel());
  });
});
