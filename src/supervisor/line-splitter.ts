// Splits a byte stream into text lines: LF ends a line and a CR before it is
// dropped; a line longer than the cap is cut into pieces of at most `maxBytes`
// (never inside a UTF-8 sequence), so memory stays bounded and nothing is lost;
// end() flushes a final line that had no newline.

export const DEFAULT_MAX_LINE_BYTES = 64 * 1024;

const LF = 0x0a;
const CR = 0x0d;

export class LineSplitter {
  readonly #maxBytes: number;
  readonly #emit: (line: string) => void;
  #pending: Buffer[] = [];
  #pendingBytes = 0;

  constructor(emit: (line: string) => void, maxBytes = DEFAULT_MAX_LINE_BYTES) {
    if (!Number.isInteger(maxBytes) || maxBytes < 4) {
      throw new RangeError(`maxBytes must be an integer >= 4, got ${maxBytes}`);
    }
    this.#emit = emit;
    this.#maxBytes = maxBytes;
  }

  push(chunk: Uint8Array): void {
    let buf = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    for (;;) {
      const nl = buf.indexOf(LF);
      if (nl < 0) break;
      this.#append(buf.subarray(0, nl));
      this.#flushLine(true);
      buf = buf.subarray(nl + 1);
    }
    this.#append(buf);
  }

  /** Emits what is left as a last line (if anything is) and resets. */
  end(): void {
    if (this.#pendingBytes > 0) this.#flushLine(false);
  }

  #append(part: Buffer): void {
    if (part.length === 0) return;
    this.#pending.push(Buffer.from(part));
    this.#pendingBytes += part.length;
    // Over the cap: cut before a UTF-8 continuation byte so that no character is
    // split, emit the piece as a line of its own and keep the rest pending.
    while (this.#pendingBytes > this.#maxBytes) {
      const all = Buffer.concat(this.#pending, this.#pendingBytes);
      let cut = this.#maxBytes;
      for (let back = 0; back < 3 && (all[cut]! & 0xc0) === 0x80; back++) cut--;
      if ((all[cut]! & 0xc0) === 0x80) cut = this.#maxBytes; // not UTF-8: cut anywhere
      this.#emit(all.subarray(0, cut).toString('utf8'));
      const rest = all.subarray(cut);
      this.#pending = [rest];
      this.#pendingBytes = rest.length;
    }
  }

  #flushLine(endedByNewline: boolean): void {
    let line = Buffer.concat(this.#pending, this.#pendingBytes);
    this.#pending = [];
    this.#pendingBytes = 0;
    if (endedByNewline && line.length > 0 && line[line.length - 1] === CR) {
      line = line.subarray(0, line.length - 1);
    }
    this.#emit(line.toString('utf8'));
  }
}
