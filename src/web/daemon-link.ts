// The web server's connections to the daemon's web endpoint (RUN/web/control.sock):
// one per session, opened on its first request and closed when it ends (which cancels
// its streams), and a fresh one for each login's password check, so that one client's
// failures never lock the others' connection out (the daemon counts failures per
// connection and, for everybody together, per minute).

import { ControlClient, ControlClosedError } from '../control/client.ts';

export class DaemonLink {
  readonly socketPath: string;
  #client: Promise<ControlClient> | undefined;
  #closed = false;

  constructor(socketPath: string) {
    this.socketPath = socketPath;
  }

  /** The session's connection, (re)opened when it has none or it went. */
  async client(): Promise<ControlClient> {
    if (this.#closed) throw new ControlClosedError('the session ended');
    let pending = this.#client;
    if (pending !== undefined) {
      try {
        const c = await pending;
        if (c.isOpen()) return c;
      } catch {
        // Reconnect below.
      }
      if (this.#client === pending) this.#client = undefined;
    }
    pending = this.#client ?? ControlClient.connect(this.socketPath, { greetingTimeoutMs: 5000 });
    this.#client = pending;
    return pending;
  }

  close(): void {
    this.#closed = true;
    const c = this.#client;
    this.#client = undefined;
    void c?.then((client) => client.close()).catch(() => undefined);
  }
}
