// Names of what tests make on the machine, recognisable by the leak check
// (test/lab/zz-leak.test.ts, run last): every network namespace a test or a
// benchmark creates is named `lt-…` (the lab's are `limen-LAB-NODE`), and every
// link a test creates in the host's namespace, even for a moment before moving
// it into a namespace, is `lt` + hex digits. A random suffix keeps parallel runs
// apart.

import { randomBytes } from 'node:crypto';

/** A namespace name: `lt-KIND-XXXXXX` (or `lt-XXXXXX`). */
export function testNamespace(kind?: string): string {
  const hex = randomBytes(3).toString('hex');
  return kind === undefined ? `lt-${hex}` : `lt-${kind}-${hex}`;
}

/** A link name for the host's namespace: `lt` + 6 hex digits, and an optional letter. */
export function testLink(tag = ''): string {
  return `lt${randomBytes(3).toString('hex')}${tag}`;
}

export const TEST_NAMESPACE = /^lt-[a-z0-9-]+$/;
export const TEST_LINK = /^lt[0-9a-f]{6}[a-z]?$/;
