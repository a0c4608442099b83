// Content digests of Preserves values: the hash of the canonical binary form, so equal
// values (annotations ignored, any insertion order) always have equal digests.
// Used to name things by content, e.g. user settings as `<sha1>.pr`.

import { createHash } from 'node:crypto';
import { canonicalBytes } from './binary.ts';
import type { Value } from './values.ts';

function digest(algorithm: 'sha1' | 'sha256', v: Value): Buffer {
  return createHash(algorithm).update(canonicalBytes(v)).digest();
}

function copy(b: Buffer): Uint8Array {
  return new Uint8Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

/** SHA-1 of the canonical binary form, as 20 bytes. */
export function sha1Bytes(v: Value): Uint8Array {
  return copy(digest('sha1', v));
}

/** SHA-256 of the canonical binary form, as 32 bytes. */
export function sha256Bytes(v: Value): Uint8Array {
  return copy(digest('sha256', v));
}

/** SHA-1 of the canonical binary form, as 40 lower-case hex digits. */
export function sha1(v: Value): string {
  return digest('sha1', v).toString('hex');
}

/** SHA-256 of the canonical binary form, as 64 lower-case hex digits. */
export function sha256(v: Value): string {
  return digest('sha256', v).toString('hex');
}
