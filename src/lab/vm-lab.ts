// The lab inside the VM (`limen lab up --vm`, `npm run demo -- --wan pppoe`): this
// machine's kernel has no PPP, so the whole lab (namespaces, the ISP's pppoe-server,
// limen, the LAN clients) runs in the guest of src/lab/vm.ts, where the demo prints
// the same timeline as on the host; its output is streamed out as it is written.
// The VM lives as long as the command: Ctrl-C (or the end of --once) stops the demo
// in the guest, which removes the lab, and the VM powers off.

import { type LabWan, packageRoot } from './lab.ts';
import { shellQuote } from './system.ts';
import { IN_VM_ENV, prepareVmKernel, runInVm, vmUnavailable } from './vm.ts';

export interface VmDemoOptions {
  readonly wan: LabWan;
  readonly once: boolean;
  readonly name?: string | undefined;
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  readonly signal: AbortSignal;
}

/** True when this process runs inside limen's VM. */
export function inVm(env: NodeJS.ProcessEnv = process.env): boolean {
  return env[IN_VM_ENV] === '1';
}

/** The guest's script: the demo in the background, stopped with SIGINT when the host asks. */
export function vmDemoScript(o: Pick<VmDemoOptions, 'wan' | 'once' | 'name'>): string {
  const args = ['lab', 'demo', '--wan', o.wan, ...(o.once ? ['--once'] : [])];
  if (o.name !== undefined) args.push('--name', o.name);
  return [
    'set -u',
    `cd ${shellQuote(packageRoot())}`,
    `node bin/limen.js ${args.map(shellQuote).join(' ')} &`,
    'pid=$!',
    // The host's Ctrl-C appears as /vmshare/stop (runInVm's signal).
    'while kill -0 "$pid" 2>/dev/null; do',
    '  if [ -e /vmshare/stop ]; then kill -INT "$pid"; break; fi',
    '  sleep 0.2',
    'done',
    'wait "$pid"',
    '',
  ].join('\n');
}

/** Boots the VM and runs the demo there; resolves with the demo's exit code. */
export async function runDemoInVm(o: VmDemoOptions): Promise<number> {
  const problem = vmUnavailable();
  if (problem !== undefined) {
    o.err(`limen: the VM cannot run here: ${problem}\n`);
    return 1;
  }
  o.out('limen: preparing the VM (the current Debian kernel, cached after the first time)\n');
  const kernel = prepareVmKernel();
  o.out(
    `limen: booting the VM (kernel ${kernel.release} under qemu's software emulation: ` +
      `slower than the host, every time below is the guest's)\n`,
  );
  const r = await runInVm({
    script: vmDemoScript(o),
    kernel,
    memoryMiB: 2048,
    // --once ends by itself; the live view runs until Ctrl-C (a day at most).
    timeoutMs: o.once ? 15 * 60_000 : 24 * 3600_000,
    onOutput: o.out,
    signal: o.signal,
  });
  if (r.status === undefined) {
    o.err(
      `limen: the VM ${r.timedOut ? 'ran out of time' : 'stopped'} before the demo ended; its console's end:\n` +
        `${r.console.slice(-2000)}\n`,
    );
    return 1;
  }
  if (o.signal.aborted) return 130;
  return r.status;
}
