// The resolver driver: keeps a resolv.conf in step with the `<dns-server ADDR
// SOURCE>` and `<dns-search DOMAIN SOURCE>` assertions in $config.
//
// Invariants: the file is replaced atomically (a temporary file in the same
// directory, fsync, rename, fsync of the directory), so a reader sees the old
// or the new file, never a mix; content equal to what is on disk is not
// written (the file keeps its inode and mtime); a burst of changes is written
// once (debounced); writes never overlap. The order is stable and documented
// in orderEntries(); at most `maxNameservers` (glibc's MAXNS, 3) nameserver
// lines are written, the rest as comments. A value that is not an address or
// a domain name is never written as one (hand-written config can be wrong).

import { writeFileAtomicIfChanged } from '../platform/atomic-file.ts';
import { Sym, ValueMap, compare, peel, record, stringify, type Value } from '../preserves/index.ts';
import {
  type Driver,
  P,
  type Facet,
  type Handle,
  type Ref,
  anyRecord,
  declareFailures,
} from '../dataspace/index.ts';
import { ipFamily, parseDomainName, parseIpv4 } from './inet-values.ts';
import { printable } from '../preserves/index.ts';

export interface ResolverOptions {
  /** Where `<dns-server …>` and `<dns-search …>` are read, and `<resolver-error …>` asserted. */
  readonly config: Ref;
  /** The file to maintain, e.g. /etc/resolv.conf or /run/limen/resolv.conf. */
  readonly path: string;
  /** Changes within this many milliseconds are written together. Default 50. */
  readonly debounceMs?: number;
  /** Nameserver lines written; the rest become comments. Default 3 (glibc's MAXNS). */
  readonly maxNameservers?: number;
}

export interface Resolver extends Driver {
  readonly path: string;
  /** How many times the file was written (unchanged content is not a write). */
  readonly writes: number;
  /** Writes any pending change now and resolves when the file is up to date (or failed). */
  flush(): Promise<void>;
}

/** One `<dns-server …>` or `<dns-search …>`: a value and where it came from. */
export interface DnsEntry {
  readonly value: string;
  readonly source: Value;
}

export const DEFAULT_RESOLVER_DEBOUNCE_MS = 50;
export const GLIBC_MAXNS = 3;

const HEADER =
  '# Written by limen from the <dns-server> and <dns-search> assertions in $config.\n' +
  '# Changes made here are overwritten.\n';

/** Starts the driver in a child facet of `parent`. */
export function startResolver(parent: Facet, options: ResolverOptions): Resolver {
  return new ResolverImpl(parent, options);
}

class ResolverImpl implements Resolver {
  readonly path: string;
  readonly facet: Facet;
  readonly #config: Ref;
  readonly #debounceMs: number;
  readonly #maxNameservers: number;
  readonly #servers = new ValueMap<DnsEntry>();
  readonly #search = new ValueMap<DnsEntry>();
  #timer: NodeJS.Timeout | undefined;
  /** Content waiting to be written by the loop. */
  #pending: string | undefined;
  #loop: Promise<void> | undefined;
  #error: Handle | undefined;
  #writes = 0;

  constructor(parent: Facet, o: ResolverOptions) {
    this.path = o.path;
    this.#config = o.config;
    this.#debounceMs = o.debounceMs ?? DEFAULT_RESOLVER_DEBOUNCE_MS;
    this.#maxNameservers = o.maxNameservers ?? GLIBC_MAXNS;
    if (!Number.isSafeInteger(this.#maxNameservers) || this.#maxNameservers < 1)
      throw new RangeError(
        `maxNameservers must be a positive integer, got ${this.#maxNameservers}`,
      );
    this.facet = parent.spawn((f) => {
      // So that `limen status` and the log find them (docs/vocabulary.md, "Failures").
      declareFailures(f, this.#config, anyRecord('resolver-error', 2));
      f.onStop(() => {
        clearTimeout(this.#timer);
        this.#timer = undefined;
      });
      const follow = (label: string, into: ValueMap<DnsEntry>) =>
        f.observe(
          this.#config,
          P.rec(label, P.bind('value'), P.bind('source')),
          {
            onAdd: (v, c) => {
              const value = peel(c.get('value')!);
              // Not a string: kept as its text, so that it is reported, not silently lost.
              into.set(v, {
                value: typeof value === 'string' ? value : stringify(value),
                source: c.get('source')!,
              });
              this.#schedule();
            },
            onRemove: (v) => {
              into.delete(v);
              this.#schedule();
            },
          },
          `resolver: ${label}`,
        );
      follow('dns-server', this.#servers);
      follow('dns-search', this.#search);
    }, 'resolver');
    // Write once at start, even with no servers: the file then says so.
    this.#schedule();
  }

  get writes(): number {
    return this.#writes;
  }

  async flush(): Promise<void> {
    await this.facet.engine.sync();
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#render();
    }
    await this.#loop;
  }

  stop(): void {
    this.facet.stop();
  }

  #schedule(): void {
    if (this.#timer !== undefined || !this.facet.isAlive) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#render();
    }, this.#debounceMs);
  }

  #render(): void {
    if (!this.facet.isAlive) return;
    this.#pending = renderResolvConf([...this.#servers.values()], [...this.#search.values()], {
      maxNameservers: this.#maxNameservers,
    });
    this.#loop ??= this.#run();
  }

  async #run(): Promise<void> {
    // No await between the last test of #pending and clearing #loop (see OutputsDir).
    try {
      while (this.#pending !== undefined && this.facet.isAlive) {
        const content = this.#pending;
        this.#pending = undefined;
        try {
          if (
            await writeFileAtomicIfChanged(this.path, content, {
              mode: 0o644,
              signal: this.facet.signal,
            })
          )
            this.#writes++;
          this.#report(undefined);
        } catch (e) {
          this.#report(e instanceof Error ? e.message : String(e));
        }
      }
    } finally {
      this.#loop = undefined;
    }
  }

  #report(message: string | undefined): void {
    this.facet.turn(() => {
      const value =
        message === undefined ? undefined : record('resolver-error', this.path, message);
      if (value === undefined && this.#error === undefined) return;
      this.#error = this.facet.replace(this.#error, this.#config, value);
    });
  }
}

// ---- Rendering (pure) ---------------------------------------------------------------------

const STATIC = 'static';

function isStatic(source: Value): boolean {
  const s = peel(source);
  return s instanceof Sym && s.name === STATIC;
}

/** IPv4 before IPv6; IPv4 by numeric value, IPv6 (and anything else) by text. */
function compareAddresses(a: string, b: string): number {
  const x = parseIpv4(a);
  const y = parseIpv4(b);
  if (x !== undefined && y !== undefined) return x - y;
  if (x !== undefined) return -1;
  if (y !== undefined) return 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

function compareDomains(a: string, b: string): number {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  return x < y ? -1 : x > y ? 1 : 0;
}

/**
 * The order of entries in resolv.conf: by source, `static` first, then the other
 * sources in the Preserves order (so `<dhcp "wan0">` before `<dhcp "wan1">`);
 * within a source by value (addresses numerically, IPv4 first; domains by
 * lower-cased text).
 * Assertions carry no order of their own, so this is the order; a value given by
 * several sources appears once, at its first place.
 */
export function orderEntries(entries: readonly DnsEntry[], byValue = compareAddresses): DnsEntry[] {
  const sorted = [...entries].sort((a, b) => {
    const sa = isStatic(a.source);
    const sb = isStatic(b.source);
    if (sa !== sb) return sa ? -1 : 1;
    return compare(a.source, b.source) || byValue(a.value, b.value);
  });
  const seen = new Set<string>();
  return sorted.filter((e) => {
    const k = e.value.toLowerCase();
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/** The file's text for these servers and search domains. Pure and deterministic. */
export function renderResolvConf(
  servers: readonly DnsEntry[],
  search: readonly DnsEntry[],
  options: { readonly maxNameservers?: number } = {},
): string {
  const max = options.maxNameservers ?? GLIBC_MAXNS;
  const lines: string[] = [HEADER.trimEnd()];
  const ignored: string[] = [];

  const domains: string[] = [];
  for (const e of orderEntries(search, compareDomains)) {
    const d = parseDomainName(e.value);
    if (d === undefined) ignored.push(`search domain ${JSON.stringify(printable(e.value))}`);
    else if (!domains.includes(d.toLowerCase())) domains.push(d.toLowerCase());
  }
  if (domains.length > 0) lines.push(`search ${domains.join(' ')}`);

  const addresses: string[] = [];
  for (const e of orderEntries(servers)) {
    if (ipFamily(e.value) === undefined || /\s|#|;/.test(e.value))
      ignored.push(`nameserver ${JSON.stringify(printable(e.value))}`);
    else addresses.push(e.value);
  }
  for (const a of addresses.slice(0, max)) lines.push(`nameserver ${a}`);
  if (addresses.length > max) {
    lines.push(`# The resolver reads at most ${max} nameservers; not used:`);
    for (const a of addresses.slice(max)) lines.push(`# nameserver ${a}`);
  }
  if (ignored.length > 0) {
    lines.push('# Ignored (not an IP address or a domain name):');
    for (const i of ignored) lines.push(`# ${i}`);
  }
  return `${lines.join('\n')}\n`;
}
