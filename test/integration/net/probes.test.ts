// Probes (src/net/probes.ts) against real peers on loopback: a TCP listener and
// a closed port, an HTTP server answering 200 and 500, the system resolver, and
// ping (iputils) of 127.0.0.1. Then the driver: a probe's state follows its
// result, a failed one is a declared failure, `<probes-rerun>` withdraws every
// result and runs again, and a bad spec fails with the reason.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type Server } from 'node:net';
import { Dataspace, P } from '../../../src/dataspace/index.ts';
import { parse, record, stringify } from '../../../src/preserves/index.ts';
import { runProbe, startProbes } from '../../../src/net/probes.ts';
import { checkedEngine } from '../../support/engine-log.ts';
import { prerequisites } from '../../support/prerequisites.ts';
import { until } from '../../support/until.ts';

function listen<T extends Server | HttpServer>(s: T): Promise<number> {
  return new Promise((resolve) =>
    s.listen(0, '127.0.0.1', () => resolve((s.address() as { port: number }).port)),
  );
}

describe('probes', () => {
  let tcpServer: Server;
  let tcpPort: number;
  let closedPort: number;
  let httpServer: HttpServer;
  let httpPort: number;

  before(async () => {
    tcpServer = createServer((c) => c.destroy());
    tcpPort = await listen(tcpServer);
    const closed = createServer();
    closedPort = await listen(closed);
    await new Promise((r) => closed.close(r));
    httpServer = createHttpServer((req, res) => {
      res.statusCode = req.url === '/broken' ? 500 : 200;
      res.end('x');
    });
    httpPort = await listen(httpServer);
  });

  after(async () => {
    await new Promise((r) => tcpServer.close(r));
    httpServer.closeAllConnections();
    await new Promise((r) => httpServer.close(r));
  });

  it('tcp: passes when the port accepts, fails with the reason when it does not', async () => {
    assert.deepEqual(await runProbe(parse(`<tcp "127.0.0.1" ${tcpPort}>`)), {
      passed: true,
      detail: `127.0.0.1:${tcpPort} accepted`,
    });
    assert.deepEqual(await runProbe(parse(`<tcp "127.0.0.1" ${closedPort}>`)), {
      passed: false,
      detail: `127.0.0.1:${closedPort}: ECONNREFUSED`,
    });
  });

  it('http: passes below status 400, fails with the status', async () => {
    assert.deepEqual(await runProbe(parse(`<http "http://127.0.0.1:${httpPort}/">`)), {
      passed: true,
      detail: 'HTTP 200',
    });
    assert.deepEqual(await runProbe(parse(`<http "http://127.0.0.1:${httpPort}/broken">`)), {
      passed: false,
      detail: `HTTP 500 from http://127.0.0.1:${httpPort}/broken`,
    });
  });

  it('resolve: localhost resolves (from /etc/hosts: no query leaves the machine)', async () => {
    const ok = await runProbe(parse('<resolve "localhost">'));
    assert.equal(ok.passed, true, ok.detail);
    assert.match(ok.detail, /^localhost is (127\.0\.0\.1|::1)$/);
  });

  it('ping: 127.0.0.1 answers', { skip: prerequisites({ programs: ['ping'] }) }, async () => {
    const r = await runProbe(parse('<ping "127.0.0.1">'));
    assert.equal(r.passed, true, r.detail);
  });

  it('refuses a spec that is not a probe, saying what a probe is', async () => {
    const r = await runProbe(parse('<smoke-signal "hill">'));
    assert.equal(r.passed, false);
    assert.match(r.detail, /^not a probe: <smoke-signal "hill"> \(expected <ping "ADDRESS">/);
    assert.equal((await runProbe(parse('<tcp "127.0.0.1" 70000>'))).passed, false);
  });

  it('the driver publishes each result, declares failures, and reruns on <probes-rerun>', async () => {
    const { engine } = checkedEngine();
    const config = new Dataspace(engine, 'config');
    const states = () =>
      config
        .query(P.rec('probe-state', P._, P._, P._))
        .map((r) => stringify(r.value))
        .sort();
    let facet!: ReturnType<typeof engine.root.spawn>;
    engine.turn(() => {
      startProbes(engine.root, { config: config.ref, intervalMs: 60_000 });
      facet = engine.root.spawn((f) => {
        f.assert(config.ref, parse(`<probe up <tcp "127.0.0.1" ${tcpPort}>>`));
        f.assert(config.ref, parse(`<probe down <tcp "127.0.0.1" ${closedPort}>>`));
      });
    });
    await until(() => states().length === 2, { describe: () => JSON.stringify(states()) });
    assert.deepEqual(states(), [
      `<probe-state down failed "127.0.0.1:${closedPort}: ECONNREFUSED">`,
      `<probe-state up passed "127.0.0.1:${tcpPort} accepted">`,
    ]);
    assert.equal(
      config.query(P.rec('failure-shape', P.rec('probe-state', P._, P._, P._))).length,
      1,
      'a failed probe is a declared failure',
    );
    // A rerun withdraws the results first: whatever is seen after it is new.
    let withdrawn = false;
    engine.turn(() =>
      engine.root.observe(config.ref, P.rec('probe-state', P.lit(parse('up')), P._, P._), {
        onRemove: () => void (withdrawn = true),
      }),
    );
    engine.turn(() => engine.root.send(config.ref, record('probes-rerun')));
    await until(() => withdrawn && states().length === 2, {
      describe: () => JSON.stringify(states()),
    });
    // The probe goes: so does its state.
    engine.turn(() => facet.stop());
    await until(() => states().length === 0, { describe: () => JSON.stringify(states()) });
    engine.turn(() => engine.root.stop());
    await engine.sync();
  });
});
