// The web dashboard's server (docs/web.md): `<daemon limen-web>`, run by the
// supervisor as the unprivileged user of config/services/web.pr, talking to the daemon
// only through the web endpoint. It serves the page and maps the control protocol onto
// HTTP (http-api.ts) on the LAN's addresses (listeners.ts).
//
//   node dist/web/server.js --socket RUN/web/control.sock --options '{…}' \
//     [--cert-dir STATE/web] [--listen ADDR]... [--port N] [--static DIR]
//
// --options is the configuration's `<web-dashboard {…}>` dictionary, in Preserves
// text; --listen replaces following the interfaces (tests, development).
//
// Invariants: the process never holds more than its limits (sessions, connections,
// open requests, bodies: sessions.ts, http-api.ts); a bad option ends it at once with
// one line that says what is wrong (exit 2: the supervisor's crash loop then reports
// it as a failure); losing the daemon ends no session, and the address watch
// reconnects.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ControlClient, ControlConnectError } from '../control/client.ts';
import { packageRoot } from '../platform/package-root.ts';
import { parse } from '../preserves/index.ts';
import { WebOptionError, readWebConfig, type WebConfig } from './server-options.ts';
import { WebApi } from './http-api.ts';
import { Listeners, followAddresses, type Tls } from './listeners.ts';
import { LoginLimiter, SessionStore } from './sessions.ts';
import { StaticFiles } from './static-files.ts';

function readTls(config: WebConfig, certDir: string | undefined): Tls | undefined {
  if (config.tls === undefined) return undefined;
  const paths =
    config.tls === 'self-signed'
      ? certDir === undefined
        ? undefined
        : { cert: join(certDir, 'cert.pem'), key: join(certDir, 'key.pem') }
      : config.tls;
  if (paths === undefined) throw new WebOptionError('tls: self-signed needs --cert-dir');
  try {
    return { cert: readFileSync(paths.cert), key: readFileSync(paths.key) };
  } catch (e) {
    throw new WebOptionError(
      `cannot read the certificate or its key (${(e as Error).message}); they must be PEM files ` +
        "the web server's user can read",
    );
  }
}

const log = (line: string) => process.stdout.write(`${line}\n`);

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      socket: { type: 'string' },
      options: { type: 'string', default: '{}' },
      'cert-dir': { type: 'string' },
      listen: { type: 'string', multiple: true },
      port: { type: 'string' },
      static: { type: 'string' },
    },
    strict: true,
  });
  if (process.getuid?.() === 0)
    throw new WebOptionError(
      'refusing to run as root: run it as its own user (config/services/web.pr uses setpriv)',
    );
  if (values.socket === undefined)
    throw new WebOptionError('--socket PATH is needed (RUN/web/control.sock)');
  let config = readWebConfig(parse(values.options));
  if (values.port !== undefined) config = { ...config, port: Number(values.port) };
  const tls = readTls(config, values['cert-dir']);
  const files = new StaticFiles(values.static ?? join(packageRoot(), 'dist', 'web', 'static'));
  const sessions = new SessionStore({ idleS: config.idleS, maxS: config.maxS });
  const api = new WebApi({
    socketPath: values.socket,
    files,
    sessions,
    limiter: new LoginLimiter(),
    secure: tls !== undefined,
    log,
  });
  const listeners = new Listeners({
    port: config.port,
    tls,
    handler: (req, res) => api.handle(req, res),
    log,
    maxConnections: 256,
  });
  const sweep = setInterval(() => sessions.sweep(), 60_000);
  const stop = new AbortController();
  const shutdown = () => {
    log('stopping');
    clearInterval(sweep);
    stop.abort();
    listeners.close();
    api.close();
    setImmediate(() => process.exit(0));
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  log(`the page is ${files.compressedSize()} bytes compressed`);
  if (values.listen !== undefined) {
    listeners.set(values.listen);
    return;
  }
  // Follow the addresses; after losing the daemon, connect again (1 s, then up to 10 s).
  let delay = 1000;
  while (!stop.signal.aborted) {
    try {
      const client = await ControlClient.connect(values.socket, { greetingTimeoutMs: 5000 });
      delay = 1000;
      await followAddresses(client, config.interfaces, (a) => listeners.set(a), stop.signal);
      client.close();
    } catch (e) {
      if (stop.signal.aborted) break;
      const why =
        e instanceof ControlConnectError && (e.errno === 'EACCES' || e.errno === 'EPERM')
          ? `permission denied on ${values.socket}: this user's group is not the daemon's --web-group`
          : (e as Error).message;
      log(`the daemon's web endpoint: ${why}; connecting again in ${delay / 1000} s`);
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 10_000);
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`limen web: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(2);
});
