// The web dashboard's password: stored in STATE/web-password as a salted scrypt hash,
// `{salt: #[…] hash: #[…] N: n r: n p: n}` in Preserves text, mode 0600, owned by
// root, replaced atomically; the password itself is never stored nor logged. A check
// reads the file anew (a `web-password-set` takes effect at once) through
// openSecretFile (a symbolic link, a wider mode or another owner is refused), and
// compares with timingSafeEqual. Passwords are bounded in length (MAX_PASSWORD_BYTES),
// so that a check costs one scrypt of bounded input.

import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { closeSync, readFileSync } from 'node:fs';
import { UserError } from '../base/errors.ts';
import { Bytes, Dict, dict, parse, peel, stringify, sym } from '../preserves/index.ts';
import { writeFileAtomic } from '../platform/atomic-file.ts';
import { openSecretFile } from '../platform/secret-file.ts';

export const MAX_PASSWORD_BYTES = 1024;
export const MIN_PASSWORD_CHARS = 8;
export const PASSWORD_FILE_MODE = 0o600;
/** The stored file is small: a bigger one is not ours. */
const MAX_FILE_BYTES = 4096;
const SALT_BYTES = 16;
const HASH_BYTES = 32;

/** scrypt's cost parameters: N (a power of two), r, p. */
export interface ScryptParams {
  readonly N: number;
  readonly r: number;
  readonly p: number;
}

/** 2^15 × 8 × 128 bytes = 32 MiB and ~0.1 s a check: OWASP's recommendation for scrypt. */
export const DEFAULT_SCRYPT_PARAMS: ScryptParams = { N: 2 ** 15, r: 8, p: 1 };
/** A stored file may not ask for more than this (each check would cost it). */
const MAX_N = 2 ** 20;
const MAX_R = 32;
const MAX_P = 16;

export interface StoredPassword extends ScryptParams {
  readonly salt: Uint8Array;
  readonly hash: Uint8Array;
}

export class WebPasswordError extends UserError {
  readonly code = 'LIMEN_WEB_PASSWORD';
}

/** What is wrong with a new password, or undefined. */
export function passwordProblem(password: string): string | undefined {
  if (Buffer.byteLength(password) > MAX_PASSWORD_BYTES)
    return `is longer than ${MAX_PASSWORD_BYTES} bytes`;
  if ([...password].length < MIN_PASSWORD_CHARS)
    return `is shorter than ${MIN_PASSWORD_CHARS} characters`;
  if (/[\0\n\r]/.test(password)) return 'holds a NUL or a line break';
  return undefined;
}

/** A random password: 18 bytes (144 bits) in base64url, 24 characters. */
export function randomPassword(): string {
  return randomBytes(18).toString('base64url');
}

function derive(password: string, salt: Uint8Array, params: ScryptParams): Promise<Buffer> {
  const options: ScryptOptions = {
    N: params.N,
    r: params.r,
    p: params.p,
    // Node refuses more than 32 MiB by default; allow what these parameters need.
    maxmem: 256 * params.N * params.r + 1024 * 1024,
  };
  return new Promise((resolve, reject) =>
    scrypt(password, salt, HASH_BYTES, options, (e, key) => (e ? reject(e) : resolve(key))),
  );
}

export async function hashPassword(
  password: string,
  params: ScryptParams = DEFAULT_SCRYPT_PARAMS,
): Promise<StoredPassword> {
  const salt = randomBytes(SALT_BYTES);
  return { ...params, salt, hash: await derive(password, salt, params) };
}

/** True when `password` is the stored one (constant time in the comparison). */
export async function verifyPassword(password: string, stored: StoredPassword): Promise<boolean> {
  // An over-long guess is never right (none can be stored) and is not worth a hash.
  if (Buffer.byteLength(password) > MAX_PASSWORD_BYTES) return false;
  const key = await derive(password, stored.salt, stored);
  return key.length === stored.hash.length && timingSafeEqual(key, stored.hash);
}

export function encodeStoredPassword(s: StoredPassword): string {
  return (
    stringify(dict({ salt: new Bytes(s.salt), hash: new Bytes(s.hash), N: s.N, r: s.r, p: s.p })) +
    '\n'
  );
}

/** The stored password in `text`, or throws WebPasswordError saying what is wrong. */
export function decodeStoredPassword(text: string): StoredPassword {
  let v;
  try {
    v = peel(parse(text));
  } catch (e) {
    throw new WebPasswordError(`is not Preserves text (${(e as Error).message})`);
  }
  if (!(v instanceof Dict)) throw new WebPasswordError('is not a dictionary {salt hash N r p}');
  const bytes = (key: string): Uint8Array | undefined => {
    const b = v.get(sym(key));
    return b !== undefined && peel(b) instanceof Bytes ? (peel(b) as Bytes).bytes : undefined;
  };
  const count = (key: string, max: number): number | undefined => {
    const n = v.get(sym(key));
    const x = n === undefined ? undefined : peel(n);
    return typeof x === 'number' && Number.isSafeInteger(x) && x >= 1 && x <= max ? x : undefined;
  };
  const problems: string[] = [];
  const salt = bytes('salt');
  const hash = bytes('hash');
  const N = count('N', MAX_N);
  const r = count('r', MAX_R);
  const p = count('p', MAX_P);
  if (salt === undefined || salt.length < 8) problems.push('salt: not a byte string of 8 or more');
  if (hash === undefined || hash.length !== HASH_BYTES)
    problems.push(`hash: not a byte string of ${HASH_BYTES}`);
  if (N === undefined || N < 2 || (N & (N - 1)) !== 0)
    problems.push(`N: not a power of two up to ${MAX_N}`);
  if (r === undefined) problems.push(`r: not a count up to ${MAX_R}`);
  if (p === undefined) problems.push(`p: not a count up to ${MAX_P}`);
  if (problems.length > 0) throw new WebPasswordError(problems.join('; '));
  return { salt: salt!, hash: hash!, N: N!, r: r!, p: p! };
}

/**
 * The stored password at `path`, undefined if none is set, or throws WebPasswordError
 * (the path and what is wrong: not ours, not 0600, malformed).
 */
export function readStoredPassword(path: string): StoredPassword | undefined {
  const opened = openSecretFile(path, process.getuid?.() ?? 0);
  if ('problem' in opened) {
    if (opened.problem === 'does not exist') return undefined;
    throw new WebPasswordError(`${path} ${opened.problem}`);
  }
  let text: string;
  try {
    const buf = readFileSync(opened.fd);
    if (buf.length > MAX_FILE_BYTES)
      throw new WebPasswordError(`${path} is larger than ${MAX_FILE_BYTES} bytes`);
    text = buf.toString('utf8');
  } finally {
    closeSync(opened.fd);
  }
  try {
    return decodeStoredPassword(text);
  } catch (e) {
    if (e instanceof WebPasswordError) throw new WebPasswordError(`${path}: ${e.message}`);
    throw e;
  }
}

/** Stores `password` at `path` (mode 0600, atomically); throws WebPasswordError if it is unfit. */
export async function writeStoredPassword(
  path: string,
  password: string,
  params: ScryptParams = DEFAULT_SCRYPT_PARAMS,
): Promise<void> {
  const problem = passwordProblem(password);
  if (problem !== undefined) throw new WebPasswordError(`the password ${problem}`);
  const stored = await hashPassword(password, params);
  await writeFileAtomic(path, encodeStoredPassword(stored), { mode: PASSWORD_FILE_MODE });
}
