// The netlink helper process: owns the `netlink` package's native sockets on
// behalf of limen and relays raw datagrams over stdin/stdout. It exists because
// the addon (netlink 0.3.0) aborts the whole process when the kernel drops
// events: libuv reports the socket's POLLERR as EBADF and the addon's poll
// handler then builds an error with a NULL syscall name, which throws through
// native code (std::terminate). In a child, that abort is a socket failure the
// parent recovers from (reopen, dump again). See netlink-proxy.ts for the frames.
//
// Invariant: it prints nothing but frames on stdout, and exits when stdin ends.

import { createRequire } from 'node:module';
import {
  EV_ERROR,
  EV_MESSAGE,
  EV_OPENED,
  FrameReader,
  OP_CLOSE,
  OP_OPEN,
  OP_SEND,
  frame,
} from './netlink-frames.ts';

interface RawSocket {
  on(event: 'message', fn: (msg: Buffer) => void): void;
  on(event: 'error', fn: (err: Error & { code?: string }) => void): void;
  send(msg: Uint8Array, options: object, cb: (err?: Error & { code?: string }) => void): void;
  close(): void;
  address(): { port: number };
  addMembership(group: number): void;
  setRecvBufferSize(size: number): void;
}
type RawSocketClass = new (protocol: number, options?: object) => RawSocket;

const write = (op: number, id: number, payload: Uint8Array) =>
  process.stdout.write(frame(op, id, payload));
const errorFrame = (id: number, code: string, message: string) =>
  write(EV_ERROR, id, Buffer.from(JSON.stringify({ code, message })));

process.title = 'limen-netlink-helper';

let Raw: RawSocketClass | undefined;
let loadError: string | undefined;
try {
  // The socket class alone, not the package's index, which also loads every protocol
  // family's codecs (~0.6 MB of JS): measured in the running daemon, that cost this
  // process 5 MB of RSS, 1 MB of it private. The path is stable: package.json pins
  // netlink to 0.3.0, which has no "exports" map.
  Raw = (
    createRequire(import.meta.url)('netlink/dist/raw.js') as { RawNetlinkSocket: RawSocketClass }
  ).RawNetlinkSocket;
} catch (e) {
  loadError = e instanceof Error ? e.message : String(e);
}

const sockets = new Map<number, RawSocket>();

function open(id: number, p: Buffer): void {
  if (Raw === undefined) {
    errorFrame(id, 'EUNAVAILABLE', `the netlink package could not be loaded: ${loadError ?? '?'}`);
    return;
  }
  const protocol = p.readUInt32LE(0);
  const rcvbuf = p.readUInt32LE(4);
  const n = p.readUInt32LE(8);
  let s: RawSocket;
  try {
    s = new Raw(protocol, {});
    if (rcvbuf !== 0) s.setRecvBufferSize(rcvbuf);
    for (let i = 0; i < n; i++) s.addMembership(p.readUInt32LE(12 + 4 * i));
  } catch (e) {
    const err = e as Error & { code?: string };
    errorFrame(id, err.code ?? 'EOPEN', err.message);
    return;
  }
  sockets.set(id, s);
  s.on('message', (msg) => write(EV_MESSAGE, id, msg));
  s.on('error', (err) => errorFrame(id, err.code ?? 'EIO', err.message));
  const port = Buffer.alloc(4);
  port.writeUInt32LE(s.address().port >>> 0, 0);
  write(EV_OPENED, id, port);
}

const reader = new FrameReader();
process.stdin.on('data', (chunk: Buffer) =>
  reader.push(chunk, (op, id, payload) => {
    switch (op) {
      case OP_OPEN:
        open(id, payload);
        break;
      case OP_SEND: {
        const s = sockets.get(id);
        // Copy: the payload is a view into a buffer that is about to be reused.
        s?.send(Buffer.from(payload), {}, (err) => {
          if (err !== undefined && err !== null) errorFrame(id, err.code ?? 'EIO', err.message);
        });
        break;
      }
      case OP_CLOSE:
        sockets.get(id)?.close();
        sockets.delete(id);
        break;
    }
  }),
);
process.stdin.on('end', () => {
  for (const s of sockets.values()) s.close();
  process.exit(0);
});
