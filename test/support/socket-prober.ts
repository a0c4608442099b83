// A hostile local user, for tests: run as an unprivileged uid, it tries to
// connect to every socket it can find in a directory (and one level below it),
// in a tight loop, as an attacker racing the daemon's start would, and at once
// to every name inotify reports created there (and its `s` inside). It stops
// after `--max` rounds or when the stop file appears (bounded either way), and
// prints one JSON line: how many rounds it made, how many socket files it saw,
// and every path a connection succeeded to (none is the only right answer).
// Usage: node --import tsx test/support/socket-prober.ts DIR STOPFILE MAXROUNDS

import { existsSync, readdirSync, lstatSync, watch, type FSWatcher } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';

const [dir, stopFile, maxText] = process.argv.slice(2) as [string, string, string];
const max = Number(maxText);

/** Resolves with true if a connection was accepted. */
function tryConnect(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

function candidates(): string[] {
  const out: string[] = [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const n of names) {
    const p = join(dir, n);
    out.push(p);
    try {
      if (lstatSync(p).isDirectory()) for (const m of readdirSync(p)) out.push(join(p, m));
    } catch {
      // not ours to read: that is the point
    }
  }
  return out;
}

let rounds = 0;
let socketsSeen = 0;
const connected = new Set<string>();
const record = (p: string) => (ok: boolean) => {
  if (ok) connected.add(p);
};

// The directory may not exist yet: watch it as soon as it does.
let watcher: FSWatcher | undefined;
const watchDir = (): void => {
  if (watcher !== undefined) return;
  try {
    watcher = watch(dir, (_event, name) => {
      if (name === null) return;
      const p = join(dir, name);
      void tryConnect(p).then(record(p));
      void tryConnect(join(p, 's')).then(record(join(p, 's')));
    });
  } catch {
    // not there yet
  }
};

while (rounds < max) {
  watchDir();
  rounds++;
  if (rounds % 256 === 0 && existsSync(stopFile)) break;
  for (const p of candidates()) {
    let isSocket = false;
    try {
      isSocket = lstatSync(p).isSocket();
    } catch {
      continue;
    }
    if (!isSocket) continue;
    socketsSeen++;
    record(p)(await tryConnect(p));
  }
  // Let inotify's events in.
  await new Promise((r) => setImmediate(r));
}
watcher?.close();
process.stdout.write(
  `${JSON.stringify({ uid: process.getuid?.(), rounds, socketsSeen, connected: [...connected] })}\n`,
);
