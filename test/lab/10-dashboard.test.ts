// The web dashboard end to end: limen in the lab running examples/home-router (with
// its <web-dashboard {}>), its server as limen-web on the LAN's address, and headless
// Chromium on this machine reaching it through a port of 127.0.0.1 forwarded into the
// LAN (src/lab/web-forward.ts: the dashboard sees the LAN client lan1).
//
//   1. log in; the overview shows wan0's lease; the clients list lan1
//   2. take wan0 down from the page: the change arrives live, and back up
//   3. restart a service: its state and PID change in the table
//   4. a broken configuration file: its error appears among the failures, and goes
//   5. a trial of an edited file, with its countdown, confirmed from the page; another
//      rolled back from it after the page was loaded again (the trial from the status)
//   6. hostile: a forged CSRF token from the page's own origin changes nothing; the
//      WAN side reaches the dashboard neither on the router's WAN address nor routed to
//      its LAN address, even with <firewall-open wan tcp 80>; it listens on no WAN address
//   7. HTTPS with a self-signed certificate limen made; the session cookie is Secure
//
// With LIMEN_SCREENSHOTS=DIR, the overview and the graph are saved there as PNGs
// (docs/screenshots/ holds the ones the README links).

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { forwardDashboard, type WebForward } from '../../src/lab/web-forward.ts';
import type { Lab } from '../../src/lab/lab.ts';
import { browserMissing, launchBrowser } from '../support/browser.ts';
import { until } from '../support/until.ts';
import {
  LAN_ROUTER_ADDRESS,
  NTPD,
  cliOk,
  labSkip,
  query,
  routerLogTail,
  wanLeaseAddress,
  withLab,
  writeSiteFile,
} from './harness.ts';

const skip = labSkip() || (browserMissing() ?? false);
const shots = process.env['LIMEN_SCREENSHOTS'];

describe('the web dashboard in the lab, in a browser', { skip, timeout: 300_000 }, () => {
  let lab: Lab;
  let forward: WebForward | undefined;
  let browser: Browser | undefined;
  let page: Page;
  let password: string;
  const consoleErrors: string[] = [];
  // Registered before withLab's: the browser and the forward go before the lab does.
  after(async () => {
    await browser?.close();
    await forward?.close();
  });
  const getLab = withLab();

  const byTest = (id: string) => page.locator(`[data-testid="${id}"]`);
  const nav = async (view: string) => {
    await byTest(`nav-${view}`).click();
  };
  /** Waits (bounded) until `f` holds in the page, saying what was seen otherwise. */
  const pageUntil = async (what: string, f: () => Promise<boolean>, timeoutMs = 30_000) => {
    let shown = '';
    return until(
      async () => {
        if (await f()) return true;
        shown = await page
          .locator('body')
          .innerText()
          .catch(() => '?');
        return undefined;
      },
      {
        timeoutMs,
        describe: () =>
          `${what}; the page shows:\n${shown.slice(0, 1500)}\nthe page's console errors: ` +
          `${consoleErrors.join('\n') || 'none'}\nrouter log:\n${routerLogTail(lab, 10)}`,
      },
    );
  };

  before(async () => {
    lab = getLab();
    const out = await cliOk(lab, 'web-password', 'set', '--random');
    password = /: (\S+)\n?$/.exec(out)?.[1] ?? '';
    assert.ok(password.length >= 20, out);
    // The server is up once a LAN client gets the page.
    await until(
      async () =>
        (await lab.fetch('lan1', `http://${LAN_ROUTER_ADDRESS}/`)).stdout.includes('<title>')
          ? true
          : undefined,
      { timeoutMs: 60_000, describe: () => `the dashboard from lan1; ${routerLogTail(lab, 15)}` },
    );
    forward = await forwardDashboard(lab, 0);
    browser = await launchBrowser();
    page = await browser.newPage();
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(m.text());
    });
    page.on('pageerror', (e) => consoleErrors.push(String(e)));
  });

  it('logs in; the overview shows the WAN lease, the clients list lan1', async () => {
    await page.goto(forward!.url);
    await byTest('password').fill(password);
    await byTest('login').click();
    const lease = await until(() => wanLeaseAddress(lab), { describe: () => 'a WAN lease' });
    await pageUntil(`the overview shows wan0's lease ${lease}`, async () =>
      (
        await byTest('wan-wan0')
          .innerText()
          .catch(() => '')
      ).includes(lease),
    );
    // The session's cookie is out of the page's scripts' reach (HttpOnly).
    assert.equal(await page.evaluate('document.cookie'), '');
    await nav('clients');
    await pageUntil('lan1 among the clients', async () =>
      (
        await byTest('clients')
          .innerText()
          .catch(() => '')
      ).includes('lan1'),
    );
    if (shots !== undefined) {
      mkdirSync(shots, { recursive: true });
      await nav('overview');
      await page.setViewportSize({ width: 1280, height: 900 });
      await pageUntil('milestones', async () => (await byTest('milestone').count()) > 0);
      await page.screenshot({ path: join(shots, 'overview.png'), fullPage: true });
    }
  });

  it('takes wan0 down from the page; the change arrives live; and up again', async () => {
    const lease = (await wanLeaseAddress(lab))!;
    await nav('interfaces');
    const row = page.locator('[data-testid="interface"][data-interface="wan0"]');
    await row.locator('[data-testid="ifdown"]').click();
    await pageUntil('ifdown answered', async () =>
      /down/i.test(
        await byTest('if-result')
          .innerText()
          .catch(() => ''),
      ),
    );
    await nav('overview');
    await pageUntil(`the lease ${lease} gone from wan0's card`, async () => {
      const text = await byTest('wan-wan0')
        .innerText()
        .catch(() => lease);
      return !text.includes(lease);
    });
    assert.equal(await wanLeaseAddress(lab), undefined, 'the daemon has no lease either');
    await nav('interfaces');
    await page
      .locator('[data-testid="interface"][data-interface="wan0"] [data-testid="ifup"]')
      .click();
    await pageUntil(
      'ifup answered',
      async () =>
        /\bup\b/i.test(
          await byTest('if-result')
            .innerText()
            .catch(() => ''),
        ),
      90_000,
    );
    const back = await until(() => wanLeaseAddress(lab), {
      timeoutMs: 60_000,
      describe: () => 'a lease again',
    });
    await nav('overview');
    await pageUntil(`wan0's card shows ${back}`, async () =>
      (
        await byTest('wan-wan0')
          .innerText()
          .catch(() => '')
      ).includes(back),
    );
  });

  it('restarts a service from the page: its state and PID change', async () => {
    await nav('services');
    const row = page.locator(`[data-testid="service"][data-service='${NTPD}']`);
    const pids = row.locator('[data-testid="service-pids"]');
    let table = '';
    const before = await until(
      async () => {
        const t = (await pids.innerText().catch(() => '')).trim();
        table = await byTest('services')
          .innerText()
          .catch(() => '?');
        return /^\d+/.test(t) ? t : undefined;
      },
      { timeoutMs: 60_000, describe: () => `ntpd's pid: ${table}` },
    );
    await row.locator('[data-testid="restart"]').click();
    await pageUntil(`a new pid for ntpd (was ${before})`, async () => {
      const t = (await pids.innerText().catch(() => '')).trim();
      const state = await row
        .locator('[data-testid="service-state"]')
        .innerText()
        .catch(() => '');
      return /^\d+/.test(t) && t !== before && /ready|started/.test(state);
    });
  });

  it("shows a broken configuration file's error among the failures, and its fix", async () => {
    await nav('overview');
    const generations = async () =>
      (JSON.parse(await cliOk(lab, 'generations', '--json')) as unknown[]).length;
    const before = await generations();
    const file = writeSiteFile(lab, 'services/broken.pr', '<web-dashboard {}\n');
    await pageUntil('the config error of broken.pr', async () =>
      /broken\.pr:\d+:\d+/.test(
        await byTest('failures')
          .innerText()
          .catch(() => ''),
      ),
    );
    rmSync(file);
    await pageUntil(
      'the error gone',
      async () =>
        !/broken\.pr/.test(
          await byTest('failures')
            .innerText()
            .catch(() => 'broken.pr'),
        ),
    );
    // Both edits are recorded as generations (the next test starts from the last).
    await until(async () => ((await generations()) >= before + 2 ? true : undefined), {
      describe: () => `two generations after ${before}`,
    });
  });

  it('starts a trial of an edited file, shows its countdown, and confirms it', async () => {
    await nav('configuration');
    await page.locator('[data-testid="config-file"][data-path="services/ntp.pr"]').click();
    const text = byTest('config-text');
    const original = await text.inputValue();
    assert.match(original, /ntp-client/);
    await text.fill(`${original}\n# edited from the dashboard\n`);
    await byTest('trial-seconds').fill('120');
    await byTest('try').click();
    await pageUntil('a countdown', async () =>
      /\d/.test(
        await byTest('trial-countdown')
          .innerText()
          .catch(() => ''),
      ),
    );
    await byTest('confirm').click();
    await pageUntil('the trial confirmed', async () =>
      /confirmed/.test(
        await byTest('trial-outcome')
          .innerText()
          .catch(() => ''),
      ),
    );
    assert.match(
      readFileSync(join(lab.siteDir, 'services/ntp.pr'), 'utf8'),
      /# edited from the dashboard/,
    );
    const gens = JSON.parse(await cliOk(lab, 'generations', '--json')) as {
      outcome: string;
      current: boolean;
      who: string;
    }[];
    const current = gens.find((g) => g.current);
    assert.equal(current?.outcome, 'confirmed', JSON.stringify(gens));
  });

  it('shows a trial after the page is loaded again, and rolls it back: the file is as it was', async () => {
    if ((await byTest('trial-dismiss').count()) > 0) await byTest('trial-dismiss').click();
    const before = readFileSync(join(lab.siteDir, 'services/ntp.pr'), 'utf8');
    await nav('configuration');
    await page.locator('[data-testid="config-file"][data-path="services/ntp.pr"]').click();
    const text = byTest('config-text');
    await pageUntil('the confirmed edit in the editor', async () =>
      (await text.inputValue()).includes('# edited from the dashboard'),
    );
    await text.fill(`${await text.inputValue()}# and again, to roll back\n`);
    await byTest('try').click();
    await pageUntil('a countdown', async () =>
      /\d/.test(
        await byTest('trial-countdown')
          .innerText()
          .catch(() => ''),
      ),
    );
    await until(
      () =>
        readFileSync(join(lab.siteDir, 'services/ntp.pr'), 'utf8').includes('to roll back')
          ? true
          : undefined,
      { describe: () => 'the trial applied' },
    );
    // Loaded again mid-trial: the page has lost the token, and shows the trial from the
    // daemon's status, with its countdown and Roll back.
    await page.reload();
    await pageUntil('the trial shown after the reload', async () =>
      /is on trial/.test(
        await byTest('trial')
          .innerText()
          .catch(() => ''),
      ),
    );
    assert.match(await byTest('trial-countdown').innerText(), /\d+ s/);
    assert.equal(await byTest('confirm').count(), 0, 'no Confirm without the token');
    await byTest('rollback').click();
    await until(
      () =>
        readFileSync(join(lab.siteDir, 'services/ntp.pr'), 'utf8') === before ? true : undefined,
      { describe: () => 'the file as it was' },
    );
    assert.equal(readFileSync(join(lab.siteDir, 'services/ntp.pr'), 'utf8'), before);
  });

  it('refuses a forged CSRF token, and the WAN side reaches nothing', async () => {
    const forged = await page.evaluate(async () => {
      const r = await fetch('/api/request', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-csrf-token': 'forged' },
        body: JSON.stringify({
          command: 'stop',
          args: { service: { '@rec': [{ '@sym': 'daemon' }, { '@sym': 'ntpd' }] } },
        }),
      });
      return r.status;
    });
    assert.equal(forged, 403);

    // The router's sockets: port 80 on LAN addresses only.
    const listening = lab.exec('rtr', ['ss', '-ltnH', 'sport = :80']).stdout;
    const wan = (await wanLeaseAddress(lab))!;
    assert.match(listening, new RegExp(LAN_ROUTER_ADDRESS.replace(/\./g, '\\.')));
    assert.doesNotMatch(
      listening,
      new RegExp(`${wan.replace(/\./g, '\\.')}|\\*:80|0\\.0\\.0\\.0:80`),
      listening,
    );
    const curl = (url: string) =>
      lab.exec('isp', [
        'curl',
        '-sS',
        '--max-time',
        '3',
        '-o',
        '/dev/null',
        '-w',
        '%{http_code}',
        url,
      ]);
    assert.notEqual(curl(`http://${wan}/`).status, 0, 'the WAN address does not answer');
    // Routed to the LAN address through the router, and with port 80 opened to the WAN.
    lab.exec('isp', ['ip', 'route', 'replace', '192.168.8.0/24', 'via', wan]);
    const open = writeSiteFile(lab, 'core/open-80.pr', '<firewall-open wan tcp 80>\n');
    try {
      await until(
        async () => ((await query(lab, '<firewall-applied _ _>')).length > 0 ? true : undefined),
        {
          describe: () => 'a firewall',
        },
      );
      await until(
        () =>
          lab
            .exec('rtr', ['nft', 'list', 'chain', 'inet', 'limen', 'input_wan'])
            .stdout.includes('dport 80 accept')
            ? true
            : undefined,
        {
          describe: () =>
            lab.exec('rtr', ['nft', 'list', 'chain', 'inet', 'limen', 'input_wan']).stdout,
        },
      );
      const routed = curl(`http://${LAN_ROUTER_ADDRESS}/`);
      assert.notEqual(routed.status, 0, `from the WAN: ${routed.stdout}${routed.stderr}`);
    } finally {
      rmSync(open);
      lab.exec('isp', ['ip', 'route', 'del', '192.168.8.0/24']);
    }
    // The page itself never broke.
    assert.deepEqual(
      consoleErrors.filter((e) => !/status of 40[13]/.test(e)),
      [],
    );
    if (shots !== undefined) {
      if ((await byTest('trial-dismiss').count()) > 0) await byTest('trial-dismiss').click();
      await nav('graph');
      await pageUntil('the graph', async () => (await byTest('graph-node').count()) > 5);
      await page.screenshot({ path: join(shots, 'graph.png'), fullPage: true });
    }
  });

  it('serves HTTPS with a certificate it made, its cookie Secure', async () => {
    const original = readFileSync(join(lab.siteDir, 'core/web.pr'), 'utf8');
    writeSiteFile(lab, 'core/web.pr', '<web-dashboard {tls: self-signed}>\n');
    try {
      const curl = (...args: string[]) =>
        lab.execAsync('lan1', ['curl', '-sS', '-k', '--max-time', '3', ...args], 5000);
      await until(
        async () =>
          (await curl(`https://${LAN_ROUTER_ADDRESS}/`)).stdout.includes('<title>limen')
            ? true
            : undefined,
        { timeoutMs: 60_000, describe: () => `https from lan1; ${routerLogTail(lab, 15)}` },
      );
      const login = await curl(
        '-i',
        '-H',
        'content-type: application/json',
        '-d',
        JSON.stringify({ password }),
        `https://${LAN_ROUTER_ADDRESS}/api/login`,
      );
      assert.match(login.stdout, /set-cookie: limen-session=[^\n]*; Secure/i, login.stdout);
      const subject = lab.exec('rtr', [
        'openssl',
        'x509',
        '-noout',
        '-subject',
        '-in',
        join(lab.routerRoot, 'var/lib/limen/web/cert.pem'),
      ]);
      assert.match(subject.stdout, /CN ?= ?limen/);
    } finally {
      writeSiteFile(lab, 'core/web.pr', original);
    }
  });
});
