// The commands the virtual-links driver runs: iproute2 to look at, create, mark
// and delete links (`ip -j -d link show` is read as JSON), and `wg` to key and peer
// a WireGuard link. A link limen created carries the alias LINK_MARK (`ip link set
// dev NAME alias limen`), so that limen, even after a restart, deletes only links
// it made. Every run is bounded by a timeout and the caller's signal; a failure is
// a LinkCommandError with the program's own words (`wg`'s redacted).

import { LimenError } from '../base/errors.ts';
import { runProgram, type ProgramResult } from '../platform/run-program.ts';
import { redactWg } from './wireguard.ts';

/** The alias of every link limen creates. */
export const LINK_MARK = 'limen';

export class LinkCommandError extends LimenError {
  readonly code = 'LIMEN_LINK_COMMAND';
}

/** What `ip -j -d link show` says of one link. */
export interface LinkFacts {
  readonly name: string;
  readonly index: number;
  /** `vlan`, `wireguard`, `veth` …; undefined for a physical device. */
  readonly kind: string | undefined;
  /** The lower link's name (a VLAN's parent), when it is in the same namespace. */
  readonly parent: string | undefined;
  readonly vlanId: number | undefined;
  readonly alias: string | undefined;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/** The links in `ip -j -d link show`'s output (entries that are not links are skipped). */
export function parseIpLinks(json: string): LinkFacts[] {
  const list: unknown = JSON.parse(json);
  if (!Array.isArray(list)) return [];
  const out: LinkFacts[] = [];
  for (const e of list as { [k: string]: unknown }[]) {
    const name = str(e['ifname']);
    if (name === undefined || typeof e['ifindex'] !== 'number') continue;
    const info = (e['linkinfo'] ?? {}) as { info_kind?: unknown; info_data?: { id?: unknown } };
    const id = info.info_data?.id;
    out.push({
      name,
      index: e['ifindex'],
      kind: str(info.info_kind),
      parent: str(e['link']),
      vlanId: typeof id === 'number' ? id : undefined,
      alias: str(e['ifalias']),
    });
  }
  return out;
}

function complaint(program: string, r: ProgramResult): string {
  if (r.signal !== null) return `${program} was killed by ${r.signal} (timeout)`;
  const text = (r.stderr.trim() || r.stdout.trim()).split('\n').slice(0, 3).join(' ');
  return text === '' ? `${program} exited with status ${String(r.code)}` : text.slice(0, 500);
}

export interface LinkCommandOptions {
  /** The ip command and leading arguments (tests: ['ip', '-n', NS] or a fake). */
  readonly ip?: readonly string[];
  /** The wg command and leading arguments (tests: ['ip', 'netns', 'exec', NS, 'wg']). */
  readonly wg?: readonly string[];
  /** Per command; default 10 s. */
  readonly timeoutMs?: number;
}

export class LinkCommands {
  readonly #ip: readonly string[];
  readonly #wg: readonly string[];
  readonly #timeoutMs: number;

  constructor(o: LinkCommandOptions = {}) {
    this.#ip = o.ip ?? ['ip'];
    this.#wg = o.wg ?? ['wg'];
    this.#timeoutMs = o.timeoutMs ?? 10_000;
  }

  async #run(argv: readonly string[], signal: AbortSignal, fds?: number[]) {
    try {
      return await runProgram(argv, {
        signal,
        timeoutMs: this.#timeoutMs,
        ...(fds === undefined ? {} : { fds }),
      });
    } catch (e) {
      throw new LinkCommandError(e instanceof Error ? e.message : String(e));
    }
  }

  /** Runs `ip ARGS`; throws LinkCommandError with ip's complaint. */
  async ip(args: readonly string[], signal: AbortSignal): Promise<string> {
    const r = await this.#run([...this.#ip, ...args], signal);
    if (r.code !== 0) throw new LinkCommandError(complaint('ip', r));
    return r.stdout;
  }

  /** The link NAME, or undefined if there is none. */
  async show(name: string, signal: AbortSignal): Promise<LinkFacts | undefined> {
    const r = await this.#run([...this.#ip, '-j', '-d', 'link', 'show', 'dev', name], signal);
    if (r.code !== 0) {
      if (/does not exist|cannot find device/i.test(r.stderr)) return undefined;
      throw new LinkCommandError(complaint('ip', r));
    }
    return parseIpLinks(r.stdout).find((l) => l.name === name);
  }

  /** Every link. */
  async list(signal: AbortSignal): Promise<LinkFacts[]> {
    return parseIpLinks(await this.ip(['-j', '-d', 'link', 'show'], signal));
  }

  /** The public keys of the peers the WireGuard link has. */
  async wgPeers(name: string, signal: AbortSignal): Promise<string[]> {
    const r = await this.#run([...this.#wg, 'show', name, 'peers'], signal);
    if (r.code !== 0) throw new LinkCommandError(`wg show: ${redactWg(complaint('wg', r))}`);
    return r.stdout.split('\n').filter((l) => l.trim() !== '');
  }

  /** Runs `wg ARGS` with the key descriptors as its fds 3, 4, …; the complaint is redacted. */
  async wg(args: readonly string[], fds: readonly number[], signal: AbortSignal): Promise<void> {
    const r = await this.#run([...this.#wg, ...args], signal, [...fds]);
    if (r.code !== 0) throw new LinkCommandError(`wg set: ${redactWg(complaint('wg', r))}`);
  }
}
