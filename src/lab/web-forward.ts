// The lab router's web dashboard, reachable from the host: a TCP port on 127.0.0.1
// here, forwarded to the router's LAN address from inside the LAN client lan1's
// namespace, so the dashboard sees a LAN client (the firewall lets only the LAN zone
// reach it). Two halves meet at a Unix socket in the lab's directory (a Unix socket
// belongs to no network namespace): socat in lan1 listens on it and connects to
// ROUTER:80 for each connection; this process listens on 127.0.0.1:PORT and pipes
// each connection to it.
//
// Invariants: only loopback and the lab's own namespaces carry the traffic; the
// socket is mode 0600 (root's, like the lab); the socat half is a lab process (`lab
// down` stops it) and the host half lives as long as the returned handle.

import { createConnection, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { existsSync, rmSync } from 'node:fs';
import type { Lab } from './lab.ts';
import { LAN_ROUTER_ADDRESS } from './lab.ts';
import { LabError, waitFor } from './system.ts';

export interface WebForward {
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

/** Connections the host half carries at once; more are refused. */
const MAX_CONNECTIONS = 64;

/**
 * Forwards 127.0.0.1:port (0: any free port; `port` taken: the next free one) to the
 * router's dashboard on port `routerPort`.
 */
export async function forwardDashboard(lab: Lab, port = 0, routerPort = 80): Promise<WebForward> {
  const sock = join(lab.dir, 'lan1', 'web.sock');
  rmSync(sock, { force: true });
  await lab.stopProcess('lan1/web-forward');
  lab.startProcess('lan1/web-forward', 'lan1', [
    'socat',
    `UNIX-LISTEN:${sock},fork,mode=600,unlink-early,backlog=64`,
    `TCP:${LAN_ROUTER_ADDRESS}:${routerPort},connect-timeout=5`,
  ]);
  // socat binds the socket once it runs: connections before that would fail.
  if (!(await waitFor(() => existsSync(sock), 5000, 20)))
    throw new LabError(
      `the dashboard's forwarder in lan1 did not start (${sock}); see ${join(lab.dir, 'lan1', 'web-forward.log')}`,
    );
  const server = createServer((c) => {
    const up = createConnection(sock);
    c.pipe(up).pipe(c);
    const end = () => {
      c.destroy();
      up.destroy();
    };
    c.on('error', end);
    up.on('error', end);
    c.on('close', end);
    up.on('close', end);
  });
  server.maxConnections = MAX_CONNECTIONS;
  const bound = await listen(server, port).catch(() =>
    port === 0 ? undefined : listen(server, 0),
  );
  if (bound === undefined) throw new LabError('cannot listen on 127.0.0.1 for the dashboard');
  return {
    port: bound,
    url: `http://127.0.0.1:${bound}/`,
    close: async () => {
      await new Promise<void>((r) => server.close(() => r()));
      // A lab already taken down took socat with it; stopProcess would write its
      // state file again and leave a lab directory behind.
      if (existsSync(lab.dir)) await lab.stopProcess('lan1/web-forward');
    },
  };
}

function listen(server: Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error) => reject(e);
    server.once('error', onError);
    server.listen({ host: '127.0.0.1', port }, () => {
      server.off('error', onError);
      resolve((server.address() as { port: number }).port);
    });
  });
}
