// The kernel's watchdog device (the kernel's Documentation/watchdog/watchdog-api.rst),
// as far as Node reaches it without ioctl: a character device whose countdown starts
// when it is opened, restarts at every write, and stops at close only if the last
// byte written was the magic character 'V' (and the kernel does not enforce
// `nowayout`). Its timeout cannot be set from here (WDIOC_SETTIMEOUT is an ioctl):
// it is read from sysfs (/sys/class/watchdog/watchdogN/timeout) when the kernel has it.
//
// Invariants: since opening arms the watchdog, nothing is opened before it is known
// to be a watchdog (a character device that sysfs names `watchdog` or `watchdogN`),
// and the descriptor opened must be the very node inspected; opening never blocks
// (O_NONBLOCK: a FIFO without a reader fails instead of hanging a thread); close()
// writes 'V' before closing, so that a normal stop disarms the watchdog.

import { closeSync, constants, fstatSync, open, writeSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { WatchdogDeviceError } from './errors.ts';

/** What the kernel says of a watchdog device, read before it is opened. */
export interface WatchdogInfo {
  readonly path: string;
  /** `DEV:INODE` of the node inspected: the descriptor opened must be the same. */
  readonly node: string;
  /** The kernel's name for it: `watchdog` (the legacy node of watchdog0) or `watchdogN`. */
  readonly name?: string;
  /** The driver's own name (`Software Watchdog`). */
  readonly identity?: string;
  /** Seconds without a write before the machine is reset. */
  readonly timeout?: number;
  /** The kernel will not stop the watchdog, even after a magic close. */
  readonly nowayout?: boolean;
}

/** An open watchdog: every feed() restarts its countdown. */
export interface WatchdogHandle {
  /** Writes one byte; throws a WatchdogDeviceError if the write fails. */
  feed(): void;
  /** Magic close: writes 'V', then closes (never throws; once). */
  close(): void;
}

/** glibc's gnu_dev_major and gnu_dev_minor, on a bigint st_rdev. */
function majorMinor(rdev: bigint): string {
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  return `${major}:${minor}`;
}

function code(e: unknown): string {
  return (e as NodeJS.ErrnoException).code ?? (e as Error).message;
}

async function readSysfs(path: string): Promise<string | undefined> {
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch {
    return undefined;
  }
}

function kindOf(s: { isFIFO(): boolean; isFile(): boolean; isDirectory(): boolean }): string {
  if (s.isFIFO()) return 'a FIFO';
  if (s.isFile()) return 'a regular file';
  if (s.isDirectory()) return 'a directory';
  return 'not a device';
}

/** The device's name in sysfs (`DEVNAME=` of its uevent), refusing anything but a watchdog. */
async function watchdogName(path: string, rdev: bigint, sysfs: string): Promise<string> {
  const id = majorMinor(rdev);
  const uevent = await readSysfs(join(sysfs, 'dev', 'char', id, 'uevent'));
  if (uevent === undefined)
    throw new WatchdogDeviceError(
      `cannot tell whether ${path} is a watchdog: the kernel has no ${join(sysfs, 'dev', 'char', id)}`,
    );
  const name = /^DEVNAME=(.*)$/m.exec(uevent)?.[1] ?? '';
  if (!/^watchdog\d*$/.test(name))
    throw new WatchdogDeviceError(
      `${path} is the character device ${name || id}, not a watchdog: refused`,
    );
  return name;
}

/** What the watchdog class in sysfs says of the device (each field when the kernel has it). */
async function classInfo(
  name: string,
  sysfs: string,
): Promise<Pick<WatchdogInfo, 'identity' | 'timeout' | 'nowayout'>> {
  // The legacy /dev/watchdog (misc 10:130) is the first watchdog's.
  const dir = join(sysfs, 'class', 'watchdog', name === 'watchdog' ? 'watchdog0' : name);
  const [identity, timeout, nowayout] = await Promise.all(
    ['identity', 'timeout', 'nowayout'].map((f) => readSysfs(join(dir, f))),
  );
  const seconds = Number(timeout);
  return {
    ...(identity === undefined ? {} : { identity }),
    ...(timeout !== undefined && Number.isFinite(seconds) && seconds > 0
      ? { timeout: seconds }
      : {}),
    ...(nowayout === undefined ? {} : { nowayout: nowayout === '1' }),
  };
}

/**
 * Inspects `path` without opening it: a watchdog character device, or a
 * WatchdogDeviceError saying what it is instead (absent, a FIFO, /dev/null…).
 */
export async function inspectWatchdog(path: string, sysfs = '/sys'): Promise<WatchdogInfo> {
  let s;
  try {
    s = await stat(path, { bigint: true });
  } catch (e) {
    const why = code(e);
    throw new WatchdogDeviceError(
      why === 'ENOENT'
        ? `${path}: no such device (is the watchdog's driver loaded?)`
        : `cannot inspect ${path}: ${why}`,
    );
  }
  if (!s.isCharacterDevice())
    throw new WatchdogDeviceError(`${path} is ${kindOf(s)}, not a character device: refused`);
  const name = await watchdogName(path, s.rdev, sysfs);
  return { path, node: `${s.dev}:${s.ino}`, name, ...(await classInfo(name, sysfs)) };
}

const openFd = promisify(open);

/** Writes 'V' and closes, ignoring what fails: the descriptor goes either way. */
function magicClose(fd: number): void {
  try {
    writeSync(fd, 'V');
  } catch {
    // A device gone away cannot be disarmed; closing is all there is left to do.
  }
  try {
    closeSync(fd);
  } catch {
    // Already closed by the kernel's side: nothing left to release.
  }
}

/** Opens the device `info` describes (arming it), checking it is still the node inspected. */
export async function openWatchdog(info: WatchdogInfo): Promise<WatchdogHandle> {
  let fd: number;
  try {
    fd = await openFd(info.path, constants.O_WRONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (e) {
    const why = code(e);
    throw new WatchdogDeviceError(
      why === 'EBUSY'
        ? `cannot open ${info.path}: EBUSY (another program, such as a watchdog daemon, holds it)`
        : `cannot open ${info.path}: ${why}`,
    );
  }
  const s = fstatSync(fd, { bigint: true });
  if (`${s.dev}:${s.ino}` !== info.node) {
    magicClose(fd);
    throw new WatchdogDeviceError(`${info.path} changed between its inspection and its opening`);
  }
  let closed = false;
  return {
    feed() {
      if (closed) throw new WatchdogDeviceError(`${info.path} is closed`);
      try {
        writeSync(fd, '\n');
      } catch (e) {
        throw new WatchdogDeviceError(`cannot write to ${info.path}: ${code(e)}`);
      }
    },
    close() {
      if (closed) return;
      closed = true;
      magicClose(fd);
    },
  };
}
