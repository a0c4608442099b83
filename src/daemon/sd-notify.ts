// The systemd notify protocol (sd_notify(3)): under a `Type=notify` unit with
// `WatchdogSec=`, the daemon says READY=1 once it runs, WATCHDOG=1 from its event
// loop every half watchdog period (so a hung daemon is killed and restarted, and
// the restart rolls an unconfirmed trial back), and STOPPING=1 when it stops.
//
// The protocol is a datagram to the AF_UNIX socket named by $NOTIFY_SOCKET, which
// Node cannot send (its dgram module has no Unix domain datagrams). limen runs
// systemd's own `systemd-notify --no-block` for each message instead: it is on
// every machine that has systemd to listen (package systemd), needs no native
// addon, and costs one short process per message (one every WatchdogSec/2). The
// unit sets NotifyAccess=all, as messages come from that child, not from limen's
// main process; --no-block because the barrier it would otherwise wait for needs
// a receiver that passes file descriptors back. One message at a time: a message
// due while another is being sent is sent after it (only the latest WATCHDOG=1).

import { spawn } from 'node:child_process';
import type { Logger } from '../dataspace/index.ts';

export interface SystemdNotifier {
  ready(): void;
  stopping(): void;
  close(): void;
}

const none: SystemdNotifier = { ready() {}, stopping() {}, close() {} };

export function startSystemdNotify(
  env: NodeJS.ProcessEnv,
  logger: Logger,
  program = 'systemd-notify',
): SystemdNotifier {
  const socket = env['NOTIFY_SOCKET'];
  if (socket === undefined || socket === '') return none;
  const queue: string[] = [];
  let sending = false;
  let warned = false;
  let timer: NodeJS.Timeout | undefined;

  const pump = (): void => {
    if (sending) return;
    const message = queue.shift();
    if (message === undefined) return;
    sending = true;
    const child = spawn(program, ['--no-block', `--pid=${process.pid}`, message], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, NOTIFY_SOCKET: socket },
      timeout: 10_000,
    });
    let err = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => {
      if (err.length < 500) err += s;
    });
    const done = (problem: string | undefined): void => {
      sending = false;
      if (problem !== undefined && !warned) {
        warned = true;
        logger.warn('cannot notify systemd', { message, problem });
      }
      pump();
    };
    child.on('error', (e) => done(e.message));
    child.on('close', (code) => done(code === 0 ? undefined : err.trim() || `exit ${code}`));
  };
  const send = (message: string): void => {
    // Only the latest watchdog ping matters.
    if (message === 'WATCHDOG=1' && queue.includes(message)) return;
    queue.push(message);
    pump();
  };

  // WATCHDOG_PID, when set, names the process the watchdog is for.
  const usec = Number(env['WATCHDOG_USEC']);
  const forUs = env['WATCHDOG_PID'] === undefined || env['WATCHDOG_PID'] === String(process.pid);
  const watchdog = Number.isFinite(usec) && usec > 0 && forUs;

  return {
    ready() {
      send('READY=1');
      if (watchdog && timer === undefined) {
        send('WATCHDOG=1');
        timer = setInterval(() => send('WATCHDOG=1'), Math.max(500, usec / 2000));
        timer.unref();
      }
    },
    stopping() {
      clearInterval(timer);
      send('STOPPING=1');
    },
    close() {
      clearInterval(timer);
    },
  };
}
