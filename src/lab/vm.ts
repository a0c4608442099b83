// The VM facility (issue 14; docs/lab.md, "The VM"): a Debian kernel under qemu's
// software emulation, for what this machine's kernel lacks (PPP, L2TP, VLAN,
// WireGuard, a watchdog). The guest's root is the host's own `/`, shared read-only
// over virtio-9p with a tmpfs overlay on top, so every program installed on the
// host (node, this checkout, dnsmasq, pppd) is there at the same path; a second
// share (read-write, a directory per run) carries the command in and its output
// and exit status out; a third (read-only) carries the kernel's modules.
//
// The kernel is the current Debian `linux-image-amd64` (resolved through the
// meta-package, never a hard-coded ABI), downloaded with apt, extracted and cached
// outside the repository (VM_CACHE_DIR) with a small initramfs (a static busybox
// and the modules that mount the root). prepareVmKernel makes the cache once;
// runInVm boots, runs one shell script as root, powers off, and always leaves
// nothing behind: qemu is killed at the time limit and the run's directory removed.
// Facts measured on this kind of machine: ../shared/notes/vm-lab.md.

import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { LabError, have, run } from './system.ts';
import { withDirectoryLock } from '../platform/flock.ts';

/** Set for every process in the guest, so that it knows (the lab there never boots a VM). */
export const IN_VM_ENV = 'LIMEN_IN_VM';

/** Where the kernel, its modules and the initramfs are cached (outside the repository). */
export const VM_CACHE_DIR = process.env['LIMEN_VM_CACHE'] ?? '/var/cache/limen-vm';

/** Host programs the VM needs (scripts/debian-packages.txt installs them). */
export const VM_PROGRAMS = ['qemu-system-x86_64', 'depmod', 'modprobe', 'cpio', 'apt-get'];

/** Modules the initramfs loads to mount the 9p root and its overlay. */
const BOOT_MODULES = ['virtio_pci', '9pnet_virtio', '9p', 'overlay'];

/** Module trees left out of the cache (~400 MB → ~250 MB): nothing a router test needs. */
const PRUNED = ['sound', 'drivers/gpu', 'drivers/media', 'drivers/infiniband', 'drivers/staging'];

export interface VmKernel {
  /** The kernel's release, e.g. 6.1.0-57-amd64. */
  readonly release: string;
  readonly kernel: string;
  readonly initrd: string;
  /** The directory holding `RELEASE/` (shared with the guest as its /lib/modules). */
  readonly modules: string;
}

/** Why the VM cannot run here, or undefined. */
export function vmUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'the VM needs root (9p shares of /, the kernel cache)';
  const missing = VM_PROGRAMS.filter((p) => !have(p));
  if (missing.length > 0)
    return `missing ${missing.join(', ')}: run scripts/bootstrap.mjs (scripts/debian-packages.txt)`;
  return undefined;
}

/** The current Debian kernel package, from the meta-package's dependency. */
function currentKernelPackage(): string {
  const out = run(['apt-cache', 'depends', 'linux-image-amd64'], 60_000);
  const m = /Depends: (linux-image-[0-9][^\s]*-amd64)\b/.exec(out);
  if (m === null)
    throw new LabError(`apt-cache depends linux-image-amd64 names no kernel:\n${out}`);
  return m[1]!;
}

/** Downloads a Debian package into `dir` and extracts it into `dir/root`. */
function fetchPackage(pkg: string, dir: string): string {
  mkdirSync(dir, { recursive: true });
  run(['sh', '-c', 'cd "$1" && apt-get download -q "$2"', 'sh', dir, pkg], 300_000);
  const deb = readdirSync(dir).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
  if (deb === undefined) throw new LabError(`apt-get download ${pkg} left no .deb in ${dir}`);
  const root = join(dir, 'root');
  mkdirSync(root, { recursive: true });
  run(['dpkg-deb', '-x', join(dir, deb), root], 300_000);
  rmSync(join(dir, deb), { force: true });
  return root;
}

/**
 * The kernel, its modules and the initramfs, from the cache, or made there now
 * (apt-get download, dpkg-deb -x, depmod: ~15 s, once per kernel release).
 */
export function prepareVmKernel(cacheDir = VM_CACHE_DIR): VmKernel {
  const pkg = currentKernelPackage();
  const release = pkg.slice('linux-image-'.length);
  // A new init or module list is a new cache entry: the old initramfs is never reused.
  const recipe = createHash('sha256')
    .update(JSON.stringify([INIT, BOOT_MODULES, PRUNED]))
    .digest('hex')
    .slice(0, 12);
  const dir = join(cacheDir, `${release}-${recipe}`);
  const kernel: VmKernel = {
    release,
    kernel: join(dir, 'vmlinuz'),
    initrd: join(dir, 'initrd.cpio'),
    modules: join(dir, 'lib', 'modules'),
  };
  if (existsSync(join(dir, 'ready'))) return kernel;
  mkdirSync(cacheDir, { recursive: true, mode: 0o755 });
  const work = mkdtempSync(join(cacheDir, `.${release}-`));
  try {
    const image = fetchPackage(pkg, join(work, 'kernel'));
    const mods = join(work, 'out', 'lib', 'modules');
    mkdirSync(mods, { recursive: true });
    renameSync(join(image, 'lib', 'modules', release), join(mods, release));
    for (const p of PRUNED)
      rmSync(join(mods, release, 'kernel', p), { recursive: true, force: true });
    run(['depmod', '-b', join(work, 'out'), release], 120_000);
    copyFileSync(join(image, 'boot', `vmlinuz-${release}`), join(work, 'out', 'vmlinuz'));
    const busybox = join(fetchPackage('busybox-static', join(work, 'busybox')), 'bin', 'busybox');
    buildInitramfs(join(work, 'out'), release, busybox);
    rmSync(dir, { recursive: true, force: true });
    renameSync(join(work, 'out'), dir);
    writeFileSync(join(dir, 'ready'), `${pkg}\n`);
    // Older kernels and recipes are not used again.
    for (const e of readdirSync(cacheDir))
      if (/^\d[^/]*-amd64-[0-9a-f]{12}$/.test(e) && e !== basename(dir))
        rmSync(join(cacheDir, e), { recursive: true, force: true });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return kernel;
}

/** The initramfs's init: mount the host's root read-only under a tmpfs overlay, then stage 2. */
const INIT = `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules/order); do insmod /modules/$m; done
mkdir -p /lower /upper /new
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose root /lower || exec poweroff -f
mount -t tmpfs -o size=512m tmpfs /upper
mkdir -p /upper/data /upper/work
mount -t overlay -o lowerdir=/lower,upperdir=/upper/data,workdir=/upper/work overlay /new
mkdir -p /new/vmshare
mount -t 9p -o trans=virtio,version=9p2000.L share /new/vmshare
mount --move /dev /new/dev
umount /proc /sys
exec switch_root /new /bin/sh /vmshare/stage2
echo "limen-vm: switch_root failed"
poweroff -f
`;

/** Runs in the guest's real root: the mounts a test expects, the command, its status, off. */
const STAGE2 = `export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export ${IN_VM_ENV}=1
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
mkdir -p /dev/pts /dev/shm && mount -t devpts devpts /dev/pts && mount -t tmpfs tmpfs /dev/shm
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
mkdir -p /lib/modules && mount -t 9p -o trans=virtio,version=9p2000.L,ro modules /lib/modules
mkdir -p /vmstate && mount -t 9p -o trans=virtio,version=9p2000.L,cache=loose vmstate /vmstate 2>/dev/null
ip link set lo up
cd /
sh /vmshare/command > /vmshare/output 2>&1 < /dev/null
echo $? > /vmshare/status.tmp && mv /vmshare/status.tmp /vmshare/status
sync
echo o > /proc/sysrq-trigger
while :; do sleep 1; done
`;

function buildInitramfs(out: string, release: string, busybox: string): void {
  const tree = mkdtempSync(join(tmpdir(), 'limen-initramfs-'));
  try {
    for (const d of ['bin', 'proc', 'sys', 'dev', 'modules']) mkdirSync(join(tree, d));
    copyFileSync(busybox, join(tree, 'bin', 'busybox'));
    chmodSync(join(tree, 'bin', 'busybox'), 0o755);
    symlinkSync('busybox', join(tree, 'bin', 'sh'));
    const order: string[] = [];
    for (const m of BOOT_MODULES) {
      const deps = run(['modprobe', '-d', out, '-S', release, '--show-depends', m], 30_000);
      for (const line of deps.split('\n')) {
        const path = /^insmod (\S+)/.exec(line.trim())?.[1];
        if (path === undefined || order.includes(basename(path))) continue;
        copyFileSync(path, join(tree, 'modules', basename(path)));
        order.push(basename(path));
      }
    }
    writeFileSync(join(tree, 'modules', 'order'), order.join('\n') + '\n');
    writeFileSync(join(tree, 'init'), INIT, { mode: 0o755 });
    run(
      [
        'sh',
        '-c',
        'cd "$1" && find . | cpio -o -H newc --quiet > "$2"',
        'sh',
        tree,
        join(out, 'initrd.cpio'),
      ],
      60_000,
    );
  } finally {
    rmSync(tree, { recursive: true, force: true });
  }
}

export interface VmRunOptions {
  /** A shell script, run as root in the guest with the host's programs at their paths. */
  readonly script: string;
  /** The whole run, boot included; qemu is killed when it passes. Default 180 s. */
  readonly timeoutMs?: number;
  /** Guest memory (MiB); default 1024. */
  readonly memoryMiB?: number;
  readonly kernel?: VmKernel;
  /** Called with what the script writes, as it writes it (else only the result has it). */
  readonly onOutput?: (text: string) => void;
  /** When aborted, the file /vmshare/stop appears in the guest (a script may watch for it). */
  readonly signal?: AbortSignal;
  /**
   * A host directory shared read-write as /vmstate, kept after the run: state that
   * must survive into a second boot (the caller creates and removes it). Mounted with
   * the page cache (9p `cache=loose`), as a disk is: inotify works there (without the
   * cache, 9p makes a new inode at every lookup and a watch sees nothing, so a config
   * watcher would miss every change), and what a reset may lose is what was not
   * fsynced, as on a router's flash.
   */
  readonly stateDir?: string;
}

export interface VmRunResult {
  /** The script's exit status; undefined when it did not finish (timeout, crash). */
  readonly status: number | undefined;
  /** What the script wrote (stdout and stderr). */
  readonly output: string;
  /** The guest's console (kernel messages, init's errors). */
  readonly console: string;
  readonly timedOut: boolean;
  readonly ms: number;
}

/** The qemu command line for one run (notes/vm-lab.md: what worked here). */
function qemuArgv(
  k: VmKernel,
  share: string,
  memoryMiB: number,
  stateDir: string | undefined,
): string[] {
  const fs9p = (id: string, path: string, readonly: boolean) => [
    '-fsdev',
    `local,id=${id},path=${path},security_model=none,multidevs=remap${readonly ? ',readonly=on' : ''}`,
    '-device',
    `virtio-9p-pci,fsdev=${id},mount_tag=${id}`,
  ];
  return [
    'qemu-system-x86_64',
    ...['-accel', 'tcg,thread=multi,tb-size=256', '-cpu', 'max', '-smp', '2'],
    ...['-m', String(memoryMiB), '-M', 'pc', '-nodefaults', '-no-user-config'],
    ...['-display', 'none', '-no-reboot', '-serial', 'stdio', '-monitor', 'none'],
    ...['-kernel', k.kernel, '-initrd', k.initrd],
    '-append',
    'console=ttyS0 quiet loglevel=4 panic=-1 mitigations=off tsc=reliable rdinit=/init',
    ...fs9p('root', '/', true),
    ...fs9p('share', share, false),
    ...fs9p('modules', k.modules, true),
    ...(stateDir === undefined ? [] : fs9p('vmstate', stateDir, false)),
  ];
}

/**
 * Boots the VM, runs the script, powers off; always kills qemu and removes the run's
 * files. One VM runs at a time on a machine (TCG is CPU-bound): a second caller waits
 * for the first, holding an flock of the kernel cache.
 */
export async function runInVm(o: VmRunOptions): Promise<VmRunResult> {
  const k = o.kernel ?? prepareVmKernel();
  return withDirectoryLock(VM_CACHE_DIR, () => bootOnce(k, o), VM_QUEUE_SECONDS);
}

/** How long a VM run waits for the one before it. */
const VM_QUEUE_SECONDS = 3600;

async function bootOnce(k: VmKernel, o: VmRunOptions): Promise<VmRunResult> {
  const share = mkdtempSync(join(tmpdir(), 'limen-vm-run-'));
  const started = Date.now();
  let streamed = 0;
  const stream = () => {
    if (o.onOutput === undefined) return;
    try {
      const text = readFileSync(join(share, 'output'));
      if (text.length > streamed) {
        o.onOutput(text.subarray(streamed).toString('utf8'));
        streamed = text.length;
      }
    } catch {
      // Not written yet.
    }
  };
  const onAbort = () => writeFileSync(join(share, 'stop'), '');
  const poll = setInterval(stream, 100);
  try {
    writeFileSync(join(share, 'stage2'), STAGE2);
    writeFileSync(join(share, 'command'), o.script);
    if (o.signal?.aborted === true) onAbort();
    o.signal?.addEventListener('abort', onAbort, { once: true });
    if (o.stateDir !== undefined) mkdirSync(o.stateDir, { recursive: true });
    const argv = qemuArgv(k, share, o.memoryMiB ?? 1024, o.stateDir);
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    let console = '';
    const keep = (d: Buffer) => {
      console = (console + d.toString('utf8')).slice(-256 * 1024);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, o.timeoutMs ?? 180_000);
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.once('error', (e) => {
        console += `\nqemu: ${e.message}`;
        resolve();
      });
    });
    clearTimeout(timer);
    stream();
    const read = (f: string) =>
      existsSync(join(share, f)) ? readFileSync(join(share, f), 'utf8') : undefined;
    const statusText = read('status');
    return {
      status: statusText === undefined ? undefined : Number(statusText.trim()),
      output: read('output') ?? '',
      console,
      timedOut,
      ms: Date.now() - started,
    };
  } finally {
    clearInterval(poll);
    o.signal?.removeEventListener('abort', onAbort);
    rmSync(share, { recursive: true, force: true });
  }
}
