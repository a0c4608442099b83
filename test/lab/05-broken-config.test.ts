// A site file broken while limen runs (core/firewall.pr with a record left
// open): `limen status` lists it as a config-error failure with file:line:col, the
// file's last good version keeps running (same firewall revision, NAT still
// there, the LAN still reaches the world by name), and fixing the file, with a
// visible change (a port opened to the WAN), applies it.

import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { until } from '../support/until.ts';
import type { Lab } from '../../src/lab/lab.ts';
import {
  WORLD_NAME,
  fetchUntil,
  firewallGenerations,
  labSkip,
  nftChain,
  query,
  routerLogTail,
  failures,
  writeSiteFile,
  withLab,
} from './harness.ts';

describe(
  'a broken site file keeps its last good version',
  { skip: labSkip(), timeout: 300_000 },
  () => {
    const getLab = withLab();
    let lab: Lab;
    let path: string;
    let good: string;
    let generation: number;
    /** Where the broken record starts (1-based), and the last line of the broken file. */
    let openLine: number;
    let lastLine: number;

    before(async () => {
      lab = getLab();
      path = join(lab.siteDir, 'core', 'firewall.pr');
      good = readFileSync(path, 'utf8');
      assert.match(good, /<masquerade lan wan>/);
      generation = (await firewallGenerations(lab))[0]!;
    });

    it('the error is reported with file:line:col', async () => {
      const broken = `${good.trimEnd()}\n# a record left open:\n<firewall-open wan tcp 2222\n`;
      openLine = good.trimEnd().split('\n').length + 2;
      lastLine = broken.split('\n').length;
      writeSiteFile(lab, 'core/firewall.pr', broken);
      let errors = '';
      await until(
        async () => {
          errors = await failures(lab, 'config-error');
          return errors.includes(path);
        },
        {
          timeoutMs: 20_000,
          intervalMs: 100,
          describe: () => `config errors naming ${path} (seen: ${errors})${routerLogTail(lab)}`,
        },
      );
      const m = new RegExp(`${path.replace(/[.]/g, '\\.')}:(\\d+):(\\d+): \\S`).exec(errors);
      assert.ok(m !== null, `no file:line:col in ${JSON.stringify(errors)}`);
      const line = Number(m[1]);
      assert.ok(
        line >= openLine && line <= lastLine,
        `the error is at line ${line}, the open record at ${openLine}: ${errors}`,
      );
      assert.ok(Number(m[2]) >= 1);
      // The same, as an assertion.
      const asserted = await query(lab, `<config-error "${path}" _>`);
      assert.equal(asserted.length, 1, asserted.join('\n'));
      assert.match(asserted[0]!, new RegExp(`line: ${line}\\b`));
    });

    it('the previous configuration keeps running', async () => {
      assert.deepEqual(await firewallGenerations(lab), [generation]);
      assert.equal((await query(lab, '<firewall-zone wan ["wan0"]>')).length, 1);
      assert.equal((await query(lab, '<masquerade lan wan>')).length, 1);
      assert.match(nftChain(lab, 'postrouting'), /oifname "wan0" masquerade/);
      await fetchUntil(lab, 'lan1', `http://${WORLD_NAME}/`);
      // Nothing of the broken version was applied either.
      assert.doesNotMatch(nftChain(lab, 'input_wan'), /dport 2222/);
      assert.deepEqual(await firewallGenerations(lab), [generation]);
    });

    it('fixing the file applies it', async () => {
      writeSiteFile(lab, 'core/firewall.pr', `${good.trimEnd()}\n<firewall-open wan tcp 2222>\n`);
      let seen = '';
      await until(
        async () => {
          const gens = await firewallGenerations(lab);
          const errors = await failures(lab, 'config-error');
          seen = `revisions ${gens.join(', ')}; config errors ${errors}`;
          return errors === 'none' && gens.length === 1 && gens[0] === generation + 1;
        },
        {
          timeoutMs: 20_000,
          intervalMs: 100,
          describe: () =>
            `the fixed file applied as revision ${generation + 1} (seen: ${seen})${routerLogTail(lab)}`,
        },
      );
      assert.match(nftChain(lab, 'input_wan'), /tcp dport 2222 accept/);
      assert.match(nftChain(lab, 'postrouting'), /oifname "wan0" masquerade/);
      assert.deepEqual(await query(lab, '<config-error _ _>'), []);
      await fetchUntil(lab, 'lan1', `http://${WORLD_NAME}/`);
    });
  },
);
