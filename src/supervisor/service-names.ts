// Names derived from a service value: the directory name of its outputs, and a
// short label for messages. A directory name is a readable, filesystem-safe
// slug plus a hash of the value's canonical form, so two services never share one.

import { sha1, stringify, strip, type Value } from '../preserves/index.ts';

const MAX_SLUG = 48;
const HASH_CHARS = 10;

/** `<daemon "udhcpc" eth0>` → `daemon-udhcpc-eth0-<hash>`: safe as one path component. */
export function outputsDirName(service: Value): string {
  const slug = stringify(strip(service))
    .replace(/[^A-Za-z0-9_.-]+/g, '-')
    .replace(/\.{2,}/g, '.')
    .replace(/^[-.]+|[-.]+$/g, '')
    .slice(0, MAX_SLUG)
    .replace(/[-.]+$/, '');
  const hash = sha1(service).slice(0, HASH_CHARS);
  return slug === '' ? hash : `${slug}-${hash}`;
}

/** The service value as text, shortened for log lines. */
export function serviceLabel(service: Value, max = 80): string {
  const s = stringify(strip(service));
  return s.length > max ? `${s.slice(0, max - 3)}...` : s;
}

/** The current time in RFC 3339 (UTC, milliseconds), as `<log TIME …>` carries it. */
export function rfc3339(ms: number): string {
  return new Date(ms).toISOString();
}
