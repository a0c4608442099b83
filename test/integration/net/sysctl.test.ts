// The sysctl driver on the real /proc/sys of a network namespace of its own
// (net.* keys are per namespace), with the interface monitor telling it when a
// per-interface key can be written.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { until } from '../../support/until.ts';
import { prerequisites } from '../../support/prerequisites.ts';
import { Harness, ipBatch, netns } from './harness-monitor-client.ts';

const skip = prerequisites({ netns: true });

function sysctl(ns: string, path: string): string {
  return execFileSync('ip', ['netns', 'exec', ns, 'cat', `/proc/sys/${path}`], {
    encoding: 'utf8',
  }).trim();
}

describe('sysctl driver in a namespace', { skip }, () => {
  it('sets and restores kernel parameters, per interface when it appears', async (t) => {
    const ns = netns(t);
    assert.equal(sysctl(ns, 'net/ipv4/ip_forward'), '0');
    const h = await Harness.start(t, ns, ['--monitor', '--sysctl', '/proc/sys']);
    const fwd = await h.assert('<sysctl "net.ipv4.ip_forward" "1">');
    assert.equal(sysctl(ns, 'net/ipv4/ip_forward'), '1');

    const ra = await h.assert('<sysctl "net.ipv6.conf.wan5.accept_ra" "2">');
    await until(() =>
      h.has('config', '<sysctl-error "net.ipv6.conf.wan5.accept_ra" "waiting for interface wan5">'),
    );
    ipBatch(ns, ['link add wan5 type veth peer name wan5p']);
    await until(() => sysctl(ns, 'net/ipv6/conf/wan5/accept_ra') === '2');
    await until(() => h.texts('config', '<sysctl-error').length === 0);

    await h.retract(fwd);
    assert.equal(sysctl(ns, 'net/ipv4/ip_forward'), '0');
    await h.retract(ra);
    assert.equal(sysctl(ns, 'net/ipv6/conf/wan5/accept_ra'), '1');
    await h.exit();
  });
});
