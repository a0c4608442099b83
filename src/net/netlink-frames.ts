// The frames on the netlink helper's pipes (netlink-helper.ts <-> netlink-proxy.ts):
// u32 length (of what follows), u8 op, u32 socket id, payload, all little-endian.
// One definition for both sides, so the two cannot drift apart.

/** Parent to helper. */
export const OP_OPEN = 1;
export const OP_SEND = 2;
export const OP_CLOSE = 3;
/** Helper to parent. */
export const EV_OPENED = 1;
export const EV_MESSAGE = 2;
export const EV_ERROR = 3;

export function frame(op: number, id: number, payload: Uint8Array): Buffer {
  const b = Buffer.allocUnsafe(9 + payload.length);
  b.writeUInt32LE(5 + payload.length, 0);
  b.writeUInt8(op, 4);
  b.writeUInt32LE(id, 5);
  b.set(payload, 9);
  return b;
}

/** Splits a byte stream into frames; a frame split across chunks is kept until complete. */
export class FrameReader {
  #buf: Buffer = Buffer.alloc(0);

  /** Calls onFrame for every complete frame; `payload` is a view valid only during the call. */
  push(chunk: Buffer, onFrame: (op: number, id: number, payload: Buffer) => void): void {
    const b = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    let off = 0;
    while (b.length - off >= 4) {
      const len = b.readUInt32LE(off);
      if (b.length - off - 4 < len) break;
      const op = b.readUInt8(off + 4);
      const id = b.readUInt32LE(off + 5);
      const payload = b.subarray(off + 9, off + 4 + len);
      off += 4 + len;
      onFrame(op, id, payload);
    }
    this.#buf = off === b.length ? Buffer.alloc(0) : b.subarray(off);
  }
}
