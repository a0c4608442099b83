#!/usr/bin/env node
// Prepares a checkout to run: installs npm packages when node_modules is missing
// or older than package-lock.json, builds dist/ when it is older than the sources,
// and installs the Debian packages limen needs (as root) or says how to.
// Node built-ins only: this runs before anything is installed.

import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const say = (msg) => process.stderr.write(`bootstrap: ${msg}\n`);

function fail(msg) {
  say(`error: ${msg}`);
  process.exit(1);
}

function run(cmd, args, opts = {}) {
  say(`running: ${[cmd, ...args].join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'], ...opts });
  if (r.error) fail(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) fail(`${cmd} ${args.join(' ')} exited with ${r.status ?? r.signal}`);
}

function mtime(path) {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return 0;
  }
}

function newestUnder(dir) {
  let newest = 0;
  if (!existsSync(dir)) return 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestUnder(p) : mtime(p));
  }
  return newest;
}

const major = Number(process.versions.node.split('.')[0]);
if (major < 20) fail(`limen needs Node.js >= 20; this is ${process.versions.node}`);

// 1. npm packages.
const lock = join(root, 'package-lock.json');
const installed = join(root, 'node_modules', '.package-lock.json');
if (!existsSync(installed) || mtime(installed) < mtime(lock)) {
  run('npm', ['ci', '--no-audit', '--no-fund']);
}

// An offline `npm install` of the packed package (test/integration/cli/package.test.ts)
// resolves limen's runtime dependencies from the registry's full package documents,
// which `npm ci` leaves out of the npm cache (it asks for the abbreviated ones).
// `npm cache add` caches them, with the tarball each range resolves to, once for each
// set of ranges (the stamp, in node_modules/, goes when `npm ci` runs again). A failure
// (no network) only warns: everything else here works without.
function runtimeSpecs() {
  const specs = new Set();
  for (const entry of Object.values(JSON.parse(readFileSync(lock, 'utf8')).packages)) {
    if (entry.dev === true || entry.devOptional === true) continue;
    for (const deps of [entry.dependencies, entry.optionalDependencies]) {
      for (const [name, range] of Object.entries(deps ?? {})) specs.add(`${name}@${range}`);
    }
  }
  return [...specs].sort();
}

const cacheStamp = join(root, 'node_modules', '.limen-offline-cache');
const specs = runtimeSpecs();
const stamped = existsSync(cacheStamp) ? readFileSync(cacheStamp, 'utf8') : '';
if (specs.length > 0 && stamped !== `${specs.join('\n')}\n`) {
  say(`running: npm cache add ${specs.join(' ')}`);
  const r = spawnSync('npm', ['cache', 'add', ...specs], {
    cwd: root,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (r.status === 0) writeFileSync(cacheStamp, `${specs.join('\n')}\n`);
  else say('warning: npm cache add failed: an offline install of the packed package will fail');
}

// 2. dist/ (the installed CLI runs from it, with no TypeScript at run time): tsc's
// output, then the CLI bundled over dist/cli/main.js (scripts/build-cli.mjs).
const stamp = join(root, 'dist', '.build-stamp');
const sourcesChanged = Math.max(
  newestUnder(join(root, 'src')),
  mtime(join(root, 'tsconfig.json')),
  mtime(join(root, 'tsconfig.build.json')),
  mtime(join(root, 'scripts', 'build-cli.mjs')),
);
if (mtime(stamp) < sourcesChanged) {
  rmSync(join(root, 'dist'), { recursive: true, force: true });
  run('npm', ['run', '--silent', 'build']);
  writeFileSync(stamp, `${new Date().toISOString()}\n`);
}

// 3. Debian packages.
function debianPackages() {
  const text = readFileSync(join(root, 'scripts', 'debian-packages.txt'), 'utf8');
  return text
    .split('\n')
    .map((l) => l.replace(/#.*/, '').trim())
    .filter(Boolean)
    .map((l) => l.split(/\s+/)[0]);
}

function isInstalled(pkg) {
  const r = spawnSync('dpkg-query', ['-W', '-f=${Status}', pkg], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.includes('install ok installed');
}

// Installing must not start host services: limen runs sshd, chronyd and dnsmasq
// itself, and a host sshd appearing on port 22 of a development machine or CI
// would be a surprise. Debian's way is a policy-rc.d that answers 101 ("action
// forbidden"), which invoke-rc.d and deb-systemd-invoke both obey. Ours exists
// only for the apt-get call, and only where the machine has none of its own (a
// container image's is left as it is); a leftover from an interrupted run is
// recognised by its marker line and removed.
const POLICY_RC = '/usr/sbin/policy-rc.d';
const POLICY_MARK = '# written by limen scripts/bootstrap.mjs for one apt-get call';

function ourPolicyIsThere() {
  try {
    return readFileSync(POLICY_RC, 'utf8').includes(POLICY_MARK);
  } catch {
    return false;
  }
}

function withoutServiceStarts(fn) {
  if (ourPolicyIsThere()) rmSync(POLICY_RC, { force: true });
  if (existsSync(POLICY_RC)) return fn();
  writeFileSync(POLICY_RC, `#!/bin/sh\n${POLICY_MARK}\nexit 101\n`);
  chmodSync(POLICY_RC, 0o755);
  const remove = () => {
    if (ourPolicyIsThere()) rmSync(POLICY_RC, { force: true });
  };
  // fail() ends with process.exit, which skips `finally`; 'exit' listeners run.
  const onSignal = (signal) => process.exit(signal === 'SIGINT' ? 130 : 143);
  process.on('exit', remove);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return fn();
  } finally {
    remove();
    process.off('exit', remove);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

// openssh-server enables ssh.service for the next boot even when it is not
// started. A machine that had no sshd before bootstrap gets none from it.
function disableHostSshd() {
  const r = spawnSync('systemctl', ['disable', '--quiet', 'ssh.service'], { stdio: 'inherit' });
  if (r.error || r.status !== 0) {
    say('warning: could not disable the host ssh.service: run `systemctl disable ssh` if unwanted');
  } else {
    say('disabled the host ssh.service that openssh-server enabled (limen runs its own sshd)');
  }
}

if (process.env.LIMEN_SKIP_APT === '1') {
  say('LIMEN_SKIP_APT=1: not checking Debian packages');
} else if (existsSync('/etc/debian_version')) {
  const missing = debianPackages().filter((p) => !isInstalled(p));
  if (missing.length > 0) {
    const cmd = ['apt-get', 'install', '-y', '--no-install-recommends', ...missing];
    if (process.getuid?.() !== 0) {
      fail(
        `missing Debian packages: ${missing.join(' ')}\n` +
          `  run as root:  apt-get update && ${cmd.join(' ')}\n` +
          '  (or set LIMEN_SKIP_APT=1 to skip this check)',
      );
    }
    say(`installing Debian packages: ${missing.join(' ')}`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    run('apt-get', ['update', '-q'], { env });
    withoutServiceStarts(() => run(cmd[0], cmd.slice(1), { env }));
    if (missing.includes('openssh-server') && existsSync('/usr/bin/systemctl')) disableHostSshd();
  }
} else {
  say(
    'not a Debian system: install iproute2, nftables, busybox (udhcpc), dnsmasq, s6, ' +
      'OpenSSH (sshd) and chrony yourself',
  );
}

// limen's pppd hook (libexec/ppp-hook), where pppd 2.4.9 runs hooks: as a
// package's postinst would install it. It acts only on links limen started.
if (process.getuid?.() === 0 && existsSync('/etc/ppp')) {
  const hook = join(root, 'libexec', 'ppp-hook');
  for (const d of ['ip-up.d', 'ip-down.d']) {
    const link = join('/etc/ppp', d, 'limen');
    let current;
    try {
      current = readlinkSync(link);
    } catch {
      current = undefined;
    }
    if (current === hook) continue;
    mkdirSync(join('/etc/ppp', d), { recursive: true });
    rmSync(link, { force: true });
    symlinkSync(hook, link);
    say(`installed the pppd hook ${link} -> ${hook}`);
  }
  // ip-up.local replaces ip-up.d for every link (Debian's ip-up): limen's hook then
  // runs alone for limen's links and runs ip-up.d for the others. Only ours is replaced.
  for (const f of ['ip-up.local', 'ip-down.local']) {
    const link = join('/etc/ppp', f);
    let current;
    try {
      current = readlinkSync(link);
    } catch (e) {
      current = e.code === 'ENOENT' ? undefined : null;
    }
    if (current === hook) continue;
    if (current === null || (current !== undefined && !current.endsWith('/libexec/ppp-hook'))) {
      say(
        `left ${link} alone (not limen's): Debian's 0000usepeerdns may then rewrite ` +
          `/etc/resolv.conf for limen's PPP links`,
      );
      continue;
    }
    rmSync(link, { force: true });
    symlinkSync(hook, link);
    say(`installed the pppd hook ${link} -> ${hook}`);
  }
}

// The web dashboard's user and group (config/services/web.pr, docs/web.md): a system
// user with no home and no shell, whose primary group is the daemon's --web-group.
if (process.platform === 'linux' && process.getuid?.() === 0) {
  const has = (file, name) =>
    readFileSync(file, 'utf8')
      .split('\n')
      .some((l) => l.startsWith(`${name}:`));
  if (!has('/etc/passwd', 'limen-web')) {
    const args = [
      '--system',
      '--no-create-home',
      '--home-dir',
      '/nonexistent',
      '--shell',
      '/usr/sbin/nologin',
    ];
    if (has('/etc/group', 'limen-web')) args.push('--gid', 'limen-web');
    else args.push('--user-group');
    run('useradd', [...args, 'limen-web']);
    say('created the system user limen-web (the web dashboard runs as it)');
  }
}
