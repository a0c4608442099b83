// `<lan-dhcp IF {… ping-check: #t|#f}>` with a real dnsmasq and a real udhcpc
// (issue 11, point 16): the trade-off the option makes, shown on both sides. A
// range of one address, and a "squatter" host on the same switch that took that
// address by hand. With the default ping check, dnsmasq pings the address before
// offering it, hears the squatter, and offers nothing (the protection). With
// `ping-check: #f` it offers the address at once, to the client, although it is
// in use (what the option gives up to answer ~3 s sooner; docs/vocabulary.md).
// The time itself is bench/lan-lease.ts's figure, not asserted here.

import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from '../../../src/preserves/index.ts';
import { readLanDhcp, renderDnsmasqConf } from '../../../src/net/lan-dhcp.ts';
import { until } from '../../support/until.ts';
import { netns, run, skipReason, spawnInNs, suffix, tryInNs, veth } from './harness-lan-netns.ts';

const skip = skipReason(['dnsmasq', 'busybox', 'ip']);
const SQUATTED = '192.168.79.100';

/** A switch (a bridge in its own namespace) with dnsmasq's router, a client and a squatter on it. */
function lan(t: TestContext, pingCheck: '#t' | '#f' | undefined) {
  const id = suffix();
  const sw = netns(t, `lp-s-${id}`);
  const router = netns(t, `lp-r-${id}`);
  const client = netns(t, `lp-c-${id}`);
  const squatter = netns(t, `lp-q-${id}`);
  run(['ip', '-n', sw, 'link', 'add', 'br0', 'type', 'bridge']);
  run(['ip', '-n', sw, 'link', 'set', 'br0', 'up']);
  const ports: [string, string, string | undefined][] = [
    [router, 'p-r', '192.168.79.1/24'],
    [client, 'p-c', undefined],
    [squatter, 'p-q', `${SQUATTED}/24`],
  ];
  for (const [ns, port, address] of ports) {
    veth(
      { ns: sw, name: port },
      { ns, name: ns === router ? 'lan0' : 'eth0', ...(address ? { address } : {}) },
    );
    run(['ip', '-n', sw, 'link', 'set', port, 'master', 'br0']);
  }
  const dir = mkdtempSync(join(tmpdir(), 'limen-lan-ping-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const spec = `{range: ["${SQUATTED}" "${SQUATTED}"] lease: 600${pingCheck === undefined ? '' : ` ping-check: ${pingCheck}`}}`;
  const read = readLanDhcp(parse('"lan0"'), parse(spec));
  assert.ok(read.ok, read.ok ? '' : read.problems.join('; '));
  const conf = join(dir, 'dnsmasq.conf');
  writeFileSync(
    conf,
    renderDnsmasqConf(
      read.config,
      { resolvFile: join(dir, 'resolv.conf'), leaseFile: join(dir, 'leases') },
      { user: 'root' },
    ),
  );
  writeFileSync(join(dir, 'resolv.conf'), '');
  const dnsmasq = spawnInNs(t, router, [
    'dnsmasq',
    '--keep-in-foreground',
    `--conf-file=${conf}`,
    '--log-dhcp',
  ]);
  return { client, squatter, dnsmasq, conf };
}

/** One udhcpc exchange from the client: what it got, or undefined (it gives up after ~6 s). */
function askForLease(client: string): { lease: string | undefined; log: string } {
  const r = tryInNs(
    client,
    ['busybox', 'udhcpc', '-f', '-q', '-n', '-i', 'eth0', '-t', '4', '-T', '2', '-s', '/bin/true'],
    30_000,
  );
  const log = r.stdout + r.stderr;
  return { lease: /lease of (\S+) obtained/.exec(log)?.[1], log };
}

describe('lan-dhcp ping-check with dnsmasq', { skip, timeout: 60_000 }, () => {
  it('by default, an address that answers a ping is not offered', async (t) => {
    const l = lan(t, undefined);
    const got = askForLease(l.client);
    assert.equal(got.lease, undefined, `no lease of the squatted address:\n${got.log}`);
    // dnsmasq's log reaches us once the event loop runs again (udhcpc ran synchronously).
    await until(() => /no address available/.test(l.dnsmasq.stderr), {
      describe: () => `dnsmasq to say it had no address to offer; it said:\n${l.dnsmasq.stderr}`,
    });
    assert.doesNotMatch(readConf(l.conf), /^no-ping$/m);
  });

  it('with ping-check: #f, dnsmasq offers without checking (the trade-off)', (t) => {
    const l = lan(t, '#f');
    const got = askForLease(l.client);
    assert.equal(
      got.lease,
      SQUATTED,
      `the squatted address is offered:\n${got.log}\n${l.dnsmasq.stderr}`,
    );
    assert.match(readConf(l.conf), /^no-ping$/m);
  });

  it('ping-check: #t is the default, said explicitly', (t) => {
    const l = lan(t, '#t');
    const got = askForLease(l.client);
    assert.equal(got.lease, undefined, got.log);
  });
});

function readConf(path: string): string {
  return readFileSync(path, 'utf8');
}
