// Raw netlink sockets, either in this process (the `netlink` package's native
// socket) or relayed through one shared helper child (netlink-helper.ts), which
// is the default: the addon aborts its process when the kernel drops events.
//
// Frames on the helper's pipes: u32 length (of what follows), u8 op, u32 socket
// id, payload. To the helper: OPEN (protocol, rcvbuf, n, groups…), SEND (a
// netlink message), CLOSE. From it: OPENED (port), MESSAGE (a datagram), ERROR
// (JSON {code message}). If the helper exits, every socket it held reports an
// error with code EHELPER and is dead; the helper lives while a socket is open.

import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
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

export type RawError = Error & { code?: string };

/** What RtnlSocket needs from a raw netlink socket. */
export interface RawSocket {
  onMessage(fn: (msg: Uint8Array) => void): void;
  onError(fn: (err: RawError) => void): void;
  send(msg: Uint8Array): void;
  /** The socket's netlink port (0 until known; always known before its first message). */
  port(): number;
  close(): void;
}

export interface RawSocketOptions {
  readonly protocol: number;
  readonly groups: readonly number[];
  readonly recvBufferSize?: number | undefined;
}

export type Transport = 'helper' | 'in-process';

// ---- In this process --------------------------------------------------------------------

interface PackageSocket {
  on(event: 'message', fn: (msg: Buffer) => void): void;
  on(event: 'error', fn: (err: RawError) => void): void;
  send(msg: Uint8Array, options: object, cb: (err?: RawError) => void): void;
  close(): void;
  address(): { port: number };
  addMembership(group: number): void;
  setRecvBufferSize(size: number): void;
}
type PackageSocketClass = new (protocol: number, options?: object) => PackageSocket;

/** Opens the package's native socket here. Throws if the addon cannot be loaded. */
export function openInProcess(opts: RawSocketOptions): RawSocket {
  const Raw = (
    createRequire(import.meta.url)('netlink') as { RawNetlinkSocket: PackageSocketClass }
  ).RawNetlinkSocket;
  const s = new Raw(opts.protocol, {});
  try {
    if (opts.recvBufferSize !== undefined) s.setRecvBufferSize(opts.recvBufferSize);
    for (const g of opts.groups) s.addMembership(g);
  } catch (e) {
    s.close();
    throw e;
  }
  let onError: (err: RawError) => void = () => {};
  // An exception must never reach the addon: thrown through its native callback, it
  // aborts the process. Handlers report their own failures through onError.
  s.on('error', (err) => {
    try {
      onError(err);
    } catch {
      // nowhere left to report it
    }
  });
  return {
    onMessage: (fn) =>
      s.on('message', (msg) => {
        try {
          fn(msg);
        } catch (e) {
          onError(e instanceof Error ? e : new Error(String(e)));
        }
      }),
    onError: (fn) => (onError = fn),
    send: (msg) =>
      s.send(msg, {}, (err) => {
        if (err !== undefined && err !== null) onError(err);
      }),
    port: () => s.address().port,
    close: () => s.close(),
  };
}

// ---- Through the helper -----------------------------------------------------------------

interface ProxyEntry {
  port: number;
  message: (msg: Uint8Array) => void;
  error: (err: RawError) => void;
  dead: boolean;
}

function helperCommand(): { file: string; args: string[] } {
  const here = fileURLToPath(import.meta.url);
  const file = fileURLToPath(new URL(`./netlink-helper${extname(here)}`, import.meta.url));
  // Run from source (tests, development): the helper needs the same TypeScript loader.
  const args = extname(here) === '.ts' ? ['--import', import.meta.resolve('tsx')] : [];
  return { file, args: [...args, file] };
}

class Helper {
  readonly child: ChildProcess;
  readonly sockets = new Map<number, ProxyEntry>();
  readonly #stderr: string[] = [];
  readonly #reader = new FrameReader();
  exited = false;

  constructor() {
    const { args } = helperCommand();
    this.child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stdout!.on('data', (chunk: Buffer) => this.#data(chunk));
    this.child.stderr!.on('data', (chunk: Buffer) => {
      if (this.#stderr.length < 20) this.#stderr.push(chunk.toString('utf8'));
    });
    this.child.stdin!.on('error', () => {});
    this.child.on('error', (e) => this.#exit(`could not start the netlink helper: ${e.message}`));
    running.add(this);
    this.child.on('close', () => {
      running.delete(this);
      if (running.size > 0) return;
      const w = exitWaiters;
      exitWaiters = [];
      for (const fn of w) fn();
    });
    this.child.on('exit', (code, signal) => {
      const said = this.#stderr.join('').trim();
      // The addon's abort on a receive error: the kernel dropped events.
      const why = said.includes('Error in native callback')
        ? 'it aborted on a socket error (the kernel dropped events: ENOBUFS)'
        : `it exited (${signal ?? `code ${code}`})${said === '' ? '' : `: ${said.slice(0, 300)}`}`;
      this.#exit(`the netlink helper process is gone: ${why}`);
    });
  }

  #exit(message: string): void {
    if (this.exited) return;
    this.exited = true;
    if (current === this) current = undefined;
    for (const e of this.sockets.values()) {
      if (e.dead) continue;
      e.dead = true;
      const err: RawError = new Error(message);
      err.code = 'EHELPER';
      e.error(err);
    }
    this.sockets.clear();
  }

  #data(chunk: Buffer): void {
    this.#reader.push(chunk, (op, id, payload) => {
      const e = this.sockets.get(id);
      if (e === undefined || e.dead) return;
      try {
        switch (op) {
          case EV_OPENED:
            e.port = payload.readUInt32LE(0);
            break;
          case EV_MESSAGE:
            e.message(payload);
            break;
          case EV_ERROR: {
            const { code, message } = JSON.parse(payload.toString('utf8')) as {
              code: string;
              message: string;
            };
            const err: RawError = new Error(message);
            err.code = code;
            e.error(err);
            break;
          }
        }
      } catch (err) {
        e.error(err instanceof Error ? err : new Error(String(err)));
      }
    });
  }

  write(op: number, id: number, payload: Uint8Array): void {
    if (!this.exited) this.child.stdin!.write(frame(op, id, payload));
  }

  release(id: number): void {
    this.sockets.delete(id);
    this.write(OP_CLOSE, id, new Uint8Array(0));
    if (this.sockets.size === 0) {
      // Nothing left to relay: let the helper go (it exits when its stdin ends).
      if (current === this) current = undefined;
      this.child.stdin!.end();
    }
  }
}

let current: Helper | undefined;
let nextId = 1;
/** Helpers started and not yet exited. */
const running = new Set<Helper>();
let exitWaiters: (() => void)[] = [];

/**
 * Resolves once no helper process is left (the last one exits shortly after the last
 * socket closes): the daemon awaits it at shutdown so that no child outlives it.
 */
export function netlinkHelpersExited(): Promise<void> {
  if (running.size === 0) return Promise.resolve();
  return new Promise((r) => exitWaiters.push(r));
}

/** Opens a socket in the shared helper process (started on first use). */
export function openThroughHelper(opts: RawSocketOptions): RawSocket {
  if (current === undefined || current.exited) current = new Helper();
  const helper = current;
  const id = nextId++;
  const entry: ProxyEntry = { port: 0, message: () => {}, error: () => {}, dead: false };
  helper.sockets.set(id, entry);
  const open = Buffer.alloc(12 + 4 * opts.groups.length);
  open.writeUInt32LE(opts.protocol, 0);
  open.writeUInt32LE(opts.recvBufferSize ?? 0, 4);
  open.writeUInt32LE(opts.groups.length, 8);
  opts.groups.forEach((g, i) => open.writeUInt32LE(g, 12 + 4 * i));
  helper.write(OP_OPEN, id, open);
  let closed = false;
  return {
    onMessage: (fn) => (entry.message = fn),
    onError: (fn) => (entry.error = fn),
    send: (msg) => helper.write(OP_SEND, id, msg),
    port: () => entry.port,
    close: () => {
      if (closed) return;
      closed = true;
      entry.dead = true;
      helper.release(id);
    },
  };
}

export function openRawSocket(transport: Transport, opts: RawSocketOptions): RawSocket {
  return transport === 'helper' ? openThroughHelper(opts) : openInProcess(opts);
}
