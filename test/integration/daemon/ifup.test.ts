// `limen ifup` against the real daemon in a network namespace of its own, for
// every answer that is not "up": an interface with no configuration, a static
// configuration with a problem (<interface-failed …>), an interface that does
// not exist, and a DHCP interface whose server never answers (the timeout).
// Each answer is exit 1 with the reason, and the daemon goes on answering.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testNamespace } from '../../support/names.ts';
import { NetnsDaemon } from '../../support/netns-daemon.ts';
import { prerequisites } from '../../support/prerequisites.ts';
import { describeProcs } from '../../support/processes.ts';

const ip = (...args: string[]) => execFileSync('ip', args, { encoding: 'utf8' });

describe(
  'limen ifup: the answers that are not "up"',
  { skip: prerequisites({ netns: true, programs: ['busybox'] }) },
  () => {
    const ns = testNamespace('ifup');
    let dir = '';
    let daemon!: NetnsDaemon;

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'limen-ifup-'));
      ip('netns', 'add', ns);
      ip('-n', ns, 'link', 'set', 'lo', 'up');
      // wan0 has carrier (its peer is up) but nobody serves DHCP on it.
      for (const [a, b] of [
        ['wan0', 'wanp'],
        ['bad0', 'badp'],
      ] as const) {
        ip('-n', ns, 'link', 'add', a, 'type', 'veth', 'peer', 'name', b);
        ip('-n', ns, 'link', 'set', b, 'up');
      }
      mkdirSync(join(dir, 'site/core'), { recursive: true });
      writeFileSync(
        join(dir, 'site/core/net.pr'),
        [
          '<configure-interface "wan0" <dhcp>>',
          '<configure-interface "bad0" <static "10.9.0.1/24" {gatway: "10.9.0.254"}>>',
          '<configure-interface "ghost0" <dhcp>>',
          '',
        ].join('\n'),
      );
      daemon = new NetnsDaemon(ns, dir);
      await daemon.start();
    });

    after(async () => {
      const left = (await daemon?.dispose()) ?? [];
      try {
        ip('netns', 'del', ns);
      } catch {
        // never made
      }
      rmSync(dir, { recursive: true, force: true });
      assert.deepEqual(left, [], `processes left behind: ${describeProcs(left)}`);
    });

    it('an interface with no configuration: says so, and how to configure it', async () => {
      const r = await daemon.cli('ifup', 'lo', '--timeout', '20');
      assert.equal(r.code, 1, `${r.out}${r.err}`);
      assert.match(
        r.err,
        /^limen ifup: lo: no configuration: add <configure-interface "lo" <dhcp>> \(or <static \.\.\.>\) to the site configuration\n$/,
      );
    });

    it('a static configuration with a problem: the <interface-failed …> reason', async () => {
      const r = await daemon.cli('ifup', 'bad0', '--timeout', '20');
      assert.equal(r.code, 1, `${r.out}${r.err}`);
      assert.match(
        r.err,
        /^limen ifup: bad0: static: unknown option 'gatway' \(did you mean 'gateway'\?\)\n$/,
      );
      assert.deepEqual(await daemon.query('<interface-failed "bad0" _>'), [
        `<interface-failed "bad0" "static: unknown option 'gatway' (did you mean 'gateway'?)">`,
      ]);
    });

    it('an interface that does not exist: says so at once, configured or not', async () => {
      for (const name of ['ghost0', 'nosuch0']) {
        const r = await daemon.cli('ifup', name, '--timeout', '20');
        assert.equal(r.code, 1, `${r.out}${r.err}`);
        assert.equal(r.err, `limen ifup: ${name}: no such interface\n`);
      }
      // ifdown says the same.
      const down = await daemon.cli('ifdown', 'nosuch0', '--timeout', '20');
      assert.equal(down.code, 1, `${down.out}${down.err}`);
      assert.equal(down.err, 'limen ifdown: nosuch0: no such interface\n');
    });

    it('a DHCP server that never answers: the timeout, after the progress so far', async () => {
      const r = await daemon.cli('ifup', 'wan0', '--timeout', '2');
      assert.equal(r.code, 1, `${r.out}${r.err}`);
      assert.match(r.out, /^wan0: link wan0: admin up, oper up, carrier$/m);
      assert.match(r.err, /^limen ifup: wan0 did not come up within 2 s\n$/);
      // The request is over; the daemon goes on, and udhcpc keeps trying.
      assert.equal((await daemon.cli('status')).code, 0);
      assert.equal((await daemon.servicePids('<daemon <udhcpc "wan0">>')).length, 1);
    });
  },
);
