// What a test needs from the machine (root, network namespaces, programs, a
// built dist/), checked in one place. Outside CI a test whose prerequisite is
// missing is skipped, with the reason. In CI (CI=true, as root, after `npm run
// bootstrap`) everything must be there: a skip would hide an untested layer
// behind a green run, so the missing prerequisite fails the run instead, with
// what is missing (scripts/run-tests.mjs also fails a CI run that skipped
// anything at all).

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { test, type TestContext } from 'node:test';

/** True under CI: the CI variable set to anything but '', '0' or 'false'. */
export const inCi = ((v) => v !== undefined && v !== '' && v !== '0' && v !== 'false')(
  process.env['CI'],
);

export const isRoot = process.getuid?.() === 0;

export function have(program: string): boolean {
  return (
    spawnSync('sh', ['-c', 'command -v "$1"', 'sh', program], { stdio: 'ignore' }).status === 0
  );
}

export interface Needs {
  /** Root (uid 0); the string says what for. */
  readonly root?: string;
  /** Network namespaces: root, `ip` and a kernel with CONFIG_NET_NS. */
  readonly netns?: boolean;
  /** Programs on PATH (or absolute paths). */
  readonly programs?: readonly string[];
  /** Anything else: returns what is missing, or undefined. */
  readonly check?: () => string | undefined;
}

/** What is missing for `needs`, in one line, or undefined when nothing is. */
export function unmet(needs: Needs): string | undefined {
  const problems: string[] = [];
  if (needs.netns === true) {
    if (!isRoot) problems.push('needs root (network namespaces)');
    if (!existsSync('/proc/self/ns/net'))
      problems.push('this kernel has no network namespaces (CONFIG_NET_NS)');
  } else if (needs.root !== undefined && !isRoot) {
    problems.push(`needs root (${needs.root})`);
  }
  const programs = [...(needs.netns === true ? ['ip'] : []), ...(needs.programs ?? [])];
  const absent = [...new Set(programs)].filter((p) => !have(p));
  if (absent.length > 0) problems.push(`needs ${absent.join(', ')} (npm run bootstrap as root)`);
  const other = problems.length === 0 ? needs.check?.() : undefined;
  if (other !== undefined) problems.push(other);
  return problems.length === 0 ? undefined : problems.join('; ');
}

function failInCi(reason: string): void {
  // A test of its own, so the failure is reported where the suite would have run.
  test(`missing prerequisite: ${reason}`, () => {
    throw new Error(`CI=true: a missing prerequisite fails the run instead of skipping: ${reason}`);
  });
}

/**
 * For `describe(…, { skip: prerequisites({…}) })` and `it(…, { skip: … })`: false when
 * everything is there; otherwise the reason, so the suite is skipped, and in CI a
 * failing test that says what is missing.
 */
export function prerequisites(needs: Needs | string | undefined): string | false {
  const reason = typeof needs === 'object' ? unmet(needs) : needs;
  if (reason === undefined) return false;
  if (inCi) failInCi(reason);
  return reason;
}

/**
 * Inside a running test: true (and the test skipped, or in CI failed with the
 * reason) when something is missing; the test then returns at once.
 */
export function skipUnmet(t: TestContext, needs: Needs): boolean {
  const reason = unmet(needs);
  if (reason === undefined) return false;
  if (inCi) {
    throw new Error(`CI=true: a missing prerequisite fails the run instead of skipping: ${reason}`);
  }
  t.skip(reason);
  return true;
}
