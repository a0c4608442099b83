// Headless Chromium for the dashboard's tests and benchmark: Debian's chromium
// (/usr/bin/chromium, scripts/debian-packages.txt) driven by playwright-core, which
// downloads nothing. Each launch gets a fresh profile (playwright's own temporary
// user-data directory, removed on close); the flags keep Chromium from reaching out
// to anything: no background networking, component updates, sync or QUIC.

import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-default-apps',
  '--disable-extensions',
];

/** Why the browser cannot run here, or undefined. */
export function browserMissing(): string | undefined {
  return existsSync(CHROMIUM)
    ? undefined
    : `${CHROMIUM} is missing (apt-get install chromium; node scripts/bootstrap.mjs installs it)`;
}

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 60_000 });
}
