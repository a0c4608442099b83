// The dashboard's server against the real daemon (`--web-group limen-web`), run as the
// unprivileged user limen-web on 127.0.0.1 (--listen: the lab test covers following
// the LAN's addresses): what it serves without a session (the page only), the login
// and its rate limit per address, the session cookie's attributes, CSRF and origin
// checks on every action (refused actions change nothing: the service keeps its PID),
// the command allowlist, body limits, a restart and a watch through it, the change of
// password, logout, and its log of every action with the session's name. Then the
// daemon itself runs it from config/services/web.pr (as limen-web), and without
// --web-group a configured dashboard is a failure.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ControlClient } from '../../../src/control/client.ts';
import { toJSON } from '../../../src/preserves/index.ts';
import { DaemonProcess } from '../../support/daemon-process.ts';
import { skipUnmet } from '../../support/prerequisites.ts';
import { until } from '../../support/until.ts';
import { freePort } from '../../support/free-port.ts';

const repo = resolve(import.meta.dirname, '../../..');
const serverJs = join(repo, 'dist/web/server.js');

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

interface CallOptions {
  body?: unknown;
  rawBody?: string;
  cookie?: string;
  csrf?: string;
  origin?: string;
  /** The client's own address (127.0.0.x), for the per-address login limit. */
  from?: string;
  contentType?: string;
}

function call(port: number, method: string, path: string, o: CallOptions = {}): Promise<Reply> {
  const body = o.rawBody ?? (o.body === undefined ? undefined : JSON.stringify(o.body));
  const headers: { [k: string]: string } = {};
  if (body !== undefined) headers['content-type'] = o.contentType ?? 'application/json';
  if (o.cookie !== undefined) headers.cookie = o.cookie;
  if (o.csrf !== undefined) headers['x-csrf-token'] = o.csrf;
  if (o.origin !== undefined) headers.origin = o.origin;
  return new Promise((resolveReply, reject) => {
    const req = httpRequest(
      { host: '127.0.0.1', port, method, path, headers, localAddress: o.from ?? '127.0.0.1' },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () =>
          resolveReply({ status: res.statusCode ?? 0, headers: res.headers, text }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** The NDJSON answer of /api/request: its events and final line. */
const lines = (r: Reply) =>
  r.text
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as { event?: unknown; ok?: unknown; error?: { reason: string } });

const service = { '@rec': [{ '@sym': 'daemon' }, { '@sym': 'sleeper' }] };

describe('the web dashboard server', () => {
  let dir: string;
  let root: string;
  let d: DaemonProcess | undefined;
  let server: ChildProcess | undefined;
  const serverLog: string[] = [];
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'limen-webserver-'));
    await chmod(dir, 0o755);
    root = join(dir, 'root');
  });
  after(async () => {
    server?.kill('SIGTERM');
    await d?.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  it(
    'serves the page to anyone and everything else to a session only',
    { timeout: 180_000 },
    async (t) => {
      if (skipUnmet(t, { root: 'to run the server as limen-web', check: hasWebUser })) return;
      assert.ok(existsSync(serverJs), `${serverJs} is missing: npm run build`);
      d = await siteDaemon(dir, 'site', root, {
        'sleeper.pr':
          '<require-service <daemon sleeper>>\n<daemon sleeper {argv: ["sleep" "100000"] restart: always}>\n',
      });
      const socket = join(root, 'run/limen/web/control.sock');
      await d.waitFor('the web endpoint', (l) => l.socket === socket && l.endpoint === 'web');
      const cli = ['--import', 'tsx', join(repo, 'test/support/limen-cli.ts')];
      const password = 'a long enough password';
      const set = spawn(process.execPath, [...cli, 'web-password', 'set', '--root', root], {
        cwd: repo,
      });
      set.stdin.end(`${password}\n`);
      assert.equal(await new Promise((r) => set.on('close', r)), 0);

      // A page directory of our own: the built page may not exist yet, and this test is
      // about the server.
      const page = join(dir, 'page');
      await mkdir(page);
      await writeFile(join(page, 'index.html'), '<!doctype html><title>limen</title>\n');
      await chmod(page, 0o755);
      const port = await freePort();
      server = spawn(
        process.execPath,
        [
          serverJs,
          '--socket',
          socket,
          '--listen',
          '127.0.0.1',
          '--port',
          String(port),
          '--static',
          page,
        ],
        { uid: uidOf('limen-web'), gid: uidOf('limen-web', 'group'), cwd: '/' },
      );
      server.stdout!.on('data', (b: Buffer) =>
        serverLog.push(...b.toString().split('\n').filter(Boolean)),
      );
      server.stderr!.on('data', (b: Buffer) =>
        serverLog.push(...b.toString().split('\n').filter(Boolean)),
      );
      await until(() => serverLog.some((l) => l.startsWith('listening on')) || undefined, {
        describe: () => serverLog.join('\n'),
      });
      const status = await readFile(`/proc/${server.pid}/status`, 'utf8');
      assert.match(
        status,
        new RegExp(`^Uid:\\t${uidOf('limen-web')}\\t`, 'm'),
        'runs as limen-web',
      );

      // The page, with its security headers; the API refuses anyone without a session.
      const index = await call(port, 'GET', '/');
      assert.equal(index.status, 200);
      assert.match(String(index.headers['content-security-policy']), /default-src 'self'/);
      assert.equal(index.headers['x-frame-options'], 'DENY');
      assert.equal((await call(port, 'GET', '/../../etc/passwd')).status, 404);
      assert.equal((await call(port, 'GET', '/assets/..%2f..%2fetc%2fpasswd')).status, 404);
      for (const [method, path, body] of [
        ['GET', '/api/session', undefined],
        ['POST', '/api/request', { command: 'restart', args: { service } }],
        ['POST', '/api/logout', {}],
        ['POST', '/api/password', { old: password, new: 'whatever else' }],
        ['GET', '/api/stream?command=watch&args=%7B%7D', undefined],
      ] as const) {
        const r = await call(port, method, path, { body });
        assert.equal(r.status, 401, `${method} ${path}: ${r.text}`);
      }

      const pidOf = async () => {
        const r = await call(port, 'POST', '/api/request', {
          cookie,
          csrf,
          body: { command: 'service', args: { service } },
        });
        const ok = lines(r).at(-1)?.ok as { processes: { pid?: number }[] } | undefined;
        return ok?.processes[0]?.pid;
      };

      // Wrong passwords: five from 127.0.0.2 are refused, then that address is refused
      // even the right one; another address logs in.
      for (let i = 0; i < 5; i++) {
        const r = await call(port, 'POST', '/api/login', {
          body: { password: `guess ${i}` },
          from: '127.0.0.2',
        });
        assert.equal(r.status, 401, r.text);
      }
      const limited = await call(port, 'POST', '/api/login', {
        body: { password },
        from: '127.0.0.2',
      });
      assert.equal(limited.status, 429, limited.text);
      assert.match(limited.text, /too many failed logins from 127\.0\.0\.2/);
      assert.equal(limited.headers['set-cookie'], undefined);

      const login = await call(port, 'POST', '/api/login', { body: { password } });
      assert.equal(login.status, 200, login.text);
      const setCookie = String(login.headers['set-cookie']);
      for (const attr of ['HttpOnly', 'SameSite=Strict', 'Path=/'])
        assert.ok(setCookie.includes(attr), setCookie);
      const cookie = setCookie.split(';')[0]!;
      const csrf = (JSON.parse(login.text) as { csrf: string }).csrf;
      assert.equal(csrf.length, 43);

      // Refused actions change nothing: the sleeper keeps its PID.
      const pid = await until(pidOf, { describe: () => 'the sleeper has a pid' });
      const restart = { command: 'restart', args: { service } };
      const refusals: [string, CallOptions, number][] = [
        ['no CSRF token', { cookie, body: restart }, 403],
        [
          'a forged CSRF token',
          { cookie, csrf: csrf.replace(/^./, (c) => (c === 'A' ? 'B' : 'A')), body: restart },
          403,
        ],
        ["another session's token", { cookie: 'limen-session=forged', csrf, body: restart }, 401],
        ['another origin', { cookie, csrf, origin: 'http://evil.example', body: restart }, 403],
        ['send', { cookie, csrf, body: { command: 'send', args: { message: 1 } } }, 403],
        [
          'settings-set',
          { cookie, csrf, body: { command: 'settings-set', args: { value: 1 } } },
          403,
        ],
        [
          'maintenance',
          { cookie, csrf, body: { command: 'maintenance', args: { on: true } } },
          403,
        ],
        [
          'web-password-set',
          { cookie, csrf, body: { command: 'web-password-set', args: { random: true } } },
          403,
        ],
        [
          'check-password',
          { cookie, csrf, body: { command: 'check-password', args: { password } } },
          403,
        ],
        ['watch as a request', { cookie, csrf, body: { command: 'watch', args: {} } }, 403],
        ['not JSON', { cookie, csrf, rawBody: '{command' }, 400],
        [
          'a form post',
          {
            cookie,
            csrf,
            rawBody: 'command=restart',
            contentType: 'application/x-www-form-urlencoded',
          },
          400,
        ],
        [
          '3 MB',
          {
            cookie,
            csrf,
            rawBody: JSON.stringify({ command: 'status', args: { x: 'x'.repeat(3_000_000) } }),
          },
          413,
        ],
      ];
      for (const [what, o, expected] of refusals) {
        const r = await call(port, 'POST', '/api/request', o);
        assert.equal(r.status, expected, `${what}: ${r.text}`);
        assert.match(r.text, /"error"/, what);
      }
      assert.equal(await pidOf(), pid, 'no refused request restarted the sleeper');
      const badStream = await call(port, 'GET', '/api/stream?command=status&args=%7B%7D', {
        cookie,
      });
      assert.equal(badStream.status, 403);

      // A restart through the page's API: answered, logged with the session, a new PID.
      const r = await call(port, 'POST', '/api/request', {
        cookie,
        csrf,
        body: restart,
        origin: `http://127.0.0.1:${port}`,
      });
      assert.equal(r.status, 200);
      assert.deepEqual(lines(r).at(-1)?.error, undefined, r.text);
      await until(
        async () => {
          const p = await pidOf();
          return p !== undefined && p !== pid ? p : undefined;
        },
        { describe: () => 'a new pid after the restart' },
      );
      const session = /^session (\w{8}) \(127\.0\.0\.1\): logged in$/m.exec(
        serverLog.join('\n'),
      )?.[1];
      assert.ok(session !== undefined, serverLog.join('\n'));
      assert.ok(
        serverLog.some(
          (l) => l === `session ${session} (127.0.0.1): restart {service: <daemon sleeper>}: ok`,
        ),
        serverLog.join('\n'),
      );
      assert.ok(!serverLog.join('\n').includes(password), 'the password is never logged');

      // A watch as server-sent events: the service's state arrives.
      const pattern = encodeURIComponent(
        JSON.stringify({
          pattern: { '@rec': [{ '@sym': 'service-state' }, service, { '@sym': '?s' }] },
        }),
      );
      const events = await new Promise<string>((resolveEvents, reject) => {
        const req = httpRequest(
          {
            host: '127.0.0.1',
            port,
            path: `/api/stream?command=watch&args=${pattern}`,
            headers: { cookie },
          },
          (res) => {
            assert.equal(res.headers['content-type'], 'text/event-stream; charset=utf-8');
            let text = '';
            res.on('data', (c: Buffer) => {
              text += c.toString();
              if (text.includes('synced')) {
                req.destroy();
                resolveEvents(text);
              }
            });
          },
        );
        req.on('error', reject);
        req.end();
      });
      assert.match(events, /event: event\ndata: .*"@sym":"added".*"sleeper"/);

      // Several watches in one stream, each event tagged with its watch's index.
      const watches = encodeURIComponent(
        JSON.stringify([
          { pattern: { '@rec': [{ '@sym': 'service-state' }, service, { '@sym': '_' }] } },
          { pattern: { '@rec': [{ '@sym': 'service-process' }, service, { '@sym': '_' }] } },
        ]),
      );
      const tagged = await new Promise<string>((resolveEvents, reject) => {
        const req = httpRequest(
          { host: '127.0.0.1', port, path: `/api/watch?watches=${watches}`, headers: { cookie } },
          (res) => {
            let text = '';
            res.on('data', (c: Buffer) => {
              text += c.toString();
              if ((text.match(/synced/g) ?? []).length >= 2) {
                req.destroy();
                resolveEvents(text);
              }
            });
          },
        );
        req.on('error', reject);
        req.end();
      });
      assert.match(
        tagged,
        /data: \{"watch":0,"event":\{"@rec":\[\{"@sym":"added"\},\{"@rec":\[\{"@sym":"service-state"\}/,
      );
      assert.match(
        tagged,
        /data: \{"watch":1,"event":\{"@rec":\[\{"@sym":"added"\},\{"@rec":\[\{"@sym":"service-process"\}/,
      );
      const tooMany = encodeURIComponent(
        JSON.stringify(Array.from({ length: 17 }, () => ({ pattern: 1 }))),
      );
      assert.equal(
        (await call(port, 'GET', `/api/watch?watches=${tooMany}`, { cookie })).status,
        400,
      );

      // The password's change: the old one must be right; then only the new one logs in.
      const wrongOld = await call(port, 'POST', '/api/password', {
        cookie,
        csrf,
        body: { old: 'not it at all', new: 'the next password' },
      });
      assert.equal(wrongOld.status, 401, wrongOld.text);
      const changed = await call(port, 'POST', '/api/password', {
        cookie,
        csrf,
        body: { old: password, new: 'the next password' },
      });
      assert.equal(changed.status, 204, changed.text);
      assert.equal(
        (await call(port, 'POST', '/api/login', { body: { password }, from: '127.0.0.3' })).status,
        401,
      );
      const second = await call(port, 'POST', '/api/login', {
        body: { password: 'the next password' },
        from: '127.0.0.3',
      });
      assert.equal(second.status, 200, second.text);

      // Logout ends the session: its cookie opens nothing any more.
      assert.equal(
        (await call(port, 'POST', '/api/logout', { cookie })).status,
        403,
        'logout needs the CSRF token',
      );
      assert.equal((await call(port, 'POST', '/api/logout', { cookie, csrf })).status, 204);
      assert.equal((await call(port, 'GET', '/api/session', { cookie })).status, 401);
      assert.equal(
        (await call(port, 'POST', '/api/request', { cookie, csrf, body: restart })).status,
        401,
      );

      // The daemon gone: the other session's requests and streams are answered 503, with
      // why, not an empty 200.
      const other = {
        cookie: String(second.headers['set-cookie']).split(';')[0]!,
        csrf: (JSON.parse(second.text) as { csrf: string }).csrf,
      };
      await d.dispose();
      d = undefined;
      const gone = await call(port, 'POST', '/api/request', {
        ...other,
        body: { command: 'status', args: {} },
      });
      assert.equal(gone.status, 503, gone.text);
      assert.match(gone.text, /"reason":"unreachable"/);
      const goneStream = await call(port, 'GET', '/api/stream?command=watch&args=%7B%7D', {
        cookie: other.cookie,
      });
      assert.equal(goneStream.status, 503, goneStream.text);
    },
  );

  it(
    'runs from the configuration as limen-web, and is a failure without --web-group',
    { timeout: 180_000 },
    async (t) => {
      if (skipUnmet(t, { root: 'to run the server as limen-web', check: hasWebUser })) return;
      server?.kill('SIGTERM');
      await d?.dispose();
      d = await siteDaemon(dir, 'site2', join(dir, 'root2'), {
        'web.pr': '<web-dashboard {interfaces: ["lo"] port: 8080}>\n',
      });
      await d.waitFor('its page size', d.output('<daemon limen-web>', /bytes compressed/));
      const socket = join(dir, 'root2/run/limen/web/control.sock');
      const pids = readdirSync('/proc').filter(
        (p) => /^\d+$/.test(p) && readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(socket),
      );
      assert.equal(pids.length, 1, `one server for ${socket}`);
      const status = readFileSync(`/proc/${pids[0]}/status`, 'utf8');
      assert.match(
        status,
        new RegExp(`^Uid:\\t${uidOf('limen-web')}\\t`, 'm'),
        'runs as limen-web',
      );
      // One capability, to bind ports below 1024; nothing else, and no way to gain more.
      for (const cap of ['CapEff', 'CapPrm', 'CapBnd', 'CapAmb'])
        assert.match(status, new RegExp(`^${cap}:\\t0000000000000400$`, 'm'), `${cap}: ${status}`);
      assert.match(status, /^NoNewPrivs:\t1$/m);
      assert.match(
        status,
        new RegExp(`^Groups:\\t(${uidOf('limen-web', 'group')})? *$`, 'm'),
        'no other group',
      );
      assert.equal(
        d.find((l) => /cannot|permission denied/.test(String(l.line))),
        undefined,
        d.logText(),
      );
      // In maintenance mode the dashboard is part of the recovery bundle: it keeps running.
      const rootClient = await ControlClient.connect(join(dir, 'root2/run/limen/control.sock'));
      try {
        await rootClient.maintenance(true);
        await d.waitFor('maintenance mode', (l) => /maintenance/i.test(l.msg));
        const services = JSON.stringify(toJSON(await rootClient.services()));
        assert.match(services, /limen-web/, services);
        assert.ok(existsSync(`/proc/${pids[0]}`), 'the same server process still runs');
        await rootClient.maintenance(false);
      } finally {
        rootClient.close();
      }
      await d.dispose();

      // HTTPS with a certificate limen makes: once, the key for root and the web group only.
      const root4 = join(dir, 'root4');
      d = await siteDaemon(dir, 'site4', root4, {
        'web.pr': '<web-dashboard {interfaces: ["lo"] tls: self-signed}>\n',
      });
      await d.waitFor(
        'the server after its certificate',
        d.output('<daemon limen-web>', /bytes compressed/),
      );
      const certDir = join(root4, 'var/lib/limen/web');
      const key = statSync(join(certDir, 'key.pem'));
      const cert = statSync(join(certDir, 'cert.pem'));
      assert.deepEqual(
        [key.mode & 0o777, key.uid, key.gid],
        [0o640, 0, uidOf('limen-web', 'group')],
        'the key',
      );
      assert.equal(cert.mode & 0o777, 0o644);
      assert.match(readFileSync(join(certDir, 'cert.pem'), 'utf8'), /BEGIN CERTIFICATE/);
      await d.dispose();

      d = await siteDaemon(
        dir,
        'site3',
        join(dir, 'root3'),
        { 'web.pr': '<web-dashboard {}>\n' },
        false,
      );
      await d.waitFor(
        'the failure',
        (l) => /web-dashboard-error/.test(l.msg) && /--web-group/.test(String(l.message)),
      );
    },
  );
});

/** A site with `services` (file → text) under DIR/NAME, and a daemon for it (--root ROOT). */
async function siteDaemon(
  dir: string,
  name: string,
  root: string,
  services: { readonly [file: string]: string },
  webGroup: boolean = true,
): Promise<DaemonProcess> {
  const site = join(dir, name);
  await mkdir(join(site, 'core'), { recursive: true });
  await mkdir(join(site, 'services'), { recursive: true });
  for (const [file, text] of Object.entries(services))
    await writeFile(join(site, 'services', file), text);
  const d = new DaemonProcess([
    '--root',
    root,
    '--config',
    site,
    '--no-network',
    ...(webGroup ? ['--web-group', 'limen-web'] : []),
  ]);
  await d.started();
  return d;
}

const hasWebUser = () =>
  readFileSync('/etc/passwd', 'utf8').includes('\nlimen-web:')
    ? undefined
    : 'no user limen-web (node scripts/bootstrap.mjs creates it)';

/** The uid (or the gid) of `name` in /etc/passwd (or /etc/group). */
function uidOf(name: string, file: 'passwd' | 'group' = 'passwd'): number {
  const text = readFileSync(`/etc/${file}`, 'utf8');
  const line = text.split('\n').find((l) => l.startsWith(`${name}:`));
  if (line === undefined) throw new Error(`${name} is not in /etc/${file}`);
  return Number(line.split(':')[2]);
}
